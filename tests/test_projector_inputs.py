"""What the projector reads: feature-level style randomisation inside the encoder, and the
standardisation of its inputs by the authorized domain's statistics."""
import pytest
import torch

from dassl.config import get_cfg_default
from dassl.errors import ConfigError
from trainers.clip_backbone import build_random_clip
from trainers.config import extend_cfg
from trainers.ipclip.feature_hooks import VisualFeatureTap, channel_stats
from trainers.ipclip.feature_restyle import FeatureRestyle
from trainers.ipclip.model import IPCLIPModel
from trainers.ipclip.stats_standardizer import StatsStandardizer


def restyle_node(**values):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    node = cfg.TRAINER.IPCLIP.FEATURE_RESTYLE
    node.defrost()
    for key, value in values.items():
        node[key] = value
    return node


def images(batch, resolution, seed=0):
    return torch.randn(batch, 3, resolution, resolution, generator=torch.Generator().manual_seed(seed))


def test_restyle_moves_only_the_chosen_images_and_every_later_layer():
    clip_model = build_random_clip("tiny-rn")
    tap = VisualFeatureTap(clip_model.visual)
    restyle = FeatureRestyle.from_cfg(restyle_node(PROB=1.0, LAYERS=(0,), MU_SHIFT=2.0), tap.num_layers)
    x = images(6, clip_model.visual.input_resolution)
    strength = restyle.draw(3, 3, x.device)
    assert torch.equal(strength[:3], torch.zeros(3)) and (strength[3:] >= 0.5).all()
    clean_features, clean_stats = tap.tap(x)
    features, stats = tap.tap(x, restyle.hook(strength))
    torch.testing.assert_close(features[:3], clean_features[:3])
    for (mu, sigma), (clean_mu, clean_sigma) in zip(stats, clean_stats):
        torch.testing.assert_close(mu[:3], clean_mu[:3])
        torch.testing.assert_close(sigma[:3], clean_sigma[:3])
    for layer in range(tap.num_layers):  # the restyled layer and the ones after it moved
        assert not torch.allclose(stats[layer][0][3:], clean_stats[layer][0][3:])
    assert not torch.allclose(features[3:], clean_features[3:])
    # the hook is gone after the call: a plain tap gives the clean statistics again
    torch.testing.assert_close(tap.tap(x)[1][0][0], clean_stats[0][0])


