"""dassl.evaluation and dassl.metrics: accuracy, distances, the Classification evaluator."""

import pytest
import torch

from dassl.config import get_cfg_default
from dassl.evaluation import EVALUATOR_REGISTRY, Classification, EvaluatorBase, build_evaluator
from dassl.metrics import compute_accuracy, compute_distance_matrix, cosine_distance, euclidean_squared_distance


def one_hot_logits(preds, num_classes):
    logits = torch.randn(len(preds), num_classes) * 0.1
    logits[torch.arange(len(preds)), torch.tensor(preds)] = 5.0
    return logits


def reference_macro_f1(y_true, y_pred):
    """Plain-python F1 per label present in y_true, averaged (sklearn's macro over unique(y_true))."""
    scores = []
    for label in sorted(set(y_true)):
        tp = sum(t == label and p == label for t, p in zip(y_true, y_pred))
        fp = sum(t != label and p == label for t, p in zip(y_true, y_pred))
        fn = sum(t == label and p != label for t, p in zip(y_true, y_pred))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn)
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return 100.0 * sum(scores) / len(scores)


def make_cfg(tmp_path=None, **test_keys):
    cfg = get_cfg_default()
    for key, value in test_keys.items():
        setattr(cfg.TEST, key, value)
    if tmp_path is not None:
        cfg.OUTPUT_DIR = str(tmp_path)
    return cfg


# ------------------------------------------------------------------ metrics


def test_compute_accuracy_topk():
    output = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4], [0.3, 0.3, 0.4], [0.2, 0.5, 0.3]])
    target = torch.tensor([1, 2, 0, 0])
    top1, top2 = compute_accuracy(output, target, topk=(1, 2))
    assert isinstance(top1, torch.Tensor) and top1.shape == (1,)
    assert top1.item() == pytest.approx(25.0)  # only sample 0
    assert top2.item() == pytest.approx(75.0)  # samples 0, 1 (0.4 second), 2 (0.3 tied second)
    (again,) = compute_accuracy((output, "aux"), target)
    assert again.item() == pytest.approx(25.0)
    with pytest.raises(ValueError, match="labels"):
        compute_accuracy(output, target[:3])
    with pytest.raises(ValueError, match="top-5"):
        compute_accuracy(output, target, topk=(5,))


def test_distances_match_brute_force():
    torch.manual_seed(0)
    a, b = torch.randn(4, 3), torch.randn(5, 3)
    euc = compute_distance_matrix(a, b)
    cos = compute_distance_matrix(a, b, metric="cosine")
    for i in range(4):
        for j in range(5):
            assert euc[i, j] == pytest.approx(float(((a[i] - b[j]) ** 2).sum()), rel=1e-5, abs=1e-5)
            cos_sim = float(a[i] @ b[j]) / (float(a[i].norm()) * float(b[j].norm()))
            assert cos[i, j] == pytest.approx(1 - cos_sim, abs=1e-5)
    assert torch.all(euclidean_squared_distance(a, a).diagonal() >= 0)
    assert torch.allclose(cosine_distance(a, a).diagonal(), torch.zeros(4), atol=1e-6)
    with pytest.raises(ValueError, match="metric"):
        compute_distance_matrix(a, b, metric="manhattan")
    with pytest.raises(ValueError, match="dimensions"):
        compute_distance_matrix(a, torch.randn(2, 4))


# ------------------------------------------------------------------ evaluator


def test_build_evaluator(capsys):
    assert "Classification" in EVALUATOR_REGISTRY
    evaluator = build_evaluator(make_cfg(), lab2cname={0: "a"})
    assert isinstance(evaluator, Classification) and isinstance(evaluator, EvaluatorBase)
    assert capsys.readouterr().out == "Loading evaluator: Classification\n"
    with pytest.raises(ValueError, match="Classification"):
        build_evaluator(make_cfg(EVALUATOR="Clasification"))


def test_classification_results_and_printed_block(capsys):
    torch.manual_seed(0)
    num_classes = 4
    y_true = torch.randint(0, num_classes, (1234,))
    y_pred = torch.where(torch.rand(1234) < 0.7, y_true, torch.randint(0, num_classes, (1234,)))
    y_pred[y_true == 3] = 3  # one class with perfect recall
    evaluator = Classification(make_cfg())
    for start in range(0, 1234, 100):  # uneven last batch
        stop = start + 100
        evaluator.process(one_hot_logits(y_pred[start:stop].tolist(), num_classes), y_true[start:stop])
    results = evaluator.evaluate()

    correct = int((y_true == y_pred).sum())
    accuracy = 100.0 * correct / 1234
    macro_f1 = reference_macro_f1(y_true.tolist(), y_pred.tolist())
    assert list(results) == ["accuracy", "error_rate", "macro_f1"]
    assert results["accuracy"] == pytest.approx(accuracy)
    assert results["error_rate"] == pytest.approx(100.0 - accuracy)
    assert results["macro_f1"] == pytest.approx(macro_f1)
    assert evaluator._total == 1234 and evaluator._correct == correct
    assert type(evaluator._total) is int and type(evaluator._correct) is int
    assert torch.equal(evaluator.hits(), y_true == y_pred)  # per image, in the order processed

    assert capsys.readouterr().out == (
        "=> result\n"
        "* total: 1,234\n"
        f"* correct: {correct:,}\n"
        f"* accuracy: {accuracy:.1f}%\n"
        f"* error: {100.0 - accuracy:.1f}%\n"
        f"* macro_f1: {macro_f1:.1f}%\n"
    )
    assert correct >= 1000  # the block above really exercised the thousands separator

    evaluator.reset()
    with pytest.raises(RuntimeError, match="process"):
        evaluator.evaluate()
    with pytest.raises(RuntimeError, match="process"):
        evaluator.hits()


