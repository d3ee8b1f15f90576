"""VisualFeatureTap: per-layer AdaIN statistics of CLIP's image encoder via forward hooks."""
import warnings

import pytest
import torch
from torch import nn

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import clip.model

from trainers.ipclip.feature_hooks import DEFAULT_STATS_EPS, VisualFeatureTap, channel_stats


def tiny_clip(kind):
    torch.manual_seed(0)
    if kind == "resnet":
        vision = dict(vision_layers=(1, 1, 1, 1), vision_width=16, vision_patch_size=None)
    else:
        vision = dict(vision_layers=3, vision_width=64, vision_patch_size=8)
    return clip.model.CLIP(embed_dim=64, image_resolution=32, context_length=32, vocab_size=49408,
                           transformer_width=64, transformer_heads=1, transformer_layers=2,
                           **vision).float().eval()


def images(batch=3):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def vit_block_outputs(visual, x):
    """Rerun the ViT by hand; yields each block's [tokens, B, width] output."""
    x = visual.conv1(x).flatten(2).transpose(1, 2)
    cls = visual.class_embedding.expand(x.shape[0], 1, -1)
    x = visual.ln_pre(torch.cat([cls, x], dim=1) + visual.positional_embedding).transpose(0, 1)
    for block in visual.transformer.resblocks:
        x = block(x)
        yield x


def resnet_stage_outputs(visual, x):
    """Rerun the ModifiedResNet by hand; yields each stage's [B, C, H, W] output."""
    x = visual.relu1(visual.bn1(visual.conv1(x)))
    x = visual.relu2(visual.bn2(visual.conv2(x)))
    x = visual.avgpool(visual.relu3(visual.bn3(visual.conv3(x))))
    for stage in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
        x = stage(x)
        yield x.clone()


def hand_stats(outputs, dims):
    stats = []
    for out in outputs:
        mu = out.mean(dim=dims)
        var = ((out - out.mean(dim=dims, keepdim=True)) ** 2).mean(dim=dims)
        stats.append((mu, torch.sqrt(var + DEFAULT_STATS_EPS)))
    return stats


@pytest.mark.parametrize("kind", ["vit", "resnet"])
def test_stats_match_hand_computation_and_features_match_encode_image(kind):
    model = tiny_clip(kind)
    x = images()
    with VisualFeatureTap(model.visual) as tap:
        features, stats = tap.tap(x)
        dims = tap.layer_dims
    with torch.no_grad():
        expected_features = model.encode_image(x)
        if kind == "vit":
            expected = hand_stats(vit_block_outputs(model.visual, x), dims=0)
        else:
            expected = hand_stats(resnet_stage_outputs(model.visual, x), dims=(2, 3))
    torch.testing.assert_close(features, expected_features)
    assert len(stats) == len(expected) == len(dims)
    for (mu, sigma), (mu_ref, sigma_ref), width in zip(stats, expected, dims):
        assert mu.shape == sigma.shape == (x.shape[0], width)
        torch.testing.assert_close(mu, mu_ref, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(sigma, sigma_ref, rtol=1e-4, atol=1e-5)


def test_layer_dims_are_read_from_the_model():
    vit = tiny_clip("vit").visual
    with VisualFeatureTap(vit) as tap:
        assert tap.layer_dims == [vit.transformer.width] * len(vit.transformer.resblocks) == [64] * 3
    resnet = tiny_clip("resnet").visual
    with VisualFeatureTap(resnet) as tap:
        # ModifiedResNet stage widths: 4 * width * 2**i
        assert tap.layer_dims == [64, 128, 256, 512]


def test_single_pixel_stage_gives_finite_sigma():
    # the tiny ResNet's layer4 map is 1x1 at 32 px: population variance 0, sigma = sqrt(eps)
    with VisualFeatureTap(tiny_clip("resnet").visual, eps=1e-4) as tap:
        _, stats = tap.tap(images(2))
    sigma = stats[-1][1]
    torch.testing.assert_close(sigma, torch.full_like(sigma, 1e-2))


def test_frozen_encoder_runs_in_eval_mode_without_grad_and_keeps_its_flag():
    model = tiny_clip("resnet")
    model.train()
    bn = model.visual.bn1
    running_mean = bn.running_mean.clone()
    with VisualFeatureTap(model.visual) as tap:
        features, stats = tap.tap(images().requires_grad_())
    assert model.visual.training and bn.training
    torch.testing.assert_close(bn.running_mean, running_mean, rtol=0, atol=0)
    assert not features.requires_grad and not stats[0][0].requires_grad
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(features, model.encode_image(images()))


def test_hooks_record_only_inside_tap_and_close_removes_them():
    visual = tiny_clip("vit").visual
    tap = VisualFeatureTap(visual)
    with torch.no_grad():
        visual(images())
    assert tap._stats == []
    _, stats = tap.tap(images())
    _, again = tap.tap(images())
    assert len(stats) == len(again) == 3
    tap.close()
    assert all(len(block._forward_hooks) == 0 for block in visual.transformer.resblocks)
    with pytest.raises(RuntimeError, match="after close"):
        tap.tap(images())


def test_channel_stats_in_float32_for_half_inputs():
    x = torch.full((2, 4, 3, 3), 300.0, dtype=torch.float16)
    x[:, :, 0, 0] = -300.0
    mu, sigma = channel_stats(x, (2, 3))
    assert mu.dtype == sigma.dtype == torch.float32
    assert torch.isfinite(sigma).all()


def test_unsupported_encoder_and_bad_images_give_clear_errors():
    with pytest.raises(TypeError, match="VisionTransformer"):
        VisualFeatureTap(nn.Linear(3, 3))
    with VisualFeatureTap(tiny_clip("vit").visual) as tap:
        with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
            tap.tap(torch.randn(3, 32, 32))
