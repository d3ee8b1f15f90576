"""Running averages of training statistics for the progress line."""
from collections import defaultdict

import torch

__all__ = ["AverageMeter", "MetricMeter"]


def _as_number(val):
    return val.item() if isinstance(val, torch.Tensor) else val


class AverageMeter:
    """Track the latest value and its (count-weighted or exponential) running average."""

    def __init__(self, ema=False):
        self.ema = ema
        self.reset()

    def reset(self):
        self.val = 0
        self.avg = 0
        self.sum = 0
        self.count = 0

    def update(self, val, n=1):
        val = _as_number(val)
        self.val = val
        self.sum += val * n
        self.count += n
        if self.ema:
            self.avg = self.avg * 0.9 + self.val * 0.1
        else:
            self.avg = self.sum / self.count


class MetricMeter:
    """A named group of AverageMeters, printed as ``name val (avg)`` in insertion order."""

    def __init__(self, delimiter=" "):
        self.meters = defaultdict(AverageMeter)
        self.delimiter = delimiter

    def update(self, input_dict):
        if input_dict is None:
            return
        if not isinstance(input_dict, dict):
            raise TypeError(
                "MetricMeter.update() expects a dict of name -> value (e.g. the loss summary "
                f"returned by forward_backward), got {type(input_dict).__name__}"
            )
        for name, value in input_dict.items():
            self.meters[name].update(_as_number(value))

    def __str__(self):
        return self.delimiter.join(
            f"{name} {meter.val:.4f} ({meter.avg:.4f})" for name, meter in self.meters.items()
        )
