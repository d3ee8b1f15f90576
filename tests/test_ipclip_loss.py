"""IPCLIPLoss against a hand computation, the clamp at U, and one weight per term."""
import math

import pytest
import torch
from yacs.config import CfgNode as CN

from dassl.config import get_cfg_default
from dassl.errors import ConfigError
from trainers.config import extend_cfg
from trainers.ipclip.loss import (
    CONFIG_KEYS, FORMS, SWITCHES, IPCLIPLoss, IPCLIPLossWeights, true_class_log_odds, unlikelihood,
)
from trainers.ipclip.trainer import loss_weights

ln = math.log


def batch():
    """Two authorized and two unauthorized images, three classes, with easy softmaxes."""
    return dict(
        logits_a=torch.zeros(2, 3), labels_a=torch.tensor([0, 1]),
        logits_u=torch.tensor([[ln(3), 0.0, 0.0], [0.0, 0.0, 0.0]]), labels_u=torch.tensor([1, 2]),
        logits_ai=torch.tensor([[ln(6), 0.0, 0.0], [0.0, 0.0, 0.0]]),
        logits_ui=torch.tensor([[0.0, ln(2), 0.0], [0.0, ln(2), 0.0]]),
        dom_a=torch.zeros(2, 1, 2), dom_u=torch.tensor([[[1.0, 3.0]], [[0.0, 0.0]]]),
        text_a=torch.zeros(2, 3), text_u=torch.tensor([[ln(2), 0.0, 0.0], [0.0, 0.0, 0.0]]),
    )


# Plain-math values of every term for batch():
CE_A = ln(3)                            # uniform over 3 classes
CE_U = (ln(5) + ln(3)) / 2              # p = (3/5, 1/5, 1/5) -> -ln(1/5); uniform -> ln 3
CE_AI = (ln(4 / 3) + ln(3)) / 2         # p = (6/8, 1/8, 1/8) -> -ln(3/4); uniform -> ln 3
CE_UI = (ln(4) + ln(2)) / 2             # p = (1/4, 1/2, 1/4) for both, labels 0 and 1
MSE = (1 + 9 + 0 + 0) / 4
H_U = (-(0.6 * ln(0.6) + 0.4 * ln(0.2)) + ln(3)) / 2   # over classes, not over the batch
KL = (ln(2 / 3) + 2 * ln(4 / 3)) / 3 / 2  # KL(uniform || (1/2, 1/4, 1/4)), and 0 for image 1
TERMS = dict(ce_a=CE_A, ce_u=CE_U, ce_ai=CE_AI, ce_ui=CE_UI, mse_dom=MSE, entropy_u=H_U, kl_text=KL)


def test_total_and_terms_equal_hand_computation():
    w = IPCLIPLossWeights(w_u=2, s_ai=-1, w_ai=3, w_ui=0.5, w_m=0.1, w_en=0.01, w_kl=4,
                          upper_bound=100)
    total, terms = IPCLIPLoss(w)(**batch())
    expected = CE_A - 2 * CE_U - 3 * CE_AI - 0.5 * CE_UI - 0.1 * MSE + 0.01 * H_U - 4 * KL
    assert total.item() == pytest.approx(expected, rel=1e-5)
    for name, value in TERMS.items():
        assert terms[name].item() == pytest.approx(value, rel=1e-5), name
    assert terms["total"].item() == pytest.approx(expected, rel=1e-5)
    assert all(not t.requires_grad and t.dim() == 0 for t in terms.values())


def test_unlikelihood_replaces_the_bounded_unauthorized_ce():
    """U_LOSS unlikelihood: + W_U * mean(-log(1 - p_y)) instead of - W_U * min(CE_u, U)."""
    w = IPCLIPLossWeights(w_u=2, s_ai=-1, w_ai=3, w_ui=0.5, w_m=0.1, w_en=0.01, w_kl=4,
                          upper_bound=100, u_loss="unlikelihood")
    total, terms = IPCLIPLoss(w)(**batch())
    ul_u = (-ln(1 - 1 / 5) - ln(1 - 1 / 3)) / 2  # p_y = 1/5 (label 1 of (3/5,1/5,1/5)), 1/3
    expected = CE_A + 2 * ul_u - 3 * CE_AI - 0.5 * CE_UI - 0.1 * MSE + 0.01 * H_U - 4 * KL
    assert terms["ul_u"].item() == pytest.approx(ul_u, rel=1e-5)
    assert total.item() == pytest.approx(expected, rel=1e-5)


