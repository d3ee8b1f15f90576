"""VisDA-2017 classification: `visda17/train/<class>/*` (synthetic) and `visda17/validation/<class>/*`
(real), 12 classes. Domain names follow upstream Dassl ("synthetic", "real")."""
from ..build import DATASET_REGISTRY
from .domain_folders import DomainFolders

__all__ = ["VisDA17"]


@DATASET_REGISTRY.register()
class VisDA17(DomainFolders):
    dataset_dir = "visda17"
    domains = ["synthetic", "real"]
    domain_dirs = {"synthetic": "train", "real": "validation"}
