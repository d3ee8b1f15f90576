"""tools/plot_results.py on the committed results fixture tree (see tests/test_parse_results.py for it)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tools import parse_results as pr
from tools import plot_results as plot

REPO = Path(__file__).resolve().parents[1]
FULL_TREE = REPO / "tests" / "fixtures" / "results_tree"
SCENARIOS = FULL_TREE / "scenarios" / "ToyDomains"
# IPCLIP target-free seed 1: tests at epochs 1 and 2 (epoch 3 only trains; its results are 'final')
RUN_WITH_EPOCHS = SCENARIOS / "IPCLIP" / "tiny" / "photo_target_free" / "seed1"
RUN_WITHOUT_EPOCHS = SCENARIOS / "IPCLIP" / "tiny" / "photo_target_free" / "seed2"
TARGET_SPECIFIED_RUN = FULL_TREE / "ToyDomains" / "IPCLIP" / "tiny" / "photo_sketch" / "seed1"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_main(capsys, *argv):
    code = plot.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_png(path: Path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    with Image.open(path) as image:
        image.load()
        assert image.width > 300 and image.height > 200
        # something was drawn: far more than the white background and a frame
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 20


def test_one_png_per_scenario_table(tmp_path, capsys):
    code, out, err = run_main(capsys, FULL_TREE, "--out", tmp_path / "figs")
    assert code == 0 and err == ""
    names = ["results_target_specified.png", "results_target_free.png", "results_ownership.png",
             "results_authorization.png"]
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(names)
    for name in names:
        assert_png(tmp_path / "figs" / name)
        assert f"Wrote {tmp_path / 'figs' / name}" in out


def test_bars_use_the_roles_and_seed_statistics_of_parse_results():
    summaries, _ = pr.aggregate(pr.group_runs(pr.load_runs(FULL_TREE)))
    panels = plot.panels_by_scenario(pr.pair_with_references(summaries))
    assert list(panels) == ["target_specified", "target_free", "ownership", "authorization"]
    (tf,) = panels["target_free"][("ToyDomains", "tiny")]
    # u = mean over clipart, sketch, painting per seed, then over seeds:
    #   CoOp seed1 (70+60+50)/3 = 60, seed2 (74+62+56)/3 = 64 -> 62 ± 2
    #   IPCLIP seed1 (10+6+8)/3 = 8, seed2 (14+4+12)/3 = 10 -> 9 ± 1
    assert (tf.reference_u.mean, tf.reference_u.std) == pytest.approx((62.0, 2.0))
    assert (tf.ip_u.mean, tf.ip_u.std) == pytest.approx((9.0, 1.0))
    assert (tf.reference_a.mean, tf.ip_a.mean) == pytest.approx((91.0, 87.0))
    (own,) = panels["ownership"][("ToyDomains", "tiny")]
    assert (own.reference_u.mean, own.reference_u.std) == pytest.approx((86.0, 2.0))  # (84, 88)
    (auth,) = panels["authorization"][("ToyDomains", "tiny")]
    assert auth.reference_a is None and auth.reference_u is None  # no CoOp reference
    assert (auth.ip_a.mean, auth.ip_a.std) == pytest.approx((86.0, 2.0))  # photo_wm (84, 88)
    ts = panels["target_specified"][("ToyDomains", "tiny")]
    assert [b.pair for b in ts] == ["photo -> sketch", "sketch -> photo"]
    # IPCLIP photo->sketch unauthorized (5, 8, 2): mean 5, population std sqrt(18/3)
    assert (ts[0].ip_u.mean, ts[0].ip_u.std) == pytest.approx((5.0, 6 ** 0.5))


def test_no_ip_clip_runs_is_a_clear_error(tmp_path, capsys):
    folder = tmp_path / "ToyDomains" / "CoOp" / "c" / "a_b" / "seed1"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({
        "format": 1, "finished": True, "run": {"dataset": "ToyDomains", "trainer": "CoOp", "seed": 1,
                                               "source_domains": ["a"], "target_domains": ["b"]},
        "final": {"authorized": {"accuracy": 90.0}, "unauthorized": {"accuracy": 70.0}}}))
    code, _, err = run_main(capsys, tmp_path, "--out", tmp_path / "figs")
    assert code == 1 and "no IPCLIP group" in err and "parse_results.py" in err
    assert not (tmp_path / "figs").exists()
    code, _, err = run_main(capsys, tmp_path / "empty", "--out", tmp_path / "figs")
    assert code == 1 and "is not a folder" in err


def test_curves_of_runs_with_per_epoch_results(tmp_path, capsys):
    code, out, err = run_main(capsys, "--curves", RUN_WITH_EPOCHS, TARGET_SPECIFIED_RUN / "results.json",
                              "--out", tmp_path)
    assert code == 0 and err == ""
    written = sorted(tmp_path.iterdir())
    assert [p.name for p in written] == ["curves_ToyDomains_IPCLIP_tiny_photo_sketch_seed1.png",
                                         "curves_ToyDomains_IPCLIP_tiny_photo_target_free_seed1.png"]
    for path in written:
        assert_png(path)
        assert str(path) in out


def test_curve_values_come_from_the_epochs():
    run = pr.read_results_file(RUN_WITH_EPOCHS / "results.json")
    curves = plot.epoch_curves(run)
    assert list(curves) == ["authorized", "photo", "clipart", "sketch", "painting"]
    assert curves["clipart"] == [(1, 40.0), (2, 20.0)]
    assert plot.loss_curves(run) == {"loss": [(1, 2.0), (2, 1.5), (3, 1.1)]}  # 'acc' is left out


def test_run_without_per_epoch_results_says_how_to_get_them(tmp_path, capsys):
    code, out, err = run_main(capsys, "--curves", RUN_WITH_EPOCHS, RUN_WITHOUT_EPOCHS, "--out", tmp_path / "f")
    assert code == 1 and out == ""
    assert "set TEST.EVAL_FREQ 1" in err and "photo_target_free/seed2/results.json" in err
    assert not (tmp_path / "f").exists()  # every run is checked before anything is written
    # epochs that only trained (TEST.EVAL_FREQ 0) are the same case
    folder = tmp_path / "run"
    folder.mkdir()
    data = json.loads((RUN_WITH_EPOCHS / "results.json").read_text())
    data["epochs"] = [{"epoch": e["epoch"], "train": e["train"]} for e in data["epochs"]]
    (folder / "results.json").write_text(json.dumps(data))
    code, _, err = run_main(capsys, "--curves", folder, "--out", tmp_path / "f")
    assert code == 1 and "set TEST.EVAL_FREQ 1" in err


def test_bad_curve_arguments(tmp_path, capsys):
    code, _, err = run_main(capsys, "--curves", tmp_path / "nowhere", "--out", tmp_path)
    assert code == 1 and "does not exist" in err
    code, _, err = run_main(capsys, "--curves", SCENARIOS / "IPCLIP", "--out", tmp_path)
    assert code == 1 and "has no results.json" in err and "seed1" in err  # names run folders below
    with pytest.raises(SystemExit) as exc:
        plot.main([str(FULL_TREE), "--curves", str(RUN_WITH_EPOCHS)])
    assert exc.value.code == 2 and "not both" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        plot.main([])


def test_reuses_parse_results():
    assert plot.pr is pr  # the same module: groups, references and roles are not re-implemented


def test_script_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "tools/plot_results.py", "--curves", str(RUN_WITH_EPOCHS),
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (path,) = tmp_path.iterdir()
    assert_png(path)