def test_unlikelihood_pushes_hardest_where_maximised_ce_stalls():
    """A confidently correct unauthorized image: CE's gradient on its true logit is p_y - 1 (about
    0), the unlikelihood's is p_y (about 1); both move the true class's probability down."""
    logits = torch.tensor([[6.0, 0.0, 0.0], [0.0, 0.0, 0.0]], requires_grad=True)
    labels = torch.tensor([0, 2])
    p = logits.detach().softmax(dim=1)
    values = unlikelihood(logits, labels)
    torch.testing.assert_close(values, -torch.log1p(-p[torch.arange(2), labels]))
    values.sum().backward()
    grad_ul = logits.grad[0, 0].item()
    logits.grad = None
    (-torch.nn.functional.cross_entropy(logits, labels, reduction="none")).sum().backward()
    grad_max_ce = logits.grad[0, 0].item()
    assert grad_ul == pytest.approx(p[0, 0].item(), rel=1e-4) and grad_ul > 0.99
    assert 0 < grad_max_ce < 0.01  # descending -CE moves the true logit down, but barely
    # Finite for a certain prediction (logsumexp, no log(0)).
    assert torch.isfinite(unlikelihood(torch.tensor([[80.0, 0.0]]), torch.tensor([0]))).all()


def test_log_odds_is_bounded_below_per_image_and_pushes_at_constant_strength():
    """U_LOSS log_odds: + W_U * mean(max(log(p_y / (1 - p_y)), -U)); the true logit's gradient is
    1 (per image, before the mean) until that image reaches the bound."""
    logits = torch.tensor([[6.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-9.0, 0.0, 0.0]], requires_grad=True)
    labels = torch.tensor([0, 2, 0])
    p = logits.detach().softmax(dim=1)[torch.arange(3), labels]
    torch.testing.assert_close(true_class_log_odds(logits, labels), torch.log(p / (1 - p)))
    b = batch()
    b.update(logits_u=logits, labels_u=labels, logits_a=torch.zeros(3, 3), labels_a=torch.tensor([0, 1, 2]),
             logits_ai=torch.zeros(3, 3), logits_ui=torch.zeros(3, 3), dom_a=torch.zeros(3, 1),
             dom_u=torch.zeros(3, 1), text_a=torch.zeros(3, 3), text_u=torch.zeros(3, 3))
    w = IPCLIPLossWeights(w_u=1, w_ai=0, w_ui=0, w_m=0, w_en=0, w_kl=0, upper_bound=5, u_loss="log_odds")
    total, terms = IPCLIPLoss(w)(**b)
    total.backward()
    true_grad = logits.grad[torch.arange(3), labels]
    torch.testing.assert_close(true_grad, torch.tensor([1 / 3, 1 / 3, 0.0]))  # image 3 is past -U
    assert terms["log_odds_u"].item() == pytest.approx(torch.log(p / (1 - p)).mean().item(), rel=1e-5)
    # U_UPPER_BOUND 0.5 replaces U for this term only: the flat image 2 (log-odds -ln 2) is past it.
    logits.grad = None
    own = IPCLIPLossWeights(w_u=1, w_ai=0, w_ui=0, w_m=0, w_en=0, w_kl=0, upper_bound=5,
                            u_upper_bound=0.5, u_loss="log_odds")
    total, _ = IPCLIPLoss(own)(**b)
    total.backward()
    torch.testing.assert_close(logits.grad[torch.arange(3), labels], torch.tensor([1 / 3, 0.0, 0.0]))
    expected = (torch.log(p / (1 - p))[0] - 0.5 - 0.5) / 3 + ln(3)  # + CE_a of the zero logits_a
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)


def test_u_upper_bound_caps_the_bounded_ce_u_only():
    """U_LOSS bounded_ce with U_UPPER_BOUND: min(CE_u, bound) per image; the other terms keep U."""
    b = batch()
    b["logits_u"] = b["logits_u"].clone().requires_grad_()
    b["logits_ui"] = b["logits_ui"].clone().requires_grad_()
    w = IPCLIPLossWeights(w_u=1, w_ai=0, w_ui=1, w_m=0, w_en=0, w_kl=0, upper_bound=100,
                          u_upper_bound=1.2, per_sample_bound=True)
    total, terms = IPCLIPLoss(w)(**b)
    # CE_u per image: ln 5 = 1.61 (capped at 1.2) and ln 3 = 1.10 (below it)
    assert total.item() == pytest.approx(CE_A - (1.2 + ln(3)) / 2 - CE_UI, rel=1e-5)
    assert terms["ce_u"].item() == pytest.approx(CE_U, rel=1e-5)  # logged unclamped
    total.backward()
    assert b["logits_u"].grad[0].abs().sum() == 0 and b["logits_u"].grad[1].abs().sum() > 0
    assert b["logits_ui"].grad.abs().sum() > 0  # CE_ui (about 1.0 < U = 100) still pushes
    with pytest.raises(ValueError, match="U_UPPER_BOUND must be >= 0"):
        IPCLIPLossWeights.from_cfg(_node_with(U_UPPER_BOUND=-1.0))


