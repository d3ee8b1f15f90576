"""Standardisation of the projector's inputs by the authorized domain's own statistics.

The squashed statistics (asinh mu, log sigma) of one CLIP layer span very different scales per
channel, and what separates a marked image, or a nearby domain, from the authorized one is a shift
of about one within-domain standard deviation per channel (on the tiny CLIP: the ownership mark
and photo -> painting both move the statistics by about 1 std, other domains by 3-70). Fed raw,
that shift is small beside the channels' own spread and the projector did not learn to separate it
in training (ownership: 70 % training accuracy on the marked images after 10 epochs). Measured in
units of the authorized domain's spread, it is what the projector sees first.

z = (x - mean) / max(std, MIN_STD) per layer and channel, then softly clipped to +-CLIP
(`CLIP * tanh(z / CLIP)`), so that a channel the authorized images never use (std ~ 0) cannot blow up
on another domain. The mean and std are buffers (saved with the run), fitted once before training
from a pass over the authorized stream.

With a whitening floor (STATS_NORM_WHITEN_FLOOR > 0) each layer's standardised (mu, log sigma)
vector is then decorrelated as well (ZCA: the inverse square root of its correlation matrix over the
authorized images, eigenvalues floored at the floor). Standardising per channel leaves the authorized
images' own principal directions stretched: they spread several standard deviations along a few
correlated directions, and the projector learns to ignore moves along them, which is where the
nearest real domain lies (docs/method.md M30-M31). Whitened, a move of k standard deviations weighs
the same along every direction. With few authorized images beside wide layers the inverse covariance
fits the training images' own noise: the floor bounds that, and STATS_NORM_WHITEN_LAYERS keeps the
decorrelation to the layers whose covariance the images determine (M36).
"""
import torch
from torch import nn

#: Values of TRAINER.IPCLIP.STATS_NORM.
STATS_NORMS = ("none", "authorized")


class StatsStandardizer(nn.Module):
    def __init__(self, n_layers, width, min_std, clip, whiten_floor=0.0, whiten_layers=None):
        super().__init__()
        if min_std <= 0:
            raise ValueError(f"StatsStandardizer min_std must be > 0, got {min_std}")
        if whiten_floor < 0:
            raise ValueError(f"StatsStandardizer whiten_floor must be >= 0 (0: no whitening), got "
                             f"{whiten_floor}")
        self.min_std = float(min_std)
        self.clip = float(clip)
        self.whiten_floor = float(whiten_floor)
        # the layers decorrelated (None: all); the others keep the identity, i.e. per channel only
        layers = tuple(range(n_layers) if whiten_layers is None else map(int, whiten_layers))
        if not all(0 <= i < n_layers for i in layers):
            raise ValueError(f"StatsStandardizer whiten_layers must be layer indices in [0, {n_layers - 1}], "
                             f"got {whiten_layers}")
        # [2, L, C]: row 0 for asinh(mu), row 1 for log(sigma); identity until fitted
        self.register_buffer("mean", torch.zeros(2, n_layers, width))
        self.register_buffer("std", torch.ones(2, n_layers, width))
        if self.whiten_floor > 0:  # buffers only then: checkpoints without them stay loadable
            # [K, 2C, 2C] acting on concat(z_mu, z_sigma) of each whitened layer (the others keep the
            # identity, not stored: 12 ViT-B/16 layers of 1536 x 1536 would be 113 MB); identity until fitted
            self.register_buffer("whiten_index", torch.tensor(layers, dtype=torch.long))
            self.register_buffer("whiten", torch.eye(2 * width).repeat(len(layers), 1, 1))

    @torch.no_grad()
    def fit(self, mu, log_sigma):
        """Fit on squashed statistics [N, L, C] of authorized images (N >= 2)."""
        if mu.shape[0] < 2:
            raise ValueError("StatsStandardizer.fit needs the statistics of at least 2 images, got "
                             f"{mu.shape[0]}; is the authorized training split empty?")
        x = torch.stack([mu, log_sigma]).float()  # [2, N, L, C]
        std, mean = torch.std_mean(x, dim=1)
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(self.min_std))
        if self.whiten_floor > 0:
            z = torch.cat(self._standardized(mu.float(), log_sigma.float()), dim=-1)[:, self.whiten_index]
            z = z - z.mean(0)  # [N, K, 2C]
            # the correlation matrix, but for channels whose std was floored
            covariance = torch.einsum("nlc,nld->lcd", z, z) / (z.shape[0] - 1)
            eigenvalues, vectors = torch.linalg.eigh(covariance.double())
            scale = eigenvalues.clamp_min(self.whiten_floor).rsqrt()
            self.whiten.copy_((vectors * scale[:, None, :]) @ vectors.transpose(1, 2))

    def _standardized(self, mu, log_sigma):
        return (mu - self.mean[0]) / self.std[0], (log_sigma - self.mean[1]) / self.std[1]

    def forward(self, mu, log_sigma):
        """Squashed statistics [B, L, C] -> standardised (mu, log_sigma), same shapes."""
        z_mu, z_sigma = self._standardized(mu, log_sigma)
        if self.whiten_floor > 0:
            z = torch.cat([z_mu, z_sigma], dim=-1)
            white = torch.einsum("blc,ldc->bld", z[:, self.whiten_index], self.whiten.to(z.dtype))
            # .to: under AMP the einsum may come out in half precision
            z_mu, z_sigma = z.index_copy(1, self.whiten_index, white.to(z.dtype)).chunk(2, dim=-1)
        if self.clip > 0:
            z_mu = self.clip * torch.tanh(z_mu / self.clip)
            z_sigma = self.clip * torch.tanh(z_sigma / self.clip)
        return z_mu, z_sigma
