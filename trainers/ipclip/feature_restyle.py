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

DIRECTIONS "batch" draws (e1, e2) from the data instead of N(0, 1): the difference of the statistics
of two unauthorized images p, q of the same batch, e1 ~ (mu_p - mu_q) / sqrt(sigma_p sigma_q) and
e2 ~ log sigma_p - log sigma_q, each scaled to a root mean square of 1 over the channels (that of a
N(0, 1) draw, so MU_SHIFT, SIGMA_SCALE and the strengths keep their meaning). A real domain moves
the statistics along few directions, and whether a run refuses it depends on that direction
(docs/method.md M30); the stream's own restylings (strong_style, clean against keyed) were the
candidate. Measured worse than N(0, 1) on the tiny CLIP (M30): kept for experiments.

DIRECTIONS "source" draws them from the authorized images of the batch: e1 = sum_j w_j (mu_j -
mean mu) / exp(mean log sigma) over those images, w_j ~ N(0, 1) per restyled image (a draw of
N(0, their covariance)), e2 the same sum of their log-sigma deviations, each at unit RMS. A source
domain's first-layer statistics vary along few directions, and a near domain's shift lies mostly in
them (on the tiny CLIP, 95 % of the keyed paintings' first-layer mean shift lies in the keyed
photos' top 10 of 64 principal directions, M31), whereas a N(0, 1) draw spreads over all channels.

UNITS "source_spread" (DIRECTIONS "source" only) measures each shift in the source's own spread
along it instead of each channel's spatial spread: the mean moves s * MU_SHIFT, and the log-spread
s * SIGMA_SCALE, standard deviations of the batch's authorized images projected on the drawn
direction. In channel units the smallest shifts of some sources stay inside the source's own
spread along the direction they take (on `tiny-rn-seed1` sketch, strength 0.1 moved the mean a
median 1.5 sd, the log-spread 0.4 sd, where `tiny-rn` photo's moved 2.1 and 0.8 sd), and refusing
them might refuse keyed source images too. Measured, it did not keep those sources' keyed images
(docs/method.md M34): kept for experiments.

AUTHORIZED_SHARE replaces that share of the unauthorized batch by copies of the authorized images,
always re-styled. In authorization this is the stand-in the pixel augmentations could not give: the
key intact (the pixels are the authorized image's) on a style the projector never accepted, which
is what a keyed image of another domain is (docs/method.md M17, M18, M20).

AUTHORIZED_JITTER re-styles the authorized images themselves, each at a strength drawn from
U(0, AUTHORIZED_JITTER), keeping their labels: what the model must accept then covers a band around
the training images' own styles (with DIRECTIONS source, along the directions the source varies in),
so that test images of the source's tail are not refused with the stand-ins just beyond it
(docs/method.md M34).

GLOBAL_SHARE shifts that share of the authorized copies (AUTHORIZED_SHARE) at GLOBAL_LAYERS instead
of re-styling them at LAYERS: the channel means moved by k ~ U(GLOBAL_SHIFT) standard deviations of
the batch's authorized images along a direction drawn from their own deviations (GLOBAL_DIRECTIONS
source: where a near domain moves, 78 % of the keyed paintings' shift on `tiny-rn` lies in the keyed
photos' top 10 principal directions there; a N(0, 1) draw per channel, "gaussian", is refused
by its energy in directions the source never varies along, and one run of four trained with it
accepted the paintings' shift, docs/method.md M39). A re-style at the first layer barely reaches
the last one, where a near domain differs most (on `tiny-rn` the keyed
paintings sit at twice the keyed photos' distance there, AUC 0.997, against 0.85 at the first
layer); a 1x1 layer has no spatial spread to measure a shift in, so the unit is the spread between
images. Copies, because an unauthorized image is refused by its own cues (no key, a strong style)
whatever its last layer says (docs/method.md M39).
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
    global_share = number("GLOBAL_SHARE", 0.0, 1.0)
    global_layers, global_shift = (), tuple(node.GLOBAL_SHIFT)
    if global_share > 0 and not node.AUTHORIZED_SHARE:
        raise ConfigError(f"{key}.GLOBAL_SHARE shifts a share of the authorized copies: set "
                          f"{key}.AUTHORIZED_SHARE > 0 as well (got {node.AUTHORIZED_SHARE!r}), "
                          f"or GLOBAL_SHARE 0.0")
    if global_share > 0:
        global_layers = node.GLOBAL_LAYERS
        valid = (isinstance(global_layers, (list, tuple)) and len(global_layers) > 0
                 and all(isinstance(i, numbers.Integral) and not isinstance(i, bool)
                         and -num_layers <= i < num_layers for i in global_layers))
        if not valid:
            raise ConfigError(f"{key}.GLOBAL_LAYERS must be a non-empty list of tapped-layer indices in "
                              f"[{-num_layers}, {num_layers - 1}] (negative: from the last; this encoder "
                              f"has {num_layers}), e.g. (-1,); got {global_layers!r}")
        global_layers = tuple(sorted({int(i) % num_layers for i in global_layers}))
        if set(global_layers) & set(layers):
            raise ConfigError(f"{key}.GLOBAL_LAYERS {global_layers} and {key}.LAYERS {tuple(layers)} "
                              "must not share a layer: an image is re-styled at one or the other")
        valid = (len(global_shift) == 2 and all(isinstance(k, numbers.Real) and not isinstance(k, bool)
                                                for k in global_shift)
                 and 0 <= global_shift[0] <= global_shift[1])
        if not valid:
            raise ConfigError(f"{key}.GLOBAL_SHIFT must be two numbers (low, high) with 0 <= low <= high "
                              f"(standard deviations between images), e.g. (1.5, 3.0); got {global_shift!r}")
    return dict(prob=number("PROB", 0.0, 1.0), layers=tuple(int(i) for i in layers),
                mu_shift=number("MU_SHIFT", 0.0), sigma_scale=number("SIGMA_SCALE", 0.0),
                min_strength=number("MIN_STRENGTH", 0.0, 1.0),
                strength_exponent=number("STRENGTH_EXPONENT", 0.0),
                authorized_share=number("AUTHORIZED_SHARE", 0.0, 1.0),
                authorized_jitter=number("AUTHORIZED_JITTER", 0.0, 1.0),
                decouple=number("DECOUPLE", 0.0, 1.0), global_share=global_share,
                global_layers=global_layers, global_shift=tuple(float(k) for k in global_shift),
                global_directions=check_global_directions(node.GLOBAL_DIRECTIONS, key),
                directions=check_directions(node.DIRECTIONS, key),
                units=check_units(node.UNITS, node.DIRECTIONS, key))


#: Values of TRAINER.IPCLIP.FEATURE_RESTYLE.DIRECTIONS.
RESTYLE_DIRECTIONS = ("gaussian", "batch", "source")


def check_directions(value, key):
    if value not in RESTYLE_DIRECTIONS:
        raise ConfigError(f"{key}.DIRECTIONS must be one of {RESTYLE_DIRECTIONS}; got {value!r}")
    return value


#: Values of TRAINER.IPCLIP.FEATURE_RESTYLE.GLOBAL_DIRECTIONS.
GLOBAL_DIRECTIONS = ("source", "gaussian")


def check_global_directions(value, key):
    if value not in GLOBAL_DIRECTIONS:
        raise ConfigError(f"{key}.GLOBAL_DIRECTIONS must be one of {GLOBAL_DIRECTIONS}; got {value!r}")
    return value


#: Values of TRAINER.IPCLIP.FEATURE_RESTYLE.UNITS.
RESTYLE_UNITS = ("channel", "source_spread")


def check_units(value, directions, key):
    if value not in RESTYLE_UNITS:
        raise ConfigError(f"{key}.UNITS must be one of {RESTYLE_UNITS}; got {value!r}")
    if value == "source_spread" and directions != "source":
        raise ConfigError(f"{key}.UNITS source_spread measures shifts in the authorized images' spread "
                          f"along directions drawn from them: it needs {key}.DIRECTIONS source; "
                          f"got DIRECTIONS {directions!r}")
    return value


class FeatureRestyle:
    """Draws which images of a batch are re-styled and re-styles their features in the encoder."""

    def __init__(self, prob, layers, mu_shift, sigma_scale, min_strength, authorized_share=0.0,
                 strength_exponent=1.0, directions="gaussian", decouple=0.0, units="channel",
                 authorized_jitter=0.0, global_share=0.0, global_layers=(), global_shift=(3.0, 6.0),
                 global_directions="source"):
        self.prob = prob
        self.global_directions = check_global_directions(global_directions,
                                                         "FeatureRestyle(global_directions=...)")
        self.global_share = global_share if global_layers else 0.0
        self.global_layers = frozenset(global_layers)
        self.global_shift = global_shift
        self.authorized_jitter = authorized_jitter
        self.units = check_units(units, directions, "FeatureRestyle(units=...)")
        self.decouple = decouple
        self.directions = check_directions(directions, "FeatureRestyle(directions=...)")
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
        drawn = self.prob > 0 or self.authorized_share > 0 or self.authorized_jitter > 0
        return drawn and (self.mu_shift > 0 or self.sigma_scale > 0)

    def with_authorized_copies(self, x_a, y_a, x_u, y_u):
        """(x_u, y_u, k): the first k = round(AUTHORIZED_SHARE * B_u) unauthorized images and labels
        replaced by the first k authorized ones (both streams are shuffled), to be re-styled."""
        k = min(round(self.authorized_share * x_u.shape[0]), x_a.shape[0])
        if k == 0:
            return x_u, y_u, 0
        return torch.cat([x_a[:k], x_u[k:]]), torch.cat([y_a[:k], y_u[k:]]), k

    def draw(self, n_clean, n_candidates, device, n_forced=0):
        """Per-image strength [n_clean + n_candidates]: for the first n_clean (authorized) images 0,
        or U(0, AUTHORIZED_JITTER) when that is set; for the candidates MIN_STRENGTH +
        (1 - MIN_STRENGTH) * u ** STRENGTH_EXPONENT, kept for the first n_forced and for each other
        one drawn with probability PROB, else 0."""
        chosen = torch.rand(n_candidates, device=device) < self.prob
        chosen[:n_forced] = True
        u = torch.rand(n_candidates, device=device).pow(self.strength_exponent)
        strength = self.min_strength + (1 - self.min_strength) * u
        clean = torch.zeros(n_clean, device=device)
        if self.authorized_jitter > 0:  # drawn only then: the configs without it keep their stream
            clean = self.authorized_jitter * torch.rand(n_clean, device=device)
        return torch.cat([clean, strength * chosen])

    def split_global(self, strength, n_clean, n_copies):
        """strength [B] -> (strength [B], shift [B] or None): a share GLOBAL_SHARE of the n_copies
        authorized copies (right after the n_clean authorized images) leaves the LAYERS re-style
        (strength 0) for a shift of k ~ U(GLOBAL_SHIFT) at GLOBAL_LAYERS. Off: nothing drawn."""
        if self.global_share == 0:
            return strength, None
        index = torch.arange(strength.shape[0], device=strength.device)
        copy = (index >= n_clean) & (index < n_clean + n_copies)
        moved = copy & (torch.rand_like(strength) < self.global_share)
        low, high = self.global_shift
        shift = (low + (high - low) * torch.rand_like(strength)) * moved
        return strength * ~moved, shift

    def draw_partners(self, n_clean, n_candidates, device):
        """What the directions are drawn from, per image of the n_clean + n_candidates batch:
        DIRECTIONS "batch": indices [2, B] of the two images (p, q) whose difference of statistics
        gives each image's direction, two different candidates (the unauthorized stream);
        "source": N(0, 1) weights [B, n_clean] of the clean (authorized) images' deviations from
        their batch mean; None with "gaussian"."""
        if self.directions == "gaussian":
            return None
        if self.directions == "source":
            return torch.randn(n_clean + n_candidates, n_clean, device=device)
        size = n_clean + n_candidates
        p = torch.randint(n_candidates, (size,), device=device)
        q = (p + torch.randint(1, max(n_candidates, 2), (size,), device=device)) % n_candidates
        return torch.stack([p, q]) + n_clean  # q != p unless there is a single candidate

    def split_moments(self, strength):
        """[B] -> [2, B] strengths of the mean and of the spread: for a share DECOUPLE of the
        images only one of the two moves (each with probability 1/2), so that a shift of the spread
        alone, or of the mean alone, is a refused style too (docs/method.md M30). With DECOUPLE 0
        nothing is drawn, so the random stream stays that of the configs without the key."""
        if self.decouple == 0:
            return strength.expand(2, -1)
        one = torch.rand_like(strength) < self.decouple
        mean_only = torch.rand_like(strength) < 0.5
        keep_mu = ~one | mean_only
        keep_sigma = ~one | ~mean_only
        return torch.stack([strength * keep_mu, strength * keep_sigma])

    def hook(self, strength, partners=None, global_shift=None, n_reference=0):
        """A `VisualFeatureTap` restyle callable for one batch of per-image strengths ([B], or
        [2, B] from `split_moments`) and, for directions taken from the batch, what
        `draw_partners` drew; `global_shift` ([B], from `split_global`) at GLOBAL_LAYERS, in units of
        the spread between the batch's first `n_reference` (authorized) images."""
        def restyle(layer, x, reduce_dims, batch_dim):
            if layer in self.layers:
                return self.apply(x, strength, reduce_dims, batch_dim, partners)
            if global_shift is not None and layer in self.global_layers:
                return self.apply_global(x, global_shift, n_reference, reduce_dims, batch_dim)
            return x

        return restyle

    def apply_global(self, x, shift, n_reference, reduce_dims, batch_dim):
        """x with each image's channel means moved by shift [B] standard deviations of the first
        n_reference images' channel means: GLOBAL_DIRECTIONS "gaussian", a N(0, 1) draw per channel
        in units of each channel's spread; "source", along a random combination of those images'
        deviations from their mean (a draw of N(0, their covariance)), in units of their spread
        projected on it."""
        xf = x.float()
        mu = xf.mean(dim=reduce_dims, keepdim=True)
        shape = [1] * x.dim()
        shape[batch_dim] = -1
        k = shift.to(xf).view(shape)
        if self.global_directions == "gaussian":
            reference = mu.narrow(batch_dim, 0, n_reference)
            spread = reference.var(dim=batch_dim, correction=0, keepdim=True).add(DEFAULT_STATS_EPS).sqrt()
            return (xf + k * torch.randn_like(mu) * spread).to(x.dtype)
        rows = mu.movedim(batch_dim, 0).flatten(1)  # [B, C]
        deviations = rows[:n_reference] - rows[:n_reference].mean(0)
        drawn = torch.randn(rows.shape[0], n_reference, device=x.device) @ deviations
        return (xf + k * _like_stats(_one_sd_along(drawn, deviations), mu, batch_dim)).to(x.dtype)

    def apply(self, x, strength, reduce_dims, batch_dim, partners=None):
        """x with each image's channel statistics (over `reduce_dims`) perturbed by its strength
        ([B], or [2, B]: the mean's and the spread's, see `split_moments`); images of strength 0
        come back unchanged. `partners` (from `draw_partners`): directions from the batch."""
        xf = x.float()
        var, mu = torch.var_mean(xf, dim=reduce_dims, correction=0, keepdim=True)
        sigma = var.add(DEFAULT_STATS_EPS).sqrt()
        shape = [1] * x.dim()
        shape[batch_dim] = -1
        s_mu, s_sigma = (m.to(xf).view(shape) for m in strength.expand(2, -1))
        if self.directions == "gaussian":
            e1, e2 = torch.randn_like(mu), torch.randn_like(sigma)
        elif self.units == "source_spread":
            e1, e2 = _source_spread_shifts(mu, sigma, partners, batch_dim)
        else:
            e1, e2 = _DRAWN_DIRECTIONS[self.directions](mu, sigma, partners, batch_dim)
        shifted = mu + s_mu * self.mu_shift * e1 * sigma
        scale = torch.exp(s_sigma * self.sigma_scale * e2)
        return ((xf - mu) * scale + shifted).to(x.dtype)


def _batch_directions(mu, sigma, partners, batch_dim):
    """(e1, e2) shaped like mu: the standardised differences of the partners' statistics, each of
    root mean square 1 over an image's channels (0 where p = q)."""
    p, q = partners
    log_sigma = sigma.log()
    mu_p, mu_q = mu.index_select(batch_dim, p), mu.index_select(batch_dim, q)
    ls_p, ls_q = log_sigma.index_select(batch_dim, p), log_sigma.index_select(batch_dim, q)
    d_mu = (mu_p - mu_q) / (ls_p + ls_q).mul(0.5).exp()
    d_sigma = ls_p - ls_q
    return _unit_rms(d_mu, batch_dim), _unit_rms(d_sigma, batch_dim)


def _source_deviations(mu, sigma, n, batch_dim):
    """(d_mu, d_log_sigma, scale): the first n images' deviations from their mean statistics, each
    [n, C] with the batch first (the means' in raw units), and the geometric mean spread [C] that
    standardises the means'."""
    mu_src = mu.movedim(batch_dim, 0)[:n].flatten(1)
    ls_src = sigma.log().movedim(batch_dim, 0)[:n].flatten(1)
    ls_mean = ls_src.mean(0)
    return mu_src - mu_src.mean(0), ls_src - ls_mean, ls_mean.exp()


def _like_stats(v, stats, batch_dim):
    """v [B, C] laid out as the statistics `stats` (the batch at batch_dim, singleton reduce dims)."""
    return v.view(stats.movedim(batch_dim, 0).shape).movedim(0, batch_dim)


def _source_directions(mu, sigma, weights, batch_dim):
    """(e1, e2) shaped like mu: random combinations (`weights` [B, n]) of the first n images'
    standardised deviations from their mean statistics, i.e. draws of N(0, their covariance), each
    of root mean square 1 over an image's channels."""
    d_mu, d_sigma, scale = _source_deviations(mu, sigma, weights.shape[1], batch_dim)
    e1 = _like_stats(weights @ (d_mu / scale), mu, batch_dim)
    e2 = _like_stats(weights @ d_sigma, mu, batch_dim)
    return _unit_rms(e1, batch_dim), _unit_rms(e2, batch_dim)


def _source_spread_shifts(mu, sigma, weights, batch_dim):
    """(e1, e2) shaped like mu, for UNITS "source_spread": e1 * sigma and e2 are shifts of the mean
    and of log sigma along `_source_directions`' directions, each of one standard deviation of the
    first n images' statistics projected on it."""
    d_mu, d_sigma, scale = _source_deviations(mu, sigma, weights.shape[1], batch_dim)
    # Drawn in channel-standardised units, as `_source_directions` draws them; measured in raw units.
    v_mu = (weights @ (d_mu / scale)) * scale
    shift_mu = _like_stats(_one_sd_along(v_mu, d_mu), mu, batch_dim)
    shift_sigma = _like_stats(_one_sd_along(weights @ d_sigma, d_sigma), mu, batch_dim)
    return shift_mu / sigma, shift_sigma


def _one_sd_along(v, deviations):
    """Rows of v [B, C] rescaled to the standard deviation of `deviations` [n, C] (from their mean)
    projected on each row's direction (0 stays 0)."""
    projected_sq = (v @ deviations.T).pow(2).mean(1, keepdim=True)  # |v|^2 * sd^2 along v
    return v * projected_sq.sqrt() / v.pow(2).sum(1, keepdim=True).add(DEFAULT_STATS_EPS)


#: DIRECTIONS other than "gaussian" -> (mu, sigma, what `draw_partners` drew, batch_dim) -> (e1, e2).
_DRAWN_DIRECTIONS = {"batch": _batch_directions, "source": _source_directions}


def _unit_rms(d, batch_dim):
    """d scaled to a root mean square of 1 over each image's channels (0 stays 0)."""
    per_image = [i for i in range(d.dim()) if i != batch_dim]
    return d / d.pow(2).mean(dim=per_image, keepdim=True).add(DEFAULT_STATS_EPS).sqrt()
