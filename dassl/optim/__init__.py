"""Optimizer and learning-rate scheduler builders (upstream Dassl's `dassl.optim`)."""
from .lr_scheduler import build_lr_scheduler
from .optimizer import build_optimizer

__all__ = ["build_optimizer", "build_lr_scheduler"]
