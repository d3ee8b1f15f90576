"""Data pipeline: DataManager, DatasetWrapper (plus datasets, samplers and transforms subpackages)."""
from .data_manager import DataManager, DatasetWrapper

__all__ = ["DataManager", "DatasetWrapper"]
