"""Pre-transforms: named PIL -> PIL edits applied to a test image at its original resolution,
before the test transform (a watermark, for instance). Test sets name them in DATASET.TEST_SETS.

A registered entry is either a function `PIL.Image -> PIL.Image`, used as is, or a class, which is
instantiated with the config (`cls(cfg)`) and must return such a callable (for configurable edits).
Entries must be picklable (module-level), since data-loader workers receive them.
"""
import inspect

from dassl.utils import Registry

__all__ = ["PRE_TRANSFORM_REGISTRY", "ComposePIL", "build_pre_transform"]

PRE_TRANSFORM_REGISTRY = Registry("PRE_TRANSFORM")


class ComposePIL:
    """Apply several PIL -> PIL callables in order."""

    def __init__(self, ops):
        self.ops = list(ops)

    def __call__(self, img):
        for op in self.ops:
            img = op(img)
        return img

    def __repr__(self):
        return f"{type(self).__name__}({self.ops})"


def build_pre_transform(names, cfg):
    """One callable applying the registered pre-transforms `names` in order (None for no names)."""
    if not names:
        return None
    ops = []
    for name in names:
        if name not in PRE_TRANSFORM_REGISTRY:
            raise ValueError(
                f'Unknown pre-transform "{name}"; registered: {PRE_TRANSFORM_REGISTRY.registered_names()}.'
            )
        entry = PRE_TRANSFORM_REGISTRY.get(name)
        ops.append(entry(cfg) if inspect.isclass(entry) else entry)
    return ComposePIL(ops)