def test_text_kl_over_class_axis_of_feature_tensors():
    # [B=1, C=2, E=2]: channel 0 gives (1/2,1/2) vs (3/4,1/4); channel 1 identical -> KL 0
    text_a = torch.tensor([[[0.0, 5.0], [0.0, 1.0]]])
    text_u = torch.tensor([[[ln(3), 5.0], [0.0, 1.0]]])
    b = batch()
    b.update(text_a=text_a, text_u=text_u, dom_a=torch.zeros(1, 1), dom_u=torch.zeros(1, 1))
    _, terms = IPCLIPLoss(IPCLIPLossWeights())(**b)
    kl_channel0 = 0.5 * ln(0.5 / 0.75) + 0.5 * ln(0.5 / 0.25)
    assert terms["kl_text"].item() == pytest.approx(kl_channel0 / 2, rel=1e-5)


def test_clamp_caps_value_and_stops_gradient_above_bound():
    b = batch()
    for name in ("logits_u", "dom_u", "text_u"):
        b[name] = b[name].clone().requires_grad_()
    # U = 1 lies below CE_u (1.35) and MSE (2.5) but above KL (0.06)
    w = IPCLIPLossWeights(w_u=1, s_ai=1, w_ai=1, w_ui=1, w_m=1, w_en=0, w_kl=1, upper_bound=1.0)
    total, _ = IPCLIPLoss(w)(**b)
    expected = CE_A - 1 + min(CE_AI, 1) - min(CE_UI, 1) - 1 - KL
    assert total.item() == pytest.approx(expected, rel=1e-5)
    total.backward()
    assert b["logits_u"].grad.abs().sum() == 0
    assert b["dom_u"].grad.abs().sum() == 0
    assert b["text_u"].grad.abs().sum() > 0  # KL below U still pulls


def test_kl_upper_bound_caps_only_the_kl():
    """KL_UPPER_BOUND below the KL (0.06) caps it (value and gradient) and leaves U to the other
    terms; 0 means the KL shares U."""
    b = batch()
    b["text_u"] = b["text_u"].clone().requires_grad_()
    b["logits_u"] = b["logits_u"].clone().requires_grad_()
    base = dict(w_u=1, s_ai=1, w_ai=0, w_ui=0, w_m=0, w_en=0, w_kl=1, upper_bound=100)
    total, _ = IPCLIPLoss(IPCLIPLossWeights(kl_upper_bound=0.01, **base))(**b)
    assert total.item() == pytest.approx(CE_A - CE_U - 0.01, rel=1e-5)
    total.backward()
    assert b["text_u"].grad.abs().sum() == 0
    assert b["logits_u"].grad.abs().sum() > 0  # CE_u (below U = 100) still pushes
    shared, _ = IPCLIPLoss(IPCLIPLossWeights(kl_upper_bound=0.0, **base))(**batch())
    assert shared.item() == pytest.approx(CE_A - CE_U - KL, rel=1e-5)
    with pytest.raises(ValueError, match="KL_UPPER_BOUND must be >= 0"):
        IPCLIPLossWeights.from_cfg(_node_with(KL_UPPER_BOUND=-1.0))


