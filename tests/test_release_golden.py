"""Golden values of the authors' release: our modules in release mode reproduce its numbers.

`tests/fixtures/release_golden/release_golden.pt` holds numbers the release's own code computed
(README.md beside it says how). The weights and inputs are not stored: they are drawn here again
with the same seeded procedure (`draw`, in the fixture's parameter order) and mapped onto our
parameter layout. The paper configs (configs/trainers/IPCLIP/vit_b16*.yaml) supply the loss settings,
so a wrong weight, sign, clamp or form in them fails here too.
"""
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dassl.config import merge_config_file
from dassl.optim import build_lr_scheduler
from trainers.ipclip.feature_hooks import RELEASE_SIGMA_SUM_EPS, channel_stats
from trainers.ipclip.ip_projector_release import ReleaseIPProjector
from trainers.ipclip.loss import IPCLIPLoss, release_entropy, release_kl
from trainers.ipclip.style_bank import StyleBank
from trainers.ipclip.style_branch import ReleaseStyleEnhancement
from trainers.ipclip.trainer import RELEASE_BANK_STOP_CONFIDENCE, loss_weights

FIXTURE = Path(__file__).parent / "fixtures" / "release_golden" / "release_golden.pt"
SCENARIOS = ("target_specified", "target_free", "ownership", "authorization")
#: float32 results of differently ordered but equal computations.
TOL = dict(rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def golden():
    return torch.load(FIXTURE, weights_only=True)


def draw(gen, shape, scale):
    """The fixture's draw: uniform in [-scale, scale), float64 from `gen`, cast to float32."""
    return ((torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * scale).float()


def param_scale(shape):
    return shape[-1] ** -0.5 if len(shape) == 2 else 0.5


def drawn_parameters(gen, order):
    return {name: draw(gen, tuple(shape), param_scale(tuple(shape))) for name, shape in order}


def paper_cfg(make_cfg, scenario):
    """The paper config of `scenario`, merged with its _BASE_ chain as train.py merges it."""
    name = "vit_b16.yaml" if scenario == "target_specified" else f"vit_b16_{scenario}.yaml"
    return merge_config_file(make_cfg(), f"configs/trainers/IPCLIP/{name}")


# ------------------------------------------------------------------------ projector and prompt
def test_release_projector_and_prompt_context(golden):
    g = golden["projector"]
    layers, batch, tokens, width = g["data_shape"]
    gen = torch.Generator().manual_seed(g["seed"])
    data = draw(gen, (layers, batch, tokens, width), g["data_scale"])
    release = drawn_parameters(gen, g["domain_param_order"])
    release.update(drawn_parameters(gen, g["image_param_order"]))
    text_width = release["linear2.0.weight"].shape[0]
    hidden = release["linear1.0.weight"].shape[0]

    # The release's AdaIN over the tokens of each block output ([B, N, W]); ours hooks [N, B, W].
    stats = [channel_stats(data[i].transpose(0, 1), (0,), RELEASE_SIGMA_SUM_EPS, eps_on_sum=True)
             for i in range(layers)]
    torch.testing.assert_close(torch.stack([mu for mu, _ in stats]), g["adain_mu"], **TOL)
    torch.testing.assert_close(torch.stack([s for _, s in stats]), g["adain_sigma"], **TOL)

    projector = ReleaseIPProjector([width] * layers, text_width, n_image_tokens=g["n_image_tokens"],
                                   hidden=hidden)
    with torch.no_grad():
        for layer in range(layers):
            projector.domain_in.weight[layer] = release[f"linear1.{layer}.weight"].t()
            projector.domain_in.bias[layer] = release[f"linear1.{layer}.bias"]
            projector.domain_out.weight[layer] = release[f"linear2.{layer}.weight"].t()
            projector.domain_out.bias[layer] = release[f"linear2.{layer}.bias"]
            projector.content.weight[layer] = release[f"linear.{layer}.weight"].t()
            projector.content.bias[layer] = release[f"linear.{layer}.bias"]
        projector.layer_mix.weight.copy_(release["lin.weight"])
        projector.layer_mix.bias.copy_(release["lin.bias"])
        context = projector.context(stats)
    assert projector.n_context_tokens == 2 * layers + g["n_image_tokens"] == g["context"].shape[1]
    torch.testing.assert_close(context, g["context"], rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------ style-enhancement branch
def test_release_branch(golden):
    g = golden["branch"]
    gen = torch.Generator().manual_seed(g["seed"])
    release = drawn_parameters(gen, g["param_order"])
    features = F.normalize(draw(gen, (g["batch"], g["embed"]), 1.0), dim=-1)
    bank_s = draw(gen, (g["classes"], g["embed"]), 0.2)
    bank_t = draw(gen, (g["classes"], g["embed"]), 0.2)
    torch.testing.assert_close(features, g["features"])
    branch = ReleaseStyleEnhancement(g["embed"])
    ours = {name.replace("pre_project.", "pre.").replace("post_project.0.", "post."): value
            for name, value in release.items()}
    branch.load_state_dict(ours)
    every_class = torch.ones(g["classes"], dtype=torch.bool)
    branch.eval()  # batch statistics whatever the mode, as in the release (never put in eval)
    with torch.no_grad():
        self_enhanced, cross_domain = branch(features, bank_s, every_class, bank_t, every_class)
    torch.testing.assert_close(self_enhanced, g["self_enhanced"], **TOL)
    torch.testing.assert_close(cross_domain, g["cross_domain"], **TOL)


# ------------------------------------------------------------------------ entropy, KL, the loss
def loss_inputs(gen, regime):
    """The fixture's loss inputs, drawn in its order (README.md)."""
    batch, classes, embed, layers, width = 4, 5, 8, 3, 6
    big = regime == "saturated"
    x = {
        "logits_a": draw(gen, (batch, classes), 4.0),
        "logits_u": draw(gen, (batch, classes), 40.0 if big else 4.0),
        "logits_ai": draw(gen, (batch, classes), 40.0 if big else 4.0),
        "logits_ui": draw(gen, (batch, classes), 40.0 if big else 4.0),
        "dom_a": draw(gen, (batch, layers, width), 1.0),
        "dom_u": draw(gen, (batch, layers, width), 1.0) + (4.0 if big else 0.0),
        "text_a": F.normalize(draw(gen, (batch, classes, embed), 1.0), dim=-1),
        "text_u": F.normalize(draw(gen, (batch, classes, embed), 1.0), dim=-1),
    }
    labels_a = torch.randint(classes, (batch,), generator=gen)
    labels_u = torch.randint(classes, (batch,), generator=gen)
    return x, labels_a, labels_u


@pytest.mark.parametrize("regime", ["moderate", "saturated"])
def test_release_entropy_and_kl(golden, regime):
    g = golden["losses"]["regimes"][regime]
    x, _, _ = loss_inputs(torch.Generator().manual_seed(g["seed"]), regime)
    torch.testing.assert_close(release_entropy(x["logits_u"]), g["entropy"], **TOL)
    torch.testing.assert_close(release_kl(x["text_a"], x["text_u"]), g["kl"], **TOL)


#: our logged term -> the release's loss_summary name (after its clamps)
RELEASE_TERM = {"ce_a": "loss_ce_s", "entropy_u": "loss_entropy", "kl_text": "loss_kl"}
RELEASE_CLAMPED_TERM = {"ce_u": "loss_ce_t", "ce_ai": "loss_ce_is", "ce_ui": "loss_ce_it",
                        "mse_dom": "loss_smn"}


@pytest.mark.parametrize("regime", ["moderate", "saturated"])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_paper_config_loss_is_the_release_loss(golden, make_cfg, scenario, regime):
    """The loss line of the release's folder for `scenario` (weights, signs, clamps, KL and entropy
    forms) against ours with the paper config's settings: value and every input's gradient."""
    g = golden["losses"]["regimes"][regime]
    expected = g["scenarios"][scenario]
    x, labels_a, labels_u = loss_inputs(torch.Generator().manual_seed(g["seed"]), regime)
    leaves = {k: v.clone().requires_grad_(True) for k, v in x.items()}
    loss_fn = IPCLIPLoss(loss_weights(paper_cfg(make_cfg, scenario)))
    total, terms = loss_fn(leaves["logits_a"], labels_a, leaves["logits_u"], labels_u,
                           leaves["logits_ai"], leaves["logits_ui"], leaves["dom_a"],
                           leaves["dom_u"], leaves["text_a"], leaves["text_u"])
    total.backward()
    torch.testing.assert_close(total.detach(), expected["loss"], **TOL)
    cap = loss_fn.weights.upper_bound
    for ours, theirs in RELEASE_TERM.items():
        torch.testing.assert_close(terms[ours], expected["terms"][theirs], **TOL)
    for ours, theirs in RELEASE_CLAMPED_TERM.items():
        torch.testing.assert_close(terms[ours].clamp(max=cap), expected["terms"][theirs], **TOL)
    for name in golden["losses"]["input_order"]:
        torch.testing.assert_close(leaves[name].grad, expected["grads"][name], **TOL, msg=name)
    if regime == "saturated":  # the clamps act: no gradient through the saturated terms
        for term, logits in (("ce_ai", "logits_ai"), ("ce_ui", "logits_ui")):
            assert terms[term] > cap and torch.count_nonzero(leaves[logits].grad) == 0, term
        assert terms["mse_dom"] > cap and torch.count_nonzero(leaves["dom_u"].grad) == 0
    assert torch.count_nonzero(leaves["text_u"].grad) > 0  # the KL is never clamped


# ------------------------------------------------------------------------ LR, stepped every iteration
@pytest.mark.parametrize("case", ["paper", "short"])
def test_lr_sequence_stepped_every_iteration(golden, make_cfg, case):
    g = golden["lr"][case]
    s = g["settings"]
    cfg = make_cfg(opts=["OPTIM.NAME", "adam", "OPTIM.LR", str(s["LR"]), "OPTIM.LR_SCHEDULER", "cosine",
                         "OPTIM.MAX_EPOCH", str(s["MAX_EPOCH"]), "OPTIM.WARMUP_EPOCH", str(s["WARMUP_EPOCH"]),
                         "OPTIM.WARMUP_TYPE", "linear", "OPTIM.WARMUP_MIN_LR", str(s["WARMUP_MIN_LR"])])
    param = torch.nn.Parameter(torch.zeros(1))
    optim = torch.optim.Adam([param], lr=cfg.OPTIM.LR)
    sched = build_lr_scheduler(optim, cfg.OPTIM)
    lrs = []
    for _ in range(s["iterations"]):
        lrs.append(optim.param_groups[0]["lr"])
        optim.step()
        sched.step()
    torch.testing.assert_close(torch.tensor(lrs, dtype=torch.float64), g["lr"], rtol=1e-9, atol=1e-12)
    if case == "paper":  # it oscillates: back to the top after 2 x MAX_EPOCH cosine steps
        period = 2 * s["MAX_EPOCH"]
        assert lrs[1 + period] == pytest.approx(s["LR"], rel=1e-6)
        assert lrs[1 + period // 2] < 1e-6


# ------------------------------------------------------------------------ style-bank filling
@pytest.mark.parametrize("case", ["full_pass", "early_stop"])
def test_release_bank_filling(golden, case):
    """Our vectorised top-K update, the release's early stop and its all-slot prototypes against the
    release's per-sample loop (slot order differs; the kept samples and the means do not)."""
    g = golden["banks"][case]
    classes, slots, embed, batch = g["classes"], g["slots"], g["embed"], g["batch"]
    gen = torch.Generator().manual_seed(g["seed"])
    text = F.normalize(draw(gen, (classes, embed), 1.0), dim=-1)
    streams = []
    for _ in range(2):
        batches = []
        for _ in range(g["n_batches"]):
            labels = torch.randint(classes, (batch,), generator=gen)
            batches.append((draw(gen, (batch, embed), 1.0) + g["align"] * text[labels], labels))
        streams.append(batches)
    scale = math.exp(g["logit_scale"])
    results = {}
    for name, batches in zip(("source", "target"), streams):
        bank = StyleBank(classes, slots, embed)
        consumed = 0
        for images, labels in batches:
            consumed += 1
            features = F.normalize(images, dim=-1)
            probs = F.softmax(scale * features @ text.t(), dim=1)
            confidence, predicted = probs.max(dim=1)
            if name == "source":
                bank.update(features, confidence, labels, predicted == labels)
            else:
                bank.update(features, confidence, predicted, torch.ones_like(labels, dtype=torch.bool))
            if bank.all_slots_above(RELEASE_BANK_STOP_CONFIDENCE):
                break
        results[name] = (bank, consumed)
    assert results["source"][1] == g["batches_consumed_x"]
    assert results["target"][1] == g["batches_consumed_u"]
    for name, (bank, _) in results.items():
        proto, has = bank.prototypes("all_slots")
        torch.testing.assert_close(proto, g[f"{name}_prototypes"], **TOL)
        assert has.all()
        release_conf = g[f"{name}_confidence"].view(classes, slots)
        ours_conf = bank.confidence.clamp(min=0.0)  # the release's empty slot is 0.0, ours -inf
        torch.testing.assert_close(ours_conf, release_conf.sort(dim=1, descending=True).values, **TOL)
        release_features = g[f"{name}_features"].view(classes, slots, embed)
        order = release_conf.argsort(dim=1, descending=True, stable=True)
        torch.testing.assert_close(bank.features, release_features.gather(
            1, order[..., None].expand(-1, -1, embed)), **TOL)
    if case == "full_pass":  # some slots stay empty: the release's mean divides by K anyway
        bank = results["target"][0]
        assert not bank.filled.all()
        filled_mean, _ = bank.prototypes("filled_slots")
        assert not torch.allclose(filled_mean, g["target_prototypes"])
