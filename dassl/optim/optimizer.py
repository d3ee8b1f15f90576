"""Build the optimizer named by ``cfg.OPTIM`` (upstream Dassl's `build_optimizer`)."""
import warnings

import torch
import torch.nn as nn

from dassl.errors import ConfigError

from .radam import RAdam

__all__ = ["AVAI_OPTIMS", "build_optimizer"]

AVAI_OPTIMS = ["adam", "amsgrad", "sgd", "rmsprop", "radam", "adamw"]


def _staged_param_groups(model, new_layers, lr, base_lr_mult):
    """Two groups: children named in `new_layers` at `lr`, every other child at ``lr * base_lr_mult``."""
    if not isinstance(model, nn.Module):
        raise TypeError(
            "OPTIM.STAGED_LR=True needs an nn.Module (its children are split into new and base "
            f"layers), but build_optimizer got {type(model).__name__}"
        )
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module
    if isinstance(new_layers, str):
        new_layers = [new_layers]
    new_layers = list(new_layers)
    if not new_layers:
        warnings.warn("OPTIM.NEW_LAYERS is empty, so OPTIM.STAGED_LR has no effect on the learning rates")
    children = dict(model.named_children())
    unknown = [name for name in new_layers if name not in children]
    if unknown:
        raise ConfigError(
            f"OPTIM.NEW_LAYERS names {unknown}, which are not children of {type(model).__name__}; "
            f"available: {list(children)}"
        )
    base_params, new_params = [], []
    for name, module in children.items():
        (new_params if name in new_layers else base_params).extend(module.parameters())
    return [{"params": base_params, "lr": lr * base_lr_mult}, {"params": new_params}]


def build_optimizer(model, optim_cfg, param_groups=None):
    """Return a torch optimizer over `model` (an nn.Module or an iterable of parameters/groups).

    `param_groups`, if given, is used as is (OPTIM.STAGED_LR is then ignored).
    """
    name = optim_cfg.NAME
    if name not in AVAI_OPTIMS:
        raise ConfigError(f'OPTIM.NAME must be one of {AVAI_OPTIMS}, but got "{name}"')
    lr = optim_cfg.LR
    weight_decay = optim_cfg.WEIGHT_DECAY
    betas = (optim_cfg.ADAM_BETA1, optim_cfg.ADAM_BETA2)

    if param_groups is not None:
        if optim_cfg.STAGED_LR:
            warnings.warn("build_optimizer got explicit param_groups, so OPTIM.STAGED_LR is ignored")
        params = param_groups
    elif optim_cfg.STAGED_LR:
        params = _staged_param_groups(model, optim_cfg.NEW_LAYERS, lr, optim_cfg.BASE_LR_MULT)
    elif isinstance(model, nn.Module):
        params = model.parameters()
    else:
        params = model

    if name in ("adam", "amsgrad"):
        return torch.optim.Adam(
            params, lr=lr, weight_decay=weight_decay, betas=betas, amsgrad=(name == "amsgrad")
        )
    if name == "sgd":
        return torch.optim.SGD(
            params,
            lr=lr,
            momentum=optim_cfg.MOMENTUM,
            weight_decay=weight_decay,
            dampening=optim_cfg.SGD_DAMPNING,
            nesterov=optim_cfg.SGD_NESTEROV,
        )
    if name == "rmsprop":
        return torch.optim.RMSprop(
            params,
            lr=lr,
            momentum=optim_cfg.MOMENTUM,
            weight_decay=weight_decay,
            alpha=optim_cfg.RMSPROP_ALPHA,
        )
    if name == "radam":
        return RAdam(params, lr=lr, weight_decay=weight_decay, betas=betas)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas)
