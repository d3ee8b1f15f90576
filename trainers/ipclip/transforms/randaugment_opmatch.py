"""The release's strong augmentation for target-free IP-CLIP (an OP-Match-style RandAugment).

Fourteen PIL ops (Identity among them). Each call draws NUM_OPS ops with replacement; each drawn op
gets an integer level in 1 .. MAX_LEVEL - 1 (out of MAX_LEVEL) and is applied with probability p;
then a grey square is cut out. Levels map to op strengths linearly: the enhancement factors of
brightness, colour, contrast and sharpness lie in [0.14, 0.86] (they only ever weaken), rotation up
to 27 degrees, shear up to 0.27, translation up to 27 % of the side, posterize to 4..7 bits.
Randomness comes from torch's global generator (seeded per data-loader worker).
"""
import torch
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

__all__ = ["OPMATCH_OPS", "MAX_LEVEL", "RandAugmentOPMatch", "release_cutout"]

#: Levels are integers in [1, MAX_LEVEL) and strengths are level / MAX_LEVEL of an op's range.
MAX_LEVEL = 10
#: Enhancement factor = ENHANCE_RANGE * level / MAX_LEVEL + ENHANCE_OFFSET.
ENHANCE_RANGE, ENHANCE_OFFSET = 0.9, 0.05
MAX_ROTATION_DEGREES = 30
MAX_SHEAR = 0.3
MAX_TRANSLATE_FRACTION = 0.3
#: Posterize keeps POSTERIZE_MIN_BITS + int(POSTERIZE_RANGE * level / MAX_LEVEL) bits.
POSTERIZE_MIN_BITS, POSTERIZE_RANGE = 4, 4
SOLARIZE_RANGE = 256


def _rand():
    return torch.rand(()).item()


def _sign(value):
    return -value if _rand() < 0.5 else value


def _fraction(level, full):
    return level * full / MAX_LEVEL


def _enhance(cls):
    def op(img, level):
        return cls(img).enhance(_fraction(level, ENHANCE_RANGE) + ENHANCE_OFFSET)

    op.__name__ = cls.__name__.lower()
    return op


def _posterize(img, level):
    return ImageOps.posterize(img, int(_fraction(level, POSTERIZE_RANGE)) + POSTERIZE_MIN_BITS)


def _rotate(img, level):
    return img.rotate(_sign(int(_fraction(level, MAX_ROTATION_DEGREES))))


def _affine(img, coeffs):
    return img.transform(img.size, Image.Transform.AFFINE, coeffs)


def _shear_x(img, level):
    return _affine(img, (1, _sign(_fraction(level, MAX_SHEAR)), 0, 0, 1, 0))


def _shear_y(img, level):
    return _affine(img, (1, 0, 0, _sign(_fraction(level, MAX_SHEAR)), 1, 0))


def _translate_x(img, level):
    pixels = int(_sign(_fraction(level, MAX_TRANSLATE_FRACTION)) * img.size[0])
    return _affine(img, (1, 0, pixels, 0, 1, 0))


def _translate_y(img, level):
    pixels = int(_sign(_fraction(level, MAX_TRANSLATE_FRACTION)) * img.size[1])
    return _affine(img, (1, 0, 0, 0, 1, pixels))


def _solarize(img, level):
    return ImageOps.solarize(img, SOLARIZE_RANGE - int(_fraction(level, SOLARIZE_RANGE)))


OPMATCH_OPS = {
    "autocontrast": lambda img, level: ImageOps.autocontrast(img),
    "brightness": _enhance(ImageEnhance.Brightness),
    "color": _enhance(ImageEnhance.Color),
    "contrast": _enhance(ImageEnhance.Contrast),
    "equalize": lambda img, level: ImageOps.equalize(img),
    "identity": lambda img, level: img,
    "posterize": _posterize,
    "rotate": _rotate,
    "sharpness": _enhance(ImageEnhance.Sharpness),
    "shear_x": _shear_x,
    "shear_y": _shear_y,
    "solarize": _solarize,
    "translate_x": _translate_x,
    "translate_y": _translate_y,
}


def release_cutout(img, size, fill):
    """A grey square of side `size` whose corner is a uniform random point moved back by size/2,
    clipped at the borders (PIL's rectangle includes its far edge)."""
    if size <= 0:
        return img
    width, height = img.size
    left = int(max(0.0, _rand() * width - size / 2))
    top = int(max(0.0, _rand() * height - size / 2))
    box = (left, top, int(min(width, left + size)), int(min(height, top + size)))
    img = img.copy()
    ImageDraw.Draw(img).rectangle(box, fill=tuple(fill))
    return img


class RandAugmentOPMatch:
    """num_ops ops drawn with replacement from OPMATCH_OPS, each at a level in [1, MAX_LEVEL) and
    applied with probability `prob`, then `release_cutout` (PIL RGB -> PIL RGB)."""

    def __init__(self, num_ops, prob, cutout_size, cutout_fill):
        self.num_ops = num_ops
        self.prob = prob
        self.cutout_size = cutout_size
        self.cutout_fill = cutout_fill

    def __call__(self, img):
        names = list(OPMATCH_OPS)
        for index in torch.randint(len(names), (self.num_ops,)).tolist():
            level = int(torch.randint(1, MAX_LEVEL, ()).item())
            if _rand() < self.prob:
                img = OPMATCH_OPS[names[index]](img, level)
        return release_cutout(img, self.cutout_size, self.cutout_fill)

    def __repr__(self):
        return (f"RandAugmentOPMatch(num_ops={self.num_ops}, prob={self.prob}, "
                f"cutout_size={self.cutout_size}, cutout_fill={self.cutout_fill})")
