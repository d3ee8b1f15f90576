"""tools/style_distance.py: the distance from the authorized style in the projector's standardised
input, its AUC against the authorized images, and the share a distance threshold lets through."""
import torch

from tools import style_distance


def test_distance_of_the_fitted_images_is_one_and_a_shift_adds_to_it():
    rows = torch.randn(400, 8, generator=torch.Generator().manual_seed(0)) * 3 + 1
    d = style_distance.standardized_distance(rows, rows, min_std=0.1, clip=0.0)
    assert abs(d.pow(2).mean().item() - 1.0) < 0.01  # z has unit variance per feature
    shifted = rows.clone()
    shifted[:, 2] += 3 * 4  # 4 stds along one feature: RMS^2 grows by 16 / 8
    far = style_distance.standardized_distance(shifted, rows, min_std=0.1, clip=0.0)
    assert abs(far.pow(2).mean().item() - 3.0) < 0.1
    clipped = style_distance.standardized_distance(rows + 1000, rows, min_std=0.1, clip=5.0)
    assert clipped.max() <= 5.0


def test_auc_is_50_for_the_same_distribution_and_100_for_a_further_one():
    d = torch.rand(200, generator=torch.Generator().manual_seed(1))
    assert style_distance.auc_further(d, d) == 50.0
    assert style_distance.auc_further(d + 1.0, d) == 100.0
    assert style_distance.auc_further(d - 1.0, d) == 0.0


def test_table_on_the_synthetic_benchmark(toy_root, random_clip_file):
    """Every domain clean and keyed, plus the re-styled keyed source: the authorized reference sits at
    AUC ~50 and is let through at its maximum's threshold; re-styled copies at full strength are
    further than (nearly) every authorized image."""
    def measure():
        return style_distance.measure_backbone(
            toy_root, str(random_clip_file), "photo", "configs/datasets/toy_domains_authorization.yaml",
            "configs/trainers/ZeroshotCLIP/tiny.yaml", [], restyle_strengths=[1.0],
            restyle_opts=["FEATURE_RESTYLE.MU_SHIFT", 2.0, "FEATURE_RESTYLE.SIGMA_SCALE", 1.0])

    rows = measure()
    assert measure() == rows  # the re-style's random draws are seeded: a rerun gives the same table
    by_set = {row[1]: row for row in rows}
    assert {"photo", "photo_wm", "clipart_wm", "painting", "photo_wm restyled 1"} <= set(by_set)
    _, _, distance, auc, *through = by_set["photo_wm"]
    assert 30.0 <= auc <= 70.0 and through[-1] >= 50.0
    assert by_set["photo_wm restyled 1"][3] >= 95.0
    for _, name, distance, auc, *through in rows:
        assert distance > 0 and all(0.0 <= t <= 100.0 for t in through), name
    table = style_distance.format_rows(rows, "markdown")
    assert table.count("\n") == len(rows) + 1 and "through at q95" in table
