"""Style banks: per class, the K most confident image features seen so far, with their confidence.

IP-CLIP fills two banks in one no-grad pass before training: the authorized bank files correctly
predicted authorized samples under their label, the unauthorized bank files unauthorized samples
under their predicted class. Class prototypes (mean of the filled slots) feed the style-enhancement
branch. The bank is an nn.Module whose state is buffers, so it follows `.to()` and is saved in
checkpoints; updates are tensor operations on the bank's device (no per-sample loop, no host sync).
"""
import torch
import torch.nn.functional as F
from torch import nn

from dassl.errors import ConfigError

#: Values of TRAINER.IPCLIP.BANK_PROTOTYPE: mean of the filled slots, or of all K slots (the release).
PROTOTYPE_MODES = ("filled_slots", "all_slots")


class StyleBank(nn.Module):
    """features [C, K, E] and confidence [C, K] buffers; an empty slot has confidence -inf and a
    zero feature. Slots of a class are kept sorted by decreasing confidence.

    Tie rule (deterministic): among equal confidences, entries already in the bank come first (in
    slot order), then new candidates in increasing batch index. Equivalently: feeding candidates one
    by one, a candidate only displaces an entry of strictly lower confidence.
    """

    def __init__(self, num_classes, slots, feat_dim):
        super().__init__()
        if num_classes < 1 or slots < 1 or feat_dim < 1:
            raise ValueError(f"StyleBank needs num_classes, slots and feat_dim >= 1, got "
                             f"{num_classes}, {slots}, {feat_dim}.")
        self.register_buffer("features", torch.zeros(num_classes, slots, feat_dim))
        self.register_buffer("confidence", torch.full((num_classes, slots), float("-inf")))

    @property
    def num_classes(self):
        return self.confidence.shape[0]

    @property
    def slots(self):
        return self.confidence.shape[1]

    @property
    def feat_dim(self):
        return self.features.shape[2]

    @property
    def filled(self):
        """[C, K] bool: which slots hold a sample."""
        return self.confidence > float("-inf")

    @torch.no_grad()
    def reset(self):
        self.features.zero_()
        self.confidence.fill_(float("-inf"))

    def _check_candidates(self, features, confidence, classes, accept):
        n = features.shape[0] if features.dim() == 2 else -1
        problems = []
        if features.dim() != 2 or features.shape[1] != self.feat_dim:
            problems.append(f"features must be [N, {self.feat_dim}], got {tuple(features.shape)}")
        if confidence.shape != (n,) or not confidence.is_floating_point():
            problems.append(f"confidence must be a float [N] tensor, got {confidence.dtype} "
                            f"{tuple(confidence.shape)}")
        if classes.shape != (n,) or classes.is_floating_point() or classes.dtype == torch.bool:
            problems.append(f"classes must be an integer [N] tensor, got {classes.dtype} "
                            f"{tuple(classes.shape)}")
        if accept.shape != (n,) or accept.dtype != torch.bool:
            problems.append(f"accept must be a bool [N] tensor, got {accept.dtype} "
                            f"{tuple(accept.shape)}")
        if problems:
            raise ValueError("StyleBank.update: " + "; ".join(problems) + ".")
        # Range check only where it costs no device synchronisation.
        if classes.device.type == "cpu" and n > 0:
            low, high = int(classes.min()), int(classes.max())
            if low < 0 or high >= self.num_classes:
                raise ValueError(f"StyleBank.update: class indices must lie in [0, "
                                 f"{self.num_classes}), got values in [{low}, {high}].")

    @torch.no_grad()
    def update(self, features, confidence, classes, accept):
        """Offer N candidates; each class keeps the top K of (its entries and its accepted candidates).

        features [N, E], confidence [N] (float), classes [N] (int, the class to file under),
        accept [N] (bool). Candidates with confidence -inf or NaN are ignored.
        """
        self._check_candidates(features, confidence, classes, accept)
        n = features.shape[0]
        if n == 0:
            return
        k, dim = self.slots, self.feat_dim
        device = self.confidence.device
        confidence = confidence.to(device=device, dtype=self.confidence.dtype)
        classes = classes.to(device)
        accept = accept.to(device) & (confidence > float("-inf"))  # NaN compares False too
        class_ids = torch.arange(self.num_classes, device=device)
        member = (classes[None, :] == class_ids[:, None]) & accept[None, :]  # [C, N]
        offered = torch.where(member, confidence[None, :], float("-inf"))
        # Bank entries before candidates + a stable sort = the documented tie rule.
        scores = torch.cat([self.confidence, offered], dim=1)  # [C, K + N]
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
        new_confidence = scores.gather(1, order)
        from_bank = order < k
        kept = self.features.gather(1, order.clamp(max=k - 1)[..., None].expand(-1, -1, dim))
        incoming = features.to(device=device, dtype=self.features.dtype)[(order - k).clamp(min=0)]
        new_features = torch.where(from_bank[..., None], kept, incoming)
        new_features = new_features * (new_confidence > float("-inf"))[..., None]
        self.features.copy_(new_features)
        self.confidence.copy_(new_confidence)

    def all_slots_above(self, confidence):
        """0-d bool tensor: every slot holds a sample more confident than `confidence` (the
        release's early stop of its bank filling; an empty slot is -inf, never above)."""
        return self.confidence.min() > confidence

    def prototypes(self, mode="filled_slots"):
        """-> (prototypes [C, E]: mean of the filled slots, has_prototype [C] bool).

        A class with no filled slot gets a zero prototype and has_prototype False; empty slots never
        enter a mean. mode "all_slots" is the release's: the mean over all K slots, empty (zero)
        slots included, and every class has a prototype (possibly zero).
        """
        if mode == "all_slots":
            proto = self.features.mean(dim=1)
            return proto, torch.ones(self.num_classes, dtype=torch.bool, device=proto.device)
        if mode != "filled_slots":
            raise ConfigError(f"TRAINER.IPCLIP.BANK_PROTOTYPE must be one of "
                              f"{', '.join(PROTOTYPE_MODES)}, got {mode!r}")
        filled = self.filled
        count = filled.sum(dim=1)
        total = (self.features * filled[..., None].to(self.features.dtype)).sum(dim=1)
        proto = total / count.clamp(min=1)[:, None].to(total.dtype)
        return proto, count > 0


