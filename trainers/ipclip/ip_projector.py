"""IP projector: per-layer visual statistics -> instance-conditional prompt tokens.

Domain (style) tokens: one per encoder layer, from that layer's AdaIN statistics (mu, sigma).
Image (content) tokens: M tokens, each a different learned mixture over layers of the per-layer
content embeddings (mapped from mu, the mean-pooled tokens). The release's M image tokens were copies
of one vector; distinct mixing weights plus a learned per-token offset keep ours apart.

All L layers are processed at once: widths are zero-padded to the widest layer and each layer owns a
slice of a stacked weight tensor (one einsum per linear map, no loop over layers in the maths).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from dassl.errors import ConfigError

#: How TOKEN_BOUND acts: on every coordinate, or on every token's norm.
BOUND_TYPES = ("coordinate", "norm")
#: Numbers per layer the domain tokens read with stats_distance: the RMS of standardised mu, log sigma.
STATS_DISTANCE_FEATURES = 2
#: Scale of the tokens at initialisation, CoOp's context-vector init std.
DEFAULT_TOKEN_INIT_STD = 0.02


def stack_layer_stats(stats, layer_dims):
    """list of L (mu, sigma) [B, C_l] -> (mu [B, L, C_max], sigma [B, L, C_max]).

    Padding is mu = 0, sigma = 1, so that both are exactly 0 after `squash_stats`.
    """
    if not isinstance(stats, (list, tuple)) or len(stats) != len(layer_dims):
        got = len(stats) if isinstance(stats, (list, tuple)) else type(stats).__name__
        raise ValueError(f"IPProjector expects a list of {len(layer_dims)} (mu, sigma) pairs (one "
                         f"per encoder layer, as VisualFeatureTap.tap returns), got {got}.")
    width = max(layer_dims)
    mus, sigmas = [], []
    for index, (pair, dim) in enumerate(zip(stats, layer_dims)):
        mu, sigma = pair
        if mu.dim() != 2 or mu.shape[1] != dim or sigma.shape != mu.shape:
            raise ValueError(f"Layer {index}: expected mu and sigma of shape [B, {dim}], got "
                             f"{tuple(mu.shape)} and {tuple(sigma.shape)}; build the projector "
                             "with layer_dims=VisualFeatureTap.layer_dims of the same encoder.")
        mus.append(F.pad(mu, (0, width - dim)))
        sigmas.append(F.pad(sigma, (0, width - dim), value=1.0))
    return torch.stack(mus, dim=1), torch.stack(sigmas, dim=1)


def squash_stats(mu, sigma):
    """Elementwise rescaling of the statistics to O(1..10) for any backbone: asinh(mu) (a smooth
    signed log: ViT-B/16 has channels in the hundreds) and log(sigma).

    Elementwise on purpose: a LayerNorm over channels would remove each image's overall brightness
    and contrast (the mean and scale of mu and log sigma across channels), which is style.
    """
    return torch.asinh(mu), torch.log(sigma)


class PerLayerLinear(nn.Module):
    """L independent linear maps (layer l: in_features[l] -> out_features) applied in one einsum.

    Inputs are zero-padded to max(in_features); the padded weight rows start at zero and receive
    zero gradient, so each layer behaves exactly like its own nn.Linear.
    """

    def __init__(self, in_features, out_features, weight_std=None):
        super().__init__()
        self.in_features = list(in_features)
        self.out_features = out_features
        width = max(self.in_features)
        self.weight = nn.Parameter(torch.zeros(len(self.in_features), width, out_features))
        self.bias = nn.Parameter(torch.zeros(len(self.in_features), out_features))
        with torch.no_grad():
            for layer, fan_in in enumerate(self.in_features):
                block = self.weight[layer, :fan_in]
                if weight_std is None:  # nn.Linear's default range
                    bound = 1.0 / math.sqrt(fan_in)
                    block.uniform_(-bound, bound)
                    self.bias[layer].uniform_(-bound, bound)
                else:
                    block.normal_(0.0, weight_std)

    def forward(self, x):
        """x [B, L, max(in_features)] -> [B, L, out_features]."""
        return torch.einsum("bli,lio->blo", x, self.weight) + self.bias


class PerLayerMLP(nn.Module):
    """Per-layer two-layer MLP (Linear, GELU, Linear) over L layers at once; its inputs are several
    padded tensors (input i of width input_features[i][l] at layer l) whose first linear maps are
    summed (a linear map of their concatenation)."""

    def __init__(self, input_features, hidden, out_features, out_std):
        super().__init__()
        n_layers = len(input_features[0])
        self.inputs = nn.ModuleList(PerLayerLinear(widths, hidden) for widths in input_features)
        self.output = PerLayerLinear([hidden] * n_layers, out_features,
                                     weight_std=out_std / math.sqrt(hidden))

    def forward(self, *xs):
        hidden = sum(linear(x) for linear, x in zip(self.inputs, xs))
        return self.output(F.gelu(hidden))


def check_projector_args(name, layer_dims, n_image_tokens, bound_type):
    """The arguments every projector shares, checked once -> layer_dims as a list of ints."""
    layer_dims = [int(d) for d in layer_dims]
    if not layer_dims or min(layer_dims) < 1:
        raise ValueError(f"{name} needs at least one layer of positive width, got layer_dims={layer_dims}.")
    if n_image_tokens < 1:
        raise ConfigError(f"TRAINER.IPCLIP.N_IMAGE_TOKENS must be >= 1 (the image tokens the projector "
                          f"writes into the prompt), got {n_image_tokens}.")
    if bound_type not in BOUND_TYPES:
        raise ConfigError(f"TRAINER.IPCLIP.TOKEN_BOUND_TYPE must be one of {', '.join(BOUND_TYPES)}, "
                          f"got {bound_type!r}")
    return layer_dims


def bound_tokens(tokens, bound, bound_type):
    """Soft bound `b * tanh(x / b)` on every coordinate, or on every token's norm (direction kept);
    None or 0: the tokens unchanged."""
    if not bound:
        return tokens
    if bound_type == "coordinate":
        return bound * torch.tanh(tokens / bound)
    # A saturated coordinate bound turns every token into a sign pattern and stops its gradient;
    # the norm bound keeps the direction (and its gradient) and only limits the length.
    norm = tokens.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(tokens.dtype).tiny)
    return tokens * (bound * torch.tanh(norm / bound) / norm)


class IPProjector(nn.Module):
    """Maps the per-layer statistics of one image batch to its prompt context tokens.

    layer_dims: channel width of each encoder layer (VisualFeatureTap.layer_dims).
    text_width: width of the text encoder's token embeddings (clip_model.ln_final.weight.shape[0]).
    n_image_tokens: M, the number of image (content) tokens.
    hidden: hidden width of the per-layer MLPs (default text_width // 4).
    token_bound: if set, tokens are softly bounded by `b * tanh(x / b)`: every coordinate
        (bound_type "coordinate") or every token's norm, keeping its direction (bound_type "norm").
        The loss maximises the distance between the two domains' tokens
        (clamped only at U = 5 in MSE); unbounded, the tokens grow far beyond CLIP's token-embedding
        scale until the class name no longer matters and every prompt collapses to the same feature.
    standardizer: optional StatsStandardizer (STATS_NORM authorized) applied to the squashed inputs.
    stats_distance: the domain tokens also read `style_distance` (needs the standardizer). What the
        statistics alone let a small MLP learn is to refuse the directions its training negatives
        moved in; real domains move in others. The distance from the authorized style is one number
        that grows for every domain whatever its direction: on the three tiny CLIPs it alone tells
        the other domains from the keyed photos (ROC AUC 0.96-1.0; docs/method.md M25).
    layer_dropout: in training mode, each (image, layer) pair's standardised statistics are set to 0
        (the authorized mean) with this probability (needs the standardizer). The re-styled
        stand-ins differ most at the first layer, where a near domain barely differs (on the tiny
        CLIP keyed paintings vs keyed photos: distance AUC 0.85 there, 0.96-1.0 at the last two
        layers), so a projector that refuses from the first layer alone accepts such a domain by
        chance of its initialisation; without that layer it has to refuse from the others too.
        Measured worse on the tiny CLIP: the later layers see little of a first-layer re-style
        (docs/method.md M39).
    """

    def __init__(self, layer_dims, text_width, n_image_tokens=4, hidden=None,
                 token_init_std=DEFAULT_TOKEN_INIT_STD, token_bound=None, bound_type="coordinate",
                 standardizer=None, stats_distance=False, layer_dropout=0.0):
        super().__init__()
        layer_dims = check_projector_args(type(self).__name__, layer_dims, n_image_tokens, bound_type)
        hidden = hidden or max(text_width // 4, 1)
        self.layer_dims = layer_dims
        self.text_width = text_width
        self.n_image_tokens = n_image_tokens
        self.token_bound = token_bound
        self.bound_type = bound_type
        n_layers = len(layer_dims)
        # Optional StatsStandardizer (a submodule only when used: older checkpoints stay loadable).
        self.standardizer = standardizer

        if stats_distance and standardizer is None:
            raise ValueError("IPProjector(stats_distance=True) needs a standardizer: the distance is "
                             "measured in the authorized statistics' units (STATS_NORM authorized).")
        self.stats_distance = stats_distance
        if not 0.0 <= layer_dropout < 1.0:
            raise ConfigError(f"TRAINER.IPCLIP.PROJECTOR_LAYER_DROPOUT must be in [0, 1), got {layer_dropout!r}")
        if layer_dropout and standardizer is None:
            raise ValueError("IPProjector(layer_dropout > 0) needs a standardizer: a dropped layer reads "
                             "the authorized mean, which is 0 only after standardising (STATS_NORM authorized).")
        self.layer_dropout = float(layer_dropout)
        # Layer widths, to average over each layer's own channels (the rest is padding).
        self.register_buffer("layer_widths", torch.tensor(layer_dims, dtype=torch.float32),
                             persistent=False)
        # Domain token of layer l from concat(mu_l, log sigma_l) [and the layer's two distances].
        domain_inputs = [layer_dims, layer_dims] + ([[STATS_DISTANCE_FEATURES] * n_layers]
                                                    if stats_distance else [])
        self.domain_mlp = PerLayerMLP(domain_inputs, hidden, text_width, token_init_std)
        # Content embedding of layer l from mu_l, then M learned mixtures over layers.
        self.content_mlp = PerLayerMLP([layer_dims], hidden, text_width, token_init_std)
        # Random (not uniform) mixing logits: identical rows would give identical tokens forever.
        self.mix_logits = nn.Parameter(torch.randn(n_image_tokens, n_layers))
        self.image_token_offset = nn.Parameter(torch.randn(n_image_tokens, text_width)
                                               * token_init_std)

    @property
    def n_domain_tokens(self):
        return len(self.layer_dims)

    @property
    def n_context_tokens(self):
        """Tokens between [SOS] and the class name: L domain tokens then M image tokens."""
        return len(self.layer_dims) + self.n_image_tokens

    def squashed(self, stats, standardize=True):
        """stats -> (mu, log_sigma) [B, L, C_max]: squashed, then standardised if a standardizer is set."""
        mu, log_sigma = squash_stats(*stack_layer_stats(stats, self.layer_dims))
        if standardize and self.standardizer is not None:
            mu, log_sigma = self.standardizer(mu, log_sigma)
        return mu, log_sigma

    def style_distance(self, mu, log_sigma):
        """Standardised (mu, log_sigma) [B, L, C_max] -> [B, L, 2]: per layer, the RMS over its
        channels of each, i.e. how far the image's style is from the authorized one in units of the
        authorized images' own spread, whatever the direction (padding is 0 after standardising)."""
        squares = torch.stack([mu.float().pow(2).sum(-1), log_sigma.float().pow(2).sum(-1)], dim=-1)
        return (squares / self.layer_widths[:, None]).sqrt().to(mu.dtype)

    def forward(self, stats):
        """stats (list of L (mu, sigma) [B, C_l]) -> (domain_tokens [B, L, D], image_tokens [B, M, D])."""
        mu, log_sigma = self.squashed(stats)
        if self.training and self.layer_dropout > 0:
            keep = torch.rand(mu.shape[:2] + (1,), device=mu.device) >= self.layer_dropout
            mu, log_sigma = mu * keep.to(mu.dtype), log_sigma * keep.to(log_sigma.dtype)
        style = (mu, log_sigma) + ((self.style_distance(mu, log_sigma),) if self.stats_distance else ())
        domain_tokens = self.domain_mlp(*style)
        content = self.content_mlp(mu)
        mixing = torch.softmax(self.mix_logits, dim=-1).to(content.dtype)
        image_tokens = torch.einsum("ml,bld->bmd", mixing, content) + self.image_token_offset
        return self._bound(domain_tokens), self._bound(image_tokens)

    @torch.no_grad()
    def init_domain_tokens(self, embeddings):
        """Start the domain tokens at given token embeddings [L, D] (the output bias of each layer's
        map): tokens near zero in front of the class name are far from anything CLIP's text encoder
        was trained on, and cost a small text encoder up to 30 points of zero-shot accuracy before
        training starts (how much depends on the pretrained weights, see docs/method.md)."""
        bias = self.domain_mlp.output.bias
        if tuple(embeddings.shape) != tuple(bias.shape):
            raise ValueError(f"domain token init must be {tuple(bias.shape)}, got {tuple(embeddings.shape)}")
        bias.copy_(embeddings.to(bias))

    @torch.no_grad()
    def init_image_tokens(self, embeddings):
        """Start the image tokens at given token embeddings [M, D] (their learned offset), e.g. the
        words of the zero-shot prompt: a small CLIP's text encoder gives nearly uniform class
        scores behind random context tokens, which leaves the losses nothing to start from."""
        if tuple(embeddings.shape) != tuple(self.image_token_offset.shape):
            raise ValueError(f"image token init must be {tuple(self.image_token_offset.shape)}, "
                             f"got {tuple(embeddings.shape)}")
        self.image_token_offset.copy_(embeddings.to(self.image_token_offset))

    def _bound(self, tokens):
        return bound_tokens(tokens, self.token_bound, self.bound_type)

    def context(self, stats):
        """stats -> [B, L + M, D]: domain tokens then image tokens, the prompt's context layout."""
        domain_tokens, image_tokens = self(stats)
        return torch.cat([domain_tokens, image_tokens.to(domain_tokens.dtype)], dim=1)