def test_restyle_sets_the_drawn_statistics():
    restyle = FeatureRestyle(prob=1.0, layers=(0,), mu_shift=1.0, sigma_scale=0.5, min_strength=0.0)
    x = torch.randn(4, 5, 7, 7) * 3 + 1
    torch.manual_seed(0)
    out = restyle.apply(x, torch.tensor([0.0, 1.0, 1.0, 1.0]), (2, 3), 0)
    torch.manual_seed(0)
    var, mu = torch.var_mean(x, dim=(2, 3), correction=0, keepdim=True)
    sigma = (var + 1e-5).sqrt()
    e1 = torch.randn_like(mu)
    e2 = torch.randn_like(sigma)
    new_mu, new_sigma = channel_stats(out, (2, 3))
    torch.testing.assert_close(out[0], x[0])
    torch.testing.assert_close(new_mu[1:], (mu + e1 * sigma).flatten(1)[1:], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(new_sigma[1:], (sigma * torch.exp(0.5 * e2)).flatten(1)[1:],
                               rtol=1e-3, atol=1e-3)


def test_strength_exponent_moves_the_draws_toward_min_strength_within_the_same_range():
    """STRENGTH_EXPONENT 1 draws U(MIN_STRENGTH, 1); above 1 the same range, more draws near its
    bottom (the share below a point is that point's quantile raised to 1 / exponent); 0: always 1."""
    def strengths(exponent, n=20000):
        restyle = FeatureRestyle.from_cfg(restyle_node(PROB=1.0, MIN_STRENGTH=0.1,
                                                       STRENGTH_EXPONENT=exponent), 4)
        torch.manual_seed(0)
        return restyle.draw(0, n, torch.device("cpu"))

    uniform, skewed = strengths(1.0), strengths(2.0)
    for s in (uniform, skewed):
        assert s.min() >= 0.1 and s.max() <= 1.0
    below = 0.3  # its quantile under U(0.1, 1) is 2/9
    assert abs((uniform < below).float().mean().item() - 2 / 9) < 0.02
    assert abs((skewed < below).float().mean().item() - (2 / 9) ** 0.5) < 0.02
    assert torch.equal(strengths(0.0, 10), torch.ones(10))


def test_batch_directions_are_the_partners_standardised_differences_at_unit_rms():
    """DIRECTIONS "batch": partners are two different unauthorized images; each restyled image's
    mean moves along (mu_p - mu_q) / sqrt(sigma_p sigma_q) and its log-spread along log sigma_p -
    log sigma_q, both rescaled to the RMS of a N(0, 1) draw; the ViT layout gives the same."""
    restyle = FeatureRestyle.from_cfg(restyle_node(PROB=1.0, MU_SHIFT=1.0, SIGMA_SCALE=0.5,
                                                   DIRECTIONS="batch"), 4)
    torch.manual_seed(0)
    partners = restyle.draw_partners(2, 4, torch.device("cpu"))
    assert partners.shape == (2, 6) and (partners >= 2).all() and (partners < 6).all()
    assert (partners[0] != partners[1]).all()
    assert FeatureRestyle.from_cfg(restyle_node(), 4).draw_partners(2, 4, torch.device("cpu")) is None

    x = torch.randn(6, 5, 7, 7) * torch.rand(1, 5, 1, 1).add(0.5) * torch.arange(1.0, 7.0).view(6, 1, 1, 1)
    strength = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.5, 1.0])
    out = restyle.apply(x, strength, (2, 3), 0, partners)
    var, mu = torch.var_mean(x, dim=(2, 3), correction=0, keepdim=True)
    mu, sigma = mu.flatten(1), (var + 1e-5).sqrt().flatten(1)
    p, q = partners
    d_mu = (mu[p] - mu[q]) / (sigma[p] * sigma[q]).sqrt()
    d_sigma = sigma[p].log() - sigma[q].log()
    e1 = d_mu / d_mu.pow(2).mean(1, keepdim=True).add(1e-5).sqrt()
    e2 = d_sigma / d_sigma.pow(2).mean(1, keepdim=True).add(1e-5).sqrt()
    assert torch.allclose(e1.pow(2).mean(1), torch.ones(6), atol=1e-2)  # up to the 1e-5 guard
    s = strength.view(-1, 1)
    new_mu, new_sigma = channel_stats(out, (2, 3))
    torch.testing.assert_close(out[:2], x[:2])
    torch.testing.assert_close(new_mu, mu + s * e1 * sigma, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(new_sigma, sigma * torch.exp(s * 0.5 * e2), rtol=1e-3, atol=1e-3)
    # the same tensor in the ViT layout [tokens, B, width] restyles the same way
    vit = restyle.apply(x.flatten(2).permute(2, 0, 1), strength, (0,), 1, partners)
    torch.testing.assert_close(vit, out.flatten(2).permute(2, 0, 1), rtol=1e-4, atol=1e-4)


def test_source_directions_are_random_combinations_of_the_clean_images_deviations():
    """DIRECTIONS "source": each restyled image's mean moves along a N(0, 1)-weighted sum of the
    clean images' deviations from their mean statistics (standardised by their mean spread), its
    log-spread along the same sum of their log-spread deviations, both at unit RMS; so with 3 clean
    images every direction lies in the 2-dimensional span of their deviations; ViT layout alike."""
    restyle = FeatureRestyle.from_cfg(restyle_node(PROB=1.0, MU_SHIFT=1.0, SIGMA_SCALE=0.5,
                                                   DIRECTIONS="source"), 4)
    torch.manual_seed(0)
    weights = restyle.draw_partners(3, 5, torch.device("cpu"))
    assert weights.shape == (8, 3) and weights.is_floating_point()
    x = torch.randn(8, 6, 7, 7) * torch.rand(8, 6, 1, 1).add(0.5) + torch.randn(8, 6, 1, 1)
    strength = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.5, 1.0, 0.2, 1.0])
    out = restyle.apply(x, strength, (2, 3), 0, weights)
    var, mu = torch.var_mean(x, dim=(2, 3), correction=0, keepdim=True)
    mu, log_sigma = mu.flatten(1), (var + 1e-5).sqrt().log().flatten(1)
    ref = log_sigma[:3].mean(0)
    d_mu, d_sigma = (mu[:3] - mu[:3].mean(0)) / ref.exp(), log_sigma[:3] - ref
    e1, e2 = weights @ d_mu, weights @ d_sigma
    e1 = e1 / e1.pow(2).mean(1, keepdim=True).add(1e-5).sqrt()
    e2 = e2 / e2.pow(2).mean(1, keepdim=True).add(1e-5).sqrt()
    assert torch.linalg.matrix_rank(e1).item() == 2  # the span of 3 deviations that sum to 0
    s = strength.view(-1, 1)
    new_mu, new_sigma = channel_stats(out, (2, 3))
    torch.testing.assert_close(out[:3], x[:3])
    torch.testing.assert_close(new_mu, mu + s * e1 * log_sigma.exp(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(new_sigma.log(), log_sigma + s * 0.5 * e2, rtol=1e-3, atol=1e-3)
    vit = restyle.apply(x.flatten(2).permute(2, 0, 1), strength, (0,), 1, weights)
    torch.testing.assert_close(vit, out.flatten(2).permute(2, 0, 1), rtol=1e-4, atol=1e-4)


def test_source_spread_units_shift_each_image_a_set_number_of_the_sources_sds_along_its_direction():
    """UNITS "source_spread": the restyled image's mean moves along a N(0, 1)-weighted sum of the
    clean images' deviations (drawn in standardised units, as DIRECTIONS "source" draws them), by strength * MU_SHIFT standard deviations
    of the clean images' means projected on that direction; log sigma likewise by strength *
    SIGMA_SCALE of theirs; a source twice as spread is shifted twice as far; ViT layout alike."""
    def restyle(**values):
        return FeatureRestyle.from_cfg(restyle_node(PROB=1.0, MU_SHIFT=3.0, SIGMA_SCALE=2.0,
                                                    DIRECTIONS="source", **values), 4)

    torch.manual_seed(0)
    spread = restyle(UNITS="source_spread")
    weights = spread.draw_partners(4, 4, torch.device("cpu"))
    x = torch.randn(8, 6, 7, 7) * torch.rand(8, 6, 1, 1).add(0.5) + torch.randn(8, 6, 1, 1)
    strength = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 0.5, 0.1, 1.0])
    out = spread.apply(x, strength, (2, 3), 0, weights)
    mu, sigma = channel_stats(x, (2, 3))
    new_mu, new_sigma = channel_stats(out, (2, 3))
    torch.testing.assert_close(out[:4], x[:4])
    ref = sigma[:4].log().mean(0).exp()
    drawn_mu = (weights @ ((mu[:4] - mu[:4].mean(0)) / ref)) * ref
    drawn_sigma = weights @ (sigma[:4].log() - sigma[:4].log().mean(0))
    for moved, before, drawn, per_unit in ((new_mu, mu, drawn_mu, 3.0),
                                           (new_sigma.log(), sigma.log(), drawn_sigma, 2.0)):
        shift = (moved - before)[4:]
        direction = shift / shift.norm(dim=1, keepdim=True)
        torch.testing.assert_close(direction, drawn[4:] / drawn[4:].norm(dim=1, keepdim=True),
                                   rtol=1e-3, atol=1e-3)
        deviations = before[:4] - before[:4].mean(0)
        sds = (deviations @ direction.T).pow(2).mean(0).sqrt()
        torch.testing.assert_close(shift.norm(dim=1) / sds, per_unit * strength[4:], rtol=1e-3, atol=1e-3)
    # Twice the sources' spread around the same mean statistics: twice the shift of the mean.
    y = x.clone()
    y[:4] = (x[:4] - mu[:4, :, None, None]) + mu[:4].mean(0)[None, :, None, None] + 2 * (
        mu[:4] - mu[:4].mean(0))[:, :, None, None]
    shift_y = channel_stats(spread.apply(y, strength, (2, 3), 0, weights), (2, 3))[0] - channel_stats(y, (2, 3))[0]
    torch.testing.assert_close(shift_y[4:].norm(dim=1), 2 * (new_mu - mu)[4:].norm(dim=1), rtol=1e-3, atol=1e-3)
    vit = spread.apply(x.flatten(2).permute(2, 0, 1), strength, (0,), 1, weights)
    torch.testing.assert_close(vit, out.flatten(2).permute(2, 0, 1), rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="UNITS source_spread .*DIRECTIONS source"):
        FeatureRestyle.from_cfg(restyle_node(UNITS="source_spread"), 4)
    with pytest.raises(ConfigError, match="FEATURE_RESTYLE.UNITS"):
        FeatureRestyle.from_cfg(restyle_node(UNITS="pixels"), 4)


