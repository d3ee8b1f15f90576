"""Config files that build on another one: a top-level `_BASE_: other.yaml` key.

A scenario's trainer config differs from the trainer's main config in a few keys; `_BASE_` lets it
state only those (the base is merged first, then the file), instead of a full copy that drifts.
Files without `_BASE_` merge exactly like yacs' `merge_from_file`.
"""
import os.path as osp

import yaml
from yacs.config import CfgNode as CN

from dassl.errors import ConfigError, MissingFileError

BASE_KEY = "_BASE_"

__all__ = ["BASE_KEY", "merge_config_file"]


def _read(path):
    with open(path) as f:
        data = yaml.safe_load(f)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping of config keys, got {type(data).__name__}")
    return data


def merge_config_file(cfg, path, _chain=()):
    """Merge the YAML file at `path` into `cfg`, its `_BASE_` chain first (a path relative to the file)."""
    path = osp.abspath(path)
    if path in _chain:
        cycle = " -> ".join(_chain + (path,))
        raise ConfigError(f"config files form a {BASE_KEY} cycle: {cycle}")
    data = _read(path)
    base = data.pop(BASE_KEY, None)
    if base is not None:
        if not isinstance(base, str) or not base:
            raise ConfigError(f"{BASE_KEY} in {path!r} must be the path of another config file, got {base!r}")
        base_path = osp.join(osp.dirname(path), base)
        if not osp.isfile(base_path):
            raise MissingFileError(
                f"{BASE_KEY} of {path!r} names {base!r}, but {base_path!r} does not exist "
                "(the path is relative to the file that names it)"
            )
        merge_config_file(cfg, base_path, _chain + (path,))
    cfg.merge_from_other_cfg(CN(data))
    return cfg
