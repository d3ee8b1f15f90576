"""The owner's watermark: a fixed pixel pattern painted over an image at its original resolution.

The ownership and authorization scenarios need a mark that is identical on every image (the model
learns to tell marked from clean images), so a pattern is a deterministic boolean mask of the image
size, computed with numpy broadcasting. Patterns live in a small name -> mask-function table so a
config can pick one (`INPUT.WATERMARK.PATTERN`); the default `grid` is the release's dense grid,
`stripes` its rows only, `frame` a border that leaves the object untouched (docs/method.md M11);
names joined by "+" paint their union (the toy benchmark's ownership and authorization marks are
a frame, M14).
`INPUT.WATERMARK.ALPHA` is the mark's opacity: 1 paints the colour (the release), a lower value blends
it in, for a mark a small or low-resolution CLIP can still see through (a faint mark still separates
marked from clean images, yet leaves the object recognisable to a model that was not taught to refuse).
`INPUT.WATERMARK.OFFSET` shifts the pattern by (rows, columns): (0, 0) is the mark as it always was;
a forger who knows the pattern but not its position (trainers/ipclip/attacks/watermark_forgery.py)
paints a shifted one.
"""
import numbers

import numpy as np
from PIL import Image

from dassl.data.transforms.pre_transforms import PRE_TRANSFORM_REGISTRY
from dassl.errors import ConfigError

__all__ = ["WATERMARK_PATTERNS", "PATTERN_JOIN", "check_watermark_settings", "pattern_mask",
           "watermark_mask", "apply_watermark", "watermark"]

WHITE = (255, 255, 255)

# name -> function (height, width, period, offset) -> bool array [height, width], True where the
# mark goes; offset = (rows, columns) the lines are shifted by.
WATERMARK_PATTERNS = {}
#: The mark's position when none is given: its lines go through row 0 and column 0.
NO_OFFSET = (0, 0)
#: Joins pattern names into one mark painting all of them (e.g. "stripes+frame").
PATTERN_JOIN = "+"


def _pattern(name):
    def register(fn):
        WATERMARK_PATTERNS[name] = fn
        return fn

    return register


@_pattern("grid")
def _grid(height, width, period, offset=NO_OFFSET):
    """Every `period`-th row and every `period`-th column (period 2: 75 % of the pixels)."""
    on_row = (np.arange(height) - offset[0]) % period == 0
    on_col = (np.arange(width) - offset[1]) % period == 0
    return np.logical_or.outer(on_row, on_col)


@_pattern("stripes")
def _stripes(height, width, period, offset=NO_OFFSET):
    """Every `period`-th row (horizontal lines; period 2: 50 % of the pixels); the column offset
    moves nothing."""
    on_row = (np.arange(height) - offset[0]) % period == 0
    return np.broadcast_to(on_row[:, None], (height, width))


def _to_nearest_edge(size):
    """Distance in pixels of each index of 0..size-1 to the nearer end."""
    index = np.arange(size)
    return np.minimum(index, size - 1 - index)


@_pattern("frame")
def _frame(height, width, period, offset=NO_OFFSET):
    """A border `period` pixels wide around the image, which leaves the object in the middle
    untouched; the offset insets it by (rows, columns) from the edges."""
    to_edge_row, to_edge_col = _to_nearest_edge(height), _to_nearest_edge(width)
    within_row, within_col = to_edge_row >= offset[0], to_edge_col >= offset[1]
    on_row = within_row & (to_edge_row < offset[0] + period)
    on_col = within_col & (to_edge_col < offset[1] + period)
    return np.logical_and.outer(on_row, within_col) | np.logical_and.outer(within_row, on_col)


def pattern_mask(pattern, height, width, period, offset=NO_OFFSET):
    """The mask of `pattern`, a name of WATERMARK_PATTERNS or several joined by PATTERN_JOIN (their
    union: one mark that shows on more domains than each part, docs/method.md M14)."""
    masks = [WATERMARK_PATTERNS[name](height, width, period, offset)
             for name in pattern.split(PATTERN_JOIN)]
    return np.logical_or.reduce(masks)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_rgb(value, key):
    """`value` as a tuple of 3 ints in [0, 255]; `key` names the setting in the error."""
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 3
        or not all(_is_int(v) and 0 <= v <= 255 for v in value)
    ):
        raise ConfigError(
            f"{key} must be 3 integers in [0, 255] (R, G, B), e.g. (255, 255, 255); got {value!r}"
        )
    return tuple(int(v) for v in value)