def test_authorized_jitter_restyles_the_authorized_images_within_its_bound_only_when_set():
    """AUTHORIZED_JITTER: the clean (authorized) images get strengths in [0, JITTER) and the
    candidates keep theirs; at 0 the clean images stay unchanged and the draws are those without
    the key (same generator state, same strengths)."""
    jitter = FeatureRestyle.from_cfg(restyle_node(PROB=0.0, AUTHORIZED_JITTER=0.05), 4)
    assert jitter.enabled
    torch.manual_seed(0)
    strength = jitter.draw(6, 4, torch.device("cpu"))
    assert ((strength[:6] > 0) & (strength[:6] < 0.05)).all() and torch.equal(strength[6:], torch.zeros(4))
    x = torch.randn(10, 6, 7, 7)
    out = jitter.apply(x, strength, (2, 3), 0)
    assert not torch.allclose(out[:6], x[:6])
    torch.testing.assert_close(out[6:], x[6:])
    plain, off = (FeatureRestyle.from_cfg(restyle_node(PROB=0.5, **extra), 4)
                  for extra in ({}, {"AUTHORIZED_JITTER": 0.0}))
    torch.manual_seed(1)
    expected = plain.draw(6, 4, torch.device("cpu"))
    torch.manual_seed(1)
    assert torch.equal(off.draw(6, 4, torch.device("cpu")), expected)
    assert torch.equal(expected[:6], torch.zeros(6))
    with pytest.raises(ConfigError, match="FEATURE_RESTYLE.AUTHORIZED_JITTER"):
        FeatureRestyle.from_cfg(restyle_node(AUTHORIZED_JITTER=-0.1), 4)


