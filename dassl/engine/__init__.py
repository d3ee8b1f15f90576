"""Trainer registry and life cycle. Upstream's 20 bundled DA/DG/SSL trainers are out of scope."""
from .build import TRAINER_REGISTRY, build_trainer  # isort:skip
from .trainer import NonFiniteLossError, SimpleTrainer, TrainerBase, TrainerX, TrainerXU  # isort:skip
