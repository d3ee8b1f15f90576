"""Strong style augmentation: the target-free scenario's stand-in for unseen domains.

INPUT.STRONG_STYLE.VARIANT "ours": RandAugment-like: each op of a fixed list of 10 photometric and
geometric edits is applied with probability PROB at a random strength up to MAX_MAGNITUDE (strengths
in [0, 1], the units of `randaugment.AUGMENT_OPS`), in a random order, then a grey square is cut out;
at the image's original resolution, before the usual train transform.

INPUT.STRONG_STYLE.RANDOM_CONV_PROB (ours, default 0: off) adds a random convolution after those ops
(`random_conv`): a texture and colour shift that no global op paints.

VARIANT "release": the release's target-free transform: resize (shorter side) and center crop to
INPUT.SIZE, then `randaugment_opmatch.RandAugmentOPMatch` (NUM_OPS ops with replacement, PROB, the
CUTOUT_SIZE cutout at the network's resolution); a training stream then only converts the image to
a normalised tensor (the test transform), with no random crop or flip (`training_pipeline`).

Randomness comes from torch's global generator, which data-loader workers seed and `set_random_seed`
fixes.
"""
import numbers

import torch
import torch.nn.functional as F
import torchvision.transforms as T
import torchvision.transforms.functional as TF

from dassl.data.transforms.pre_transforms import PRE_TRANSFORM_REGISTRY, PreThen
from dassl.data.transforms.randaugment import apply_op
from dassl.data.transforms.transforms import interpolation_mode
from dassl.errors import ConfigError

from .randaugment_opmatch import RandAugmentOPMatch
from .watermark import check_rgb

#: Values of INPUT.STRONG_STYLE.VARIANT.
STRONG_STYLE_VARIANTS = ("ours", "release")

__all__ = ["STRONG_STYLE_OPS", "grey_square", "random_conv", "strong_style"]

_AFFINE_OPS = ("shear_x", "shear_y", "translate_x", "translate_y")


def _shear_or_translate(img, strength):
    """One geometric op, shear or translation along x or y, chosen at random."""
    name = _AFFINE_OPS[torch.randint(len(_AFFINE_OPS), ()).item()]
    return apply_op(img, name, strength)


def _table_op(name):
    def op(img, strength):
        return apply_op(img, name, strength)

    op.__name__ = name
    return op


STRONG_STYLE_OPS = {
    name: _table_op(name)
    for name in (
        "autocontrast", "equalize", "rotate", "solarize", "color",
        "posterize", "contrast", "brightness", "sharpness",
    )
}
STRONG_STYLE_OPS["shear_translate"] = _shear_or_translate


def grey_square(img, size, fill):
    """A copy of `img` with a `size` x `size` square of `fill` at a random centre, clipped at the
    borders (so near an edge less of it shows)."""
    if size <= 0:
        return img
    left = torch.randint(img.width, ()).item() - size // 2
    top = torch.randint(img.height, ()).item() - size // 2
    box = (max(left, 0), max(top, 0), min(left + size, img.width), min(top + size, img.height))
    img = img.copy()
    img.paste(fill, box)
    return img


#: Spread below which a filtered image counts as flat (it is then brought to the input's mean).
_FLAT_STD = 1e-6


def random_conv(img, strength, kernel_size):
    """`img` through a random convolution (RandConv, Xu et al., ICLR 2021), blended in by `strength`.

    A random 3 -> 3 filter of side `kernel_size` (weights N(0, 1 / fan_in), reflect padding;
    replicate on an image narrower than the padding) remaps the colours and, for sides > 1, the
    local texture while keeping the shapes: a stand-in for a domain that differs in texture, which
    the global photometric and geometric ops cannot paint. The output is brought back to the
    input's overall mean and spread (so brightness and contrast stay), clipped to [0, 1], and mixed
    as (1 - strength) * img + strength * filtered.
    """
    x = TF.pil_to_tensor(img).float().div(255).unsqueeze(0)
    fan_in = x.shape[1] * kernel_size * kernel_size
    weight = torch.randn(x.shape[1], x.shape[1], kernel_size, kernel_size) / fan_in ** 0.5
    pad = kernel_size // 2
    # reflection needs the image wider than the padding; a smaller image repeats its border instead
    mode = "reflect" if pad < min(x.shape[-2:]) else "replicate"
    y = F.conv2d(F.pad(x, (pad, pad, pad, pad), mode=mode), weight)
    y = (y - y.mean()) / y.std().clamp_min(_FLAT_STD) * x.std() + x.mean()
    out = ((1 - strength) * x + strength * y.clamp(0, 1)).squeeze(0)
    return TF.to_pil_image(out.mul(255).round().byte())


def _check_int(value, key, low, high=None):
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"{key} must be an integer {bound}; got {value!r}")
    return int(value)


