"""Office-31: `office31/{amazon,webcam,dslr}/[images/]<class>/*.jpg`, 31 classes."""
from ..build import DATASET_REGISTRY
from .domain_folders import DomainFolders

__all__ = ["Office31"]


@DATASET_REGISTRY.register()
class Office31(DomainFolders):
    dataset_dir = "office31"
    domains = ["amazon", "webcam", "dslr"]