def test_early_kl_weight_replaces_w_kl_only_in_the_first_epochs():
    """W_KL_EARLY scales the KL during epochs 0 .. KL_EARLY_EPOCHS - 1, W_KL afterwards; the other
    terms never change; KL_EARLY_EPOCHS 0 (the default) keeps W_KL from the first epoch."""
    base = dict(w_u=1, s_ai=1, w_ai=0, w_ui=0, w_m=0, w_en=0, w_kl=2, upper_bound=100)
    loss = IPCLIPLoss(IPCLIPLossWeights(w_kl_early=6, kl_early_epochs=3, **base))
    for epoch, w_kl in ((0, 6), (2, 6), (3, 2), (10, 2), (1, 6)):
        loss.set_epoch(epoch)
        total, _ = loss(**batch())
        assert total.item() == pytest.approx(CE_A - CE_U - w_kl * KL, rel=1e-5), epoch
    off = IPCLIPLoss(IPCLIPLossWeights(w_kl_early=6, kl_early_epochs=0, **base))
    off.set_epoch(0)
    assert off(**batch())[0].item() == pytest.approx(CE_A - CE_U - 2 * KL, rel=1e-5)
    node = _node_with(W_KL_EARLY=30.0, KL_EARLY_EPOCHS=20)
    weights = IPCLIPLossWeights.from_cfg(node)
    assert (weights.at_epoch(19).w_kl, weights.at_epoch(20).w_kl) == (30.0, node.W_KL)
    assert extend_cfg(get_cfg_default()).TRAINER.IPCLIP.LOSS.AUTHORIZATION.KL_EARLY_EPOCHS == 0
    for key in ("W_KL_EARLY", "KL_EARLY_EPOCHS"):
        with pytest.raises(ValueError, match=f"{key} must be >= 0"):
            IPCLIPLossWeights.from_cfg(_node_with(**{key: -1.0}))


def _node_with(**overrides):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    node = cfg.TRAINER.IPCLIP.LOSS.TARGET_FREE.clone()
    for key, value in overrides.items():
        setattr(node, key, value)
    return node


@pytest.mark.parametrize("name,term,sign", [
    ("w_u", "ce_u", -1), ("w_ai", "ce_ai", 1), ("w_ui", "ce_ui", -1), ("w_m", "mse_dom", -1),
    ("w_en", "entropy_u", 1), ("w_kl", "kl_text", -1)])
def test_each_weight_scales_its_own_term(name, term, sign):
    zeros = dict(w_u=0, s_ai=1, w_ai=0, w_ui=0, w_m=0, w_en=0, w_kl=0, upper_bound=100)
    for scale in (0.5, 3.0):
        w = IPCLIPLossWeights(**{**zeros, name: scale})
        total, _ = IPCLIPLoss(w)(**batch())
        assert total.item() - CE_A == pytest.approx(sign * scale * TERMS[term], rel=1e-5)


def test_s_ai_flips_the_enhanced_term():
    base = dict(w_u=0, w_ai=2, w_ui=0, w_m=0, w_en=0, w_kl=0, upper_bound=100)
    plus, _ = IPCLIPLoss(IPCLIPLossWeights(s_ai=1, **base))(**batch())
    minus, _ = IPCLIPLoss(IPCLIPLossWeights(s_ai=-1, **base))(**batch())
    assert plus.item() - CE_A == pytest.approx(2 * CE_AI, rel=1e-5)
    assert minus.item() - CE_A == pytest.approx(-2 * CE_AI, rel=1e-5)


def test_per_sample_bound_clamps_each_sample_before_the_mean():
    """U = 1.2: CE_u per sample is (ln 5 = 1.61, ln 3 = 1.10), MSE per image (5, 0.25). The release's
    batch clamp caps the means (1.35 -> 1.2, 2.63 -> 1.2) and stops every gradient; the per-sample
    clamp caps only image 0, and image 1 (below U) still pulls."""
    only = dict(s_ai=1, w_ai=0, w_ui=0, w_en=0, w_kl=0, upper_bound=1.2)
    for per_sample, ce_u, mse, grad_u, grad_dom in ((False, 1.2, 1.2, (0, 0), (0, 0)),
                                                   (True, (1.2 + ln(3)) / 2, (1.2 + 0.25) / 2, (0, 1), (0, 1))):
        b = batch()
        b["logits_u"] = b["logits_u"].clone().requires_grad_()
        b["dom_u"] = torch.tensor([[[1.0, 3.0]], [[0.5, 0.5]]], requires_grad=True)
        w = IPCLIPLossWeights(w_u=1, w_m=1, per_sample_bound=per_sample, **only)
        total, terms = IPCLIPLoss(w)(**b)
        assert total.item() == pytest.approx(CE_A - ce_u - mse, rel=1e-5)
        assert terms["ce_u"].item() == pytest.approx(CE_U, rel=1e-5)  # logged: unclamped mean
        total.backward()
        assert tuple(int(g.abs().sum() > 0) for g in b["logits_u"].grad) == grad_u
        assert tuple(int(g.abs().sum() > 0) for g in b["dom_u"].grad) == grad_dom


