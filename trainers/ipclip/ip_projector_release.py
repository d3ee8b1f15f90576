"""The release's IP projector and prompt layout (TRAINER.IPCLIP.PROJECTOR "release").

Domain token of layer l: two linear maps, no activation, of (mu_l + sigma_l) / 2 (the release pools
the stacked pair with an AdaptiveAvgPool, which is their mean). Image token: a linear map per layer
of mu_l (the mean-pooled tokens), then a learned linear mix over the L layers (Linear(L, 1)); the M
image tokens are copies of that one vector. The prompt context repeats the L domain tokens:
`[SOS] [L domain] [the same L domain] [M image] <class> .`, so it has 2L + M tokens.

Layers of different widths (a ResNet's stages) use the padded per-layer maps of `ip_projector`:
inputs are zero-padded to the widest layer, so each layer is exactly its own nn.Linear.
"""
import torch
import torch.nn.functional as F
from torch import nn

from dassl.errors import ConfigError

from .ip_projector import PerLayerLinear, bound_tokens, check_projector_args

#: Default hidden width of the domain token's two linear maps, as a fraction of the text width
#: (the release's 256 for ViT-B/16's 512-wide text encoder).
RELEASE_HIDDEN_DIVISOR = 2
#: How many times the prompt repeats the L domain tokens.
DOMAIN_TOKEN_REPEATS = 2


def stack_padded(per_layer, width):
    """list of L tensors [B, C_l] -> [B, L, width], zero-padded (padding meets zero weights)."""
    return torch.stack([F.pad(x, (0, width - x.shape[1])) for x in per_layer], dim=1)


class ReleaseIPProjector(nn.Module):
    """Same interface as IPProjector: forward(stats) -> (domain [B, L, D], image [B, M, D]),
    context(stats) -> [B, 2L + M, D]; parameters start at nn.Linear's default initialisation."""

    def __init__(self, layer_dims, text_width, n_image_tokens=4, hidden=None, token_bound=None,
                 bound_type="coordinate"):
        super().__init__()
        layer_dims = check_projector_args(type(self).__name__, layer_dims, n_image_tokens, bound_type)
        hidden = hidden or max(text_width // RELEASE_HIDDEN_DIVISOR, 1)
        n_layers = len(layer_dims)
        self.layer_dims = layer_dims
        self.text_width = text_width
        self.n_image_tokens = n_image_tokens
        self.token_bound = token_bound
        self.bound_type = bound_type
        self.domain_in = PerLayerLinear(layer_dims, hidden)
        self.domain_out = PerLayerLinear([hidden] * n_layers, text_width)
        self.content = PerLayerLinear(layer_dims, text_width)
        self.layer_mix = nn.Linear(n_layers, 1)

    @property
    def n_domain_tokens(self):
        return len(self.layer_dims)

    @property
    def n_context_tokens(self):
        return DOMAIN_TOKEN_REPEATS * len(self.layer_dims) + self.n_image_tokens

    def _check(self, stats):
        if not isinstance(stats, (list, tuple)) or len(stats) != len(self.layer_dims):
            raise ValueError(f"ReleaseIPProjector expects a list of {len(self.layer_dims)} (mu, sigma) "
                             "pairs (one per encoder layer, as VisualFeatureTap.tap returns).")
        for index, ((mu, sigma), dim) in enumerate(zip(stats, self.layer_dims)):
            if mu.dim() != 2 or mu.shape[1] != dim or sigma.shape != mu.shape:
                raise ValueError(f"Layer {index}: expected mu and sigma of shape [B, {dim}], got "
                                 f"{tuple(mu.shape)} and {tuple(sigma.shape)}.")

    def forward(self, stats):
        """stats (list of L (mu, sigma) [B, C_l]) -> (domain [B, L, D], image [B, M, D])."""
        self._check(stats)
        width = max(self.layer_dims)
        style = stack_padded([(mu + sigma) / 2 for mu, sigma in stats], width)
        content = stack_padded([mu for mu, _ in stats], width)
        domain_tokens = self.domain_out(self.domain_in(style))
        per_layer = self.content(content)  # [B, L, D]
        image_token = self.layer_mix(per_layer.transpose(1, 2)).squeeze(-1)  # [B, D]
        image_tokens = image_token[:, None, :].expand(-1, self.n_image_tokens, -1)
        return (bound_tokens(domain_tokens, self.token_bound, self.bound_type),
                bound_tokens(image_tokens, self.token_bound, self.bound_type))

    def context(self, stats):
        """-> [B, 2L + M, D]: the domain tokens, the same again, then the image tokens."""
        domain_tokens, image_tokens = self(stats)
        return torch.cat([domain_tokens] * DOMAIN_TOKEN_REPEATS
                         + [image_tokens.to(domain_tokens.dtype)], dim=1)

    @torch.no_grad()
    def init_domain_tokens(self, embeddings):
        """Start the domain tokens at given token embeddings [L, D] (the output bias of each layer)."""
        bias = self.domain_out.bias
        if tuple(embeddings.shape) != tuple(bias.shape):
            raise ValueError(f"domain token init must be {tuple(bias.shape)}, got {tuple(embeddings.shape)}")
        bias.copy_(embeddings.to(bias))

    def init_image_tokens(self, embeddings):
        raise ConfigError("TRAINER.IPCLIP.IMAGE_TOKEN_INIT needs TRAINER.IPCLIP.PROJECTOR ours: the "
                          "release's M image tokens are copies of one vector, so they cannot start "
                          "as M different words; leave IMAGE_TOKEN_INIT empty with PROJECTOR release.")
