"""RAdam (Liu et al., 2020): PyTorch ships it, so the upstream module path simply re-exports it."""
from torch.optim import RAdam

__all__ = ["RAdam"]