def test_kl_stop_authorized_keeps_the_kl_gradient_off_the_authorized_text():
    for stop in (False, True):
        b = batch()
        b["text_a"] = torch.tensor([[0.0, ln(2), 0.0], [0.0, 0.0, ln(3)]], requires_grad=True)
        b["text_u"] = b["text_u"].clone().requires_grad_()
        w = IPCLIPLossWeights(w_u=0, w_ai=0, w_ui=0, w_m=0, w_en=0, w_kl=1, kl_stop_authorized=stop)
        total, terms = IPCLIPLoss(w)(**b)
        total.backward()
        assert b["text_u"].grad.abs().sum() > 0
        reached = b["text_a"].grad is not None and bool(b["text_a"].grad.abs().sum() > 0)
        assert reached is (not stop)
        assert terms["kl_text"].item() > 0


def test_weights_from_config_and_scenarios():
    node = CN({key: float(i + 1) for i, key in enumerate(CONFIG_KEYS.values())})
    node.PER_SAMPLE_BOUND = True
    node.KL_STOP_AUTHORIZED = True
    node.KL_FORM = "release"
    node.KL_UPPER_BOUND = 0.0  # the release's KL has no bound of its own (checked below)
    node.ENTROPY_FORM = "release"
    node.U_LOSS = "log_odds"
    w = IPCLIPLossWeights.from_cfg(node)
    assert w.kl_form == "release" and w.entropy_form == "release" and w.u_loss == "log_odds"
    numeric = [f for f in CONFIG_KEYS if f not in SWITCHES and f not in FORMS]
    assert [getattr(w, f) for f in numeric] == [node[CONFIG_KEYS[f]] for f in numeric]
    assert len({getattr(w, f) for f in numeric}) == len(numeric)  # each key read into its own field
    assert w.per_sample_bound is True and w.kl_stop_authorized is True
    node.KL_UPPER_BOUND = 0.5
    with pytest.raises(ValueError, match="KL_UPPER_BOUND .* only applies to KL_FORM ours"):
        IPCLIPLossWeights.from_cfg(node)
    node.KL_UPPER_BOUND = 0.0
    node.U_LOSS = "unlikelihood"  # not clamped: a bound of its own would be silently ignored
    with pytest.raises(ValueError, match="U_UPPER_BOUND .* only applies to U_LOSS bounded_ce or log_odds"):
        IPCLIPLossWeights.from_cfg(node)
    node.U_UPPER_BOUND = 0.0
    assert IPCLIPLossWeights.from_cfg(node).u_loss == "unlikelihood"
    node.PER_SAMPLE_BOUND = 1.0
    with pytest.raises(ValueError, match="PER_SAMPLE_BOUND must be True or False"):
        IPCLIPLossWeights.from_cfg(node)
    node.PER_SAMPLE_BOUND = False
    node.KL_FORM = "paper"
    with pytest.raises(ValueError, match="KL_FORM must be one of ours, release"):
        IPCLIPLossWeights.from_cfg(node)
    node.KL_FORM = "ours"
    node.U_LOSS = "hinge"
    with pytest.raises(ValueError, match="U_LOSS must be one of bounded_ce, unlikelihood, log_odds"):
        IPCLIPLossWeights.from_cfg(node)
    node.U_LOSS = "bounded_ce"
    del node["W_KL"]
    with pytest.raises(KeyError, match="W_KL"):
        IPCLIPLossWeights.from_cfg(node)
    # The release's per-scenario defaults (docs/method.md, the loss), read the way the trainer reads them.
    cfg = extend_cfg(get_cfg_default())
    ts = loss_weights(cfg)
    assert cfg.TRAINER.IPCLIP.SCENARIO == "target_specified"
    assert (ts.s_ai, ts.w_m, ts.w_en, ts.w_kl, ts.w_u, ts.upper_bound) == (-1, 0.1, 0.01, 1, 1, 5)
    assert ts.per_sample_bound is False and ts.kl_stop_authorized is False  # the release
    assert ts.u_loss == "bounded_ce"
    cfg.TRAINER.IPCLIP.SCENARIO = "target_free"
    cfg.TRAINER.IPCLIP.LOSS.TARGET_FREE.W_U = 2.0
    tf = loss_weights(cfg)
    assert (tf.s_ai, tf.w_m, tf.w_en, tf.w_kl, tf.w_u) == (1, 5, 1, 5, 2)
    for scenario, expected in (("ownership", -1), ("authorization", 1)):
        cfg.TRAINER.IPCLIP.SCENARIO = scenario
        assert loss_weights(cfg).s_ai == expected


