"""IP-CLIP's training objective (docs/method.md, the loss).

    L = CE_a - w_u*min(CE_u, U) + s_ai*w_ai*min(CE_ai, U) - w_ui*min(CE_ui, U)
        - w_m*min(MSE(dom_a, dom_u), U) + w_en*H(p_u) - w_kl*min(KL, U_KL)
        + w_zs*KL(p_zs || p_a)

U_KL is kl_upper_bound, or U where that is 0 (the release); CE_u's bound (and the log-odds' floor,
`u_loss`) is likewise u_upper_bound, or U where that is 0.

`min(term, U)` is `torch.clamp(term, max=U)`: a maximised term stops pulling (value and gradient)
once it exceeds U, without any Python branch on a tensor. The entropy is over the class axis by
default (the release normalised over the batch axis: `entropy_form`).

Where the bound applies is a choice (`per_sample_bound`). The release clamps the batch means: a batch
whose mean CE_u passed U gives no gradient at all, and below U the cheapest way up is to push the
already-wrong samples further, so correctly classified unauthorized images can stay correct. Clamping
each sample's term before averaging makes every sample push until its own term reaches U.

`kl_form` and `entropy_form` choose between our forms of the KL and entropy terms and the release's
(docs/method.md): the release's KL is KL(p_u || p_a) of the unit-norm text features, summed over
classes and channels, divided by the batch size and never clamped; its entropy is taken of the
class probabilities after an L2 normalisation along the batch axis.

`kl_stop_authorized` stops the maximised KL's gradient into the authorized text features: the KL then
pushes only the unauthorized prompts away from the authorized ones instead of also dragging the
authorized prompts (which CE_a is trying to keep accurate) away from the unauthorized ones.

`w_zs` (ours, 0 in the release) anchors the authorized images' class distribution to a teacher's:
zero-shot CLIP (the same image feature against the hand-written prompts' text features) or a
CoOp-style context learned beside IP-CLIP (anchor_teacher.py); the KL never moves the teacher.
CE_a only sees the few labelled shots; every maximised term pulls the prompts of images that look
like them away, and the authorized test images, which the shots do not cover, pay for it. The
teacher's full distribution on each shot is a denser target than its label (knowledge-guided prompt
learning keeps learned prompts near the hand-written ones for the same reason). With
`anchor_only_where_right` the images the teacher gets wrong are left to CE_a: there the two targets
disagree, and the anchor would hold the authorized domain at the teacher's accuracy.

`w_kl_early` (ours; off in every shipped config) replaces w_kl during the first `kl_early_epochs`
epochs. How far a run accepts along a direction its data never constrains is set in the first
epochs (docs/method.md M31), so the push's timing was a candidate lever; measured in M32, neither an
early nor a late stronger push narrowed the spread between training seeds.
"""
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from dassl.errors import ConfigError

#: Config key (under the node given to IPCLIPLossWeights.from_cfg) of each weight.
CONFIG_KEYS = {
    "w_u": "W_U", "s_ai": "S_AI", "w_ai": "W_AI", "w_ui": "W_UI", "w_m": "W_M",
    "w_en": "W_EN", "w_kl": "W_KL", "upper_bound": "UPPER_BOUND", "kl_upper_bound": "KL_UPPER_BOUND",
    "u_upper_bound": "U_UPPER_BOUND",
    "per_sample_bound": "PER_SAMPLE_BOUND", "kl_stop_authorized": "KL_STOP_AUTHORIZED",
    "kl_form": "KL_FORM", "entropy_form": "ENTROPY_FORM", "u_loss": "U_LOSS", "w_zs": "W_ZS",
    "w_kl_early": "W_KL_EARLY", "kl_early_epochs": "KL_EARLY_EPOCHS",
}
#: Keys that must not be negative, with what 0 means.
NON_NEGATIVE = {"kl_upper_bound": "0: the KL shares UPPER_BOUND",
                "u_upper_bound": "0: the unauthorized term shares UPPER_BOUND", "w_zs": "0: no anchor",
                "w_kl_early": "0: no KL in the first KL_EARLY_EPOCHS epochs",
                "kl_early_epochs": "0: W_KL from the first epoch"}
