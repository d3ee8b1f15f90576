"""Feature-level style randomisation: unseen domains synthesised inside the frozen image encoder.

Target-free protection must refuse domains it never sees. Its pixel stand-in (strong_style) only
reaches the styles its op list can paint, and which real domains those happen to cover changes with
the source, the seed and the CLIP weights. IP-CLIP reads an image's style from its layers' channel
statistics, so the stand-in can act there directly: for a share of the unauthorized images, the
output of the chosen encoder layers is re-styled AdaIN-wise (each channel's mean shifted and its
spread rescaled by random amounts), and every later layer, the statistics the projector reads and
the image feature all follow, as they would for an image of a new domain.

Per image, a strength s = MIN_STRENGTH + (1 - MIN_STRENGTH) * u ** STRENGTH_EXPONENT with
u ~ U(0, 1) (exponent 1: uniform; above 1: more of the draws near MIN_STRENGTH, i.e. styles near
the source's, where a near domain sits), and per channel e1, e2 ~ N(0, 1):
    mu' = mu + s * MU_SHIFT * e1 * sigma,   sigma' = sigma * exp(s * SIGMA_SCALE * e2)
    x'  = (x - mu) / sigma * sigma' + mu'
Shifts are in units of the channel's own spread, so one setting means the same on any backbone.

AUTHORIZED_SHARE replaces that share of the unauthorized batch by copies of the authorized images,
always re-styled. In authorization this is the stand-in the pixel augmentations could not give: the
key intact (the pixels are the authorized image's) on a style the projector never accepted, which
is what a keyed image of another domain is (docs/method.md M17, M18, M20).
"""
import numbers

import torch

from dassl.errors import ConfigError

from .feature_hooks import DEFAULT_STATS_EPS


def check_feature_restyle(node, num_layers, key="TRAINER.IPCLIP.FEATURE_RESTYLE"):
    """Validated settings of a FEATURE_RESTYLE config node -> dict; `num_layers` tapped layers."""
    def number(name, low, high=None):
        value = node[name]
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not ok or value < low or (high is not None and value > high):
            bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise ConfigError(f"{key}.{name} must be a number {bound}; got {value!r}")
        return float(value)

    layers = node.LAYERS
    valid = (isinstance(layers, (list, tuple)) and len(layers) > 0
             and all(isinstance(i, numbers.Integral) and not isinstance(i, bool)
                     and 0 <= i < num_layers for i in layers))
    if not valid:
        raise ConfigError(f"{key}.LAYERS must be a non-empty list of tapped-layer indices in "
                          f"[0, {num_layers - 1}] (this encoder has {num_layers} tapped layers), "
                          f"e.g. (0,); got {layers!r}")
    return dict(prob=number("PROB", 0.0, 1.0), layers=tuple(int(i) for i in layers),
                mu_shift=number("MU_SHIFT", 0.0), sigma_scale=number("SIGMA_SCALE", 0.0),
                min_strength=number("MIN_STRENGTH", 0.0, 1.0),
                strength_exponent=number("STRENGTH_EXPONENT", 0.0),
                authorized_share=number("AUTHORIZED_SHARE", 0.0, 1.0))


class FeatureRestyle:
    """Draws which images of a batch are re-styled and re-styles their features in the encoder."""

    def __init__(self, prob, layers, mu_shift, sigma_scale, min_strength, authorized_share=0.0,
                 strength_exponent=1.0):
        self.prob = prob
        self.authorized_share = authorized_share
        self.layers = frozenset(layers)
        self.mu_shift = mu_shift
        self.sigma_scale = sigma_scale
        self.min_strength = min_strength
        self.strength_exponent = strength_exponent

    @classmethod
    def from_cfg(cls, node, num_layers):
        return cls(**check_feature_restyle(node, num_layers))

    @property
    def enabled(self):
        return (self.prob > 0 or self.authorized_share > 0) and (self.mu_shift > 0 or self.sigma_scale > 0)

    def with_authorized_copies(self, x_a, y_a, x_u, y_u):
        """(x_u, y_u, k): the first k = round(AUTHORIZED_SHARE * B_u) unauthorized images and labels
        replaced by the first k authorized ones (both streams are shuffled), to be re-styled."""
        k = min(round(self.authorized_share * x_u.shape[0]), x_a.shape[0])
        if k == 0:
            return x_u, y_u, 0
        return torch.cat([x_a[:k], x_u[k:]]), torch.cat([y_a[:k], y_u[k:]]), k

    def draw(self, n_clean, n_candidates, device, n_forced=0):
        """Per-image strength [n_clean + n_candidates]: 0 for the first n_clean images (never
        re-styled); for the candidates MIN_STRENGTH + (1 - MIN_STRENGTH) * u ** STRENGTH_EXPONENT,
        kept for the first n_forced and for each other one drawn with probability PROB, else 0."""
        chosen = torch.rand(n_candidates, device=device) < self.prob
        chosen[:n_forced] = True
        u = torch.rand(n_candidates, device=device).pow(self.strength_exponent)
        strength = self.min_strength + (1 - self.min_strength) * u
        return torch.cat([torch.zeros(n_clean, device=device), strength * chosen])

    def hook(self, strength):
        """A `VisualFeatureTap` restyle callable for one batch of per-image strengths [B]."""
        def restyle(layer, x, reduce_dims, batch_dim):
            if layer not in self.layers:
                return x
            return self.apply(x, strength, reduce_dims, batch_dim)

        return restyle

    def apply(self, x, strength, reduce_dims, batch_dim):
        """x with each image's channel statistics (over `reduce_dims`) perturbed by its strength;
        images of strength 0 come back unchanged."""
        xf = x.float()
        var, mu = torch.var_mean(xf, dim=reduce_dims, correction=0, keepdim=True)
        sigma = var.add(DEFAULT_STATS_EPS).sqrt()
        shape = [1] * x.dim()
        shape[batch_dim] = -1
        s = strength.to(xf).view(shape)
        shifted = mu + s * self.mu_shift * torch.randn_like(mu) * sigma
        scale = torch.exp(s * self.sigma_scale * torch.randn_like(sigma))
        return ((xf - mu) * scale + shifted).to(x.dtype)