def check_offset(value, key):
    """`value` as a tuple of 2 non-negative ints (rows, columns); `key` names the setting."""
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(_is_int(v) and v >= 0 for v in value)
    ):
        raise ConfigError(f"{key} must be 2 integers >= 0 (rows, columns the mark is shifted by), e.g. "
                          f"(0, 0); got {value!r}")
    return tuple(int(v) for v in value)


def check_watermark_settings(pattern, period, color, alpha=1.0, prefix="", offset=NO_OFFSET):
    """(pattern, period, color, alpha, offset) checked and normalised; `prefix` names the settings'
    config node in the errors (e.g. "INPUT.WATERMARK.")."""
    if not isinstance(pattern, str) or not all(name in WATERMARK_PATTERNS
                                               for name in pattern.split(PATTERN_JOIN)):
        raise ConfigError(
            f'{prefix}PATTERN "{pattern}" is not a known watermark pattern; choose one of '
            f'{sorted(WATERMARK_PATTERNS)}, or several joined by "{PATTERN_JOIN}" (e.g. "stripes+frame").'
        )
    if not _is_int(period) or period < 1:
        raise ConfigError(f"{prefix}PERIOD must be an integer >= 1 (pixels between lines); got {period!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 < alpha <= 1.0:
        raise ConfigError(f"{prefix}ALPHA must be a number in (0, 1] (the watermark's opacity, 1: opaque); "
                          f"got {alpha!r}")
    return (pattern, int(period), check_rgb(color, f"{prefix}COLOR"), float(alpha),
            check_offset(offset, f"{prefix}OFFSET"))


def watermark_mask(pattern, height, width, period=2, offset=NO_OFFSET):
    """Boolean array [height, width]: True on the pixels `pattern` paints."""
    pattern, period, _, _, offset = check_watermark_settings(pattern, period, WHITE, offset=offset)
    return pattern_mask(pattern, height, width, period, offset)


def _blend(values, fill, alpha):
    """`fill` over the uint8 `values` at opacity `alpha` (exactly `fill` at 1), rounded to uint8."""
    if alpha == 1.0:
        return fill
    mixed = (1.0 - alpha) * values.astype(np.float32) + alpha * np.asarray(fill, dtype=np.float32)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def _paint(img, mask, color, alpha):
    pixels = np.array(img)  # a writable copy
    if img.mode == "L":
        fill = Image.new("RGB", (1, 1), color).convert("L").getpixel((0, 0))  # PIL's own luma
        pixels[mask] = _blend(pixels[mask], fill, alpha)
    elif img.mode == "RGB":
        pixels[mask] = _blend(pixels[mask], color, alpha)
    else:  # RGBA: colour the marked pixels, keep their transparency
        pixels[mask, :3] = _blend(pixels[mask, :3], color, alpha)
    return Image.fromarray(pixels)


def apply_watermark(img, pattern="grid", period=2, color=WHITE, alpha=1.0, offset=NO_OFFSET):
    """`img` with the pattern (shifted by `offset`) painted in `color` at opacity `alpha`; same
    size and mode."""
    pattern, period, color, alpha, offset = check_watermark_settings(pattern, period, color, alpha,
                                                                     offset=offset)
    mask = pattern_mask(pattern, img.height, img.width, period, offset)
    if img.mode in ("RGB", "RGBA", "L"):
        return _paint(img, mask, color, alpha)
    return _paint(img.convert("RGB"), mask, color, alpha).convert(img.mode)


# Lower-case class name on purpose: the registry key is `__name__`, and test sets / scenarios name
# this pre-transform "watermark" (e.g. DATASET.TEST_SETS item "unauthorized=source+watermark").
@PRE_TRANSFORM_REGISTRY.register()
class watermark:
    """The watermark configured by INPUT.WATERMARK (PATTERN, PERIOD, COLOR, ALPHA, OFFSET), PIL -> PIL."""

    def __init__(self, cfg):
        node = cfg.INPUT.WATERMARK
        self.pattern, self.period, self.color, self.alpha, self.offset = check_watermark_settings(
            node.PATTERN, node.PERIOD, node.COLOR, node.ALPHA, prefix="INPUT.WATERMARK.",
            offset=node.OFFSET,
        )

    def __call__(self, img):
        return apply_watermark(img, self.pattern, self.period, self.color, self.alpha, self.offset)

    def __repr__(self):
        return (
            f"watermark(pattern={self.pattern!r}, period={self.period}, color={self.color}, "
            f"alpha={self.alpha}, offset={self.offset})"
        )
