from .config_file import merge_config_file
from .defaults import get_cfg_default


def clean_cfg(cfg, trainer):
    """Drop every TRAINER.<X> node except NAME and the one of `trainer` (upstream tools/train.py)."""
    keep = {"NAME", trainer.upper()}
    for key in [k for k in cfg.TRAINER.keys() if k not in keep]:
        cfg.TRAINER.pop(key)