def test_macro_f1_ignores_labels_only_predicted():
    evaluator = Classification(make_cfg())
    # label 2 is predicted but never true: sklearn's macro over unique(y_true) leaves it out
    y_true, y_pred = [0, 0, 1, 1], [0, 2, 1, 1]
    evaluator.process(one_hot_logits(y_pred, 3), torch.tensor(y_true))
    results = evaluator.evaluate()
    f1_class0 = 2 * 1.0 * 0.5 / 1.5
    assert results["macro_f1"] == pytest.approx(100.0 * (f1_class0 + 1.0) / 2)
    assert results["macro_f1"] == pytest.approx(reference_macro_f1(y_true, y_pred))


def test_process_does_not_synchronise(monkeypatch):
    evaluator = Classification(make_cfg())

    def forbidden(self, *args, **kwargs):
        raise AssertionError("process() must not pull values to the host per batch")

    monkeypatch.setattr(torch.Tensor, "item", forbidden)
    monkeypatch.setattr(torch.Tensor, "tolist", forbidden)
    monkeypatch.setattr(torch.Tensor, "cpu", forbidden)
    monkeypatch.setattr(torch.Tensor, "numpy", forbidden)
    evaluator.process(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
    evaluator.process(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
    monkeypatch.undo()
    assert evaluator.evaluate()["accuracy"] == pytest.approx(200.0 / 3)


def test_process_rejects_bad_shapes():
    evaluator = Classification(make_cfg())
    with pytest.raises(ValueError, match="num_classes"):
        evaluator.process(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        evaluator.process(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))


def test_per_class_results_and_confusion_matrix(tmp_path, capsys):
    with pytest.raises(ValueError, match="lab2cname"):
        Classification(make_cfg(PER_CLASS_RESULT=True))

    lab2cname = {0: "cat", 1: "dog", 2: "fox", 3: "owl"}  # owl never occurs
    cfg = make_cfg(tmp_path, PER_CLASS_RESULT=True, COMPUTE_CMAT=True)
    evaluator = Classification(cfg, lab2cname=lab2cname)
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 0, 1, 1, 0, 2, 2, 2, 0]
    evaluator.process(one_hot_logits(y_pred[:4], 4), torch.tensor(y_true[:4]))
    evaluator.process(one_hot_logits(y_pred[4:], 4), torch.tensor(y_true[4:]))
    results = evaluator.evaluate()

    per_class = [100 * 2 / 3, 100 * 1 / 2, 100 * 3 / 4]
    assert results["perclass_accuracy"] == pytest.approx(sum(per_class) / 3)
    out = capsys.readouterr().out
    assert (
        "=> per-class result\n"
        f"* class: 0 (cat)\ttotal: 3\tcorrect: 2\tacc: {per_class[0]:.1f}%\n"
        f"* class: 1 (dog)\ttotal: 2\tcorrect: 1\tacc: {per_class[1]:.1f}%\n"
        f"* class: 2 (fox)\ttotal: 4\tcorrect: 3\tacc: {per_class[2]:.1f}%\n"
        f"* average: {sum(per_class) / 3:.1f}%\n"
    ) in out
    cmat_path = tmp_path / "cmat.pt"
    assert f"Confusion matrix is saved to {cmat_path}" in out

    cmat = torch.load(cmat_path, weights_only=True)
    assert isinstance(cmat, torch.Tensor) and cmat.shape == (4, 4)
    expected = torch.zeros(4, 4)
    for t, p in zip(y_true, y_pred):
        expected[t, p] += 1
    expected[:3] /= expected[:3].sum(dim=1, keepdim=True)
    assert torch.allclose(cmat, expected)
    assert torch.allclose(cmat[:3].sum(dim=1), torch.ones(3)) and torch.all(cmat[3] == 0)


def test_per_class_rejects_label_without_name():
    evaluator = Classification(make_cfg(PER_CLASS_RESULT=True), lab2cname={0: "cat"})
    evaluator.process(one_hot_logits([0, 1], 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="lab2cname"):
        evaluator.evaluate()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_classification_on_cuda_half_logits():
    evaluator = Classification(make_cfg())
    logits = one_hot_logits([0, 1, 1], 2).cuda().half()
    evaluator.process(logits, torch.tensor([0, 1, 0]).cuda())
    assert evaluator.evaluate()["accuracy"] == pytest.approx(200.0 / 3)