def test_decoupled_restyles_move_only_the_mean_or_only_the_spread():
    """DECOUPLE: for that share of the re-styled images one moment keeps its statistics exactly
    (mean-only or spread-only, about half each); 0 leaves [B] strengths, both moments moving."""
    restyle = FeatureRestyle.from_cfg(restyle_node(PROB=1.0, MIN_STRENGTH=0.5, DECOUPLE=1.0), 4)
    torch.manual_seed(0)
    strength = restyle.draw(2, 200, torch.device("cpu"))
    moments = restyle.split_moments(strength)
    assert moments.shape == (2, 202) and torch.equal(moments[:, :2], torch.zeros(2, 2))
    mean_only = (moments[1] == 0) & (moments[0] > 0)
    assert torch.equal(moments.sum(0), strength)  # exactly one moment per image
    assert 0.35 < mean_only[2:].float().mean().item() < 0.65
    x = torch.randn(202, 5, 6, 6) * 2 + 1
    out = restyle.apply(x, moments, (2, 3), 0)
    mu, sigma = channel_stats(x, (2, 3))
    new_mu, new_sigma = channel_stats(out, (2, 3))
    torch.testing.assert_close(new_sigma[mean_only], sigma[mean_only], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(new_mu[~mean_only], mu[~mean_only], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(new_mu[mean_only], mu[mean_only])
    assert not torch.allclose(new_sigma[2:][~mean_only[2:]], sigma[2:][~mean_only[2:]])
    half = FeatureRestyle.from_cfg(restyle_node(PROB=1.0, DECOUPLE=0.0), 4)
    assert torch.equal(half.split_moments(strength), strength.expand(2, -1))


def test_restyle_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="FEATURE_RESTYLE.LAYERS"):
        FeatureRestyle.from_cfg(restyle_node(LAYERS=(4,)), 4)
    with pytest.raises(ConfigError, match="FEATURE_RESTYLE.PROB"):
        FeatureRestyle.from_cfg(restyle_node(PROB=1.5), 4)
    assert not FeatureRestyle.from_cfg(restyle_node(PROB=0.0), 4).enabled
    with pytest.raises(ConfigError, match="FEATURE_RESTYLE.AUTHORIZED_SHARE"):
        FeatureRestyle.from_cfg(restyle_node(AUTHORIZED_SHARE=-0.1), 4)
    with pytest.raises(ConfigError, match="FEATURE_RESTYLE.STRENGTH_EXPONENT"):
        FeatureRestyle.from_cfg(restyle_node(STRENGTH_EXPONENT=-1.0), 4)
    with pytest.raises(ConfigError, match="FEATURE_RESTYLE.DECOUPLE"):
        FeatureRestyle.from_cfg(restyle_node(DECOUPLE=1.5), 4)
    with pytest.raises(ConfigError, match="FEATURE_RESTYLE.DIRECTIONS"):
        FeatureRestyle.from_cfg(restyle_node(DIRECTIONS="uniform"), 4)


def test_authorized_copies_replace_a_share_of_the_unauthorized_batch_and_are_always_restyled():
    """AUTHORIZED_SHARE: the first round(share * B) unauthorized images become copies of the
    authorized ones (with their labels) and are re-styled whatever PROB says; 0 changes nothing."""
    restyle = FeatureRestyle.from_cfg(restyle_node(PROB=0.0, AUTHORIZED_SHARE=0.5), 4)
    assert restyle.enabled
    x_a, x_u = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    y_a, y_u = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 5, 6, 7])
    mixed, labels, k = restyle.with_authorized_copies(x_a, y_a, x_u, y_u)
    assert k == 2 and torch.equal(mixed[:2], x_a[:2]) and torch.equal(mixed[2:], x_u[2:])
    assert labels.tolist() == [0, 1, 6, 7]
    strength = restyle.draw(4, 4, x_a.device, n_forced=k)
    assert torch.equal(strength[:4], torch.zeros(4))
    assert (strength[4:6] >= 0.5).all() and torch.equal(strength[6:], torch.zeros(2))
    off = FeatureRestyle.from_cfg(restyle_node(PROB=0.5), 4)
    assert off.with_authorized_copies(x_a, y_a, x_u, y_u)[0] is x_u


