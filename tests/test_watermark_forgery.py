"""The watermark's position (INPUT.WATERMARK.OFFSET) and forged keys (attacks/watermark_forgery.py):
offset (0, 0) is the mark as it always was, a shifted mark moves, and every forged key paints
another image than the owner's."""
import numpy as np
import pytest
from PIL import Image

from dassl.config import get_cfg_default
from dassl.errors import ConfigError
from trainers.config import extend_cfg
from trainers.ipclip.attacks.watermark_forgery import (
    WatermarkKey,
    forged_key,
    forged_watermark,
    owner_key,
    same_mark,
    standard_forgeries,
)
from trainers.ipclip.transforms.watermark import apply_watermark, watermark, watermark_mask

#: The owner keys forgeries are checked against: the release's default grid, the synthetic
#: benchmark's faint white stripes (its default), azure frame (ownership) and black stripes
#: (authorization), stripes and frame joined, a period-1 fill.
OWNER_KEYS = [
    WatermarkKey("grid", 2, (255, 255, 255), 1.0, (0, 0)),
    WatermarkKey("stripes", 2, (255, 255, 255), 0.3, (0, 0)),
    WatermarkKey("frame", 2, (0, 128, 255), 0.5, (0, 0)),
    WatermarkKey("stripes", 2, (0, 0, 0), 0.3, (0, 0)),
    WatermarkKey("stripes+frame", 2, (0, 128, 255), 0.3, (0, 0)),
    WatermarkKey("grid", 1, (10, 200, 30), 0.5, (0, 0)),
]


def _cfg(**watermark_settings):
    cfg = extend_cfg(get_cfg_default())
    for key, value in watermark_settings.items():
        cfg.INPUT.WATERMARK[key] = value
    return cfg


def _image(seed=0, height=9, width=11):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _mark_as_it_was(img, pattern, period, color, alpha):
    """The mark before OFFSET existed, written out: rows (and columns for a grid) whose index is a
    multiple of the period, painted (alpha 1) or blended and rounded."""
    pixels = np.array(img)
    rows = np.arange(pixels.shape[0])[:, None] % period == 0
    cols = np.arange(pixels.shape[1])[None, :] % period == 0
    mask = rows | cols if pattern == "grid" else np.broadcast_to(rows, pixels.shape[:2])
    if alpha == 1.0:
        pixels[mask] = color
    else:
        mixed = (1 - alpha) * pixels[mask].astype(np.float32) + alpha * np.asarray(color, np.float32)
        pixels[mask] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return pixels


@pytest.mark.parametrize("pattern", ["grid", "stripes"])  # the patterns that existed before OFFSET
@pytest.mark.parametrize("period, color, alpha", [(2, (255, 255, 255), 1.0), (3, (0, 0, 0), 0.3),
                                                  (1, (10, 20, 30), 0.5)])
def test_offset_zero_is_the_mark_as_it_was(pattern, period, color, alpha):
    img = _image()
    expected = _mark_as_it_was(img, pattern, period, color, alpha)
    assert np.array_equal(np.asarray(apply_watermark(img, pattern, period, color, alpha)), expected)
    assert np.array_equal(np.asarray(apply_watermark(img, pattern, period, color, alpha, (0, 0))), expected)
    mark = watermark(_cfg(PATTERN=pattern, PERIOD=period, COLOR=color, ALPHA=alpha))
    assert _cfg().INPUT.WATERMARK.OFFSET == (0, 0)
    assert np.array_equal(np.asarray(mark(img)), expected)


def test_an_offset_shifts_the_lines():
    mask = watermark_mask("grid", 6, 6, period=3, offset=(1, 2))
    assert np.array_equal(np.nonzero(mask.all(axis=1))[0], [1, 4])  # full rows
    assert np.array_equal(np.nonzero(mask.all(axis=0))[0], [2, 5])  # full columns
    stripes = watermark_mask("stripes", 4, 3, period=2, offset=(1, 1))
    assert np.array_equal(stripes[:, 0], [False, True, False, True])


@pytest.mark.parametrize("offset", [(1,), (-1, 0), (0.5, 0), "00"])
def test_a_bad_offset_is_a_config_error(offset):
    with pytest.raises(ConfigError, match="INPUT.WATERMARK.OFFSET"):
        watermark(_cfg(OFFSET=offset))


@pytest.mark.parametrize("owner", OWNER_KEYS, ids=lambda k: f"{k.pattern}{k.period}-{k.alpha}")
def test_every_standard_forgery_paints_another_image_than_the_owner(owner):
    forgeries = standard_forgeries(owner)
    assert forgeries, "no forgery of this key"
    cfg = _cfg(PATTERN=owner.pattern, PERIOD=owner.period, COLOR=owner.color, ALPHA=owner.alpha)
    img = _image(seed=3, height=12, width=12)
    real = np.asarray(watermark(cfg)(img))
    for name, settings in forgeries.items():
        forged_cfg = cfg.clone()
        for key, value in settings.items():
            forged_cfg.ATTACK.FORGERY[key] = value
        forged = np.asarray(forged_watermark(forged_cfg)(img))
        assert not np.array_equal(forged, real), name
        assert forged_key(forged_cfg) != owner_key(cfg)
    if owner.period == 1:  # a shift of a full fill, or another pattern of it, paints the same
        assert "offset" not in forgeries and "pattern" not in forgeries


@pytest.mark.parametrize("forgery, message", [
    ({}, "at least one ATTACK.FORGERY"),
    ({"OFFSET": (2, 2)}, "paints the owner's mark"),  # period 2: a shift by 2 is the same mark
    ({"PATTERN": "grid", "PERIOD": 2}, "paints the owner's mark"),  # the owner's own settings
    ({"ALPHA": 1.5}, "ATTACK.FORGERY.ALPHA"),
])
def test_a_forgery_that_is_no_forgery_is_refused(forgery, message):
    cfg = _cfg()
    for key, value in forgery.items():
        cfg.ATTACK.FORGERY[key] = value
    with pytest.raises(ConfigError, match=message):
        forged_watermark(cfg)


def test_same_mark_compares_what_is_painted():
    grid = WatermarkKey("grid", 2, (255, 255, 255), 1.0, (0, 0))
    assert same_mark(grid, grid._replace(offset=(2, 4)))
    assert not same_mark(grid, grid._replace(offset=(1, 0)))
    stripes = grid._replace(pattern="stripes")
    assert same_mark(stripes, stripes._replace(offset=(0, 1)))  # a column shift moves no stripe
    assert not same_mark(grid, grid._replace(alpha=0.5))
    assert not same_mark(grid, grid._replace(period=4))
    # A frame does not repeat: a wider or inset one paints other pixels, even where a square of
    # lcm(periods) pixels would be covered by both.
    frame = grid._replace(pattern="frame", period=1)
    assert not same_mark(frame, frame._replace(period=2))
    assert not same_mark(frame, frame._replace(offset=(1, 1)))
    assert same_mark(frame._replace(pattern="frame+frame"), frame)
