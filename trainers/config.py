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
    # Images generated per class and per domain (the test split takes DATASET.TEST_FRACTION of them).
    cfg.DATASET.TOY.IMAGES_PER_CLASS = 50
    # Side of the stored square PNGs in pixels (the tiny CLIP reads INPUT.SIZE 32 from them).
    cfg.DATASET.TOY.IMAGE_SIZE = 40
    # Seed of the generator; a tree made with other values is refused, never mixed.
    cfg.DATASET.TOY.SEED = 0

    # ---- Baselines (trainers/zsclip.py, coop.py, cocoop.py) ----
    # PREC (all three): fp16 (CLIP weights in half, upstream default), fp32, or amp (fp32 weights,
    # float16 autocast + GradScaler). fp16/amp need CUDA; elsewhere they run in fp32 with one warning.
    cfg.TRAINER.ZSCLIP = CN()
    cfg.TRAINER.ZSCLIP.PREC = "fp16"
    # Prompt template with one "{}" for the class name; "" = the dataset's entry in zsclip.PROMPT_TEMPLATES.
    cfg.TRAINER.ZSCLIP.TEMPLATE = ""
    cfg.TRAINER.COOP = CN()
    cfg.TRAINER.COOP.N_CTX = 16  # number of learned context tokens
    cfg.TRAINER.COOP.CSC = False  # class-specific contexts (one per class) instead of a shared one
    cfg.TRAINER.COOP.CTX_INIT = ""  # init words, e.g. "a photo of a" (sets N_CTX to their token count)
    cfg.TRAINER.COOP.PREC = "fp16"
    cfg.TRAINER.COOP.CLASS_TOKEN_POSITION = "end"  # end, middle or front
    cfg.TRAINER.COCOOP = CN()
    cfg.TRAINER.COCOOP.N_CTX = 16
    cfg.TRAINER.COCOOP.CTX_INIT = ""
    cfg.TRAINER.COCOOP.PREC = "fp16"
    # Prompts (B images x C classes) per text-encoder call; 0 = all in one call. Lower it on OOM.
    cfg.TRAINER.COCOOP.TEXT_CHUNK_SIZE = 0

    # ---- IP-CLIP (trainers/ipclip/) ----
    cfg.TRAINER.IPCLIP = CN()
    return cfg
