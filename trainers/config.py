"""Every project-level config key (beyond the engine's) with its default, in one place.

`extend_cfg(cfg)` is called by train.py (and the tests) before any YAML or CLI value is merged, so
that yacs accepts these keys. Each section belongs to one component; the README's config table
documents them.
"""
from yacs.config import CfgNode as CN


def extend_cfg(cfg):
    # ---- CLIP loading (trainers/clip_backbone.py, trainers/tiny_clip.py) ----
    cfg.MODEL.CLIP = CN()
    # Where OpenAI weights are downloaded to / looked up, and where tiny CLIP weights are cached.
    cfg.MODEL.CLIP.CACHE_DIR = "~/.cache/clip"

    # ---- Synthetic benchmark (datasets/toy_domains.py) ----
    cfg.DATASET.TOY = CN()

    # ---- Baselines (trainers/zsclip.py, coop.py, cocoop.py) ----
    cfg.TRAINER.ZSCLIP = CN()
    cfg.TRAINER.COOP = CN()
    cfg.TRAINER.COCOOP = CN()

    # ---- IP-CLIP (trainers/ipclip/) ----
    cfg.TRAINER.IPCLIP = CN()
    return cfg
