"""trainers/ipclip/attacks/input_attacks.py: what each input attack does to an image, the statistics
the matching attacks move towards, and that test sets can name them."""
import json

import numpy as np
import pytest
from PIL import Image

from dassl.config import get_cfg_default
from dassl.data.transforms import PRE_TRANSFORM_REGISTRY, build_pre_transform
from dassl.errors import ConfigError, MissingFileError
from trainers.config import extend_cfg
from trainers.ipclip.attacks.input_attacks import (
    INPUT_ATTACKS, match_colors, match_histograms, reference_statistics,
)
from trainers.ipclip.transforms.watermark import apply_watermark


def _cfg(**attack):
    cfg = extend_cfg(get_cfg_default())
    for key, value in attack.items():
        cfg.ATTACK[key] = value
    return cfg


def _noise(seed=0, size=(32, 24), low=0, high=256):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(low, high, size=(size[1], size[0], 3), dtype=np.uint8))


def _array(img):
    return np.asarray(img, dtype=np.float64)


def test_every_attack_is_registered_and_keeps_size_and_mode(tmp_path):
    path = tmp_path / "reference.json"
    path.write_text(json.dumps(reference_statistics([_noise(1)])))
    cfg = _cfg(REFERENCE_FILE=str(path))
    img = _noise().convert("L")  # any mode in, RGB out
    for name in INPUT_ATTACKS:
        assert name in PRE_TRANSFORM_REGISTRY
        out = build_pre_transform([name], cfg)(img)
        assert out.size == img.size and out.mode == "RGB", name


def _stripe_contrast(img):
    """Mean difference between neighbouring rows: 0 on a flat image, large under a stripe mark."""
    return np.abs(np.diff(_array(img), axis=0)).mean()


@pytest.mark.parametrize("name, key, value, period", [
    ("attack_blur", "BLUR_RADIUS", 1.5, 2),
    # A median keeps the majority of its window: it erases sparse lines (1 row in 4), not dense ones
    # (period 2 alternates the majority from row to row).
    ("attack_median", "MEDIAN_SIZE", 3, 4),
])
def test_removal_attacks_wash_out_a_fine_watermark(name, key, value, period):
    """A one-pixel stripe mark is high-frequency: the removal attacks flatten it."""
    clean = Image.new("RGB", (40, 40), (90, 120, 60))
    marked = apply_watermark(clean, "stripes", period, (255, 255, 255), 1.0)
    assert _stripe_contrast(clean) == 0 and _stripe_contrast(marked) > 50
    cleaned = build_pre_transform([name], _cfg(**{key: value}))(marked)
    assert _stripe_contrast(cleaned) < 0.5 * _stripe_contrast(marked)


def test_jpeg_loses_more_the_lower_the_quality():
    img = _noise(size=(48, 48))
    error = {q: np.abs(_array(build_pre_transform(["attack_jpeg"], _cfg(JPEG_QUALITY=q))(img)) - _array(img)).mean()
             for q in (10, 90)}
    assert error[10] > error[90] > 0


def test_grayscale_and_crop_resize():
    img = _noise()
    grey = _array(build_pre_transform(["attack_grayscale"], _cfg())(img))
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    # Cropping a centred square out of a bordered image leaves no border.
    framed = Image.new("RGB", (40, 40), (0, 0, 0))
    framed.paste((255, 255, 255), (8, 8, 32, 32))
    cropped = _array(build_pre_transform(["attack_crop_resize"], _cfg(CROP_FRACTION=0.5))(framed))
    assert cropped.min() > 200


def test_matching_moves_the_statistics_to_the_reference():
    reference = reference_statistics([_noise(1, low=150, high=256), _noise(2, low=150, high=256)])
    dark = _noise(3, low=0, high=100)
    matched = _array(match_colors(dark, reference["mean"], reference["std"])).reshape(-1, 3)
    np.testing.assert_allclose(matched.mean(axis=0), reference["mean"], atol=2.0)
    np.testing.assert_allclose(matched.std(axis=0), reference["std"], atol=2.0)
    equalised = _array(match_histograms(dark, reference["cdf"])).reshape(-1, 3)
    assert abs(equalised.mean() - np.mean(reference["mean"])) < 5
    assert reference["images"] == 2 and np.asarray(reference["cdf"]).shape == (3, 256)


@pytest.mark.parametrize("key, value, message", [
    ("BLUR_RADIUS", -1, r"ATTACK.BLUR_RADIUS must be a number in \[0, 100\]"),
    ("JPEG_QUALITY", 0, r"ATTACK.JPEG_QUALITY must be an integer in \[1, 95\]"),
    ("MEDIAN_SIZE", 4, "ATTACK.MEDIAN_SIZE must be odd"),
    ("CROP_FRACTION", 1.5, r"ATTACK.CROP_FRACTION must be a number in \[0.1, 1.0\]"),
])
def test_bad_settings_name_the_key(key, value, message):
    name = {"BLUR_RADIUS": "attack_blur", "JPEG_QUALITY": "attack_jpeg", "MEDIAN_SIZE": "attack_median",
            "CROP_FRACTION": "attack_crop_resize"}[key]
    with pytest.raises(ConfigError, match=message):
        build_pre_transform([name], _cfg(**{key: value}))


def test_matching_without_reference_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError, match="need ATTACK.REFERENCE_FILE"):
        build_pre_transform(["attack_color_match"], _cfg())
    with pytest.raises(MissingFileError, match="does not exist"):
        build_pre_transform(["attack_histogram_match"], _cfg(REFERENCE_FILE=str(tmp_path / "nope.json")))
