"""Evaluators (upstream Dassl's `dassl.evaluation`)."""
from .build import EVALUATOR_REGISTRY, build_evaluator
from .evaluator import Classification, EvaluatorBase

__all__ = ["build_evaluator", "EVALUATOR_REGISTRY", "EvaluatorBase", "Classification"]
