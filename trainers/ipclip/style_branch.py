"""Style-enhancement branch: attends from an authorized image feature to the banks' class prototypes.

Attention over the authorized bank gives a *self-enhanced* feature, over the unauthorized bank a
*cross-domain* feature; each is f + W(attention output), L2-normalised. Used only in training, by
the CE_ai / CE_ui loss terms. The release never optimises it (it stays at its random init); whether
it trains is the trainer's choice (requires_grad), not this module's.
"""
import torch
import torch.nn.functional as F
from torch import nn

from dassl.errors import ConfigError

#: Values of TRAINER.IPCLIP.BRANCH.
BRANCH_FORMS = ("ours", "release")
#: The release's attention temperature (its INTER_Module.scale), in place of 1/sqrt(d).
RELEASE_ATTENTION_SCALE = 0.1
#: The release's q/k/v MLP is E -> E/8 -> E/8 -> 3E.
RELEASE_HIDDEN_DIVISOR = 8


class StyleEnhancement(nn.Module):
    """feat_dim: E, the image-feature width (clip_model.visual.output_dim); hidden: attention width.

    One MLP, shared by queries and prototypes, emits q, k and v (3 x hidden); the query's q attends
    to the prototypes' k and reads their v; `out_proj` (W) maps the result back to E.
    """

    def __init__(self, feat_dim, hidden=None):
        super().__init__()
        hidden = hidden or max(feat_dim // 4, 1)
        self.feat_dim = feat_dim
        self.hidden = hidden
        self.qkv = nn.Sequential(nn.Linear(feat_dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, 3 * hidden))
        self.out_proj = nn.Linear(hidden, feat_dim, bias=False)  # no prototypes: no change

    def _check(self, name, tensor, shape):
        if tuple(tensor.shape) != shape:
            raise ValueError(f"StyleEnhancement: {name} must have shape {shape}, got "
                             f"{tuple(tensor.shape)}.")

    def attend(self, features, prototypes, has_prototype):
        """features [B, E], prototypes [C, E], has_prototype [C] bool -> [B, E] unit-norm.

        Classes without a prototype get exactly zero attention weight; with none at all the
        attention output is zero and the result is normalize(f).
        """
        self._check("prototypes", prototypes, (has_prototype.shape[0], self.feat_dim))
        q = self.qkv(features)[:, : self.hidden]
        _, k, v = self.qkv(prototypes.to(features.dtype)).split(self.hidden, dim=-1)
        scores = q @ k.t() / self.hidden ** 0.5  # [B, C]
        mask = has_prototype.to(device=scores.device, dtype=torch.bool)[None, :]
        # finfo.min rather than -inf: an all-masked row gives a finite uniform softmax that the
        # mask then zeroes (no NaN, no data-dependent branch).
        weights = torch.softmax(scores.masked_fill(~mask, torch.finfo(scores.dtype).min), dim=-1)
        weights = weights * mask.to(weights.dtype)
        return F.normalize(features + self.out_proj(weights @ v), dim=-1)

    def forward(self, features, auth_proto, auth_mask, unauth_proto, unauth_mask):
        """features [B, E] (authorized image features) and each bank's prototypes [C, E] with
        has_prototype masks [C] -> (self_enhanced [B, E], cross_domain [B, E]), both unit-norm."""
        if features.dim() != 2 or features.shape[1] != self.feat_dim:
            raise ValueError(f"StyleEnhancement: features must be [B, {self.feat_dim}], got "
                             f"{tuple(features.shape)}.")
        return (self.attend(features, auth_proto, auth_mask),
                self.attend(features, unauth_proto, unauth_mask))


class BatchStatNorm(nn.BatchNorm1d):
    """BatchNorm1d that always normalises with the statistics of the batch at hand (the release's
    branch is never put in eval mode) and computes them in float32 whatever the autocast dtype."""

    def __init__(self, num_features):
        super().__init__(num_features, track_running_stats=False)

    def forward(self, x):
        return super().forward(x.float())


class ReleaseStyleEnhancement(nn.Module):
    """The release's branch (its INTER_Module): one MLP `pre` (Linear-BatchNorm-ReLU twice, then a
    Linear to 3E) maps queries and prototypes to q, k and v of width E, read interleaved (channel
    3i is q_i, 3i+1 is k_i, 3i+2 is v_i: einops 'b (d k) -> k b d', k=3); attention softmax(0.1 q k^T)
    over each bank's prototypes; out = normalize(f + post(A v)), `post` a Linear(E, E) with bias.

    The batch statistics make an output depend on the rest of its batch (queries) or bank
    (prototypes): it is used in training only, like the release's. It runs in the compute dtype of
    its inputs and parameters (the release built it in half precision, which crashes on fp32 input).
    """

    def __init__(self, feat_dim, hidden=None):
        super().__init__()
        hidden = hidden or max(feat_dim // RELEASE_HIDDEN_DIVISOR, 1)
        self.feat_dim = feat_dim
        self.hidden = hidden
        self.pre = nn.Sequential(
            nn.Linear(feat_dim, hidden), BatchStatNorm(hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), BatchStatNorm(hidden), nn.ReLU(),
            nn.Linear(hidden, 3 * feat_dim),
        )
        self.post = nn.Linear(feat_dim, feat_dim)

    def qkv(self, x):
        """x [N, E] -> (q, k, v), each [N, E], de-interleaved from the [N, 3E] output."""
        return self.pre(x).unflatten(-1, (self.feat_dim, 3)).unbind(-1)

    def attend(self, features, q, prototypes, has_prototype):
        _, k, v = self.qkv(prototypes.to(features.dtype))
        scores = RELEASE_ATTENTION_SCALE * (q @ k.t())
        mask = has_prototype.to(device=scores.device, dtype=torch.bool)[None, :]
        weights = torch.softmax(scores.masked_fill(~mask, torch.finfo(scores.dtype).min), dim=-1)
        weights = weights * mask.to(weights.dtype)
        return F.normalize(features + self.post(weights @ v).to(features.dtype), dim=-1)

    def forward(self, features, auth_proto, auth_mask, unauth_proto, unauth_mask):
        """As StyleEnhancement.forward; the queries' q is computed once for both banks."""
        if features.dim() != 2 or features.shape[1] != self.feat_dim:
            raise ValueError(f"ReleaseStyleEnhancement: features must be [B, {self.feat_dim}], got "
                             f"{tuple(features.shape)}.")
        for name, proto, mask in (("auth", auth_proto, auth_mask), ("unauth", unauth_proto, unauth_mask)):
            if tuple(proto.shape) != (mask.shape[0], self.feat_dim):
                raise ValueError(f"ReleaseStyleEnhancement: {name} prototypes must have shape "
                                 f"({mask.shape[0]}, {self.feat_dim}), got {tuple(proto.shape)}.")
        q, _, _ = self.qkv(features)
        return (self.attend(features, q, auth_proto, auth_mask),
                self.attend(features, q, unauth_proto, unauth_mask))


def build_style_branch(form, feat_dim, hidden=None):
    """The branch of TRAINER.IPCLIP.BRANCH `form` ("ours" or "release")."""
    if form == "ours":
        return StyleEnhancement(feat_dim, hidden)
    if form == "release":
        return ReleaseStyleEnhancement(feat_dim, hidden)
    raise ConfigError(f"TRAINER.IPCLIP.BRANCH must be one of {', '.join(BRANCH_FORMS)}, got {form!r}")
