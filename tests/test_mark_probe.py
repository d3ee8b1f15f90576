"""tools/mark_probe.py: the linear probe that says whether a mark is visible to the projector's
input, and the per-domain table (random-weight tiny CLIP: the probe reads statistics, not meaning)."""
import pytest
import torch

from tools import mark_probe


def test_identical_versions_give_exactly_chance():
    """An image and its 'marked' copy with the same statistics: the probe predicts both alike, so it
    is right on exactly one of each pair."""
    clean = torch.randn(40, 16, generator=torch.Generator().manual_seed(0))
    assert mark_probe.probe_accuracy(clean.clone(), clean) == 50.0


def test_a_shift_along_one_statistic_is_found():
    """A mark that moves one statistic by 6 within-domain stds (the best possible probe: 99.9 %)."""
    clean = torch.randn(40, 16, generator=torch.Generator().manual_seed(0))
    marked = clean.clone()
    marked[:, 3] += 6.0
    assert mark_probe.probe_accuracy(marked, clean) >= 95.0


def test_a_mark_without_a_common_direction_stays_near_chance():
    """Each marked image moves its own random way (no direction shared by the mark): nothing for a
    linear probe to find, although every marked row differs from its clean twin."""
    generator = torch.Generator().manual_seed(1)
    clean = 10 * torch.randn(60, 8, generator=generator)
    marked = clean + 0.5 * torch.randn(60, 8, generator=generator)
    assert mark_probe.probe_accuracy(marked, clean) <= 70.0


def test_mismatched_features_are_refused():
    with pytest.raises(ValueError, match="same shape"):
        mark_probe.probe_accuracy(torch.zeros(10, 4), torch.zeros(9, 4))


def test_table_per_domain_on_the_synthetic_benchmark(toy_root, random_clip_file):
    """An opaque black grid over 75 % of the pixels moves every domain's statistics: the probe finds it
    on each; one row per domain with zero-shot accuracies in [0, 100]."""
    rows = mark_probe.probe_backbone(
        str(toy_root), str(random_clip_file), "configs/datasets/toy_domains.yaml",
        "configs/trainers/ZeroshotCLIP/tiny.yaml",
        ["INPUT.WATERMARK.PATTERN", "grid", "INPUT.WATERMARK.COLOR", "(0, 0, 0)", "INPUT.WATERMARK.ALPHA", "1.0"])
    assert [row[1] for row in rows] == ["photo", "clipart", "sketch", "painting"]
    for backbone, domain, probe, clean, marked in rows:
        assert probe >= 90.0, (domain, probe)
        assert 0.0 <= clean <= 100.0 and 0.0 <= marked <= 100.0
    table = mark_probe.format_rows(rows, "markdown")
    assert table.count("\n") == len(rows) + 1 and "probe marked vs clean" in table