#: The keys that are switches (True / False), not weights.
SWITCHES = ("per_sample_bound", "kl_stop_authorized")
#: Forms of the KL term: ours (scaled features, KL(p_a || p_u), channel mean, clamped) or the release's.
KL_FORMS = ("ours", "release")
#: Forms of the entropy term: over the class axis, or the release's batch-normalised one.
ENTROPY_FORMS = ("classes", "release")
#: Forms of the unauthorized images' term: the release's -min(CE_u, U), or the two of ours.
U_LOSSES = ("bounded_ce", "unlikelihood", "log_odds")
#: The keys that name a form, with their allowed values.
FORMS = {"kl_form": KL_FORMS, "entropy_form": ENTROPY_FORMS, "u_loss": U_LOSSES}
#: Added inside the release's entropy logarithm (its entropy_loss).
RELEASE_ENTROPY_EPS = 1e-8

@dataclass(frozen=True)
class IPCLIPLossWeights:
    w_u: float = 1.0
    s_ai: float = 1.0
    w_ai: float = 1.0
    w_ui: float = 1.0
    w_m: float = 1.0
    w_en: float = 1.0
    w_kl: float = 1.0
    upper_bound: float = 5.0
    kl_upper_bound: float = 0.0  # 0: the KL shares upper_bound
    u_upper_bound: float = 0.0  # 0: the unauthorized images' term shares upper_bound
    per_sample_bound: bool = False
    kl_stop_authorized: bool = False
    kl_form: str = "ours"
    entropy_form: str = "classes"
    u_loss: str = "bounded_ce"
    w_zs: float = 0.0
    w_kl_early: float = 0.0
    kl_early_epochs: float = 0.0  # 0: w_kl from the first epoch (w_kl_early unused)

    def __post_init__(self):
        # The release's KL is never clamped: a bound of its own would be silently ignored.
        if self.kl_form == "release" and self.kl_upper_bound > 0:
            raise ConfigError(
                f"IP-CLIP loss key KL_UPPER_BOUND ({self.kl_upper_bound}) only applies to "
                "KL_FORM ours; the release's KL is never clamped. Set KL_UPPER_BOUND 0.0 or "
                "KL_FORM ours.")
        if self.u_loss == "unlikelihood" and self.u_upper_bound > 0:
            raise ConfigError(
                f"IP-CLIP loss key U_UPPER_BOUND ({self.u_upper_bound}) only applies to U_LOSS "
                "bounded_ce or log_odds; the unlikelihood is never clamped. Set U_UPPER_BOUND 0.0 "
                "or another U_LOSS.")

    @classmethod
    def from_cfg(cls, node):
        """Read the weights from a config node holding W_U, S_AI, ... UPPER_BOUND: one scenario's
        node `cfg.TRAINER.IPCLIP.LOSS.<SCENARIO>` (trainers/config.py holds the per-scenario defaults)."""
        values = {}
        for name, key in CONFIG_KEYS.items():
            if key not in node:
                raise KeyError(f"IP-CLIP loss weight {key!r} is missing from the config node "
                               f"(expected keys {sorted(CONFIG_KEYS.values())}); declare it in "
                               "trainers/config.py extend_cfg under TRAINER.IPCLIP.LOSS.<SCENARIO>.")
            values[name] = _check_weight(name, node[key], key)
        return cls(**values)

    def as_dict(self):
        return asdict(self)

    def at_epoch(self, epoch):
        """The weights in force during `epoch` (from 0): w_kl_early replaces w_kl before
        kl_early_epochs. A Python float per epoch, so the step itself branches on nothing."""
        if epoch < self.kl_early_epochs:
            return replace(self, w_kl=self.w_kl_early)
        return self


