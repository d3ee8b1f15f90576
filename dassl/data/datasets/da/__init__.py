"""Domain-adaptation datasets (each registered in DATASET_REGISTRY) and the split policy."""
from .domain_folders import DomainFolders
from .mini_domainnet import miniDomainNet
from .office31 import Office31
from .office_home import OfficeHome
from .visda17 import VisDA17

__all__ = ["DomainFolders", "Office31", "OfficeHome", "miniDomainNet", "VisDA17"]
