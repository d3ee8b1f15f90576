"""Fine-tuning attack: the licensee holds the protected IP-CLIP (white-box) and labels a few images of
the data they want it to work on; they fine-tune its IP projector with plain cross-entropy.

Trainer `IPCLIPFinetuneAttack`, run by train.py like any run, normally planned by tools/attack.py:

    python train.py --run-config RUN --trainer IPCLIPFinetuneAttack --output-dir RUN/attacks/finetune_k4 \\
        ATTACK.FINETUNE.MODEL_DIR RUN ATTACK.FINETUNE.SHOTS 4

It builds the protected run's model (--run-config: the config RUN recorded), loads the learner of RUN
(ATTACK.FINETUNE.MODEL_DIR, checkpoint ATTACK.FINETUNE.LOAD_EPOCH; torch.load weights_only) and trains
it on the attacker's shots (attacker_data.shots_loader: ATTACK.FINETUNE.SHOTS labelled train images per
class of the scenario's attacker data) for ATTACK.FINETUNE.EPOCHS epochs (schedule.py), then tests
the run's test sets. Its folder gets checkpoints, resume and results.json like any run; RUN is only read.

Only the projector learns. Inference is `encode`'s logits: the style banks and the branch take no part
in it, so cross-entropy gives them no gradient (they are the training loss's helpers), and CLIP stays
frozen as in training.
"""
import os.path as osp

import torch.nn.functional as F

from dassl.engine import TRAINER_REGISTRY, SimpleTrainer
from dassl.errors import ConfigError, MissingFileError
from dassl.metrics import compute_accuracy

from ...precision import autocast, backward_and_step
from ..trainer import IPCLIP, trainable_parameters
from .attacker_data import shots_loader
from .schedule import attacker_optim_cfg, use_schedule

__all__ = ["IPCLIPFinetuneAttack", "protected_epoch"]


def protected_epoch(cfg):
    """The checkpoint epoch of the protected model: ATTACK.FINETUNE.LOAD_EPOCH, 0 = the run's last
    (OPTIM.MAX_EPOCH of its config: the model its results.json reports)."""
    epoch = cfg.ATTACK.FINETUNE.LOAD_EPOCH
    if epoch < 0:
        raise ConfigError(f"ATTACK.FINETUNE.LOAD_EPOCH must be >= 0 (0: the run's last epoch), got {epoch}")
    return epoch or cfg.OPTIM.MAX_EPOCH


def check_protected_dir(cfg):
    """ATTACK.FINETUNE.MODEL_DIR as an existing folder other than the attack's own."""
    model_dir = cfg.ATTACK.FINETUNE.MODEL_DIR
    if not model_dir:
        raise ConfigError("the fine-tuning attack starts from a protected run: set ATTACK.FINETUNE.MODEL_DIR "
                          "to its folder (tools/attack.py does)")
    if not osp.isdir(model_dir):
        raise MissingFileError(f"ATTACK.FINETUNE.MODEL_DIR {model_dir!r} is not a folder; pass the protected "
                               "IP-CLIP run's output folder")
    if osp.realpath(model_dir) == osp.realpath(cfg.OUTPUT_DIR):
        raise ConfigError(f"the attack would write into the protected run's folder {model_dir!r}; give it "
                          "its own --output-dir, e.g. RUN/attacks/finetune_k<SHOTS>")
    return model_dir


@TRAINER_REGISTRY.register()
class IPCLIPFinetuneAttack(IPCLIP):
    """IP-CLIP's model and checkpoints; an attacker's data, loss and schedule."""

    def build_data_loader(self):
        SimpleTrainer.build_data_loader(self)  # the run's data and test sets, no scenario streams
        self.train_loader_x = shots_loader(self.cfg, self.dm)
        self.train_loader_u = None

    def build_model(self):
        super().build_model()
        cfg = self.cfg
        model_dir = check_protected_dir(cfg)
        self.load_model(model_dir, epoch=protected_epoch(cfg))
        params = trainable_parameters(self.model, train_branch=False)
        (name,) = self.get_model_names()
        schedule = attacker_optim_cfg(cfg, cfg.ATTACK.FINETUNE.LR)
        use_schedule(self, name, params, schedule)
        print(f"Fine-tuning attack: {sum(p.numel() for p in params):,} projector parameters, "
              f"{schedule.MAX_EPOCH} epochs, {schedule.NAME} at lr {schedule.LR:g}")

    def before_train(self):
        # The protected model is complete (banks and standardiser come with its checkpoint): only the
        # engine's resume and record, none of IP-CLIP's bank filling.
        SimpleTrainer.before_train(self)

    def run_epoch(self):
        loader = iter(self.train_loader_x)
        self._run_batches(len(self.train_loader_x), lambda: (next(loader),))

    def forward_backward(self, batch):
        images, labels = batch["img"].to(self.device), batch["label"].to(self.device)
        with autocast(self.prec, self.device):
            logits = self.model(images)
            loss = F.cross_entropy(logits, labels)
        backward_and_step(loss, self.optim, self.scaler)
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return {"loss": loss.detach(), "acc": compute_accuracy(logits.detach(), labels)[0]}
