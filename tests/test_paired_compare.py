"""tools/paired_compare.py: the paired figures of two runs on the same test images."""
import pytest
import torch

from tools.paired_compare import main, mcnemar_exact, paired_summary


def test_mcnemar_exact_is_the_two_sided_binomial_test_on_the_discordant_images():
    assert mcnemar_exact(3, 7) == pytest.approx(2 * (1 + 10 + 45 + 120) / 2 ** 10)
    assert mcnemar_exact(7, 3) == mcnemar_exact(3, 7)
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 2 ** 5)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(5, 5) == 1.0


def test_paired_summary_counts_the_images_one_model_gets_right_and_the_other_wrong():
    a = torch.tensor([1, 1, 1, 0, 0, 1, 1, 0], dtype=torch.bool)
    b = torch.tensor([1, 0, 1, 1, 0, 1, 0, 0], dtype=torch.bool)
    s = paired_summary(a, b)
    assert (s["n"], s["only_a"], s["only_b"]) == (8, 2, 1)
    assert s["acc_a"] == pytest.approx(62.5) and s["acc_b"] == pytest.approx(50.0)
    diff = a.float() - b.float()
    assert s["se_diff"] == pytest.approx(100 * float(diff.std()) / 8 ** 0.5)
    same = paired_summary(a, a)
    assert same["se_diff"] == 0 and same["p_mcnemar"] == 1.0
    with pytest.raises(ValueError, match="same length"):
        paired_summary(a, b[:5])


def test_a_folder_without_a_run_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path), str(tmp_path), "--test-set", "photo=photo"]) == 2
    assert "results.json" in capsys.readouterr().err
