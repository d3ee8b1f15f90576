"""Black-box attacks on the input: whoever holds a protected model may transform unauthorized images
before inference, towards what the model accepts (the authorized domain's colours and histogram) or
away from what it refuses (a watermark blurred, compressed, filtered or cropped away).

Each attack is a registered pre-transform (PIL -> PIL, at the original resolution), configured by
the ATTACK.* keys, so an eval-only run of a protected model names it in DATASET.TEST_SETS, e.g.
`unauthorized=target+attack_blur` or `unauthorized=source+watermark+attack_jpeg`. The matching
attacks read the authorized domain's statistics from ATTACK.REFERENCE_FILE, which
`reference_statistics` writes from a few authorized (training) images.
"""
import io
import json
import numbers
import os.path as osp

import numpy as np
from PIL import Image, ImageFilter

from dassl.data.transforms.pre_transforms import PRE_TRANSFORM_REGISTRY
from dassl.errors import ConfigError, MissingFileError

__all__ = ["INPUT_ATTACKS", "reference_statistics", "match_colors", "match_histograms"]

#: Levels of an 8-bit channel.
LEVELS = 256


def _number(value, key, low, high, integer=False):
    kind = numbers.Integral if integer else numbers.Real
    if not isinstance(value, kind) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"ATTACK.{key} must be {'an integer' if integer else 'a number'} in "
                          f"[{low}, {high}], got {value!r}")
    return value


def _rgb(img):
    return img if img.mode == "RGB" else img.convert("RGB")


def reference_statistics(images):
    """Per-channel mean, std and cumulative histogram of a few authorized images (PIL), the target
    of the matching attacks; JSON-able."""
    if not images:
        raise ValueError("reference_statistics needs at least one image")
    pixels = np.concatenate([np.asarray(_rgb(img), dtype=np.float64).reshape(-1, 3) for img in images])
    counts = np.stack([np.bincount(pixels[:, c].astype(np.int64), minlength=LEVELS) for c in range(3)])
    cdf = np.cumsum(counts, axis=1) / pixels.shape[0]
    return {"mean": pixels.mean(axis=0).tolist(), "std": pixels.std(axis=0).tolist(), "cdf": cdf.tolist(),
            "images": len(images)}


def match_colors(img, mean, std):
    """Shift and scale each channel to the given mean and std (Reinhard-style colour transfer)."""
    pixels = np.asarray(_rgb(img), dtype=np.float64)
    own_mean = pixels.reshape(-1, 3).mean(axis=0)
    own_std = pixels.reshape(-1, 3).std(axis=0)
    scale = np.asarray(std) / np.maximum(own_std, 1e-6)
    out = (pixels - own_mean) * scale + np.asarray(mean)
    return Image.fromarray(np.clip(np.rint(out), 0, LEVELS - 1).astype(np.uint8))


def match_histograms(img, cdf):
    """Map each channel's levels so that its cumulative histogram follows `cdf` [3, 256]."""
    pixels = np.asarray(_rgb(img))
    target = np.asarray(cdf, dtype=np.float64)
    out = np.empty_like(pixels)
    for c in range(3):  # three channels, each a vectorised 256-entry lookup
        own = np.cumsum(np.bincount(pixels[..., c].ravel(), minlength=LEVELS)) / pixels[..., c].size
        lookup = np.searchsorted(target[c], own, side="left").clip(0, LEVELS - 1).astype(np.uint8)
        out[..., c] = lookup[pixels[..., c]]
    return Image.fromarray(out)


def _load_reference(cfg):
    path = cfg.ATTACK.REFERENCE_FILE
    if not path:
        raise ConfigError("the matching attacks need ATTACK.REFERENCE_FILE, the statistics of a few "
                          "authorized images (trainers.ipclip.attacks.input_attacks.reference_statistics)")
    if not osp.isfile(path):
        raise MissingFileError(f"ATTACK.REFERENCE_FILE {path!r} does not exist")
    with open(path) as f:
        return json.load(f)


# Lower-case class names on purpose: the registry key is `__name__`, which test sets name.
@PRE_TRANSFORM_REGISTRY.register()
class attack_blur:
    """Gaussian blur of radius ATTACK.BLUR_RADIUS pixels."""

    def __init__(self, cfg):
        self.radius = _number(cfg.ATTACK.BLUR_RADIUS, "BLUR_RADIUS", 0, 100)

    def __call__(self, img):
        return _rgb(img).filter(ImageFilter.GaussianBlur(self.radius))


@PRE_TRANSFORM_REGISTRY.register()
class attack_jpeg:
    """JPEG re-encoding at quality ATTACK.JPEG_QUALITY."""

    def __init__(self, cfg):
        self.quality = _number(cfg.ATTACK.JPEG_QUALITY, "JPEG_QUALITY", 1, 95, integer=True)

    def __call__(self, img):
        buffer = io.BytesIO()
        _rgb(img).save(buffer, format="JPEG", quality=self.quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            return decoded.convert("RGB")


@PRE_TRANSFORM_REGISTRY.register()
class attack_median:
    """Median filter over ATTACK.MEDIAN_SIZE x ATTACK.MEDIAN_SIZE pixels (odd)."""

    def __init__(self, cfg):
        self.size = _number(cfg.ATTACK.MEDIAN_SIZE, "MEDIAN_SIZE", 3, 99, integer=True)
        if self.size % 2 == 0:
            raise ConfigError(f"ATTACK.MEDIAN_SIZE must be odd, got {self.size}")

    def __call__(self, img):
        return _rgb(img).filter(ImageFilter.MedianFilter(self.size))


@PRE_TRANSFORM_REGISTRY.register()
class attack_crop_resize:
    """The central ATTACK.CROP_FRACTION of each side, resized back to the image's size."""

    def __init__(self, cfg):
        self.fraction = _number(cfg.ATTACK.CROP_FRACTION, "CROP_FRACTION", 0.1, 1.0)

    def __call__(self, img):
        img = _rgb(img)
        w, h = img.size
        cw, ch = max(1, round(w * self.fraction)), max(1, round(h * self.fraction))
        left, top = (w - cw) // 2, (h - ch) // 2
        return img.crop((left, top, left + cw, top + ch)).resize((w, h), Image.BILINEAR)


@PRE_TRANSFORM_REGISTRY.register()
def attack_grayscale(img):
    """Grey levels, as three equal channels."""
    return img.convert("L").convert("RGB")


@PRE_TRANSFORM_REGISTRY.register()
class attack_color_match:
    """Each channel's mean and std matched to the authorized images' (ATTACK.REFERENCE_FILE)."""

    def __init__(self, cfg):
        reference = _load_reference(cfg)
        self.mean, self.std = reference["mean"], reference["std"]

    def __call__(self, img):
        return match_colors(img, self.mean, self.std)


@PRE_TRANSFORM_REGISTRY.register()
class attack_histogram_match:
    """Each channel's histogram matched to the authorized images' (ATTACK.REFERENCE_FILE)."""

    def __init__(self, cfg):
        self.cdf = _load_reference(cfg)["cdf"]

    def __call__(self, img):
        return match_histograms(img, self.cdf)


#: Every input attack, by the name test sets use.
INPUT_ATTACKS = ("attack_blur", "attack_jpeg", "attack_median", "attack_crop_resize", "attack_grayscale",
                 "attack_color_match", "attack_histogram_match")
