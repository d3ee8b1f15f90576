"""Trainers: zero-shot CLIP, CoOp, CoCoOp (the unprotected baselines) and IP-CLIP."""
import importlib

TRAINER_MODULES = ("trainers.zsclip", "trainers.coop", "trainers.cocoop", "trainers.ipclip.trainer")
DATASET_MODULES = ("datasets",)


def register_all():
    """Import every trainer and dataset module so that they register themselves in the registries."""
    for name in DATASET_MODULES + TRAINER_MODULES:
        importlib.import_module(name)
