"""Datasets: registry, builder, `Datum`, `DatasetBase`, `DatasetError` and the domain datasets."""
from .base_dataset import DatasetBase, Datum
from .build import DATASET_REGISTRY, build_dataset
from .errors import DatasetError
from .da import DomainFolders, Office31, OfficeHome, VisDA17, miniDomainNet

__all__ = [
    "DATASET_REGISTRY",
    "build_dataset",
    "Datum",
    "DatasetBase",
    "DatasetError",
    "DomainFolders",
    "Office31",
    "OfficeHome",
    "miniDomainNet",
    "VisDA17",
]
