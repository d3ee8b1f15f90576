"""Checkpoint I/O, RNG state capture and small nn.Module helpers.

Checkpoints hold only plain data (tensors, numbers, strings, lists, dicts), so they always load with
``torch.load(weights_only=True)``: loading never executes code stored in a file.
"""
import os.path as osp
import pickle
import random
import shutil
import warnings
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

from dassl.errors import CheckpointError, MissingFileError

from .tools import atomic_write, mkdir_if_missing

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "resume_from_checkpoint",
    "open_all_layers",
    "open_specified_layers",
    "count_num_param",
    "load_pretrained_weights",
    "init_network_weights",
]

# get_rng_state / set_rng_state are engine extensions: public, but kept out of __all__ so that
# `from dassl.utils import *` gives exactly upstream's names.


def _strip_module_prefix(state_dict):
    """Drop the ``module.`` prefix DataParallel/DistributedDataParallel add to every key."""
    stripped = OrderedDict()
    for key, value in state_dict.items():
        stripped[key[len("module."):] if key.startswith("module.") else key] = value
    return stripped


# ---------------------------------------------------------------------------------------------
# checkpoints


def save_checkpoint(state, save_dir, is_best=False, remove_module_from_keys=True, model_name=""):
    """Save `state` as ``save_dir/model.pth.tar-<epoch>`` (or `model_name`) and record its name.

    ``save_dir/checkpoint`` is a text file naming the latest file (read by resume_from_checkpoint);
    with `is_best` the file is also copied to ``model-best.pth.tar``.
    """
    if not isinstance(state, dict):
        raise TypeError(f"save_checkpoint expects a dict (state_dict, epoch, ...), got {type(state).__name__}")
    mkdir_if_missing(save_dir)

    state = dict(state)  # never mutate the caller's dict
    if remove_module_from_keys and "state_dict" in state:
        state["state_dict"] = _strip_module_prefix(state["state_dict"])

    if not model_name:
        if "epoch" not in state:
            raise KeyError('save_checkpoint needs state["epoch"] to name the file, or pass model_name=')
        model_name = f"model.pth.tar-{state['epoch']}"
    fpath = osp.join(save_dir, model_name)

    atomic_write(fpath, lambda tmp: torch.save(state, tmp))
    print(f"Checkpoint saved to {fpath}")

    def write_pointer(tmp):
        with open(tmp, "w") as f:
            f.write(f"{osp.basename(fpath)}\n")

    atomic_write(osp.join(save_dir, "checkpoint"), write_pointer)

    if is_best:
        best_fpath = osp.join(osp.dirname(fpath), "model-best.pth.tar")
        atomic_write(best_fpath, lambda tmp: shutil.copyfile(fpath, tmp))
        print(f'Best checkpoint saved to "{best_fpath}"')


