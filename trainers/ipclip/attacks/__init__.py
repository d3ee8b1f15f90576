"""Attacks on a protected model (issue: does the protection survive an attacker?). input_attacks:
black-box transforms of the input, registered as pre-transforms when this package is imported
(trainers.register_all does); their keys are ATTACK.* (trainers/config.py)."""
from . import input_attacks  # noqa: F401  (registers them)