def authorized_candidates(logits, labels):
    """Authorized bank rule: file correctly predicted samples under their label.

    logits [N, C], labels [N] -> (confidence [N] = softmax probability of the prediction,
    classes [N] = labels, accept [N] = prediction == label).
    """
    _check_logits(logits, labels)
    confidence, predicted = F.softmax(logits.float(), dim=1).max(dim=1)
    return confidence, labels, predicted == labels


def unauthorized_candidates(logits):
    """Unauthorized bank rule: file every sample under its predicted class.

    logits [N, C] -> (confidence [N] = top softmax probability, classes [N] = prediction,
    accept [N] all True).
    """
    _check_logits(logits)
    confidence, predicted = F.softmax(logits.float(), dim=1).max(dim=1)
    return confidence, predicted, torch.ones_like(predicted, dtype=torch.bool)


def _check_logits(logits, labels=None):
    if logits.dim() != 2:
        raise ValueError(f"Expected logits [N, C], got shape {tuple(logits.shape)}.")
    if labels is not None and labels.shape != logits.shape[:1]:
        raise ValueError(f"Expected labels [{logits.shape[0]}] matching logits "
                         f"{tuple(logits.shape)}, got {tuple(labels.shape)}.")


class IPStyleBanks(nn.Module):
    """The authorized and unauthorized banks of IP-CLIP, with their filing rules."""

    def __init__(self, num_classes, slots, feat_dim, prototype_mode="filled_slots"):
        super().__init__()
        if prototype_mode not in PROTOTYPE_MODES:
            raise ConfigError(f"TRAINER.IPCLIP.BANK_PROTOTYPE must be one of "
                              f"{', '.join(PROTOTYPE_MODES)}, got {prototype_mode!r}")
        self.prototype_mode = prototype_mode
        self.authorized = StyleBank(num_classes, slots, feat_dim)
        self.unauthorized = StyleBank(num_classes, slots, feat_dim)

    def _check_classes(self, logits):
        if logits.dim() == 2 and logits.shape[1] != self.authorized.num_classes:
            raise ValueError(f"Logits have {logits.shape[1]} classes but the banks were built for "
                             f"{self.authorized.num_classes} classes; build IPStyleBanks with "
                             "num_classes = the number of class names.")

    @torch.no_grad()
    def file_authorized(self, features, logits, labels):
        """features [N, E] of authorized images, their logits [N, C] and labels [N]."""
        self._check_classes(logits)
        self.authorized.update(features, *authorized_candidates(logits, labels))

    @torch.no_grad()
    def file_unauthorized(self, features, logits):
        """features [N, E] of unauthorized images and their logits [N, C] (labels are not used)."""
        self._check_classes(logits)
        self.unauthorized.update(features, *unauthorized_candidates(logits))

    def reset(self):
        self.authorized.reset()
        self.unauthorized.reset()

    def prototypes(self):
        """-> (auth_proto [C, E], auth_mask [C], unauth_proto [C, E], unauth_mask [C]), the
        argument order of StyleEnhancement.forward after the query features."""
        return (*self.authorized.prototypes(self.prototype_mode),
                *self.unauthorized.prototypes(self.prototype_mode))