def load_checkpoint(fpath, map_location="cpu"):
    """Load a checkpoint with ``weights_only=True`` (tensors land on `map_location`, CPU by default).

    `load_state_dict` copies onto the model's own device, so CPU loading works for every caller.
    """
    if fpath is None:
        raise ValueError("load_checkpoint got fpath=None: pass the path of a checkpoint file")
    if not osp.exists(fpath):
        raise MissingFileError(f'No checkpoint found at "{fpath}"')
    if osp.isdir(fpath):
        raise CheckpointError(
            f'"{fpath}" is a folder; pass a checkpoint file inside it (e.g. .../model.pth.tar-10)'
        )
    try:
        try:
            return torch.load(fpath, map_location=map_location, weights_only=True)
        except UnicodeDecodeError:  # checkpoints pickled by Python 2
            return torch.load(fpath, map_location=map_location, weights_only=True, encoding="latin1")
    except pickle.UnpicklingError as err:
        if "weights only" not in str(err).lower():
            raise _unreadable_checkpoint(fpath, err) from err
        raise UnsafeCheckpointError(
            f'Checkpoint "{fpath}" is not a weights-only checkpoint: it stores Python objects that '
            "torch.load(weights_only=True) refuses to unpickle. If you trust its source, convert it "
            "once: obj = torch.load(path, weights_only=False), replace objects by plain data "
            "(tensors, numbers, strings, lists, dicts; e.g. scheduler.state_dict()), then "
            f"torch.save(obj, path).\nOriginal error: {err}"
        ) from err
    except (RuntimeError, EOFError, KeyError, ValueError) as err:
        raise _unreadable_checkpoint(fpath, err) from err


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint that stores Python objects: torch.load(weights_only=True) refuses it."""


def _unreadable_checkpoint(fpath, err):
    return CheckpointError(
        f'Unable to load checkpoint from "{fpath}": the file is not a readable torch checkpoint '
        "(empty, truncated or not written by torch.save?). Delete it and re-run, or resume from "
        f"another epoch. Original error: {type(err).__name__}: {err}"
    )


def checkpoint_pointer(fdir):
    """The file name that ``fdir/checkpoint`` names (the latest save), or None."""
    pointer = osp.join(fdir, "checkpoint")
    if not osp.isfile(pointer):
        return None
    with open(pointer, "r") as f:
        lines = f.read().splitlines()
    return lines[0].strip() if lines and lines[0].strip() else None


def resume_from_checkpoint(fdir, model, optimizer=None, scheduler=None):
    """Restore model/optimizer/scheduler from the file named in ``fdir/checkpoint``; return its epoch."""
    pointer = osp.join(fdir, "checkpoint")
    if not osp.isfile(pointer):
        raise MissingFileError(
            f'Cannot resume: "{pointer}" does not exist (it names the latest checkpoint in that folder)'
        )
    name = checkpoint_pointer(fdir)
    if name is None:
        raise CheckpointError(f'Cannot resume: "{pointer}" is empty; it should hold a checkpoint file name')
    fpath = osp.join(fdir, name)

    print(f'Loading checkpoint from "{fpath}"')
    return restore_checkpoint(load_checkpoint(fpath), model, optimizer, scheduler, fpath)


def check_checkpoint(checkpoint, fpath, keys=("state_dict", "epoch")):
    """`checkpoint` (loaded from `fpath`) as a dict holding `keys`, else a CheckpointError."""
    found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
    if not isinstance(checkpoint, dict) or any(k not in checkpoint for k in keys):
        raise CheckpointError(
            f'"{fpath}" is not a checkpoint of this engine: it should be a dict with {list(keys)}, and '
            f"holds {found}. Pass a file written by a training run (<run folder>/<model>/"
            "model.pth.tar-<epoch>), or move this one away."
        )
    return checkpoint


def restore_checkpoint(checkpoint, model, optimizer=None, scheduler=None, fpath="the checkpoint"):
    """Put a loaded checkpoint's model/optimizer/scheduler states in place; return its epoch."""
    check_checkpoint(checkpoint, fpath)
    model.load_state_dict(checkpoint["state_dict"])
    print("Loaded model weights")
    if optimizer is not None and checkpoint.get("optimizer") is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        print("Loaded optimizer")
    if scheduler is not None and checkpoint.get("scheduler") is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
        print("Loaded scheduler")
    start_epoch = checkpoint["epoch"]
    print(f"Previous epoch: {start_epoch}")
    return start_epoch


# ---------------------------------------------------------------------------------------------
# RNG state (stored in checkpoints so a resumed run draws the same numbers as an uninterrupted one)


def get_rng_state():
    """Capture python, numpy, torch and CUDA generator states as weights_only-loadable data."""
    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state(legacy=True)
    return {
        "python": [py_version, list(py_internal), py_gauss],
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
    }


