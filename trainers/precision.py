"""How `TRAINER.<X>.PREC` maps onto the device: one code path for CPU fp32 and CUDA fp16/AMP.

Upstream CoOp assumes a GPU: fp16 CLIP weights crash or crawl on the CPU, and `torch.cuda.amp` is
CUDA-only. Here the requested precision is resolved against the device once (fp16/amp on a non-CUDA
device become fp32, with a single warning), and the autocast context / grad scaler are no-ops unless
they are needed, so trainers never branch on the device themselves.
"""
import contextlib
import warnings

import torch
from clip.model import convert_weights

from dassl.errors import ConfigError

__all__ = [
    "PRECISIONS",
    "check_precision",
    "resolve_precision",
    "autocast",
    "make_grad_scaler",
    "cast_clip",
    "backward_and_step",
]

# fp16: CLIP weights in half precision, plain backward (upstream default);
# fp32: everything in float32; amp: float32 weights, float16 compute under autocast + GradScaler.
PRECISIONS = ("fp16", "fp32", "amp")

_already_warned = set()


def _device_type(device):
    if isinstance(device, torch.device):
        return device.type
    if isinstance(device, str):
        return torch.device(device).type
    raise TypeError(f"expected a torch.device or a device string such as 'cuda' or 'cpu', got {device!r}")


def check_precision(prec, key="PREC"):
    """Fail early (in `check_cfg`) on a misspelt precision, naming the config key to fix."""
    if prec not in PRECISIONS:
        raise ConfigError(
            f"{key} must be one of {', '.join(PRECISIONS)}, got {prec!r}; "
            f"set it in the trainer config or on the command line, e.g. `{key} fp32`"
        )
    return prec


def resolve_precision(prec, device):
    """The precision actually used on `device`: fp16 and amp need CUDA, elsewhere they become fp32."""
    check_precision(prec)
    if _device_type(device) == "cuda" or prec == "fp32":
        return prec
    if prec not in _already_warned:
        _already_warned.add(prec)
        warnings.warn(
            f"PREC={prec!r} needs a CUDA device; running in fp32 on {_device_type(device)} instead "
            "(set PREC fp32 to silence this warning)",
            UserWarning,
            stacklevel=2,
        )
    return "fp32"


def autocast(prec, device):
    """float16 autocast for amp on CUDA; a no-op context for every other (precision, device) pair."""
    if prec == "amp" and _device_type(device) == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def make_grad_scaler(prec, device):
    """A loss scaler for amp on CUDA (float16 gradients underflow without it), else None."""
    if prec == "amp" and _device_type(device) == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


def cast_clip(clip_model, prec, device):
    """Cast CLIP's weights in place for `prec` on `device` (fp16 only on CUDA); returns the model."""
    if resolve_precision(prec, device) == "fp16":
        clip_model.float()  # start from a known state, then halve exactly what OpenAI's release halves
        convert_weights(clip_model)
    else:
        clip_model.float()
    return clip_model


def backward_and_step(loss, optimizer, scaler=None):
    """zero_grad, backward and step; through the GradScaler when there is one (amp on CUDA).

    No finiteness check on the loss: that would synchronise with the host every step (GradScaler
    already skips steps whose gradients are not finite).
    """
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
        return
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
