"""Random PIL augmentations with a random strength per op: the `randaugment_fixmatch` and
`randaugment2` choices (torchvision's RandAugment covers the fixed-magnitude `randaugment`).

Every op takes a strength in [0, 1]; signed ops (rotation, shear, translation, enhancement) pick a
random direction. Randomness comes from torch's generator so that worker seeding and
`set_random_seed` make it reproducible.
"""
import torch
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

__all__ = ["AUGMENT_OPS", "apply_op", "RandAugmentFixMatch", "RandAugment2", "grey_cutout"]


GREY = (128, 128, 128)  # fill of pixels that geometric ops move into view


def _rand():
    return torch.rand(()).item()


def _signed(strength):
    return strength if _rand() < 0.5 else -strength


def _affine(img, coeffs):
    return img.transform(
        img.size, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR, fillcolor=GREY
    )


def _identity(img, strength):
    return img


def _autocontrast(img, strength):
    return ImageOps.autocontrast(img)


def _equalize(img, strength):
    return ImageOps.equalize(img)


def _posterize(img, strength):
    return ImageOps.posterize(img, 8 - round(4 * strength))  # 8 bits (no change) .. 4 bits


def _solarize(img, strength):
    return ImageOps.solarize(img, round(256 - 256 * strength))


def _rotate(img, strength):
    return img.rotate(_signed(30.0 * strength), resample=Image.Resampling.BILINEAR, fillcolor=GREY)


def _shear_x(img, strength):
    return _affine(img, (1, _signed(0.3 * strength), 0, 0, 1, 0))


def _shear_y(img, strength):
    return _affine(img, (1, 0, 0, _signed(0.3 * strength), 1, 0))


def _translate_x(img, strength):
    return _affine(img, (1, 0, _signed(0.3 * strength) * img.size[0], 0, 1, 0))


def _translate_y(img, strength):
    return _affine(img, (1, 0, 0, 0, 1, _signed(0.3 * strength) * img.size[1]))


def _enhancer(cls):
    def op(img, strength):
        return cls(img).enhance(1.0 + _signed(0.9 * strength))

    return op


AUGMENT_OPS = {
    "identity": _identity,
    "autocontrast": _autocontrast,
    "equalize": _equalize,
    "posterize": _posterize,
    "solarize": _solarize,
    "rotate": _rotate,
    "shear_x": _shear_x,
    "shear_y": _shear_y,
    "translate_x": _translate_x,
    "translate_y": _translate_y,
    "brightness": _enhancer(ImageEnhance.Brightness),
    "color": _enhancer(ImageEnhance.Color),
    "contrast": _enhancer(ImageEnhance.Contrast),
    "sharpness": _enhancer(ImageEnhance.Sharpness),
}


def apply_op(img, name, strength):
    """Apply the op `name` of AUGMENT_OPS at `strength` in [0, 1] to an RGB PIL image."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"augmentation strength must be in [0, 1], got {strength}")
    return AUGMENT_OPS[name](img, strength)


def grey_cutout(img, size_fraction):
    """Paint a grey square of side `size_fraction` x width at a random centre (may be clipped)."""
    side = size_fraction * img.size[0]
    if side <= 0:
        return img
    cx, cy = _rand() * img.size[0], _rand() * img.size[1]
    box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    img = img.copy()
    ImageDraw.Draw(img).rectangle(box, fill=(127, 127, 127))
    return img


def _pick_ops(n):
    names = list(AUGMENT_OPS)
    return [names[i] for i in torch.randint(len(names), (n,)).tolist()]


class RandAugmentFixMatch:
    """n random ops (with replacement), each at a random strength, then a grey cutout of up to half
    the image side (the strong augmentation of FixMatch)."""

    def __init__(self, n=2):
        self.n = n

    def __call__(self, img):
        for name in _pick_ops(self.n):
            img = apply_op(img, name, _rand())
        return grey_cutout(img, 0.5 * _rand())

    def __repr__(self):
        return f"{type(self).__name__}(n={self.n})"


class RandAugment2:
    """n random ops, each applied with probability p at a random strength."""

    def __init__(self, n=2, p=0.6):
        self.n = n
        self.p = p

    def __call__(self, img):
        for name in _pick_ops(self.n):
            if _rand() < self.p:
                img = apply_op(img, name, _rand())
        return img

    def __repr__(self):
        return f"{type(self).__name__}(n={self.n}, p={self.p})"
