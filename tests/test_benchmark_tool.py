"""tools/benchmark.py: runs end to end, checks that both encoding paths agree, and its reference
really is the per-image, full-context encoding it claims to be. Speed ratios are not asserted."""
import json

import pytest

from tools import benchmark
from trainers.text_encoder import TextEncoder

TINY_ARGS = ["--models", "tiny-rn", "--batch", "2", "--classes", "3", "--repeats", "1", "--warmup", "0"]


def test_main_reports_positive_times_and_memory_and_runs_the_loss_check(capsys, tmp_path):
    out_file = tmp_path / "bench.json"
    rows = benchmark.main(TINY_ARGS + ["--json", str(out_file)])
    printed = capsys.readouterr().out

    assert len(rows) == 1
    row = rows[0]
    assert row["model"] == "tiny-rn" and row["images"] == "2+2" and row["classes"] == 3
    assert row["time_a_s"] > 0 and row["time_b_s"] > 0
    assert row["time_ratio"] == pytest.approx(row["time_b_s"] / row["time_a_s"])
    assert row["peak_mem_a_mib"] > 0 and row["peak_mem_b_mib"] > 0
    # The reference keeps every token of the context, the batched path only up to the last EOT.
    assert row["tokens_a"] < row["tokens_b"]
    assert row["loss_check"] == "passed"
    assert row["loss_a"] == pytest.approx(row["loss_b"], rel=1e-4, abs=1e-5)
    assert "tiny-rn: loss check passed" in printed
    assert "time b/a" in printed and "tiny-rn" in printed.split("time b/a")[-1]
    saved = json.loads(out_file.read_text())
    assert saved["rows"][0]["time_b_s"] == row["time_b_s"]
    assert saved["settings"]["models"] == ["tiny-rn"]


def test_reference_encodes_each_image_over_the_full_context(monkeypatch):
    calls = []
    original = TextEncoder.forward

    def spy(self, prompts, tokenized, truncate=True, **kwargs):
        calls.append((prompts.shape[0], prompts.shape[1], truncate, kwargs.get("max_length")))
        return original(self, prompts, tokenized, truncate=truncate, **kwargs)

    monkeypatch.setattr(TextEncoder, "forward", spy)
    case = benchmark.BenchmarkCase("tiny-rn", batch=2, num_classes=3, device="cpu", prec="fp32", seed=0)
    context_length = case.batched.template.tokenized_prompts.shape[1]

    case.losses("a")
    assert len(calls) == 1  # one call over all (2 + 2) x 3 prompts, truncated
    assert calls[0][0] == 4 * 3 and calls[0][2] is True
    calls.clear()

    case.losses("b")
    assert len(calls) == 4  # one call per image of both streams
    assert all(n == 3 and length == context_length and truncate is False and max_length is None
               for n, length, truncate, max_length in calls)


def test_paths_share_weights_so_one_optimizer_trains_both():
    case = benchmark.BenchmarkCase("tiny-rn", batch=2, num_classes=3, device="cpu", prec="fp32", seed=0)
    assert case.reference.projector is case.batched.projector
    assert case.reference.banks is case.batched.banks
    assert case.reference.clip_model is case.batched.clip_model
    # The banks were filled, so the style branch attends to real prototypes.
    assert bool(case.batched.banks.authorized.filled.any(dim=1).all())
    assert bool(case.batched.banks.unauthorized.filled.any())


def test_a_reference_that_disagrees_is_refused(monkeypatch):
    def wrong(self, prompts):
        # Every image gets the first image's text features: the wrong computation.
        text = benchmark.IPCLIPModel.encode_prompts(self, prompts)
        return text[:1].expand_as(text)

    monkeypatch.setattr(benchmark.PerImageFullContextIPCLIP, "encode_prompts", wrong)
    with pytest.raises(RuntimeError, match="not equivalent"):
        benchmark.main(TINY_ARGS)


def test_bad_arguments_are_rejected(capsys):
    with pytest.raises(SystemExit):
        benchmark.main(["--models", "tiny-rn", "--repeats", "0"])
    assert "--repeats must be at least 1" in capsys.readouterr().err
