"""Pre-transforms: named PIL -> PIL edits applied to a test image at its original resolution,
before the test transform (a watermark, for instance). Test sets name them in DATASET.TEST_SETS.

A registered entry is either a function `PIL.Image -> PIL.Image`, used as is, or a class, which is
instantiated with the config (`cls(cfg)`) and must return such a callable (for configurable edits).
Entries must be picklable (module-level), since data-loader workers receive them.
"""
import inspect

from dassl.errors import ConfigError
from dassl.utils import Registry

__all__ = ["PRE_TRANSFORM_REGISTRY", "ComposePIL", "PreThen", "build_pre_transform",
           "training_transforms"]

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

    def training_pipeline(self, tfm_train, tfm_test):
        """The last op's own training pipeline (see `training_transforms`), after the other ops."""
        own = getattr(self.ops[-1], "training_pipeline", None) if self.ops else None
        pipeline = own(tfm_train, tfm_test) if own is not None else None
        if pipeline is None or len(self.ops) == 1:
            return pipeline
        return PreThen(ComposePIL(self.ops[:-1]), pipeline)


class PreThen:
    """PIL -> whatever `transform` returns: `pre` (PIL -> PIL), then `transform`."""

    def __init__(self, pre, transform):
        self.pre = pre
        self.transform = transform

    def __call__(self, img):
        return self.transform(self.pre(img))

    def __repr__(self):
        return f"{type(self).__name__}({self.pre!r}, {self.transform!r})"


def training_transforms(pre, tfm_train, tfm_test):
    """(pre_transform, transform) for a training stream whose images `pre` edits first.

    Usually (pre, tfm_train): the edit at the original resolution, then the train augmentation. A
    pre-transform may instead define `training_pipeline(tfm_train, tfm_test)` returning a whole
    PIL -> tensor pipeline (the release's strong augmentation already crops to the input size and
    is followed by the test transform only); it then replaces both.
    """
    own = getattr(pre, "training_pipeline", None)
    pipeline = own(tfm_train, tfm_test) if own is not None else None
    return (pre, tfm_train) if pipeline is None else (None, pipeline)


def build_pre_transform(names, cfg):
    """One callable applying the registered pre-transforms `names` in order (None for no names)."""
    if not names:
        return None
    ops = []
    for name in names:
        if name not in PRE_TRANSFORM_REGISTRY:
            raise ConfigError(
                f'Unknown pre-transform "{name}"; registered: {PRE_TRANSFORM_REGISTRY.registered_names()}.'
            )
        entry = PRE_TRANSFORM_REGISTRY.get(name)
        ops.append(entry(cfg) if inspect.isclass(entry) else entry)
    return ComposePIL(ops)
