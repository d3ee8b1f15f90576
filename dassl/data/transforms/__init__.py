"""Image transforms: `build_transform` (upstream choices) and the registry of pre-transforms, which
projects fill (IP-CLIP's scenario transforms live in trainers/ipclip/transforms/)."""
from .pre_transforms import PRE_TRANSFORM_REGISTRY, ComposePIL, build_pre_transform
from .transforms import INTERPOLATION_MODES, build_transform

__all__ = [
    "INTERPOLATION_MODES",
    "build_transform",
    "PRE_TRANSFORM_REGISTRY",
    "build_pre_transform",
    "ComposePIL",
]
