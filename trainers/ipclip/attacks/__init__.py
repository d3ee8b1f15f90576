"""Attacks on a protected model (issue 12: does the protection survive an attacker?).

Pre-transforms, registered when this package is imported (trainers.register_all does):
input_attacks (black-box transforms of the input, ATTACK.* keys) and watermark_forgery
(`forged_watermark`, ATTACK.FORGERY.*). Trainers, registered by trainers.TRAINER_MODULES: finetune
(IPCLIPFinetuneAttack), style_transplant (IPCLIPStyleTransplant) and kshot_coop (KShotCoOp, the
fine-tuning attack's from-scratch baseline). attacker_data draws the attacker's images, schedule
holds the attacker's training schedule; tools/attack.py runs them all on a results tree.
"""
from . import input_attacks, watermark_forgery  # noqa: F401  (register their pre-transforms)
