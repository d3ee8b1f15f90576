"""The attacker's training schedule, shared by the fine-tuning attack and its from-scratch baseline:
the trainer's own optimiser and LR scheduler (OPTIM), for ATTACK.FINETUNE.EPOCHS epochs over the
attacker's shots, so that both spend the same budget on the same images.

The run's config keeps its OPTIM.MAX_EPOCH (the fine-tuning attack reads the protected model's epoch
from it, and the record of the attack shows which model it attacked); the schedule is built from a
copy, and the trainer's optimiser, scheduler and epoch count are replaced after build_model.
"""
from dassl.errors import ConfigError
from dassl.optim import build_lr_scheduler, build_optimizer

__all__ = ["attacker_optim_cfg", "use_schedule"]


def attacker_optim_cfg(cfg, lr=0.0):
    """A copy of cfg.OPTIM with MAX_EPOCH = ATTACK.FINETUNE.EPOCHS and, when `lr` > 0, LR = lr."""
    epochs = cfg.ATTACK.FINETUNE.EPOCHS
    if epochs < 1:
        raise ConfigError(f"ATTACK.FINETUNE.EPOCHS must be >= 1 (epochs over the attacker's shots), got {epochs}")
    if lr < 0:
        raise ConfigError(f"ATTACK.FINETUNE.LR must be >= 0 (0: the protected run's OPTIM.LR), got {lr}")
    optim = cfg.OPTIM.clone()
    optim.defrost()
    optim.MAX_EPOCH = epochs
    if lr > 0:
        optim.LR = float(lr)
    optim.freeze()
    return optim


def use_schedule(trainer, model_name, params, optim_cfg):
    """Give the registered model `model_name` a fresh optimiser over `params` and its scheduler,
    both from `optim_cfg`, and make the trainer run `optim_cfg.MAX_EPOCH` epochs."""
    optim = build_optimizer(params, optim_cfg)
    sched = build_lr_scheduler(optim, optim_cfg)
    trainer.replace_optim(model_name, optim, sched)
    trainer.optim, trainer.sched = optim, sched
    trainer.max_epoch = optim_cfg.MAX_EPOCH
