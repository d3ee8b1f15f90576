"""Image transforms: `build_transform` (upstream choices) and the registry of test pre-transforms."""
from .pre_transforms import PRE_TRANSFORM_REGISTRY, ComposePIL, build_pre_transform
from .transforms import INTERPOLATION_MODES, build_transform

# Importing the scenario pre-transforms registers them.
from . import auth_mixture, strong_style, watermark  # noqa: F401

__all__ = [
    "INTERPOLATION_MODES",
    "build_transform",
    "PRE_TRANSFORM_REGISTRY",
    "build_pre_transform",
    "ComposePIL",
]