def test_bad_inputs_give_clear_errors():
    loss = IPCLIPLoss(IPCLIPLossWeights())
    b = batch()
    with pytest.raises(ValueError, match="labels_u"):
        loss(**{**b, "labels_u": torch.tensor([0, 1, 2])})
    with pytest.raises(ValueError, match="equal batch sizes"):
        loss(**{**b, "dom_u": torch.zeros(3, 1, 2)})
    with pytest.raises(TypeError, match="IPCLIPLossWeights"):
        IPCLIPLoss({"w_u": 1})


def test_zero_shot_anchor_adds_kl_to_the_teacher_and_trains_only_the_student():
    """W_ZS: + W_ZS * KL(p_zs || p_a); the teacher's logits get no gradient; it needs the teacher."""
    w = IPCLIPLossWeights(w_zs=3, upper_bound=100)
    b = batch()
    b["logits_a"] = b["logits_a"].clone().requires_grad_(True)
    teacher = torch.tensor([[ln(2), 0.0, 0.0], [0.0, 0.0, 0.0]], requires_grad=True)
    total, terms = IPCLIPLoss(w)(**b, logits_zs_a=teacher)
    plain, _ = IPCLIPLoss(IPCLIPLossWeights(upper_bound=100))(**batch())
    # p_zs = (1/2, 1/4, 1/4) against uniform p_a for image 0; equal distributions for image 1
    kl = (0.5 * ln(1.5) + 0.5 * ln(0.75)) / 2
    assert terms["kl_zs"].item() == pytest.approx(kl, rel=1e-5)
    assert total.item() == pytest.approx(plain.item() + 3 * kl, rel=1e-5)
    total.backward()
    assert teacher.grad is None and b["logits_a"].grad.abs().sum() > 0
    with pytest.raises(ValueError, match="logits_zs_a"):
        IPCLIPLoss(w)(**batch())
    cfg = extend_cfg(get_cfg_default())
    assert loss_weights(cfg).w_zs == 0  # the release has no anchor
    cfg.TRAINER.IPCLIP.LOSS.TARGET_SPECIFIED.W_ZS = -1.0
    with pytest.raises(ConfigError, match="W_ZS must be >= 0"):
        loss_weights(cfg)


def test_anchor_only_where_right_leaves_the_teachers_mistakes_to_ce_a():
    """ANCHOR.ONLY_WHERE_RIGHT: an image whose teacher argmax is not its label adds 0 to the anchor
    (and no anchor gradient), the batch mean keeps its denominator; the other images are unchanged."""
    w = IPCLIPLossWeights(w_zs=3, upper_bound=100)
    teacher = torch.tensor([[ln(2), 0.0, 0.0], [ln(2), 0.0, 0.0]])  # right on image 0, wrong on 1
    k = 0.5 * ln(1.5) + 0.5 * ln(0.75)  # KL((1/2, 1/4, 1/4) || uniform)
    _, every = IPCLIPLoss(w)(**batch(), logits_zs_a=teacher)
    assert every["kl_zs"].item() == pytest.approx(k, rel=1e-5)
    # Masked, image 1 (teacher wrong) gets the gradient it gets with no anchor at all; image 0 does not.
    grads = {}
    for name, weights, only in (("plain", IPCLIPLossWeights(upper_bound=100), False),
                                ("masked", w, True)):
        b = batch()
        b["logits_a"] = b["logits_a"].clone().requires_grad_(True)
        total, terms = IPCLIPLoss(weights, anchor_only_where_right=only)(**b, logits_zs_a=teacher)
        total.backward()
        grads[name] = b["logits_a"].grad
        if only:
            assert terms["kl_zs"].item() == pytest.approx(k / 2, rel=1e-5)
    assert torch.allclose(grads["masked"][1], grads["plain"][1])
    assert not torch.allclose(grads["masked"][0], grads["plain"][0])
    with pytest.raises(ConfigError, match="ONLY_WHERE_RIGHT"):
        IPCLIPLoss(w, anchor_only_where_right="yes")
    assert extend_cfg(get_cfg_default()).TRAINER.IPCLIP.ANCHOR.ONLY_WHERE_RIGHT is False
