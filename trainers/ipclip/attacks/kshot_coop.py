"""The fine-tuning attack's baseline: what the attacker gets without the protected model at all, CoOp
trained from scratch on the same shots (attacker_data.shots_loader: the same ATTACK.FINETUNE.SHOTS,
ATTACK.DATA_SEED and scenario data, hence the same images) for the same ATTACK.FINETUNE.EPOCHS, with
CoOp's own optimiser and learning rate (its trainer config, e.g. configs/trainers/CoOp/tiny.yaml).

Trainer `KShotCoOp` (tools/attack.py plans it in RUN/attacks/baseline_coop_k<SHOTS>): CoOp whose
training stream is the attacker's shots; everything else (model, test sets, checkpoints) is CoOp's.
"""
from dassl.engine import TRAINER_REGISTRY

from ...coop import CoOp
from .attacker_data import shots_loader
from .schedule import attacker_optim_cfg, use_schedule

__all__ = ["KShotCoOp"]


@TRAINER_REGISTRY.register()
class KShotCoOp(CoOp):
    def build_data_loader(self):
        super().build_data_loader()
        self.train_loader_x = shots_loader(self.cfg, self.dm)

    def build_model(self):
        super().build_model()
        (name,) = self.get_model_names()
        use_schedule(self, name, self.model.prompt_learner, attacker_optim_cfg(self.cfg))
        print(f"k-shot CoOp baseline: {self.max_epoch} epochs on the attacker's shots")
