"""IPProjector: per-layer statistics -> L domain tokens + M distinct image tokens."""
import pytest
import torch
from torch import nn

from dassl.errors import ConfigError
from trainers.ipclip.ip_projector import IPProjector, PerLayerLinear

VIT_DIMS = [64, 64, 64]           # a ViT: every block has the same width
RESNET_DIMS = [64, 128, 256, 512]  # a ModifiedResNet: widths grow per stage


def random_stats(dims, batch=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, d, generator=g) * 30, torch.rand(batch, d, generator=g) * 5 + 0.1)
            for d in dims]


@pytest.mark.parametrize("dims", [VIT_DIMS, RESNET_DIMS])
def test_shapes_and_context_layout(dims):
    torch.manual_seed(0)
    projector = IPProjector(dims, text_width=48, n_image_tokens=4)
    stats = random_stats(dims)
    domain, image = projector(stats)
    assert domain.shape == (5, len(dims), 48)
    assert image.shape == (5, 4, 48)
    context = projector.context(stats)
    assert context.shape == (5, projector.n_context_tokens, 48)
    assert projector.n_context_tokens == len(dims) + 4
    torch.testing.assert_close(context[:, : len(dims)], domain)
    torch.testing.assert_close(context[:, len(dims):], image)


@pytest.mark.parametrize("dims", [VIT_DIMS, RESNET_DIMS, [32]])
def test_image_tokens_are_distinct(dims):
    torch.manual_seed(0)
    projector = IPProjector(dims, text_width=48, n_image_tokens=4)
    _, image = projector(random_stats(dims))
    for i in range(4):
        for j in range(i + 1, 4):
            assert (image[:, i] - image[:, j]).abs().max() > 1e-4, (i, j)


@pytest.mark.parametrize("dims", [VIT_DIMS, RESNET_DIMS])
def test_gradients_reach_every_parameter(dims):
    torch.manual_seed(0)
    projector = IPProjector(dims, text_width=48, n_image_tokens=3)
    projector.context(random_stats(dims)).square().sum().backward()
    for name, param in projector.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_tokens_depend_on_their_own_statistics():
    torch.manual_seed(0)
    projector = IPProjector(RESNET_DIMS, text_width=16)
    stats = random_stats(RESNET_DIMS)
    domain, image = projector(stats)
    changed = list(stats)
    changed[2] = (stats[2][0], stats[2][1] * 3)  # only layer 2's sigma
    domain2, image2 = projector(changed)
    assert torch.allclose(domain2[:, [0, 1, 3]], domain[:, [0, 1, 3]])
    assert not torch.allclose(domain2[:, 2], domain[:, 2])
    torch.testing.assert_close(image2, image)  # image tokens read mu only
    # images are conditioned individually: changing one image leaves the others alone
    single = [(mu.clone(), sigma.clone()) for mu, sigma in stats]
    single[0][0][1] += 5
    domain3, image3 = projector(single)
    torch.testing.assert_close(domain3[0], domain[0])
    torch.testing.assert_close(image3[0], image[0])
    assert not torch.allclose(image3[1], image[1])


def test_per_layer_linear_equals_separate_linears_on_padded_input():
    torch.manual_seed(0)
    dims = [3, 5, 2]
    batched = PerLayerLinear(dims, 4)
    xs = [torch.randn(6, d) for d in dims]
    # garbage in the padded positions: the padded weight rows are zero, so it cannot leak in
    padded = torch.stack([nn.functional.pad(x, (0, 5 - x.shape[1]), value=7.0) for x in xs], dim=1)
    out = batched(padded)
    for layer, x in enumerate(xs):
        expected = x @ batched.weight[layer, : dims[layer]] + batched.bias[layer]
        torch.testing.assert_close(out[:, layer], expected)


def test_wrong_statistics_give_clear_errors():
    projector = IPProjector(RESNET_DIMS, text_width=16)
    with pytest.raises(ValueError, match="list of 4"):
        projector(random_stats(RESNET_DIMS[:3]))
    with pytest.raises(ValueError, match="Layer 1"):
        projector(random_stats([64, 100, 256, 512]))


def test_runs_under_autocast():
    projector = IPProjector(VIT_DIMS, text_width=16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        context = projector.context(random_stats(VIT_DIMS))
    assert context.shape == (5, 7, 16) and torch.isfinite(context.float()).all()


def test_domain_tokens_start_at_the_given_words_and_still_depend_on_the_image():
    torch.manual_seed(0)
    projector = IPProjector(RESNET_DIMS, text_width=48)
    words = torch.randn(len(RESNET_DIMS), 48)
    projector.init_domain_tokens(words)
    domain, _ = projector(random_stats(RESNET_DIMS))
    # The per-layer map's output starts at CoOp's init scale around its bias: the words.
    assert (domain - words).abs().max() < 0.2 * words.abs().max()
    assert (domain[0] - domain[1]).abs().max() > 0, "the tokens must still depend on the image"
    with pytest.raises(ValueError, match="domain token init must be"):
        projector.init_domain_tokens(torch.zeros(2, 48))


@pytest.mark.parametrize("bound_type", ["coordinate", "norm"])
def test_token_bound_limits_tokens_and_the_norm_bound_keeps_their_direction(bound_type):
    torch.manual_seed(0)
    projector = IPProjector(VIT_DIMS, text_width=48, token_bound=0.5, bound_type=bound_type)
    free = IPProjector(VIT_DIMS, text_width=48)
    free.load_state_dict(projector.state_dict())
    with torch.no_grad():
        for p in (projector.domain_mlp.output.bias, free.domain_mlp.output.bias):
            p.fill_(3.0)  # far outside the bound
    stats = random_stats(VIT_DIMS)
    bounded, raw = projector(stats)[0], free(stats)[0]
    if bound_type == "coordinate":
        assert bounded.abs().max() <= 0.5
    else:
        assert bounded.norm(dim=-1).max() <= 0.5 + 1e-6
        torch.testing.assert_close(nn.functional.normalize(bounded, dim=-1),
                                   nn.functional.normalize(raw, dim=-1))
    with pytest.raises(ConfigError, match="TOKEN_BOUND_TYPE must be one of coordinate, norm"):
        IPProjector(VIT_DIMS, text_width=48, bound_type="sphere")
    with pytest.raises(ConfigError, match="N_IMAGE_TOKENS must be >= 1"):
        IPProjector(VIT_DIMS, text_width=48, n_image_tokens=0)
