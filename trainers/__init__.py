"""Trainers: zero-shot CLIP, CoOp, CoCoOp (the unprotected baselines) and IP-CLIP."""
import importlib
import warnings

# The `clip` package imports pkg_resources, which warns on every import with setuptools >= 81.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

TRAINER_MODULES = ("trainers.zsclip", "trainers.coop", "trainers.cocoop", "trainers.ipclip.trainer",
                   "trainers.ipclip.attacks.finetune", "trainers.ipclip.attacks.style_transplant",
                   "trainers.ipclip.attacks.kshot_coop")
DATASET_MODULES = ("datasets", "trainers.ipclip.transforms", "trainers.ipclip.attacks")


def register_all():
    """Import every trainer and dataset module so that they register themselves in the registries."""
    for name in DATASET_MODULES + TRAINER_MODULES:
        importlib.import_module(name)
