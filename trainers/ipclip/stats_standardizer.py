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
"""
import torch
from torch import nn

#: Values of TRAINER.IPCLIP.STATS_NORM.
STATS_NORMS = ("none", "authorized")


class StatsStandardizer(nn.Module):
    def __init__(self, n_layers, width, min_std, clip):
        super().__init__()
        if min_std <= 0:
            raise ValueError(f"StatsStandardizer min_std must be > 0, got {min_std}")
        self.min_std = float(min_std)
        self.clip = float(clip)
        # [2, L, C]: row 0 for asinh(mu), row 1 for log(sigma); identity until fitted
        self.register_buffer("mean", torch.zeros(2, n_layers, width))
        self.register_buffer("std", torch.ones(2, n_layers, width))

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

    def forward(self, mu, log_sigma):
        """Squashed statistics [B, L, C] -> standardised (mu, log_sigma), same shapes."""
        z_mu = (mu - self.mean[0]) / self.std[0]
        z_sigma = (log_sigma - self.mean[1]) / self.std[1]
        if self.clip > 0:
            z_mu = self.clip * torch.tanh(z_mu / self.clip)
            z_sigma = self.clip * torch.tanh(z_sigma / self.clip)
        return z_mu, z_sigma