def test_standardizer_fits_the_authorized_statistics():
    std = StatsStandardizer(n_layers=2, width=3, min_std=0.1, clip=0.0)
    mu = torch.randn(50, 2, 3) * 4 + 2
    log_sigma = torch.randn(50, 2, 3) * 0.01  # below the floor
    std.fit(mu, log_sigma)
    z_mu, z_sigma = std(mu, log_sigma)
    torch.testing.assert_close(z_mu.mean(0), torch.zeros(2, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(z_mu.std(0), torch.ones(2, 3), atol=1e-5, rtol=0)
    assert z_sigma.abs().max() < 0.5  # std floored at 0.1, not blown up
    clipped = StatsStandardizer(2, 3, min_std=0.1, clip=2.0)
    clipped.fit(mu, log_sigma)
    assert clipped(mu * 100, log_sigma)[0].abs().max() <= 2.0


def test_whitened_standardizer_decorrelates_each_layer_and_bounds_the_unseen_directions():
    """With a whitening floor each layer's (mu, log sigma) vector of the fitting images comes out with
    the identity covariance; a direction they never varied along is scaled by 1 / sqrt(floor) at
    most; padding stays 0; without the floor nothing changes and no buffer is added."""
    torch.manual_seed(0)
    n, width, floor = 400, 3, 0.04
    # correlated per layer, every eigenvalue of the correlation matrix well above the floor
    q = torch.linalg.qr(torch.randn(2, 2 * width, 2 * width))[0]
    mix = q * torch.linspace(1.0, 3.0, 2 * width)
    z = torch.einsum("nlc,ldc->nld", torch.randn(n, 2, 2 * width), mix)
    mu, log_sigma = z[..., :width].clone(), z[..., width:].clone()
    mu[:, 1, 2] = 0.0  # layer 1 is 2 channels wide: padding (mu 0, log sigma 0)
    log_sigma[:, 1, 2] = 0.0
    white = StatsStandardizer(n_layers=2, width=width, min_std=0.1, clip=0.0, whiten_floor=floor)
    white.fit(mu, log_sigma)
    w_mu, w_sigma = white(mu, log_sigma)
    w = torch.cat([w_mu, w_sigma], dim=-1)
    cov = torch.einsum("nlc,nld->lcd", w - w.mean(0), w - w.mean(0)) / (n - 1)
    torch.testing.assert_close(cov[0], torch.eye(2 * width), atol=1e-4, rtol=0)
    real = [0, 1, 3, 4]  # layer 1 without its padded channel in mu and log sigma
    torch.testing.assert_close(cov[1][real][:, real], torch.eye(4), atol=1e-4, rtol=0)
    assert w_mu[:, 1, 2].abs().max() < 1e-5 and w_sigma[:, 1, 2].abs().max() < 1e-5
    # the padded direction, never seen, is amplified by exactly 1 / sqrt(floor) over plain standardising
    plain = StatsStandardizer(n_layers=2, width=width, min_std=0.1, clip=0.0)
    plain.fit(mu, log_sigma)
    poked = mu.clone()
    poked[:, 1, 2] = 1.0
    ratio = white(poked, log_sigma)[0][:, 1, 2] / plain(poked, log_sigma)[0][:, 1, 2]
    torch.testing.assert_close(ratio, torch.full((n,), floor ** -0.5), rtol=1e-4, atol=0)
    assert "whiten" in white.state_dict() and "whiten" not in plain.state_dict()
    first = StatsStandardizer(n_layers=2, width=width, min_std=0.1, clip=0.0, whiten_floor=floor,
                              whiten_layers=(0,))
    first.fit(mu, log_sigma)
    assert first.whiten.shape == (1, 2 * width, 2 * width)  # only the whitened layer's matrix is stored
    torch.testing.assert_close(first(mu, log_sigma)[0][:, 0], w_mu[:, 0])  # layer 0 whitened
    torch.testing.assert_close(first(mu, log_sigma)[0][:, 1], plain(mu, log_sigma)[0][:, 1])  # 1 not
    with pytest.raises(ValueError, match="whiten_layers"):
        StatsStandardizer(2, width, min_std=0.1, clip=0.0, whiten_floor=floor, whiten_layers=(2,))
    with pytest.raises(ValueError, match="whiten_floor"):
        StatsStandardizer(2, width, min_std=0.1, clip=0.0, whiten_floor=-1.0)


def test_standardized_projector_is_checkpointed_and_changes_the_tokens():
    clip_model = build_random_clip("tiny-rn")
    kwargs = dict(n_image_tokens=4, projector_hidden=0, bank_size=2, branch_hidden=0)
    model = IPCLIPModel(clip_model, ["cat", "dog"], stats_norm="authorized", **kwargs)
    x = images(8, clip_model.visual.input_resolution)
    before = model.encode(x)["domain_tokens"]
    _, stats = model.tap.tap(x)
    model.projector.standardizer.fit(*model.projector.squashed(stats, standardize=False))
    after = model.encode(x)["domain_tokens"]
    assert not torch.allclose(before, after)
    keys = model.learner.state_dict().keys()
    assert "projector.standardizer.mean" in keys and "projector.standardizer.std" in keys
    plain = IPCLIPModel(clip_model, ["cat", "dog"], **kwargs)
    assert not any("standardizer" in key for key in plain.learner.state_dict())
    with pytest.raises(ConfigError, match="STATS_NORM"):
        IPCLIPModel(clip_model, ["cat"], stats_norm="batch", **kwargs)
    with pytest.raises(ConfigError, match="PROJECTOR ours only"):
        IPCLIPModel(clip_model, ["cat"], stats_norm="authorized", projector_form="release", **kwargs)
    with pytest.raises(ConfigError, match="STATS_NORM_WHITEN_FLOOR"):
        IPCLIPModel(clip_model, ["cat"], stats_norm_whiten_floor=0.1, **kwargs)
    white = IPCLIPModel(clip_model, ["cat", "dog"], stats_norm="authorized", stats_norm_whiten_floor=0.1,
                        **kwargs)
    assert "projector.standardizer.whiten" in white.learner.state_dict()
    with pytest.raises(ConfigError, match="STATS_NORM_WHITEN_LAYERS"):
        IPCLIPModel(clip_model, ["cat"], stats_norm="authorized", stats_norm_whiten_floor=0.1,
                    stats_norm_whiten_layers=(9,), **kwargs)
    with pytest.raises(ConfigError, match="STATS_NORM_WHITEN_LAYERS"):
        IPCLIPModel(clip_model, ["cat"], stats_norm="authorized", stats_norm_whiten_layers=(0,), **kwargs)


def test_style_distance_is_the_rms_of_each_layers_standardized_statistics():
    clip_model = build_random_clip("tiny-rn")
    kwargs = dict(n_image_tokens=4, projector_hidden=0, bank_size=2, branch_hidden=0)
    model = IPCLIPModel(clip_model, ["cat", "dog"], stats_norm="authorized", stats_distance=True,
                        **kwargs)
    projector = model.projector
    x = images(8, clip_model.visual.input_resolution)
    _, stats = model.tap.tap(x)
    projector.standardizer.fit(*projector.squashed(stats, standardize=False))
    mu, log_sigma = projector.squashed(stats)
    distance = projector.style_distance(mu, log_sigma)
    assert distance.shape == (8, len(projector.layer_dims), 2)
    for layer, (layer_mu, layer_sigma) in enumerate(stats):  # padding does not count
        width = projector.layer_dims[layer]
        expected_mu = mu[:, layer, :width].pow(2).mean(-1).sqrt()
        expected_sigma = log_sigma[:, layer, :width].pow(2).mean(-1).sqrt()
        torch.testing.assert_close(distance[:, layer, 0], expected_mu)
        torch.testing.assert_close(distance[:, layer, 1], expected_sigma)
    # The domain tokens read it: a third input map, which learns.
    assert len(projector.domain_mlp.inputs) == 3
    model.encode(x)["domain_tokens"].sum().backward()
    assert projector.domain_mlp.inputs[2].weight.grad.abs().sum() > 0
    # A copy re-styled at the first layer is further from the authorized style there.
    far = FeatureRestyle(1.0, (0,), 2.0, 1.0, 1.0).hook(torch.ones(8))
    _, far_stats = model.tap.tap(x, far)
    assert (projector.style_distance(*projector.squashed(far_stats))[:, 0] > distance[:, 0]).all()
    # Off (the default): the statistics only, as before.
    plain = IPCLIPModel(clip_model, ["cat", "dog"], stats_norm="authorized", **kwargs)
    assert len(plain.projector.domain_mlp.inputs) == 2
    with pytest.raises(ConfigError, match="STATS_NORM"):
        IPCLIPModel(clip_model, ["cat"], stats_distance=True, **kwargs)


def test_zero_shot_anchor_teacher_is_zero_shot_clip():
    """The W_ZS teacher's logits are exactly the zero-shot baseline's, and it is not checkpointed."""
    from trainers.zsclip import ZeroShotClassifier
    clip_model = build_random_clip("tiny-rn")
    prompts = ["a photo of a cat.", "a photo of a dog."]
    kwargs = dict(n_image_tokens=4, projector_hidden=0, bank_size=2, branch_hidden=0)
    model = IPCLIPModel(clip_model, ["cat", "dog"], zero_shot_prompts=prompts, **kwargs)
    x = images(4, clip_model.visual.input_resolution)
    with torch.no_grad():
        expected = ZeroShotClassifier(clip_model, prompts)(x)
        got = model.anchor_logits(model.encode(x)["image"])
    torch.testing.assert_close(got, expected.float(), atol=1e-4, rtol=1e-4)
    assert not any("teacher" in key for key in model.state_dict())
    assert not model.teacher_learns and model.learner.anchor_context is None
    with pytest.raises(RuntimeError, match="zero_shot_prompts"):
        IPCLIPModel(clip_model, ["cat", "dog"], **kwargs).anchor_logits(got)


def test_learned_anchor_teacher_starts_as_zero_shot_and_learns_alone():
    """ANCHOR.TEACHER learned_context: before training its logits are zero-shot CLIP's (the context
    is the template's words); its own cross-entropy reaches its context and nothing else, the IP
    loss never reaches it, and its context is checkpointed with the IP learner."""
    from trainers.ipclip.anchor_teacher import teacher_loss
    from trainers.ipclip.trainer import trainable_parameters
    from trainers.zsclip import ZeroShotClassifier
    clip_model = build_random_clip("tiny-rn")
    prompts = ["a photo of a cat.", "a photo of a dog."]
    kwargs = dict(n_image_tokens=4, projector_hidden=0, bank_size=2, branch_hidden=0)
    model = IPCLIPModel(clip_model, ["cat", "dog"], zero_shot_prompts=prompts,
                        anchor_teacher="learned_context", anchor_ctx_init="a photo of a", **kwargs)
    learn = trainable_parameters(model, train_branch=False)
    assert model.teacher_learns and any(p is model.learner.anchor_context for p in learn)
    assert "anchor_context" in model.learner.state_dict()
    x = images(4, clip_model.visual.input_resolution)
    with torch.no_grad():
        expected = ZeroShotClassifier(clip_model, prompts)(x).float()
    out = model.encode(x)
    teacher = model.anchor_logits(out["image"])
    torch.testing.assert_close(teacher.detach(), expected, atol=1e-4, rtol=1e-4)

    labels = torch.tensor([0, 1, 1, 0])
    teacher_loss(teacher, labels).backward(retain_graph=True)
    assert model.learner.anchor_context.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.projector.parameters())
    model.learner.anchor_context.grad = None
    # The anchor's KL sees the teacher detached: it moves the IP prompts, never the teacher.
    from trainers.ipclip.loss import per_sample_kl
    per_sample_kl(teacher.detach(), out["logits"]).mean().backward()
    assert model.learner.anchor_context.grad is None
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.projector.parameters())
    with pytest.raises(ConfigError, match="ANCHOR.TEACHER"):
        IPCLIPModel(clip_model, ["cat"], zero_shot_prompts=prompts[:1], anchor_teacher="coop", **kwargs)
    with pytest.raises(ConfigError, match="CTX_INIT"):
        IPCLIPModel(clip_model, ["cat"], zero_shot_prompts=prompts[:1],
                    anchor_teacher="learned_context", anchor_ctx_init="", **kwargs)


