"""Style-enhancement branch: attends from an authorized image feature to the banks' class prototypes.

Attention over the authorized bank gives a *self-enhanced* feature, over the unauthorized bank a
*cross-domain* feature; each is f + W(attention output), L2-normalised. Used only in training, by
the CE_ai / CE_ui loss terms. The release never optimises it (it stays at its random init); whether
it trains is the trainer's choice (requires_grad), not this module's.
"""
import torch
import torch.nn.functional as F
from torch import nn


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
