"""The release's projector and prompt layout on layers of different widths (a ResNet CLIP), and the
release-fidelity keys' validation."""
import pytest
import torch
import torch.nn.functional as F

from trainers.clip_backbone import build_random_clip
from trainers.ipclip.ip_projector_release import ReleaseIPProjector
from trainers.ipclip.model import IPCLIPModel

LAYER_DIMS = [8, 16, 32]
TEXT_WIDTH, HIDDEN, M = 12, 6, 3


def stats_for(batch, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, d, generator=gen), torch.rand(batch, d, generator=gen) + 0.5)
            for d in LAYER_DIMS]


def test_each_layer_is_its_own_linear_chain_and_image_tokens_are_copies():
    torch.manual_seed(0)
    projector = ReleaseIPProjector(LAYER_DIMS, TEXT_WIDTH, n_image_tokens=M, hidden=HIDDEN)
    stats = stats_for(4)
    domain, image = projector(stats)
    assert domain.shape == (4, len(LAYER_DIMS), TEXT_WIDTH) and image.shape == (4, M, TEXT_WIDTH)
    content = []
    for layer, (dim, (mu, sigma)) in enumerate(zip(LAYER_DIMS, stats)):
        w_in, b_in = projector.domain_in.weight[layer, :dim], projector.domain_in.bias[layer]
        w_out, b_out = projector.domain_out.weight[layer], projector.domain_out.bias[layer]
        expected = ((mu + sigma) / 2 @ w_in + b_in) @ w_out + b_out
        torch.testing.assert_close(domain[:, layer], expected)
        content.append(mu @ projector.content.weight[layer, :dim] + projector.content.bias[layer])
    mixed = torch.stack(content, dim=-1) @ projector.layer_mix.weight[0] + projector.layer_mix.bias
    for token in range(M):
        torch.testing.assert_close(image[:, token], mixed)
    context = projector.context(stats)
    assert projector.n_context_tokens == context.shape[1] == 2 * len(LAYER_DIMS) + M
    torch.testing.assert_close(context[:, :3], context[:, 3:6])


def test_padding_never_learns():
    projector = ReleaseIPProjector(LAYER_DIMS, TEXT_WIDTH, n_image_tokens=M, hidden=HIDDEN)
    domain, image = projector(stats_for(4))
    (domain.square().sum() + image.square().sum()).backward()
    for linear in (projector.domain_in, projector.content):
        for layer, dim in enumerate(LAYER_DIMS):
            assert torch.count_nonzero(linear.weight.grad[layer, dim:]) == 0
            assert torch.count_nonzero(linear.weight[layer, dim:]) == 0


def test_release_projector_on_the_tiny_resnet_clip():
    clip_model = build_random_clip("tiny-rn")
    model = IPCLIPModel(clip_model, ["cat", "dog", "fish"], n_image_tokens=4, projector_hidden=0,
                        bank_size=2, branch_hidden=0, projector_form="release", branch_form="release",
                        bank_prototype="all_slots")
    n_layers = model.tap.num_layers
    assert len(set(model.tap.layer_dims)) > 1, "the tiny ResNet's stages differ in width"
    assert model.projector.n_context_tokens == 2 * n_layers + 4
    assert model.projector.domain_in.out_features == clip_model.ln_final.weight.shape[0] // 2
    images = torch.randn(2, 3, clip_model.visual.input_resolution, clip_model.visual.input_resolution)
    out = model.encode(images)
    assert out["logits"].shape == (2, 3) and torch.isfinite(out["logits"]).all()
    assert out["domain_tokens"].shape[1] == n_layers
    with pytest.raises(ValueError, match="IMAGE_TOKEN_INIT needs TRAINER.IPCLIP.PROJECTOR ours"):
        IPCLIPModel(clip_model, ["cat"], n_image_tokens=4, projector_hidden=0, bank_size=2,
                    branch_hidden=0, projector_form="release", image_token_init="a photo of a")
    with pytest.raises(ValueError, match="TRAINER.IPCLIP.PROJECTOR must be one of ours, release"):
        IPCLIPModel(clip_model, ["cat"], n_image_tokens=4, projector_hidden=0, bank_size=2,
                    branch_hidden=0, projector_form="paper")


def test_release_sigma_adds_its_eps_to_the_sum():
    from trainers.ipclip.feature_hooks import channel_stats

    x = torch.randn(7, 2, 5)  # [tokens, batch, channels]
    mu, sigma = channel_stats(x, (0,), eps=0.7, eps_on_sum=True)
    expected = torch.sqrt(((x - x.mean(0)) ** 2).sum(0) / 7 + 0.7 / 7)
    torch.testing.assert_close(sigma, expected)
    torch.testing.assert_close(mu, x.mean(0))


@pytest.mark.parametrize("key", ["PROJECTOR", "BRANCH", "BANK_FILL", "BANK_PROTOTYPE", "LR_STEP_EVERY"])
def test_bad_release_fidelity_values_name_the_key(make_cfg, key):
    from trainers.ipclip.trainer import IPCLIP

    cfg = make_cfg()
    cfg.TRAINER.IPCLIP[key] = "paper"
    with pytest.raises(ValueError, match=f"TRAINER.IPCLIP.{key} must be one of"):
        IPCLIP.check_cfg(None, cfg)


def test_release_branch_prototype_of_empty_slots_is_zero_and_attended():
    from trainers.ipclip.style_bank import IPStyleBanks

    banks = IPStyleBanks(3, 2, 4, prototype_mode="all_slots")
    feature = F.normalize(torch.ones(1, 4), dim=-1)
    banks.file_unauthorized(feature, torch.tensor([[5.0, 0.0, 0.0]]))
    proto, has, unauth_proto, unauth_has = banks.prototypes()
    assert has.all() and unauth_has.all()
    torch.testing.assert_close(unauth_proto[0], feature[0] / 2)  # one of two slots filled
    assert torch.count_nonzero(unauth_proto[1:]) == 0
    with pytest.raises(ValueError, match="BANK_PROTOTYPE must be one of"):
        IPStyleBanks(3, 2, 4, prototype_mode="paper")


def test_release_kl_takes_the_unit_norm_text_features():
    from trainers.ipclip.loss import kl_feature_scale

    scale = torch.tensor(100.0)
    assert kl_feature_scale("release", scale) == 1.0
    assert kl_feature_scale("ours", scale) is scale