def test_layer_dropout_sets_dropped_layers_to_the_authorized_mean_in_training_only():
    clip_model = build_random_clip("tiny-rn")
    kwargs = dict(n_image_tokens=4, projector_hidden=0, bank_size=2, branch_hidden=0)
    model = IPCLIPModel(clip_model, ["cat", "dog"], stats_norm="authorized", layer_dropout=0.5,
                        **kwargs)
    projector = model.projector
    x = images(16, clip_model.visual.input_resolution)
    _, stats = model.tap.tap(x)
    projector.standardizer.fit(*projector.squashed(stats, standardize=False))
    # What a layer reads at the authorized mean: its tokens with that layer's statistics at 0.
    mu, log_sigma = projector.squashed(stats)
    projector.eval()
    full = projector(stats)
    assert torch.equal(projector(stats)[0], full[0])  # evaluation: every layer read, deterministic
    zero_domain = projector.domain_mlp(torch.zeros_like(mu), torch.zeros_like(log_sigma))
    projector.train()
    torch.manual_seed(0)
    domain, image = projector(stats)
    dropped = (domain - projector._bound(zero_domain)).abs().amax(-1) == 0  # [B, L]
    kept = (domain - full[0]).abs().amax(-1) == 0
    assert torch.all(dropped ^ kept)  # each (image, layer) either read or at the authorized mean
    assert 0.25 < dropped.float().mean() < 0.75
    # The content tokens see the same drop: recompute them from the dropped inputs.
    keep = (~dropped)[..., None].to(mu.dtype)
    content = projector.content_mlp(mu * keep)
    mixing = torch.softmax(projector.mix_logits, dim=-1)
    expected = torch.einsum("ml,bld->bmd", mixing, content) + projector.image_token_offset
    torch.testing.assert_close(image, projector._bound(expected))
    # Gradients still reach the kept layers' input maps.
    domain.sum().backward()
    assert projector.domain_mlp.inputs[0].weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="PROJECTOR_LAYER_DROPOUT"):
        IPCLIPModel(clip_model, ["cat"], layer_dropout=0.5, **kwargs)
    with pytest.raises(ConfigError, match="PROJECTOR_LAYER_DROPOUT"):
        IPCLIPModel(clip_model, ["cat"], stats_norm="authorized", layer_dropout=1.0, **kwargs)


