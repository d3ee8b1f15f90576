"""Classification evaluator: accuracy, macro-F1, per-class accuracy and confusion matrix.

Predictions stay on the model's device until `evaluate()`, which synchronises once; a per-batch
``.item()`` would stall the GPU pipeline on every test batch.
"""
import os.path as osp
from collections import OrderedDict

import torch

from dassl.utils import mkdir_if_missing

from .build import EVALUATOR_REGISTRY

__all__ = ["EvaluatorBase", "Classification"]


class EvaluatorBase:
    """Interface: `reset()`, then `process(model_output, ground_truth)` per batch, then `evaluate()`."""

    def __init__(self, cfg):
        self.cfg = cfg

    def reset(self):
        raise NotImplementedError

    def process(self, mo, gt):
        raise NotImplementedError

    def evaluate(self):
        raise NotImplementedError


def _per_class_counts(y_true, y_pred, num_classes):
    """Return (support, true positives, predicted count) per class as int64 tensors."""
    support = torch.bincount(y_true, minlength=num_classes)
    hits = torch.bincount(y_true[y_true == y_pred], minlength=num_classes)
    predicted = torch.bincount(y_pred, minlength=num_classes)
    return support, hits, predicted


def macro_f1_score(y_true, y_pred):
    """Mean F1 over the labels present in `y_true` (sklearn's ``f1_score(..., average="macro",
    labels=np.unique(y_true))``), as a fraction in [0, 1]."""
    num_classes = int(max(y_true.max(), y_pred.max())) + 1
    support, tp, predicted = _per_class_counts(y_true, y_pred, num_classes)
    present = support > 0
    # F1 = 2TP / (2TP + FP + FN) = 2TP / (predicted + support); support > 0 keeps it finite.
    f1 = 2.0 * tp[present].double() / (predicted[present] + support[present]).double()
    return float(f1.mean())


@EVALUATOR_REGISTRY.register()
class Classification(EvaluatorBase):
    """Evaluate single-label classification from logits ``[N, C]`` and labels ``[N]``."""

    def __init__(self, cfg, lab2cname=None, **kwargs):
        super().__init__(cfg)
        self._lab2cname = lab2cname
        if cfg.TEST.PER_CLASS_RESULT and lab2cname is None:
            raise ValueError(
                "TEST.PER_CLASS_RESULT=True needs class names: build the evaluator with "
                "lab2cname={label: classname} (trainers pass dm.lab2cname)"
            )
        self.reset()

    def reset(self):
        self._correct = 0
        self._total = 0
        self._y_true = []
        self._y_pred = []

    def process(self, mo, gt):
        """Record the argmax predictions of logits `mo` ``[N, C]`` against labels `gt` ``[N]``."""
        if mo.dim() != 2:
            raise ValueError(
                f"Classification.process expects logits of shape [batch, num_classes], got {tuple(mo.shape)}"
            )
        gt = gt.reshape(-1)
        if gt.numel() != mo.size(0):
            raise ValueError(
                f"Classification.process got {mo.size(0)} predictions but {gt.numel()} labels"
            )
        pred = mo.detach().argmax(dim=1)
        self._y_pred.append(pred)
        self._y_true.append(gt.detach().to(device=pred.device, dtype=torch.long))

    def hits(self):
        """Per-sample correctness [N] (bool, CPU) of everything processed since reset(), in
        order: what a paired comparison of two models on the same images needs."""
        if not self._y_true:
            raise RuntimeError("Classification.hits() called before any process(): the test loader was empty?")
        return (torch.cat(self._y_pred) == torch.cat(self._y_true)).cpu()

    def evaluate(self):
        if not self._y_true:
            raise RuntimeError(
                "Classification.evaluate() called before any process(): the test loader was empty?"
            )
        # The one host/device synchronisation of the evaluation.
        y_true = torch.cat(self._y_true).cpu()
        y_pred = torch.cat(self._y_pred).cpu()
        if int(y_true.min()) < 0:
            raise ValueError(f"labels must be >= 0, got {int(y_true.min())}")

        self._total = int(y_true.numel())
        self._correct = int((y_true == y_pred).sum())
        acc = 100.0 * self._correct / self._total
        err = 100.0 - acc
        macro_f1 = 100.0 * macro_f1_score(y_true, y_pred)

        results = OrderedDict()
        results["accuracy"] = acc
        results["error_rate"] = err
        results["macro_f1"] = macro_f1

        print(
            "=> result\n"
            f"* total: {self._total:,}\n"
            f"* correct: {self._correct:,}\n"
            f"* accuracy: {acc:.1f}%\n"
            f"* error: {err:.1f}%\n"
            f"* macro_f1: {macro_f1:.1f}%"
        )

        if self.cfg.TEST.PER_CLASS_RESULT:
            results["perclass_accuracy"] = self._print_per_class(y_true, y_pred)
        if self.cfg.TEST.COMPUTE_CMAT:
            self._save_confusion_matrix(y_true, y_pred)
        return results

    def _num_classes(self, y_true, y_pred):
        num = int(max(y_true.max(), y_pred.max())) + 1
        if self._lab2cname:
            num = max(num, max(self._lab2cname) + 1)
        return num

    def _print_per_class(self, y_true, y_pred):
        num_classes = self._num_classes(y_true, y_pred)
        support, hits, _ = _per_class_counts(y_true, y_pred, num_classes)
        labels = torch.nonzero(support).flatten().tolist()
        unknown = [label for label in labels if label not in self._lab2cname]
        if unknown:
            raise ValueError(
                f"labels {unknown} occur in the test data but not in lab2cname "
                f"(known labels: {sorted(self._lab2cname)}); the dataset's class list is inconsistent"
            )
        print("=> per-class result")
        accs = []
        for label in labels:
            total, correct = int(support[label]), int(hits[label])
            acc = 100.0 * correct / total
            accs.append(acc)
            print(
                f"* class: {label} ({self._lab2cname[label]})\t"
                f"total: {total:,}\t"
                f"correct: {correct:,}\t"
                f"acc: {acc:.1f}%"
            )
        mean_acc = sum(accs) / len(accs)
        print(f"* average: {mean_acc:.1f}%")
        return mean_acc

    def _save_confusion_matrix(self, y_true, y_pred):
        """Save the row-normalised confusion matrix (row = true label) as a float tensor.

        Row/column i is label i for every class (classes absent from the data get zero rows), so
        indices always match labels.
        """
        num_classes = self._num_classes(y_true, y_pred)
        counts = torch.bincount(y_true * num_classes + y_pred, minlength=num_classes**2)
        cmat = counts.reshape(num_classes, num_classes).double()
        row_sums = cmat.sum(dim=1, keepdim=True)
        cmat = torch.where(row_sums > 0, cmat / row_sums.clamp_min(1), torch.zeros_like(cmat)).float()
        mkdir_if_missing(self.cfg.OUTPUT_DIR)
        save_path = osp.join(self.cfg.OUTPUT_DIR, "cmat.pt")
        torch.save(cmat, save_path)
        print(f"Confusion matrix is saved to {save_path}")