def _check_kernel_sizes(value, key):
    """`value` as a tuple of odd positive integers (filter sides of `random_conv`)."""
    valid = (isinstance(value, (tuple, list)) and len(value) > 0
             and all(isinstance(k, numbers.Integral) and not isinstance(k, bool) and k > 0 and k % 2
                     for k in value))
    if not valid:
        raise ConfigError(f"{key} must be a non-empty list of odd positive integers (filter sides "
                          f"in pixels), e.g. (1, 3, 5, 7); got {value!r}")
    return tuple(int(k) for k in value)


def check_unit(value, key):
    """`value` as a float in [0, 1]; a clear error naming `key` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{key} must be a number in [0, 1]; got {value!r}")
    return float(value)


# Lower-case class name on purpose: the registry key is `__name__`, and the target-free and
# authorization scenarios name this pre-transform "strong_style".
@PRE_TRANSFORM_REGISTRY.register()
class strong_style:
    """The augmentation configured by INPUT.STRONG_STYLE, as a PIL -> PIL callable (same size and
    mode; a non-RGB image is augmented in RGB and converted back, so RGBA loses its transparency)."""

    def __init__(self, cfg):
        node = cfg.INPUT.STRONG_STYLE
        key = "INPUT.STRONG_STYLE."
        if node.VARIANT not in STRONG_STYLE_VARIANTS:
            raise ConfigError(f"{key}VARIANT must be one of {', '.join(STRONG_STYLE_VARIANTS)}; "
                              f"got {node.VARIANT!r}")
        self.variant = node.VARIANT
        # the release draws its ops with replacement, so any count works; ours takes distinct ops
        max_ops = len(STRONG_STYLE_OPS) if self.variant == "ours" else None
        self.num_ops = _check_int(node.NUM_OPS, key + "NUM_OPS", 0, max_ops)
        self.prob = check_unit(node.PROB, key + "PROB")
        self.max_magnitude = check_unit(node.MAX_MAGNITUDE, key + "MAX_MAGNITUDE")
        self.cutout_size = _check_int(node.CUTOUT_SIZE, key + "CUTOUT_SIZE", 0)
        self.cutout_fill = check_rgb(node.CUTOUT_FILL, key + "CUTOUT_FILL")
        self.random_conv_prob = check_unit(node.RANDOM_CONV_PROB, key + "RANDOM_CONV_PROB")
        self.random_conv_kernels = _check_kernel_sizes(node.RANDOM_CONV_KERNELS,
                                                       key + "RANDOM_CONV_KERNELS")
        if self.variant == "release" and self.random_conv_prob > 0:
            raise ConfigError(f"{key}RANDOM_CONV_PROB > 0 needs {key}VARIANT 'ours' (the release's "
                              f"op table has no random convolution); got RANDOM_CONV_PROB "
                              f"{self.random_conv_prob} with VARIANT 'release'")
        self.release_ops = None
        if self.variant == "release":
            size = tuple(cfg.INPUT.SIZE)
            self.resize_crop = T.Compose([T.Resize(max(size), interpolation=interpolation_mode(cfg)),
                                          T.CenterCrop(size)])
            self.release_ops = RandAugmentOPMatch(self.num_ops, self.prob, self.cutout_size,
                                                  self.cutout_fill)

    @property
    def ends_at_input_size(self):
        """True when the output is already the network's input (the release's variant)."""
        return self.variant == "release"

    def training_pipeline(self, tfm_train, tfm_test):
        """PIL -> tensor of a training stream: the release's variant is followed by the test
        transform only (no second crop); None for ours (pre-transform, then the train transform)."""
        return PreThen(self, tfm_test) if self.ends_at_input_size else None

    def __call__(self, img):
        mode = img.mode
        out = img if mode == "RGB" else img.convert("RGB")  # the op tables work on RGB
        if self.release_ops is not None:
            out = self.release_ops(self.resize_crop(out))
            return out if mode == "RGB" else out.convert(mode)
        names = list(STRONG_STYLE_OPS)
        for i in torch.randperm(len(names))[: self.num_ops].tolist():
            if torch.rand(()).item() < self.prob:
                strength = torch.rand(()).item() * self.max_magnitude
                out = STRONG_STYLE_OPS[names[i]](out, strength)
        # no draw when off, so the op list alone keeps its random stream
        if self.random_conv_prob > 0 and torch.rand(()).item() < self.random_conv_prob:
            side = self.random_conv_kernels[torch.randint(len(self.random_conv_kernels), ()).item()]
            out = random_conv(out, torch.rand(()).item() * self.max_magnitude, side)
        out = grey_square(out, self.cutout_size, self.cutout_fill)
        return out if mode == "RGB" else out.convert(mode)

    def __repr__(self):
        if self.release_ops is not None:
            return f"strong_style(variant=release, {self.resize_crop}, {self.release_ops})"
        return (
            f"strong_style(num_ops={self.num_ops}, prob={self.prob}, max_magnitude={self.max_magnitude}, "
            f"cutout_size={self.cutout_size}, cutout_fill={self.cutout_fill}, "
            f"random_conv_prob={self.random_conv_prob}, random_conv_kernels={self.random_conv_kernels})"
        )