def test_global_restyle_moves_a_share_of_the_authorized_copies_at_the_last_layer_only():
    """GLOBAL_SHARE: some authorized copies move their last layer's channel means by k ~ U(GLOBAL_SHIFT)
    standard deviations between the authorized images, and are not re-styled at LAYERS."""
    node = restyle_node(PROB=1.0, MIN_STRENGTH=0.1, AUTHORIZED_SHARE=0.25, GLOBAL_SHARE=0.5,
                        GLOBAL_LAYERS=(-1,), GLOBAL_SHIFT=(1.5, 3.0), GLOBAL_DIRECTIONS="gaussian")
    restyle = FeatureRestyle.from_cfg(node, 4)
    assert restyle.global_layers == {3}
    torch.manual_seed(0)
    n_clean, n_copies, n_cand = 6, 100, 200
    strength, shift = restyle.split_global(
        restyle.draw(n_clean, n_cand, torch.device("cpu"), n_copies), n_clean, n_copies)
    assert torch.all(shift[:n_clean] == 0) and torch.all(strength[:n_clean] == 0)
    assert torch.all(shift[n_clean + n_copies:] == 0)  # only the copies move
    moved = shift > 0
    assert 0.35 < moved[n_clean:n_clean + n_copies].float().mean() < 0.65
    assert torch.all(strength[moved] == 0) and torch.all(strength[n_clean:][~moved[n_clean:]] >= 0.1)
    assert shift[moved].min() >= 1.5 and shift[moved].max() <= 3.0
    # Off: nothing drawn, the random stream of the configs without it.
    plain = FeatureRestyle.from_cfg(restyle_node(PROB=1.0), 4)
    torch.manual_seed(0)
    s = plain.draw(2, 5, torch.device("cpu"))
    state = torch.get_rng_state()
    assert plain.split_global(s, 2, 0) == (s, None)
    assert torch.equal(torch.get_rng_state(), state)
    # The shift, on a 1x1 layer: rows of shift 0 unchanged; the others moved by shift * e * spread,
    # spread the std of the first n_reference rows' channel means.
    x = torch.randn(5, 8, 1, 1) * torch.linspace(0.5, 4, 8).view(1, 8, 1, 1)
    shift = torch.tensor([0.0, 0.0, 0.0, 2.0, 1.0])
    torch.manual_seed(1)
    out = restyle.apply_global(x, shift, 3, (2, 3), 0)
    torch.manual_seed(1)
    e = torch.randn(5, 8, 1, 1)
    spread = (x[:3].var(0, correction=0, keepdim=True) + 1e-5).sqrt()
    torch.testing.assert_close(out, x + shift.view(5, 1, 1, 1) * e * spread)
    # Through the encoder: moved images differ at the last layer only, the others nowhere.
    clip_model = build_random_clip("tiny-rn")
    tap = VisualFeatureTap(clip_model.visual)
    imgs = torch.rand(4, 3, clip_model.visual.input_resolution, clip_model.visual.input_resolution)
    with tap:
        _, clean = tap.tap(imgs)
        hook = restyle.hook(torch.zeros(4), None, torch.tensor([0.0, 0.0, 2.0, 2.0]), 2)
        _, stats = tap.tap(imgs, hook)
    for layer in range(3):
        torch.testing.assert_close(stats[layer][0], clean[layer][0])
    torch.testing.assert_close(stats[3][0][:2], clean[3][0][:2])
    assert not torch.allclose(stats[3][0][2:], clean[3][0][2:])
    # GLOBAL_DIRECTIONS source: the move lies in the span of the reference rows' deviations, and is
    # k standard deviations of theirs projected on it.
    along_source = FeatureRestyle.from_cfg(restyle_node(PROB=1.0, AUTHORIZED_SHARE=0.25, GLOBAL_SHARE=1.0), 4)
    x = torch.randn(6, 8, 1, 1)
    out = along_source.apply_global(x, torch.tensor([0.0, 0.0, 0.0, 0.0, 2.0, 4.0]), 4, (2, 3), 0)
    move = (out - x).flatten(1)
    assert torch.all(move[:4] == 0)
    deviations = x[:4].flatten(1) - x[:4].flatten(1).mean(0)
    in_span = torch.linalg.lstsq(deviations.T, move[4:].T).solution.T @ deviations
    torch.testing.assert_close(in_span, move[4:], rtol=1e-4, atol=1e-4)
    for row, k in ((4, 2.0), (5, 4.0)):
        unit = move[row] / move[row].norm()
        sd = (deviations @ unit).pow(2).mean().sqrt()
        torch.testing.assert_close(move[row].norm() / sd, torch.tensor(k), rtol=1e-3, atol=1e-3)
    copies = dict(PROB=1.0, AUTHORIZED_SHARE=0.25, GLOBAL_SHARE=0.5)
    with pytest.raises(ConfigError, match="GLOBAL_LAYERS"):
        FeatureRestyle.from_cfg(restyle_node(GLOBAL_LAYERS=(0,), **copies), 4)
    with pytest.raises(ConfigError, match="GLOBAL_LAYERS"):
        FeatureRestyle.from_cfg(restyle_node(GLOBAL_LAYERS=(4,), **copies), 4)
    with pytest.raises(ConfigError, match="GLOBAL_SHIFT"):
        FeatureRestyle.from_cfg(restyle_node(GLOBAL_SHIFT=(3.0, 1.0), **copies), 4)
    with pytest.raises(ConfigError, match="AUTHORIZED_SHARE"):
        FeatureRestyle.from_cfg(restyle_node(PROB=1.0, GLOBAL_SHARE=0.5), 4)
    with pytest.raises(ConfigError, match="GLOBAL_DIRECTIONS"):
        FeatureRestyle.from_cfg(restyle_node(GLOBAL_DIRECTIONS="batch", **copies), 4)
