"""Epoch-wise learning-rate schedules (upstream Dassl's `build_lr_scheduler`) with warm-up wrappers.

The warm-up wrappers are proper `torch.optim.lr_scheduler.LRScheduler` subclasses whose state dict
holds only plain data (the wrapped scheduler's state is nested as a dict), so checkpoints load with
``torch.load(weights_only=True)``.
"""
import torch
from torch.optim.lr_scheduler import LRScheduler

from dassl.errors import ConfigError

__all__ = [
    "AVAI_SCHEDS",
    "ConstantWarmupScheduler",
    "LinearWarmupScheduler",
    "build_lr_scheduler",
]

AVAI_SCHEDS = ["single_step", "multi_step", "cosine"]


class _WarmupScheduler(LRScheduler):
    """Own schedule for the first `warmup_epoch` steps, then hand every step to `successor`.

    The first post-warm-up lr is the successor's current lr, so its schedule starts after warm-up.
    """

    def __init__(self, optimizer, successor, warmup_epoch, last_epoch=-1):
        if not isinstance(successor, LRScheduler):
            raise TypeError(
                f"successor must be a torch LRScheduler (e.g. CosineAnnealingLR), got {type(successor).__name__}"
            )
        if successor.optimizer is not optimizer:
            raise ValueError("the warm-up scheduler and its successor must drive the same optimizer")
        if not isinstance(warmup_epoch, int) or warmup_epoch < 1:
            raise ValueError(f"warmup_epoch must be an int >= 1 (OPTIM.WARMUP_EPOCH), got {warmup_epoch!r}")
        self.successor = successor
        self.warmup_epoch = warmup_epoch
        super().__init__(optimizer, last_epoch)

    def warmup_lr(self):
        """Learning rates during warm-up, for ``self.last_epoch < self.warmup_epoch``."""
        raise NotImplementedError

    def get_lr(self):
        if self.last_epoch >= self.warmup_epoch:
            return list(self.successor.get_last_lr())
        return self.warmup_lr()

    def step(self, epoch=None):
        if epoch is not None:
            raise TypeError(
                "step(epoch) is deprecated in PyTorch and not supported by warm-up schedulers; "
                "call step() once per epoch"
            )
        if self.last_epoch < self.warmup_epoch:
            super().step()
            return
        self.successor.step()
        self.last_epoch += 1
        self._step_count += 1
        self._last_lr = list(self.successor.get_last_lr())

    def state_dict(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "successor")}
        state["successor"] = self.successor.state_dict()
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        successor_state = state.pop("successor", None)
        if not isinstance(successor_state, dict):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict expects the successor's state as a nested dict "
                '(key "successor"); this state dict was not written by this class'
            )
        self.__dict__.update(state)
        self.successor.load_state_dict(successor_state)


class ConstantWarmupScheduler(_WarmupScheduler):
    """Hold every group at `cons_lr` during warm-up."""

    def __init__(self, optimizer, successor, warmup_epoch, cons_lr, last_epoch=-1):
        self.cons_lr = cons_lr
        super().__init__(optimizer, successor, warmup_epoch, last_epoch)

    def warmup_lr(self):
        return [self.cons_lr for _ in self.base_lrs]


class LinearWarmupScheduler(_WarmupScheduler):
    """Start at `min_lr`, then ramp linearly: ``base_lr * last_epoch / warmup_epoch``."""

    def __init__(self, optimizer, successor, warmup_epoch, min_lr, last_epoch=-1):
        self.min_lr = min_lr
        super().__init__(optimizer, successor, warmup_epoch, last_epoch)

    def warmup_lr(self):
        if self.last_epoch == 0:
            return [self.min_lr for _ in self.base_lrs]
        return [base_lr * self.last_epoch / self.warmup_epoch for base_lr in self.base_lrs]


def build_lr_scheduler(optimizer, optim_cfg):
    """Return the scheduler named by ``OPTIM.LR_SCHEDULER``, wrapped in warm-up if ``WARMUP_EPOCH > 0``.

    Step it once per epoch.
    """
    name = optim_cfg.LR_SCHEDULER
    stepsize = optim_cfg.STEPSIZE
    gamma = optim_cfg.GAMMA
    max_epoch = optim_cfg.MAX_EPOCH
    if name not in AVAI_SCHEDS:
        raise ConfigError(f'OPTIM.LR_SCHEDULER must be one of {AVAI_SCHEDS}, but got "{name}"')

    if name == "single_step":
        if isinstance(stepsize, (list, tuple)):
            if not stepsize:
                raise ConfigError("OPTIM.STEPSIZE is empty; single_step needs one step size (or -1)")
            stepsize = stepsize[-1]
        if not isinstance(stepsize, int) or isinstance(stepsize, bool):
            raise TypeError(
                f"For single_step, OPTIM.STEPSIZE must be an int (or a list ending in one), got {stepsize!r}"
            )
        if stepsize <= 0:
            stepsize = max_epoch
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=stepsize, gamma=gamma)
    elif name == "multi_step":
        if not isinstance(stepsize, (list, tuple)):
            raise TypeError(
                f"For multi_step, OPTIM.STEPSIZE must be a list/tuple of epochs, got {stepsize!r}"
            )
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(stepsize), gamma=gamma)
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=float(max_epoch))

    warmup_epoch = optim_cfg.WARMUP_EPOCH
    if warmup_epoch > 0:
        if not optim_cfg.WARMUP_RECOUNT:
            scheduler.last_epoch = warmup_epoch
        warmup_type = optim_cfg.WARMUP_TYPE
        if warmup_type == "constant":
            scheduler = ConstantWarmupScheduler(
                optimizer, scheduler, warmup_epoch, optim_cfg.WARMUP_CONS_LR
            )
        elif warmup_type == "linear":
            scheduler = LinearWarmupScheduler(
                optimizer, scheduler, warmup_epoch, optim_cfg.WARMUP_MIN_LR
            )
        else:
            raise ConfigError(f'OPTIM.WARMUP_TYPE must be "constant" or "linear", but got "{warmup_type}"')
    return scheduler
