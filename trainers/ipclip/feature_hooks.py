"""Per-layer style statistics of CLIP's frozen image encoder, collected with forward hooks.

IP-CLIP conditions its prompt on every layer of the visual encoder, not only the final embedding.
Rather than forking CLIP, we hook the pip `clip` package's own modules: the residual blocks of a
VisionTransformer, or the residual stages of a ModifiedResNet. Each hook reduces its layer's output
to AdaIN channel statistics straight away, so no activation map is kept alive.
"""
import torch
from torch import nn

#: Added to the variance before the square root, so sigma stays finite and differentiable when a
#: layer has a single token / a 1x1 map (the tiny CPU CLIP's last ResNet stage).
DEFAULT_STATS_EPS = 1e-5
#: The release's AdaIN: sigma = sqrt((sum of squared deviations + 2.3e-8) / N), i.e. this eps is
#: added to the SUM of squares, not to the variance (`channel_stats(..., eps_on_sum=True)`).
RELEASE_SIGMA_SUM_EPS = 2.3e-8

VIT = "vit"
RESNET = "resnet"


def channel_stats(x, reduce_dims, eps=DEFAULT_STATS_EPS, eps_on_sum=False):
    """AdaIN statistics: per-channel mean and sqrt(var + eps) over `reduce_dims`
    (sqrt(var + eps / N) with `eps_on_sum`, N the number of reduced elements: the release's form).

    Computed in float32 whatever the activation dtype: squared ViT activations (some channels reach
    hundreds) overflow float16. The variance is the population one (correction=0) so a single
    token/pixel gives sigma = sqrt(eps) instead of NaN.
    """
    x = x.float()
    var, mu = torch.var_mean(x, dim=reduce_dims, correction=0)
    if eps_on_sum:
        count = 1
        for dim in reduce_dims:
            count *= x.shape[dim]
        eps = eps / count
    return mu, torch.sqrt(var + eps)


def _resnet_stages(visual):
    stages = []
    index = 1
    while isinstance(getattr(visual, f"layer{index}", None), nn.Module):
        stages.append(getattr(visual, f"layer{index}"))
        index += 1
    return stages


def _stage_width(stage):
    """Output channels of a residual stage, read from its last block (Bottleneck.bn3)."""
    last_block = stage[-1] if isinstance(stage, nn.Sequential) else stage
    bn3 = getattr(last_block, "bn3", None)
    if isinstance(bn3, nn.BatchNorm2d):
        return bn3.num_features
    norms = [m for m in last_block.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        raise TypeError(f"Cannot read the output width of ResNet stage {type(stage).__name__}: "
                        "it has no BatchNorm2d; expected the pip clip package's ModifiedResNet.")
    return norms[-1].num_features


def _tapped_layers(visual):
    """(kind, modules to hook, their widths) for a CLIP image encoder."""
    if isinstance(visual, torch.jit.ScriptModule):
        raise TypeError("VisualFeatureTap needs an eager CLIP model (forward hooks do not run in "
                        "TorchScript). Load CLIP with clip.load(name, jit=False) or build it from "
                        "the state dict, as trainers.clip_backbone.load_clip_to_cpu does.")
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if isinstance(blocks, nn.Sequential) and len(blocks) > 0:
        width = visual.transformer.width
        return VIT, list(blocks), [width] * len(blocks)
    stages = _resnet_stages(visual)
    if stages:
        return RESNET, stages, [_stage_width(stage) for stage in stages]
    raise TypeError(f"Unsupported image encoder {type(visual).__name__}: expected the pip clip "
                    "package's VisionTransformer (with transformer.resblocks) or ModifiedResNet "
                    "(with layer1..layer4).")


class VisualFeatureTap:
    """Runs the frozen image encoder once and returns its embedding plus per-layer statistics.

    Not an nn.Module on purpose: it must not register the encoder a second time in the owner's
    state_dict. The hooks only record inside `tap()`, so other calls of the encoder are unaffected.
    Call `close()` (or use it as a context manager) to remove the hooks.
    """

    def __init__(self, visual, eps=DEFAULT_STATS_EPS, eps_on_sum=False):
        self.visual = visual
        self.eps = eps
        self.eps_on_sum = eps_on_sum
        self.kind, modules, self._layer_dims = _tapped_layers(visual)
        # ViT blocks output [tokens, B, width] (the pip clip package is sequence-first);
        # ResNet stages output [B, C, H, W].
        self._reduce_dims = (0,) if self.kind == VIT else (2, 3)
        self._batch_dim = 1 if self.kind == VIT else 0
        self._recording = False
        self._restyle = None
        self._stats = []
        self._handles = [m.register_forward_hook(self._record) for m in modules]

    @property
    def layer_dims(self):
        """Channel width of each tapped layer, in order (read from the model)."""
        return list(self._layer_dims)

    @property
    def num_layers(self):
        return len(self._layer_dims)

    def _record(self, module, inputs, output):
        if not self._recording:
            return None
        if self._restyle is not None:  # replaces the layer's output for every later layer
            output = self._restyle(len(self._stats), output, self._reduce_dims, self._batch_dim)
        self._stats.append(channel_stats(output, self._reduce_dims, self.eps, self.eps_on_sum))
        return output

    def tap(self, images, restyle=None):
        """images [B, 3, H, W] -> (image_features [B, E], stats: list per layer of (mu, sigma) [B, C_l]).

        restyle: optional callable (layer index, layer output, reduce dims, batch dim) -> output that
        replaces each tapped layer's output before its statistics are taken (feature_restyle.py).

        The encoder is frozen: it always runs without gradient and in eval mode (a ResNet's
        BatchNorm uses its running statistics and never updates them), and its training flag is
        restored afterwards. Stats are float32; image_features have the encoder's output dtype.
        """
        if not self._handles:
            raise RuntimeError("VisualFeatureTap.tap() called after close(); create a new tap.")
        if not torch.is_tensor(images) or images.dim() != 4:
            shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
            raise ValueError(f"VisualFeatureTap.tap expects images [B, 3, H, W], got {shape}.")
        dtype = self.visual.conv1.weight.dtype
        was_training = self.visual.training
        self._stats = []
        self._recording = True
        self._restyle = restyle
        try:
            self.visual.eval()
            with torch.no_grad():
                features = self.visual(images.to(dtype=dtype))
        finally:
            self._recording = False
            self._restyle = None
            self.visual.train(was_training)
        stats, self._stats = self._stats, []
        self._check(stats, images.shape[0])
        return features, stats

    def _check(self, stats, batch_size):
        if len(stats) != self.num_layers:
            raise RuntimeError(f"Expected {self.num_layers} tapped layers per forward pass, got "
                               f"{len(stats)}: the encoder ran its layers an unexpected number of "
                               "times (is another VisualFeatureTap or a forked forward in use?).")
        mu, _ = stats[0]
        if mu.shape != (batch_size, self._layer_dims[0]):
            raise RuntimeError(f"Layer statistics have shape {tuple(mu.shape)}, expected "
                               f"({batch_size}, {self._layer_dims[0]}): the encoder's layer layout "
                               "differs from the pip clip package's ([tokens, B, width] for ViT "
                               "blocks, [B, C, H, W] for ResNet stages).")

    def close(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False