def _check_weight(name, value, key):
    if name in FORMS:
        if value not in FORMS[name]:
            raise ConfigError(f"IP-CLIP loss key {key} must be one of {', '.join(FORMS[name])}, "
                              f"got {value!r}.")
        return value
    if name in SWITCHES:
        if not isinstance(value, bool):
            raise ConfigError(f"IP-CLIP loss key {key} must be True or False, got {value!r}.")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"IP-CLIP loss key {key} must be a number, got {value!r}.")
    if name in NON_NEGATIVE and value < 0:
        raise ConfigError(f"IP-CLIP loss key {key} must be >= 0 ({NON_NEGATIVE[name]}), "
                          f"got {value!r}.")
    return float(value)


def class_entropy(logits):
    """Mean over samples of the entropy of softmax(logits) over the class axis (dim 1)."""
    log_p = F.log_softmax(logits.float(), dim=1)
    return -(log_p.exp() * log_p).sum(dim=1).mean()


def unlikelihood(logits, labels):
    """[N] -log(1 - p_label) of each sample: pushes the true class's probability to 0.

    Maximising CE stalls where the model is confidently right: the gradient of CE with respect to
    the logits is p - onehot, about 0 there, so confidently classified unauthorized images keep
    their class. The gradient of -log(1 - p_y) with respect to the true logit is p_y: largest
    exactly there. Computed as logsumexp(all logits) - logsumexp(the other logits).
    """
    logits = logits.float()
    true_class = F.one_hot(labels, logits.shape[1]).bool()
    others = logits.masked_fill(true_class, float("-inf"))
    return torch.logsumexp(logits, dim=1) - torch.logsumexp(others, dim=1)


def true_class_log_odds(logits, labels):
    """[N] log(p_y / (1 - p_y)) of each sample = the true logit minus logsumexp of the others.

    It is -CE_u plus the unlikelihood -log(1 - p_y): its gradient with respect to the true logit is
    1 wherever the prediction stands, so it neither stalls on confidently right images (as
    maximising CE does) nor once the prediction is flat (as the unlikelihood does, whose gradient
    there is only p_y = 1/C).
    """
    logits = logits.float()
    true_class = F.one_hot(labels, logits.shape[1]).bool()
    others = logits.masked_fill(true_class, float("-inf"))
    return (logits * true_class).sum(dim=1) - torch.logsumexp(others, dim=1)


def release_entropy(logits):
    """The release's entropy term: p = softmax(logits) over classes, L2-normalised along the BATCH
    axis (dim 0), then per sample sum_j -p_ij log(p_ij + eps), averaged over samples."""
    p = F.normalize(F.softmax(logits.float(), dim=1), dim=0)
    return -(p * torch.log(p + RELEASE_ENTROPY_EPS)).sum(dim=1).mean()


def release_kl(text_a, text_u):
    """The release's KL term: KL(p_u || p_a) with p = softmax over the class axis (dim 1) of each
    text feature channel, summed over classes and channels and divided by the batch size (dim 0)."""
    log_p_a = F.log_softmax(text_a.float(), dim=1)
    log_p_u = F.log_softmax(text_u.float(), dim=1)
    return F.kl_div(log_p_a, log_p_u, reduction="batchmean", log_target=True)


def kl_feature_scale(kl_form, logit_scale):
    """What the text features are multiplied by before the KL: exp(logit_scale) in our form (sharper
    distributions over classes), 1 in the release's (it takes the unit-norm features)."""
    return logit_scale if kl_form == "ours" else 1.0


def per_sample_kl(logits_p, logits_q):
    """[N] KL(softmax(p) || softmax(q)) of each sample (dim 0) with the class axis at dim 1, summed
    over classes and averaged over the sample's other positions (feature channels, if any)."""
    log_p = F.log_softmax(logits_p.float(), dim=1)
    log_q = F.log_softmax(logits_q.float(), dim=1)
    per_position = (log_p.exp() * (log_p - log_q)).sum(dim=1)
    return per_position.reshape(per_position.shape[0], -1).mean(dim=1)


