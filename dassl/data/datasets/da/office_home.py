"""Office-Home: `office_home/{art,clipart,product,real_world}/<class>/*.jpg`, 65 classes.

The original archive names its folders "Art", "Clipart", "Product", "Real World": rename them to the
lower-case names above (as upstream Dassl requires).
"""
from ..build import DATASET_REGISTRY
from .domain_folders import DomainFolders

__all__ = ["OfficeHome"]


@DATASET_REGISTRY.register()
class OfficeHome(DomainFolders):
    dataset_dir = "office_home"
    domains = ["art", "clipart", "product", "real_world"]
