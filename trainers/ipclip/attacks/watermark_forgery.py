"""Watermark forgery: does any mark but the owner's act as the owner's key?

Authorization: the mark is a licence key; a forged key that unlocks the model defeats the licence.
Ownership: the mark switches a stolen model off to prove whose it is; a forged mark that does so too
would let anyone claim the model (a high accuracy under a forged mark means the mark is specific).

The pre-transform `forged_watermark` paints the owner's mark (INPUT.WATERMARK) with the settings
ATTACK.FORGERY sets in place of the owner's (an unset one, "", 0, 0.0 or (), keeps the owner's); test
sets name it where they would name `watermark`, e.g. `unauthorized=source+forged_watermark`. A forged
key that paints the very pixels of the owner's mark in its colour and opacity is refused: it would be
no forgery. `standard_forgeries` lists the forgeries tools/attack.py evaluates, one wrong setting each.
Removing a mark is not here: the input attacks after `watermark` in a test set do that.
"""
import math
from collections import namedtuple

import numpy as np

from dassl.data.transforms.pre_transforms import PRE_TRANSFORM_REGISTRY
from dassl.errors import ConfigError

from ..transforms.watermark import (WATERMARK_PATTERNS, apply_watermark, check_watermark_settings,
                                   pattern_mask)

__all__ = ["WatermarkKey", "owner_key", "forged_key", "same_mark", "standard_forgeries", "forged_watermark"]

#: One watermark's settings, as INPUT.WATERMARK holds them.
WatermarkKey = namedtuple("WatermarkKey", ["pattern", "period", "color", "alpha", "offset"])
#: ATTACK.FORGERY values that keep the owner's setting.
UNSET = {"pattern": "", "period": 0, "color": (), "alpha": 0.0, "offset": ()}
#: The standard forgeries' wrong settings: the period one pixel longer, the opacity halved, the lines
#: one row and one column further, the colour's complement (255 - each channel), another pattern.
PERIOD_STEP = 1
ALPHA_FACTOR = 0.5
OFFSET_STEP = 1
CHANNEL_MAX = 255


def _key(pattern, period, color, alpha, offset, prefix):
    return WatermarkKey(*check_watermark_settings(pattern, period, color, alpha, prefix=prefix, offset=offset))


def owner_key(cfg):
    """The owner's mark, INPUT.WATERMARK, checked."""
    node = cfg.INPUT.WATERMARK
    return _key(node.PATTERN, node.PERIOD, node.COLOR, node.ALPHA, node.OFFSET, "INPUT.WATERMARK.")


def forged_key(cfg):
    """The owner's mark with every setting ATTACK.FORGERY sets replaced; refused if it is the owner's."""
    owner = owner_key(cfg)
    node = cfg.ATTACK.FORGERY
    given = {"pattern": node.PATTERN, "period": node.PERIOD, "color": tuple(node.COLOR), "alpha": node.ALPHA,
             "offset": tuple(node.OFFSET)}
    changed = {k: v for k, v in given.items() if v != UNSET[k]}
    if not changed:
        raise ConfigError("forged_watermark needs at least one ATTACK.FORGERY setting (PATTERN, PERIOD, COLOR, "
                          "ALPHA, OFFSET) that differs from the owner's INPUT.WATERMARK")
    forged = _key(**owner._replace(**changed)._asdict(), prefix="ATTACK.FORGERY.")
    if same_mark(owner, forged):
        raise ConfigError(f"the forged key {dict(forged._asdict())} paints the owner's mark "
                          f"{dict(owner._asdict())} exactly: a forgery must differ (e.g. an offset changes "
                          "nothing at PERIOD 1, a column offset nothing on stripes)")
    return forged


def _mask(key, side):
    return pattern_mask(key.pattern, side, side, key.period, key.offset)


def same_mark(a, b):
    """Whether two keys paint the same pixels in the same colour and opacity on every image. Lines
    repeat every period rows and columns and a frame ends period + offset pixels from each edge, so
    a square of lcm(periods) pixels beyond both frames' bands on each side decides it."""
    if a.color != b.color or a.alpha != b.alpha:
        return False
    band = max(key.period + max(key.offset) for key in (a, b))
    side = math.lcm(a.period, b.period) + 2 * band
    return bool(np.array_equal(_mask(a, side), _mask(b, side)))


def standard_forgeries(owner):
    """{name: ATTACK.FORGERY settings} of one wrong setting each (another pattern, period, colour,
    opacity, position), keeping only those that paint another mark than `owner`."""
    other_patterns = [p for p in WATERMARK_PATTERNS if p != owner.pattern]
    candidates = {
        "pattern": {"PATTERN": other_patterns[0]} if other_patterns else None,
        "period": {"PERIOD": owner.period + PERIOD_STEP},
        "color": {"COLOR": tuple(CHANNEL_MAX - c for c in owner.color)},
        "alpha": {"ALPHA": owner.alpha * ALPHA_FACTOR},
        "offset": {"OFFSET": tuple(o + OFFSET_STEP for o in owner.offset)},
    }
    forgeries = {}
    for name, settings in candidates.items():
        if settings is None:
            continue
        changed = {k.lower(): v for k, v in settings.items()}
        if not same_mark(owner, owner._replace(**changed)):
            forgeries[name] = settings
    return forgeries


# Lower-case class name on purpose: the registry key is `__name__`, which test sets name.
@PRE_TRANSFORM_REGISTRY.register()
class forged_watermark:
    """The owner's mark with the ATTACK.FORGERY settings (forged_key), PIL -> PIL."""

    def __init__(self, cfg):
        self.key = forged_key(cfg)

    def __call__(self, img):
        return apply_watermark(img, *self.key)

    def __repr__(self):
        return f"forged_watermark({dict(self.key._asdict())})"