class IPCLIPLoss(nn.Module):
    """Combines IP-CLIP's terms. forward(...) -> (total, terms).

    Inputs (B_a authorized images, B_u unauthorized images, C classes):
      logits_a [B_a, C], labels_a [B_a]: authorized images vs their prompts' text features.
      logits_u [B_u, C], labels_u [B_u]: unauthorized images vs their prompts' text features.
      logits_ai [B_a, C]: self-enhanced features vs the authorized text features (labels_a).
      logits_ui [B_a, C]: cross-domain features vs the unauthorized text features (labels_a).
      dom_a, dom_u: domain tokens of the authorized / unauthorized batch, same shape ([B, L, D]).
      text_a, text_u: the text features of the authorized / unauthorized prompts, same shape
        [B, C, E] (one per image and class, as used in the logits; pass them L2-normalised and,
        if sharper distributions are wanted, multiplied by exp(logit_scale)). Dim 1 is the class
        axis: for each image b and channel e, softmax over classes of text[b, :, e] is one
        distribution; KL(p_a || p_u) is summed over classes and averaged over images and channels.
        Image b of one batch is paired with image b of the other. [B, C] logits also work.
      logits_zs_a [B_a, C] (needed when w_zs > 0): the anchor teacher's logits of the authorized
        images (anchor_teacher.py; detached here).
    terms: the raw (unclamped) value of every term and the total, detached, as 0-d tensors (no
    .item(), so logging them costs no host synchronisation until the caller asks).
    """

    def __init__(self, weights, anchor_only_where_right=False):
        super().__init__()
        if not isinstance(weights, IPCLIPLossWeights):
            raise TypeError(f"IPCLIPLoss expects IPCLIPLossWeights, got {type(weights).__name__}; "
                            "build it with IPCLIPLossWeights.from_cfg(cfg).")
        if not isinstance(anchor_only_where_right, bool):
            raise ConfigError("TRAINER.IPCLIP.ANCHOR.ONLY_WHERE_RIGHT must be True or False, "
                              f"got {anchor_only_where_right!r}.")
        self.base_weights = self.weights = weights
        self.anchor_only_where_right = anchor_only_where_right

    def set_epoch(self, epoch):
        """Use the weights of `epoch` (IPCLIPLossWeights.at_epoch) from now on."""
        self.weights = self.base_weights.at_epoch(epoch)

    def forward(self, logits_a, labels_a, logits_u, labels_u, logits_ai, logits_ui,
                dom_a, dom_u, text_a, text_u, logits_zs_a=None):
        _check_logits("logits_a", logits_a, "labels_a", labels_a)
        _check_logits("logits_u", logits_u, "labels_u", labels_u)
        _check_logits("logits_ai", logits_ai, "labels_a", labels_a)
        _check_logits("logits_ui", logits_ui, "labels_a", labels_a)
        _check_pair("dom_a", dom_a, "dom_u", dom_u, min_dim=1)
        _check_pair("text_a", text_a, "text_u", text_u, min_dim=2)

        w = self.weights
        # Per-sample values [N] of every clamped term; the logged term is their mean.
        samples = {
            "ce_u": F.cross_entropy(logits_u.float(), labels_u, reduction="none"),
            "ce_ai": F.cross_entropy(logits_ai.float(), labels_a, reduction="none"),
            "ce_ui": F.cross_entropy(logits_ui.float(), labels_a, reduction="none"),
            "mse_dom": (dom_a.float() - dom_u.float()).pow(2).flatten(1).mean(dim=1),
        }
        kl_text_a = text_a.detach() if w.kl_stop_authorized else text_a
        if w.kl_form == "ours":
            samples["kl_text"] = per_sample_kl(kl_text_a, text_u)
        own_bounds = {"kl_text": w.kl_upper_bound, "ce_u": w.u_upper_bound}
        bounded = {name: self._bounded(values, own_bounds.get(name, 0.0))
                   for name, values in samples.items()}
        terms = {"ce_a": F.cross_entropy(logits_a.float(), labels_a)}
        terms.update({name: values.mean() for name, values in samples.items()})
        if w.kl_form == "release":  # never clamped
            terms["kl_text"] = bounded["kl_text"] = release_kl(kl_text_a, text_u)
        entropy = release_entropy if w.entropy_form == "release" else class_entropy
        terms["entropy_u"] = entropy(logits_u)
        if w.u_loss == "unlikelihood":
            terms["ul_u"] = unlikelihood(logits_u, labels_u).mean()
            unauthorized = w.w_u * terms["ul_u"]
        elif w.u_loss == "log_odds":
            log_odds = true_class_log_odds(logits_u, labels_u)
            terms["log_odds_u"] = log_odds.mean()
            # Bounded below at -U for each image: p_y / (1 - p_y) >= exp(-U), like CE_u <= U.
            unauthorized = w.w_u * torch.clamp(log_odds, min=-self._cap(w.u_upper_bound)).mean()
        else:
            unauthorized = -w.w_u * bounded["ce_u"]
        anchor = 0.0
        if w.w_zs > 0:
            if logits_zs_a is None or logits_zs_a.shape != logits_a.shape:
                got = None if logits_zs_a is None else tuple(logits_zs_a.shape)
                raise ValueError(f"IPCLIPLoss: W_ZS {w.w_zs} needs the anchor teacher's logits logits_zs_a of "
                                 f"the authorized images, shape {tuple(logits_a.shape)}; got {got}.")
            kl_zs = per_sample_kl(logits_zs_a.detach(), logits_a)
            if self.anchor_only_where_right:
                kl_zs = kl_zs * (logits_zs_a.argmax(dim=1) == labels_a).to(kl_zs.dtype)
            terms["kl_zs"] = kl_zs.mean()
            anchor = w.w_zs * terms["kl_zs"]
        total = (terms["ce_a"]
                 + unauthorized
                 + w.s_ai * w.w_ai * bounded["ce_ai"]
                 - w.w_ui * bounded["ce_ui"]
                 - w.w_m * bounded["mse_dom"]
                 + w.w_en * terms["entropy_u"]
                 - w.w_kl * bounded["kl_text"]
                 + anchor)
        logged = {name: value.detach() for name, value in terms.items()}
        logged["total"] = total.detach()
        return total, logged

    def _cap(self, own_bound):
        """A term's own bound where it has one (> 0), else U."""
        return own_bound or self.weights.upper_bound

    def _bounded(self, per_sample, own_bound=0.0):
        """min(term, U): of each sample's value (per_sample_bound) or of their mean (the release).
        A positive `own_bound` replaces U for this term."""
        cap = self._cap(own_bound)
        if self.weights.per_sample_bound:
            return torch.clamp(per_sample, max=cap).mean()
        return torch.clamp(per_sample.mean(), max=cap)


def _check_logits(name, logits, label_name, labels):
    if logits.dim() != 2:
        raise ValueError(f"IPCLIPLoss: {name} must be [N, C] logits, got {tuple(logits.shape)}.")
    if labels.dim() != 1 or labels.shape[0] != logits.shape[0] or labels.is_floating_point():
        raise ValueError(f"IPCLIPLoss: {label_name} must be integer class indices [N] with N = "
                         f"{name}.shape[0] = {logits.shape[0]}, got {labels.dtype} "
                         f"{tuple(labels.shape)}.")


def _check_pair(name_a, a, name_u, u, min_dim):
    if a.shape != u.shape or a.dim() < min_dim:
        raise ValueError(f"IPCLIPLoss: {name_a} and {name_u} must have the same shape (at least "
                         f"{min_dim}-d; the authorized and unauthorized batches are paired image by "
                         f"image, so use equal batch sizes), got {tuple(a.shape)} and "
                         f"{tuple(u.shape)}.")
