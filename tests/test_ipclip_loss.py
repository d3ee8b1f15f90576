"""IPCLIPLoss against a hand computation, the clamp at U, and one weight per term."""
import math

import pytest
import torch
from yacs.config import CfgNode as CN

from dassl.config import get_cfg_default
from trainers.config import extend_cfg
from trainers.ipclip.loss import CONFIG_KEYS, FORMS, SWITCHES, IPCLIPLoss, IPCLIPLossWeights
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
    node.ENTROPY_FORM = "release"
    w = IPCLIPLossWeights.from_cfg(node)
    assert w.kl_form == "release" and w.entropy_form == "release"
    numeric = [f for f in CONFIG_KEYS if f not in SWITCHES and f not in FORMS]
    assert [getattr(w, f) for f in numeric] == [float(i + 1) for i in range(len(numeric))]
    assert w.per_sample_bound is True and w.kl_stop_authorized is True
    node.PER_SAMPLE_BOUND = 1.0
    with pytest.raises(ValueError, match="PER_SAMPLE_BOUND must be True or False"):
        IPCLIPLossWeights.from_cfg(node)
    node.PER_SAMPLE_BOUND = False
    node.KL_FORM = "paper"
    with pytest.raises(ValueError, match="KL_FORM must be one of ours, release"):
        IPCLIPLossWeights.from_cfg(node)
    node.KL_FORM = "ours"
    del node["W_KL"]
    with pytest.raises(KeyError, match="W_KL"):
        IPCLIPLossWeights.from_cfg(node)
    # The release's per-scenario defaults (docs/method.md, the loss), read the way the trainer reads them.
    cfg = extend_cfg(get_cfg_default())
    ts = loss_weights(cfg)
    assert cfg.TRAINER.IPCLIP.SCENARIO == "target_specified"
    assert (ts.s_ai, ts.w_m, ts.w_en, ts.w_kl, ts.w_u, ts.upper_bound) == (-1, 0.1, 0.01, 1, 1, 5)
    assert ts.per_sample_bound is False and ts.kl_stop_authorized is False  # the release
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