def set_rng_state(state):
    """Restore generator states captured by get_rng_state (components absent from `state` are left as is)."""
    known = ("python", "numpy", "torch", "cuda")
    if not isinstance(state, dict) or not any(k in state for k in known):
        raise ValueError(
            f"set_rng_state expects the dict returned by get_rng_state() (keys {list(known)}), "
            f"got {type(state).__name__}"
            + (f" with keys {list(state)}" if isinstance(state, dict) else "")
        )
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    if "numpy" in state:
        np_state = state["numpy"]
        keys = np_state["keys"]
        keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
        np.random.set_state(
            (
                np_state["name"],
                keys.astype(np.uint32),
                int(np_state["pos"]),
                int(np_state["has_gauss"]),
                float(np_state["cached_gaussian"]),
            )
        )
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available():
        n_devices = torch.cuda.device_count()
        if len(cuda_states) != n_devices:
            warnings.warn(
                f"RNG state holds {len(cuda_states)} CUDA generator(s) but {n_devices} device(s) are "
                "visible; restoring the common ones only, so results may differ from the original run"
            )
        for idx, cuda_state in enumerate(cuda_states[:n_devices]):
            torch.cuda.set_rng_state(cuda_state.cpu(), device=idx)


# ---------------------------------------------------------------------------------------------
# module helpers


def _unwrap(model):
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        return model.module
    return model


def open_all_layers(model):
    """Put `model` in train mode with every parameter trainable."""
    model.train()
    for p in model.parameters():
        p.requires_grad = True


def open_specified_layers(model, open_layers):
    """Train only the named child modules; freeze (and eval) every other child."""
    model = _unwrap(model)
    if isinstance(open_layers, str):
        open_layers = [open_layers]
    children = dict(model.named_children())
    for layer in open_layers:
        if layer not in children:
            raise ValueError(
                f'"{layer}" is not a child module of {type(model).__name__}; '
                f"available: {list(children)}"
            )
    for name, module in children.items():
        trainable = name in open_layers
        module.train(trainable)
        for p in module.parameters():
            p.requires_grad = trainable


def count_num_param(model=None, params=None):
    """Number of scalars in `model`'s parameters, or in the iterable `params`."""
    if model is not None:
        return sum(p.numel() for p in model.parameters())
    if params is not None:
        total = 0
        for item in params:
            if isinstance(item, dict):  # a param group
                total += sum(p.numel() for p in item["params"])
            else:
                total += item.numel()
        return total
    raise ValueError("count_num_param needs model= or params=")


def load_pretrained_weights(model, weight_path):
    """Copy every tensor of `weight_path` whose key and shape match `model`; report the rest."""
    checkpoint = load_checkpoint(weight_path)
    state_dict = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict):
        raise TypeError(
            f'"{weight_path}" holds a {type(checkpoint).__name__}, not a state dict '
            '(expected a dict of tensors, or a dict with a "state_dict" entry)'
        )
    state_dict = _strip_module_prefix(state_dict)

    model_dict = model.state_dict()
    matched, discarded = OrderedDict(), []
    for key, value in state_dict.items():
        if key in model_dict and isinstance(value, torch.Tensor) and model_dict[key].size() == value.size():
            matched[key] = value
        else:
            discarded.append(key)

    if not matched:
        warnings.warn(f'Cannot load {weight_path} (check the key names manually)')
        return
    model_dict.update(matched)
    model.load_state_dict(model_dict)
    print(f'Successfully loaded pretrained weights from "{weight_path}"')
    if discarded:
        print(f"** The following layers are discarded due to unmatched keys or layer size: {discarded}")


def init_network_weights(model, init_type="normal", gain=0.02):
    """Initialise conv/linear weights (normal, xavier, kaiming or orthogonal) and norm layers."""
    initialisers = {
        "normal": lambda w: nn.init.normal_(w, 0.0, gain),
        "xavier": lambda w: nn.init.xavier_normal_(w, gain=gain),
        "kaiming": lambda w: nn.init.kaiming_normal_(w, a=0, mode="fan_in"),
        "orthogonal": lambda w: nn.init.orthogonal_(w, gain=gain),
    }
    if init_type not in initialisers:
        raise ValueError(f'init_type must be one of {list(initialisers)}, got "{init_type}"')
    init_weight = initialisers[init_type]

    def init_module(m):
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            init_weight(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0.0)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.weight is not None:
                nn.init.constant_(m.weight, 1.0)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0.0)
        elif isinstance(m, nn.modules.instancenorm._InstanceNorm) and m.affine:
            nn.init.constant_(m.weight, 1.0)
            nn.init.constant_(m.bias, 0.0)

    model.apply(init_module)
