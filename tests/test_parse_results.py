"""tools/parse_results.py against the committed fixture tree, with every expected number worked out by hand.

The tree has two parts: results_tree/ToyDomains (target-specified) and results_tree/scenarios (the other
three scenarios, described above SCENARIO_FIXTURE below); FIXTURE is the first part, FULL_TREE both.

Target-specified fixture (tests/fixtures/results_tree/ToyDomains/<trainer>/tiny/<src>_<tgt>/seed<N>/results.json),
accuracies (authorized, unauthorized):
  CoOp   photo->sketch  seed1 (80, 60)  seed2 (82, 63)  seed3 (84, 66)
  CoOp   sketch->photo  seed1 (70, 50)  seed2 (74, 56)  seed3 missing (no folder)
  IPCLIP photo->sketch  seed1 (79, 5)   seed2 (81, 8)   seed3 (80, 2)
  IPCLIP sketch->photo  seed1 (71, 10)  seed2 (69, 4)   seed3 unfinished (finished: false, epochs at 99)
macro_f1 is accuracy - 1.0 in every final result.
"""

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tools import parse_results as pr

REPO = Path(__file__).resolve().parents[1]
FULL_TREE = REPO / "tests" / "fixtures" / "results_tree"
FIXTURE = FULL_TREE / "ToyDomains"
SCENARIO_FIXTURE = FULL_TREE / "scenarios"
RESULTS_TS = "Results target_specified: accuracy (%), mean ± population std (ddof 0) over seeds"
IP_TS = ("IP metrics target_specified: a = 'authorized' (source), u = 'unauthorized' (target) "
         "(from seed means; formulas: --help)")

# ---- hand arithmetic (population std: sqrt(sum of squared deviations / n)) -----------------------
# CoOp photo->sketch: authorized (80+82+84)/3 = 82, deviations -2,0,2 -> sqrt(8/3)
COOP_PS_A = (82.0, math.sqrt(8 / 3))            # 1.63299
# unauthorized (60+63+66)/3 = 63, deviations -3,0,3 -> sqrt(18/3)
COOP_PS_U = (63.0, math.sqrt(18 / 3))           # 2.44949
# CoOp sketch->photo (seeds 1,2): (70+74)/2 = 72, deviations -2,2 -> sqrt(8/2) = 2
COOP_SP_A = (72.0, 2.0)
# (50+56)/2 = 53, deviations -3,3 -> sqrt(18/2) = 3
COOP_SP_U = (53.0, 3.0)
# IPCLIP photo->sketch: (79+81+80)/3 = 80, deviations -1,1,0 -> sqrt(2/3)
IP_PS_A = (80.0, math.sqrt(2 / 3))              # 0.81650
# (5+8+2)/3 = 5, deviations 0,3,-3 -> sqrt(18/3)
IP_PS_U = (5.0, math.sqrt(18 / 3))              # 2.44949
# IPCLIP sketch->photo (seeds 1,2; seed 3 unfinished): (71+69)/2 = 70, deviations 1,-1 -> 1
IP_SP_A = (70.0, 1.0)
# (10+4)/2 = 7, deviations 3,-3 -> 3
IP_SP_U = (7.0, 3.0)

# IP metrics from the seed means
# photo->sketch: Drop_a = 82 - 80 = 2; Drop_u = 63 - 5 = 58
#   W = 0.80 * (58 - 2) = 44.8; D = 0.80 * (80 - 5) = 60.0
PS = {"a_sl": 82.0, "u_sl": 63.0, "a_ip": 80.0, "u_ip": 5.0,
      "drop_a": 2.0, "drop_u": 58.0, "w": 44.8, "d": 60.0}
# sketch->photo: Drop_a = 72 - 70 = 2; Drop_u = 53 - 7 = 46
#   W = 0.70 * (46 - 2) = 30.8; D = 0.70 * (70 - 7) = 44.1
SP = {"a_sl": 72.0, "u_sl": 53.0, "a_ip": 70.0, "u_ip": 7.0,
      "drop_a": 2.0, "drop_u": 46.0, "w": 30.8, "d": 44.1}
# average row = mean of the two pair rows:
#   A_a^SL (82+72)/2 = 77; A_u^SL (63+53)/2 = 58; A_a^IP (80+70)/2 = 75; A_u^IP (5+7)/2 = 6
#   Drop_a (2+2)/2 = 2; Drop_u (58+46)/2 = 52; W (44.8+30.8)/2 = 37.8; D (60+44.1)/2 = 52.05
AVG = {"a_sl": 77.0, "u_sl": 58.0, "a_ip": 75.0, "u_ip": 6.0,
       "drop_a": 2.0, "drop_u": 52.0, "w": 37.8, "d": 52.05}


def fixture_summaries(**kwargs):
    runs = pr.load_runs(FIXTURE)
    return pr.aggregate(pr.group_runs(runs), **kwargs)


def by_label(summaries):
    return {(s.key.trainer, s.key.pair): s for s in summaries}


def run_main(capsys, *argv):
    code = pr.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write_run(root, trainer, cfg, src, tgt, seed, final, scenario="", finished=True, dataset="ToyDomains",
              pair_folder=None):
    """A minimal results.json of the design.md schema; final = {set name: accuracy}.

    The pair folder is <src>_<tgt> as the scripts name it (pair_folder: another name, e.g. a_ownership).
    """
    folder = Path(root) / dataset / trainer / cfg / (pair_folder or f"{src}_{tgt}") / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "format": 1, "finished": finished, "eval_only": False,
        "run": {"dataset": dataset, "trainer": trainer, "config_name": cfg, "source_domains": [src],
                "target_domains": [tgt], "scenario": scenario, "backbone": "tiny-rn", "seed": seed,
                "max_epoch": 1},
        "epochs": [],
        "final": {name: {"accuracy": acc, "error_rate": 100 - acc, "macro_f1": acc, "total": 10, "correct": 1}
                  for name, acc in final.items()},
    }
    (folder / "results.json").write_text(json.dumps(data))
    return folder


def csv_sections(text):
    """{section title: list of row dicts} from the csv format."""
    sections = {}
    for block in text.strip().split("\n\n"):
        title, *lines = block.splitlines()
        assert title.startswith("# ")
        sections[title[2:]] = list(csv.DictReader(io.StringIO("\n".join(lines))))
    return sections


# ---- aggregation -------------------------------------------------------------------------------------


def test_fixture_means_and_population_std():
    summaries, _ = fixture_summaries()
    groups = by_label(summaries)
    expected = {
        ("CoOp", "photo -> sketch"): (COOP_PS_A, COOP_PS_U, (1, 2, 3)),
        ("CoOp", "sketch -> photo"): (COOP_SP_A, COOP_SP_U, (1, 2)),
        ("IPCLIP", "photo -> sketch"): (IP_PS_A, IP_PS_U, (1, 2, 3)),
        ("IPCLIP", "sketch -> photo"): (IP_SP_A, IP_SP_U, (1, 2)),
    }
    assert set(groups) == set(expected)
    for label, (a, u, seeds) in expected.items():
        s = groups[label]
        assert list(s.sets) == ["authorized", "unauthorized"]  # order of the run's final dict
        assert s.seeds == seeds
        assert s.expected_seeds == (1, 2, 3)
        assert s.sets["authorized"].mean == pytest.approx(a[0])
        assert s.sets["authorized"].std == pytest.approx(a[1])
        assert s.sets["unauthorized"].mean == pytest.approx(u[0])
        assert s.sets["unauthorized"].std == pytest.approx(u[1])
    assert groups[("CoOp", "photo -> sketch")].seeds_label == "3"
    assert groups[("IPCLIP", "sketch -> photo")].seeds_label == "2/3"
    assert groups[("CoOp", "sketch -> photo")].seeds_label == "2/3"
    assert groups[("IPCLIP", "photo -> sketch")].key.scenario == "target_specified"


def test_incomplete_section_lists_unfinished_and_missing_seeds():
    summaries, issues = fixture_summaries()
    complete = {(s.key.trainer, s.key.pair): s.complete for s in summaries}
    assert complete == {("CoOp", "photo -> sketch"): True, ("CoOp", "sketch -> photo"): False,
                        ("IPCLIP", "photo -> sketch"): True, ("IPCLIP", "sketch -> photo"): False}
    unfinished = [i for i in issues if "unfinished" in i.problem]
    assert len(unfinished) == 1
    assert unfinished[0].seed == "3"
    assert "IPCLIP" in unfinished[0].group and "sketch -> photo" in unfinished[0].group
    assert unfinished[0].where.endswith("IPCLIP/tiny/sketch_photo/seed3/results.json")
    missing = [i for i in issues if i.problem.startswith("missing")]
    assert [(i.seed, "CoOp" in i.group, "sketch -> photo" in i.group) for i in missing] == [("3", True, True)]
    assert not any("photo -> sketch" in i.group for i in issues)


def test_expected_seeds_option_restricts_and_marks():
    summaries, issues = fixture_summaries(expected_seeds=[1, 2])
    groups = by_label(summaries)
    # IPCLIP photo->sketch over seeds 1,2 only: (79+81)/2 = 80, std 1; (5+8)/2 = 6.5, std 1.5
    s = groups[("IPCLIP", "photo -> sketch")]
    assert s.seeds == (1, 2) and s.seeds_label == "2"
    assert (s.sets["authorized"].mean, s.sets["authorized"].std) == pytest.approx((80.0, 1.0))
    assert (s.sets["unauthorized"].mean, s.sets["unauthorized"].std) == pytest.approx((6.5, 1.5))
    assert groups[("CoOp", "sketch -> photo")].complete
    assert any(i.seed == "3" and "ignored" in i.problem for i in issues)

    summaries, _ = fixture_summaries(expected_seeds=[1, 2, 3, 4])
    assert sorted(s.seeds_label for s in summaries) == ["2/4", "2/4", "3/4", "3/4"]


def test_fixture_ip_metrics_against_hand_values():
    summaries, _ = fixture_summaries()
    rows, issues = pr.ip_rows(summaries)
    assert [r.pair for r in rows] == ["photo -> sketch", "sketch -> photo", "average (2 pairs)"]
    for row, want in zip(rows, (PS, SP, AVG)):
        for col, value in want.items():
            assert row.values[col] == pytest.approx(value), (row.pair, col)
        assert row.values["o"] is None  # not an ownership run
    assert [r.complete for r in rows] == [True, False, False]
    assert rows[1].seeds_ip == "2/3" and rows[1].seeds_sl == "2/3"
    assert rows[0].reference == "tiny"
    assert issues == []  # both references share the IP seeds


def test_aod_ip_consistency_check():
    # docs/method.md, metrics: Drop_u 74.57, Drop_a 0.13, A_a about 85.3 -> W = 0.853 * (74.57 - 0.13) = 63.497
    assert pr.w_u_a(85.3, drop_a=0.13, drop_u=74.57) == pytest.approx(63.5, abs=0.05)
    # the same through ip_metrics, with accuracies that give those drops
    m = pr.ip_metrics(a_ip=85.3, u_ip=10.0, a_sl=85.3 + 0.13, u_sl=10.0 + 74.57)
    assert m["drop_a"] == pytest.approx(0.13) and m["drop_u"] == pytest.approx(74.57)
    assert m["w"] == pytest.approx(63.5, abs=0.05)
    assert m["d"] == pytest.approx(0.853 * (85.3 - 10.0))
    assert m["o"] is None


def test_metric_formulas_and_ownership():
    # O = (A_u^SL/100) x (A_a^IP - A_u^IP) = 0.5 * (90 - 30) = 30, only for the ownership scenario
    m = pr.ip_metrics(a_ip=90.0, u_ip=30.0, a_sl=92.0, u_sl=50.0, scenario="ownership")
    assert m["o"] == pytest.approx(30.0)
    assert m["w"] == pytest.approx(0.9 * ((50 - 30) - (92 - 90)))  # 16.2
    assert m["d"] == pytest.approx(0.9 * (90 - 30))  # 54.0
    no_ref = pr.ip_metrics(a_ip=90.0, u_ip=30.0)
    assert no_ref["drop_a"] is None and no_ref["w"] is None and no_ref["o"] is None
    assert no_ref["d"] == pytest.approx(54.0)


def test_which_sets_are_authorized_and_unauthorized():
    rule = pr.authorized_and_unauthorized
    # target-specified (also runs without a scenario): 'unauthorized', else every other set
    assert rule(["authorized", "unauthorized", "extra"]) == (("authorized",), ("unauthorized",))
    assert rule(["authorized", "unauthorized"], "target_specified", ["art"]) == (("authorized",), ("unauthorized",))
    assert rule(["art", "authorized", "clipart", "product"]) == (("authorized",), ("art", "clipart", "product"))
    assert rule(["test"]) is None
    assert rule(["authorized"]) is None
    # target-free: the per-domain sets except the source domain(s)
    sets = ["authorized", "art", "clipart", "product", "real_world"]
    assert rule(sets, "target_free", ["art"]) == (("authorized",), ("clipart", "product", "real_world"))
    assert rule(sets, "target_free", ["art", "product"]) == (("authorized",), ("clipart", "real_world"))
    assert rule(["authorized", "art"], "target_free", ["art"]) is None  # nothing but the source
    # ownership: clean vs watermarked source; both must exist
    assert rule(["authorized", "unauthorized"], "ownership", ["art"]) == (("authorized",), ("unauthorized",))
    assert rule(["authorized", "art", "clipart"], "ownership", ["art"]) is None
    # authorization: the watermarked source set vs every other set
    sets = ["art", "clipart", "art_wm", "clipart_wm"]
    roles = rule(sets, "authorization", ["clipart"])
    assert roles.authorized == ("clipart_wm",) and roles.unauthorized == ("art", "clipart", "art_wm")
    assert rule(sets, "authorization", ["product"]) is None  # no product_wm set
    assert rule(["authorized", "unauthorized"], "authorization", ["art"]) is None


def test_several_unauthorized_sets_are_averaged(tmp_path):
    # target-free runs train on the source alone (target = source); the reference lives in the same
    # <source>_target_free folder and is tested on the same sets
    for seed in (1, 2):
        write_run(tmp_path, "CoOp", "c", "a", "a", seed,
                  {"authorized": 90.0, "a": 90.0, "b": 70.0, "c": 50.0}, pair_folder="a_target_free")
        write_run(tmp_path, "IPCLIP", "c", "a", "a", seed, {"authorized": 88.0, "a": 88.0, "b": 10.0, "c": 20.0},
                  scenario="target_free", pair_folder="a_target_free")
    summaries, _ = pr.aggregate(pr.group_runs(pr.load_runs(tmp_path)))
    rows, _ = pr.ip_rows(summaries)
    assert len(rows) == 1
    v = rows[0].values
    # u^SL = (70+50)/2 = 60; u^IP = (10+20)/2 = 15; Drop_a = 2; Drop_u = 45; W = 0.88 * 43 = 37.84
    assert v["u_sl"] == pytest.approx(60.0) and v["u_ip"] == pytest.approx(15.0)
    assert v["w"] == pytest.approx(37.84)
    assert v["d"] == pytest.approx(0.88 * (88 - 15))


def test_ownership_column_through_the_cli(tmp_path, capsys):
    write_run(tmp_path, "CoOp", "c", "a", "a", 1, {"authorized": 90.0, "unauthorized": 80.0},
              pair_folder="a_ownership")
    write_run(tmp_path, "IPCLIP", "c", "a", "a", 1, {"authorized": 88.0, "unauthorized": 8.0},
              scenario="ownership", pair_folder="a_ownership")
    code, out, _ = run_main(capsys, tmp_path, "--format", "csv")
    assert code == 0
    sections = csv_sections(out)
    row = sections[next(t for t in sections if t.startswith("IP metrics ownership"))][0]
    assert float(row["O_u-a"]) == pytest.approx(0.80 * (88 - 8))  # 64.00


def test_reference_selection(tmp_path):
    for cfg in ("ep10", "ep50"):
        write_run(tmp_path, "CoOp", cfg, "a", "b", 1, {"authorized": 90.0 if cfg == "ep10" else 80.0,
                                                        "unauthorized": 70.0})
    write_run(tmp_path, "IPCLIP", "mine", "a", "b", 1, {"authorized": 85.0, "unauthorized": 5.0})
    summaries, _ = pr.aggregate(pr.group_runs(pr.load_runs(tmp_path)))
    with pytest.raises(pr.ResultsError, match="ep10, ep50.*--reference-config"):
        pr.ip_rows(summaries)
    rows, _ = pr.ip_rows(summaries, reference_config="ep50")
    assert rows[0].values["a_sl"] == pytest.approx(80.0) and rows[0].reference == "ep50"
    rows, issues = pr.ip_rows(summaries, reference_config="nope")
    assert rows[0].values["w"] is None and rows[0].values["d"] == pytest.approx(0.85 * 80)
    assert any("no CoOp reference" in i.problem and "ep10" in i.problem for i in issues)
    # a CoOp config named like the IP one is taken by default
    write_run(tmp_path, "CoOp", "mine", "a", "b", 1, {"authorized": 86.0, "unauthorized": 70.0})
    summaries, _ = pr.aggregate(pr.group_runs(pr.load_runs(tmp_path)))
    rows, _ = pr.ip_rows(summaries)
    assert rows[0].reference == "mine" and rows[0].values["a_sl"] == pytest.approx(86.0)


# ---- rendering and CLI ---------------------------------------------------------------------------------


def test_table_output(capsys):
    code, out, err = run_main(capsys, FIXTURE)
    assert code == 0 and err == ""
    for text in ("82.00 ± 1.63", "63.00 ± 2.45", "72.00 ± 2.00", "53.00 ± 3.00",
                 "80.00 ± 0.82", "5.00 ± 2.45", "70.00 ± 1.00", "7.00 ± 3.00", "ddof 0"):
        assert text in out
    results, ip, incomplete = out.split("\n\n")
    ip_lines = {line.split("  ")[0]: line for line in ip.splitlines()}
    assert len([line for line in ip.splitlines() if line.startswith("ToyDomains")]) == 3
    avg_line = next(line for line in ip.splitlines() if "average (2 pairs)" in line)
    assert avg_line.split()[-8:] == ["77.00", "58.00", "75.00", "6.00", "2.00", "52.00", "37.80", "52.05"]
    assert "incomplete" in avg_line and ip_lines
    assert incomplete.startswith("Incomplete")
    assert "seed3/results.json" in incomplete and "unfinished" in incomplete and "missing" in incomplete
    sp_line = next(line for line in results.splitlines() if "IPCLIP" in line and "sketch -> photo" in line)
    assert " 2/3 " in sp_line


def test_csv_output_has_every_number(capsys):
    code, out, _ = run_main(capsys, FIXTURE, "--format", "csv")
    assert code == 0
    sections = csv_sections(out)
    results = {(r["trainer"], r["pair"]): r for r in
               sections[RESULTS_TS]}
    want = {("CoOp", "photo -> sketch"): (COOP_PS_A, COOP_PS_U, "3"),
            ("CoOp", "sketch -> photo"): (COOP_SP_A, COOP_SP_U, "2/3"),
            ("IPCLIP", "photo -> sketch"): (IP_PS_A, IP_PS_U, "3"),
            ("IPCLIP", "sketch -> photo"): (IP_SP_A, IP_SP_U, "2/3")}
    assert set(results) == set(want)
    for label, (a, u, seeds) in want.items():
        row = results[label]
        assert row["seeds"] == seeds
        assert float(row["authorized_mean"]) == pytest.approx(a[0], abs=0.005)
        assert float(row["authorized_std"]) == pytest.approx(a[1], abs=0.005)
        assert float(row["unauthorized_mean"]) == pytest.approx(u[0], abs=0.005)
        assert float(row["unauthorized_std"]) == pytest.approx(u[1], abs=0.005)
    ip = sections[IP_TS]
    headers = {"a_sl": "A_a^SL", "u_sl": "A_u^SL", "a_ip": "A_a^IP", "u_ip": "A_u^IP",
               "drop_a": "Drop_a", "drop_u": "Drop_u", "w": "W_u-a", "d": "D_u-a"}
    assert "O_u-a" not in ip[0]  # no ownership run
    for row, want_row in zip(ip, (PS, SP, AVG)):
        for col, value in want_row.items():
            assert float(row[headers[col]]) == pytest.approx(value, abs=0.005)
    incomplete = sections["Incomplete"]
    assert {(r["seed"], r["problem"].split()[0]) for r in incomplete if r["seed"]} == {("3", "missing:"),
                                                                                       ("3", "unfinished")}


def test_markdown_and_latex_formats(capsys):
    code, out, _ = run_main(capsys, FIXTURE, "--format", "markdown")
    assert code == 0
    assert "### Incomplete" in out and "| 82.00 ± 1.63 |" in out
    table_lines = [line for line in out.splitlines() if line and not line.startswith("###")]
    assert all(line.startswith("|") for line in table_lines)
    code, out, _ = run_main(capsys, FIXTURE, "--format", "latex")
    assert code == 0
    assert out.count(r"\begin{tabular}") == 3
    assert r"82.00 $\pm$ 1.63" in out and r"target\_specified" in out and r"$W_{u-a}$" in out
    assert "target_specified" not in out.replace(r"target\_specified", "")


def test_output_file_matches_stdout(tmp_path, capsys):
    _, printed, _ = run_main(capsys, FIXTURE, "--format", "markdown")
    target = tmp_path / "table.md"
    code, out, err = run_main(capsys, FIXTURE, "--format", "markdown", "--output", target)
    assert code == 0 and out == "" and str(target) in err
    assert target.read_text() == printed


def test_other_metric(capsys):
    code, out, _ = run_main(capsys, FIXTURE, "--metric", "macro_f1", "--format", "csv")
    assert code == 0
    sections = csv_sections(out)
    rows = {(r["trainer"], r["pair"]): r for r in
            sections[RESULTS_TS.replace("accuracy", "macro_f1")]}
    # macro_f1 = accuracy - 1 in the fixture: CoOp photo->sketch (79+81+83)/3 = 81
    assert float(rows[("CoOp", "photo -> sketch")]["authorized_mean"]) == pytest.approx(81.0)
    assert "defined on accuracy" in out
    code, _, err = run_main(capsys, FIXTURE, "--metric", "top5")
    assert code == 1 and "no metric 'top5'" in err and "accuracy" in err


def test_no_results_exits_1(tmp_path, capsys):
    code, out, err = run_main(capsys, tmp_path)
    assert code == 1 and out == "" and "no results.json found" in err
    code, _, err = run_main(capsys, tmp_path / "does-not-exist")
    assert code == 1 and "is not a folder" in err


def test_bad_inputs_give_clear_errors(tmp_path, capsys):
    broken = tmp_path / "bad" / "seed1"
    broken.mkdir(parents=True)
    (broken / "results.json").write_text("{not json")
    code, _, err = run_main(capsys, tmp_path / "bad")
    assert code == 1 and "bad/seed1/results.json" in err and "JSON" in err
    (broken / "results.json").write_text(json.dumps({"format": 1, "run": {"dataset": "X"}}))
    code, _, err = run_main(capsys, tmp_path / "bad")
    assert code == 1 and "run.trainer is missing" in err
    # the same run twice (e.g. a copied folder)
    first = write_run(tmp_path / "dup", "CoOp", "c", "a", "b", 1, {"authorized": 1.0})
    (first.parent / "seed1_copy").mkdir()
    (first.parent / "seed1_copy" / "results.json").write_text((first / "results.json").read_text())
    code, _, err = run_main(capsys, tmp_path / "dup")
    assert code == 1 and "have seed 1" in err and "seed1_copy" in err


def test_unfinished_run_is_never_averaged(tmp_path):
    write_run(tmp_path, "CoOp", "c", "a", "b", 1, {"authorized": 50.0})
    write_run(tmp_path, "CoOp", "c", "a", "b", 2, {"authorized": 99.0}, finished=False)
    summaries, issues = pr.aggregate(pr.group_runs(pr.load_runs(tmp_path)))
    assert summaries[0].sets["authorized"].mean == 50.0 and summaries[0].seeds_label == "1/2"
    assert any("unfinished" in i.problem for i in issues)


def test_collapsed_runs_are_never_averaged(tmp_path):
    """A run whose losses were not finite, or whose model is at chance on every set, is no result: for
    IP-CLIP a collapsed model's low unauthorized accuracy would pass for protection."""
    write_run(tmp_path, "IPCLIP", "c", "a", "b", 1, {"authorized": 80.0, "unauthorized": 5.0})
    nan_run = write_run(tmp_path, "IPCLIP", "c", "a", "b", 2, {"authorized": 10.0, "unauthorized": 9.0})
    chance_run = write_run(tmp_path, "IPCLIP", "c", "a", "b", 3, {"authorized": 12.0, "unauthorized": 8.0})
    low_run = write_run(tmp_path, "IPCLIP", "c", "a", "b", 4, {"authorized": 60.0, "unauthorized": 3.0})
    for folder, epochs, classes in ((nan_run, [{"epoch": 1, "train": {"loss": float("nan")}}], 10),
                                    (chance_run, [{"epoch": 1, "train": {"loss": -2.0}}], 10),
                                    (low_run, [{"epoch": 1, "train": {"loss": None, "ce_a": 1.0}}], None)):
        data = json.loads((folder / "results.json").read_text())
        data["epochs"], data["run"]["num_classes"] = epochs, classes
        (folder / "results.json").write_text(json.dumps(data))  # bare NaN, as older versions wrote
    summaries, issues = pr.aggregate(pr.group_runs(pr.load_runs(tmp_path)))
    assert summaries[0].seeds == (1,) and summaries[0].sets["unauthorized"].mean == 5.0
    problems = {int(i.seed): i.problem for i in issues if i.seed}
    assert "'loss' was nan" in problems[2] and "not averaged" in problems[2]
    assert "every test set below 2 x chance (20.0%)" in problems[3]
    assert "'loss' was None" in problems[4]
    # Without the class count a low but above-zero run is not called collapsed.
    assert pr.run_defect({"run": {}}, {"x": {"accuracy": 12.0}}, []) == ""


LOG = """\
***************
** Arguments **
***************
config_file: configs/trainers/CoOp/vit_b16.yaml
eval_only: False
seed: {seed}
source_domains: ['amazon']
target_domains: ['webcam']
trainer: CoOp
************
** Config **
************
DATASET:
  NAME: Office31
  SOURCE_DOMAINS: ['amazon']
OPTIM:
  NAME: sgd
SEED: {seed}
TRAINER:
  NAME: CoOp
Collecting env info ...
epoch [1/1] batch [1/1] loss 1.0 acc 50.0
Evaluate on the *val* set
=> result
* total: 1,000
* correct: 500
* accuracy: 50.0%
Evaluate on the *authorized* set
=> result
* total: 1,000
* correct: 500
* accuracy: 11.0%
* error: 89.0%
* macro_f1: 10.0%
Finish training
Deploy the last-epoch model
Evaluate on the *authorized* set
=> result
* total: 1,000
* correct: 800
* accuracy: {acc_a}%
* error: 20.0%
* macro_f1: 79.0%
Evaluate on the *unauthorized* set
=> result
* total: 1,000
* correct: 600
* accuracy: {acc_u}%
* error: 40.0%
* macro_f1: 59.0%
Elapsed: 0:00:01
"""


def test_from_logs_fallback(tmp_path, capsys):
    for seed, (acc_a, acc_u) in {1: (80.0, 60.0), 2: (84.0, 64.0)}.items():
        folder = tmp_path / "office31" / "CoOp" / "vit_b16" / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "log.txt").write_text(LOG.format(seed=seed, acc_a=acc_a, acc_u=acc_u))
    unfinished = tmp_path / "office31" / "CoOp" / "vit_b16" / "seed3"
    unfinished.mkdir()
    (unfinished / "log.txt").write_text(LOG.format(seed=3, acc_a=1, acc_u=1).split("Finish training")[0])

    (tmp_path / "log.txt").write_text("pretraining tiny CLIP\nloss 0.1\n")  # not a run log: skipped

    code, _, err = run_main(capsys, tmp_path)
    assert code == 1 and "--from-logs" in err
    runs = pr.load_runs(tmp_path, from_logs=True)
    assert sorted((r.seed, r.finished) for r in runs) == [(1, True), (2, True), (3, False)]
    run = next(r for r in runs if r.seed == 1)
    assert run.key == pr.GroupKey("Office31", "CoOp", "vit_b16", "", ("amazon",), ("webcam",))
    # only the result blocks after "Finish training" count; "error" is renamed as in results.json
    assert list(run.final) == ["authorized", "unauthorized"]
    assert run.final["authorized"] == {"total": 1000.0, "correct": 800.0, "accuracy": 80.0,
                                       "error_rate": 20.0, "macro_f1": 79.0}
    summaries, issues = pr.aggregate(pr.group_runs(runs))
    # (80+84)/2 = 82, population std 2; (60+64)/2 = 62, std 2
    assert summaries[0].sets["authorized"].mean == pytest.approx(82.0)
    assert summaries[0].sets["authorized"].std == pytest.approx(2.0)
    assert summaries[0].sets["unauthorized"].mean == pytest.approx(62.0)
    assert summaries[0].seeds_label == "2/3" and any("unfinished" in i.problem for i in issues)


def test_help_and_script_entry_point():
    proc = subprocess.run([sys.executable, "tools/parse_results.py", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for text in ("W_{u-a} = (A_a^IP / 100) x (Drop_u - Drop_a)", "D_{u-a}", "O_{u-a}", "AoD-IP",
                 "ddof 0", "seed MEANS", "--from-logs", "--expected-seeds", "--reference-config"):
        assert text in proc.stdout


# ---- the other scenarios ------------------------------------------------------------------------------
# SCENARIO_FIXTURE = results_tree/scenarios/ToyDomains/<trainer>/tiny/photo_<scenario>/seed<N>/results.json,
# source photo (target = source), seeds 1 and 2, every run finished; CoOp records no scenario and is
# placed by its pair folder. Accuracies:
#   target_free, sets authorized (photo test split), photo, clipart, sketch, painting:
#     CoOp   seed1 90 90 70 60 50    seed2 92 92 74 62 56
#     IPCLIP seed1 88 88 10  6  8    seed2 86 86 14  4 12   (seed1 also has 3 epochs, tests at epochs 1-2)
#   ownership, sets authorized (clean), unauthorized (watermarked):
#     CoOp   seed1 90 84    seed2 94 88
#     IPCLIP seed1 91  3    seed2 89  7
#   authorization (no CoOp reference), sets photo clipart sketch painting photo_wm clipart_wm sketch_wm
#   painting_wm:
#     IPCLIP seed1 10 8 6 8 84 12 4 9    seed2 14 12 8 10 88 8 6 11

# target_free seed means: CoOp authorized (90+92)/2 = 91; clipart (70+74)/2 = 72, sketch 61, painting 53
#   -> A_u^SL = (72+61+53)/3 = 186/3 = 62 (the photo set is the source domain: not part of u;
#      with it u would be (91+72+61+53)/4 = 69.25)
#   IPCLIP authorized (88+86)/2 = 87; clipart 12, sketch 5, painting 10 -> A_u^IP = 27/3 = 9
#   Drop_a = 91-87 = 4; Drop_u = 62-9 = 53; W = 0.87 x (53-4) = 42.63; D = 0.87 x (87-9) = 67.86
TF = {"a_sl": 91.0, "u_sl": 62.0, "a_ip": 87.0, "u_ip": 9.0, "drop_a": 4.0, "drop_u": 53.0,
      "w": 42.63, "d": 67.86}
# ownership: CoOp (90+94)/2 = 92, (84+88)/2 = 86; IPCLIP (91+89)/2 = 90, (3+7)/2 = 5
#   Drop_a = 2; Drop_u = 81; O = (86/100) x (90-5) = 0.86 x 85 = 73.10
OWN = {"a_sl": 92.0, "u_sl": 86.0, "a_ip": 90.0, "u_ip": 5.0, "drop_a": 2.0, "drop_u": 81.0, "o": 73.1}
# authorization: a = photo_wm (84+88)/2 = 86; u = mean of photo 12, clipart 10, sketch 7, painting 9,
#   clipart_wm 10, sketch_wm 5, painting_wm 10 = 63/7 = 9; D = 0.86 x (86-9) = 66.22; no reference
AUTH = {"a_sl": None, "u_sl": None, "a_ip": 86.0, "u_ip": 9.0, "drop_a": None, "drop_u": None, "d": 66.22}


def scenario_rows(root=SCENARIO_FIXTURE):
    summaries, _ = pr.aggregate(pr.group_runs(pr.load_runs(root)))
    rows, issues = pr.ip_rows(summaries)
    return {r.scenario: r for r in rows}, issues, summaries


def test_scenario_groups_are_told_apart_by_pair_folder():
    _, _, summaries = scenario_rows()
    where = {(s.key.trainer, s.key.table_scenario): s for s in summaries}
    assert set(where) == {("CoOp", "target_free"), ("CoOp", "ownership"), ("IPCLIP", "target_free"),
                          ("IPCLIP", "ownership"), ("IPCLIP", "authorization")}
    coop = where[("CoOp", "ownership")].key
    assert coop.scenario == "" and coop.folder_scenario == "ownership" and coop.pair == "photo"
    assert "ownership reference" in coop.label()
    assert where[("IPCLIP", "ownership")].key.folder_scenario == ""  # recorded scenario wins
    # every group complete: the CoOp references of two scenarios are two experiments, not one with gaps
    assert all(s.complete and s.seeds == (1, 2) for s in summaries)
    # per-set seed means and population std: CoOp target_free painting (50+56)/2 = 53, std 3
    painting = where[("CoOp", "target_free")].sets["painting"]
    assert (painting.mean, painting.std, painting.n) == pytest.approx((53.0, 3.0, 2))
    assert pr.folder_scenario(Path("out/ToyDomains/CoOp/c/real_world_target_free/seed3/results.json")) \
        == "target_free"
    assert pr.folder_scenario(Path("out/ToyDomains/CoOp/c/photo_sketch/seed3/results.json")) == ""


@pytest.mark.parametrize("scenario, want", [("target_free", TF), ("ownership", OWN), ("authorization", AUTH)])
def test_scenario_metrics_against_hand_values(scenario, want):
    rows, _, _ = scenario_rows()
    row = rows[scenario]
    for col, value in want.items():
        if value is None:
            assert row.values[col] is None, col
        else:
            assert row.values[col] == pytest.approx(value), col
    assert row.pair == "photo" and row.dataset_mean and not row.is_average


def test_metrics_each_scenario_does_not_define():
    rows, _, _ = scenario_rows()
    assert rows["target_free"].values["o"] is None
    assert rows["ownership"].values["o"] is not None
    assert rows["authorization"].values["w"] is None and rows["authorization"].values["o"] is None


def test_authorization_needs_no_reference():
    rows, issues, _ = scenario_rows()
    auth = rows["authorization"]
    assert auth.reference == "-" and auth.seeds_sl == "-"
    assert auth.complete  # D is complete without a reference
    assert [i.problem for i in issues] == ["no CoOp reference for this pair: Drop (D needs none) left blank"]
    assert rows["ownership"].complete and rows["target_free"].complete


def test_ownership_without_its_watermarked_reference_leaves_o_blank(tmp_path):
    # the CoOp reference was tested on the clean set only: O needs A_u^SL on the watermarked set
    write_run(tmp_path, "CoOp", "c", "a", "a", 1, {"authorized": 90.0}, pair_folder="a_ownership")
    write_run(tmp_path, "IPCLIP", "c", "a", "a", 1, {"authorized": 88.0, "unauthorized": 8.0},
              scenario="ownership", pair_folder="a_ownership")
    summaries, _ = pr.aggregate(pr.group_runs(pr.load_runs(tmp_path)))
    rows, issues = pr.ip_rows(summaries)
    assert rows[0].values["o"] is None and not rows[0].complete
    assert any("lacks test set(s) ['unauthorized']" in i.problem and "Drop/O" in i.problem for i in issues)


def test_references_of_other_scenarios_are_not_taken(tmp_path):
    # an ownership CoOp reference must not serve the target-free IP-CLIP run of the same source
    write_run(tmp_path, "CoOp", "c", "a", "a", 1, {"authorized": 90.0, "unauthorized": 80.0},
              pair_folder="a_ownership")
    write_run(tmp_path, "IPCLIP", "c", "a", "a", 1, {"authorized": 88.0, "a": 88.0, "b": 10.0},
              scenario="target_free", pair_folder="a_target_free")
    summaries, _ = pr.aggregate(pr.group_runs(pr.load_runs(tmp_path)))
    rows, issues = pr.ip_rows(summaries)
    assert rows[0].reference == "-" and rows[0].values["w"] is None
    assert rows[0].values["d"] == pytest.approx(0.88 * (88 - 10))
    assert any("no CoOp reference" in i.problem for i in issues)


def test_role_stats_give_error_bars_over_seeds():
    _, _, summaries = scenario_rows()
    ip = next(s for s in summaries if s.key.trainer == "IPCLIP" and s.key.table_scenario == "target_free")
    # u per seed: seed1 (10+6+8)/3 = 8, seed2 (14+4+12)/3 = 10 -> mean 9, population std 1
    u = pr.role_stats(ip, ("clipart", "sketch", "painting"))
    assert (u.mean, u.std, u.n) == pytest.approx((9.0, 1.0, 2))
    a = pr.role_stats(ip, ("authorized",))  # (88+86)/2 = 87, std 1
    assert (a.mean, a.std) == pytest.approx((87.0, 1.0))
    assert pr.role_stats(ip, ("no_such_set",)) is None


def test_unknown_scenario_is_a_clear_error(tmp_path, capsys):
    write_run(tmp_path, "IPCLIP", "c", "a", "a", 1, {"authorized": 88.0}, scenario="ownershp")
    code, _, err = run_main(capsys, tmp_path)
    assert code == 1 and "ownershp" in err and "target_free" in err and "seed1/results.json" in err


def test_one_table_per_scenario(capsys):
    code, out, _ = run_main(capsys, FULL_TREE, "--format", "csv")
    assert code == 0
    titles = list(csv_sections(out))
    scenarios = ["target_specified", "target_free", "ownership", "authorization"]
    assert [t.split(":")[0] for t in titles] == [
        part for s in scenarios for part in (f"Results {s}", f"IP metrics {s}")] + ["Incomplete"]
    sections = csv_sections(out)
    results = {s: sections[next(t for t in titles if t.startswith(f"Results {s}:"))] for s in scenarios}
    ip = {s: sections[next(t for t in titles if t.startswith(f"IP metrics {s}:"))] for s in scenarios}
    # each results table has the columns of its own test sets only
    assert list(results["ownership"][0])[6:] == ["authorized_mean", "authorized_std",
                                                 "unauthorized_mean", "unauthorized_std"]
    assert "photo_wm_mean" in results["authorization"][0] and "photo_wm_mean" not in results["target_free"][0]
    assert [(r["trainer"], r["scenario"], r["pair"]) for r in results["target_free"]] == [
        ("CoOp", "-", "photo"), ("IPCLIP", "target_free", "photo")]
    tf = {r["trainer"]: r for r in results["target_free"]}
    # IPCLIP target_free clipart (10+14)/2 = 12, deviations -2, 2 -> std 2
    assert float(tf["IPCLIP"]["clipart_mean"]) == pytest.approx(12.0)
    assert float(tf["IPCLIP"]["clipart_std"]) == pytest.approx(2.0)
    # the headline metric of each scenario, and no other scenario's metric
    headers = {s: list(rows[0]) for s, rows in ip.items()}
    assert headers["target_specified"][-2:] == ["W_u-a", "D_u-a"] and headers["target_free"][-2:] == ["W_u-a", "D_u-a"]
    assert headers["ownership"][-1] == "O_u-a" and "W_u-a" not in headers["ownership"]
    assert headers["authorization"][-1] == "D_u-a" and "W_u-a" not in headers["authorization"]
    for scenario, want, col in (("target_free", TF, "W_u-a"), ("ownership", OWN, "O_u-a"),
                                ("authorization", AUTH, "D_u-a")):
        (row,) = ip[scenario]
        assert float(row[col]) == pytest.approx(want[{"W_u-a": "w", "O_u-a": "o", "D_u-a": "d"}[col]], abs=0.005)
        assert float(row["A_u^IP"]) == pytest.approx(want["u_ip"], abs=0.005)
    assert ip["authorization"][0]["A_a^SL"] == "-" and ip["authorization"][0]["Drop_u"] == "-"
    assert ip["target_specified"][2]["pair"] == "average (2 pairs)"
    assert float(ip["target_specified"][2]["W_u-a"]) == pytest.approx(AVG["w"], abs=0.005)


def test_latex_titles_are_escaped(capsys):
    code, out, _ = run_main(capsys, SCENARIO_FIXTURE, "--format", "latex")
    assert code == 0
    assert out.count(r"\begin{tabular}") == 7  # 3 scenarios x (results, IP metrics) + incomplete
    assert r"% IP metrics target\_free" in out and r"'<source>\_wm'" in out
    assert "_free" not in out.replace(r"\_free", "")


# ---- --compare-paper -----------------------------------------------------------------------------------


def test_compare_paper_columns(tmp_path, capsys):
    # Office31 target-specified, two pairs: our W per pair and their average beside the published 74.84
    for src, tgt, (a_sl, u_sl, a_ip, u_ip) in (("amazon", "webcam", (90, 70, 88, 10)),
                                               ("webcam", "amazon", (80, 60, 78, 20))):
        write_run(tmp_path, "CoOp", "c", src, tgt, 1, {"authorized": a_sl, "unauthorized": u_sl}, dataset="Office31")
        write_run(tmp_path, "IPCLIP", "c", src, tgt, 1, {"authorized": a_ip, "unauthorized": u_ip},
                  scenario="target_specified", dataset="Office31")
    # ownership on OfficeHome and ToyDomains; authorization (no reference) on miniDomainNet; target-free on Office31
    for dataset in ("OfficeHome", "ToyDomains"):
        write_run(tmp_path, "CoOp", "c", "art", "art", 1, {"authorized": 90, "unauthorized": 80}, dataset=dataset,
                  pair_folder="art_ownership")
        write_run(tmp_path, "IPCLIP", "c", "art", "art", 1, {"authorized": 90, "unauthorized": 10}, dataset=dataset,
                  scenario="ownership", pair_folder="art_ownership")
    write_run(tmp_path, "IPCLIP", "c", "clipart", "clipart", 1, {"clipart": 10, "clipart_wm": 80, "real": 20},
              scenario="authorization", dataset="miniDomainNet", pair_folder="clipart_authorization")
    write_run(tmp_path, "IPCLIP", "c", "amazon", "amazon", 1, {"authorized": 80, "amazon": 80, "dslr": 10},
              scenario="target_free", dataset="Office31", pair_folder="amazon_target_free")

    code, out, _ = run_main(capsys, tmp_path, "--format", "csv", "--compare-paper")
    assert code == 0
    sections = csv_sections(out)
    ip = {t.split(":")[0].split()[-1]: rows for t, rows in sections.items() if t.startswith("IP metrics")}
    ts = ip["target_specified"]
    assert [r["pair"] for r in ts] == ["amazon -> webcam", "webcam -> amazon", "average (2 pairs)"]
    # amazon->webcam W = 0.88 x ((70-10) - (90-88)) = 51.04; webcam->amazon W = 0.78 x (40 - 2) = 29.64
    assert float(ts[0]["W_u-a"]) == pytest.approx(51.04) and float(ts[1]["W_u-a"]) == pytest.approx(29.64)
    assert float(ts[2]["W_u-a"]) == pytest.approx((51.04 + 29.64) / 2)
    # the published mean stands beside the dataset's mean only, not beside single pairs
    assert [r["paper W_u-a"] for r in ts] == ["-", "-", "74.84"]
    assert ts[2]["paper note"] == "ViT-B/16, their splits"
    own = {r["dataset"]: r for r in ip["ownership"]}
    # a lone pair stands for its dataset; the ownership value has no stated dataset; ToyDomains has none
    assert own["OfficeHome"]["paper O_u-a"] == "71.30" and own["OfficeHome"]["paper note"] == "dataset not stated"
    assert own["ToyDomains"]["paper O_u-a"] == "-" and own["ToyDomains"]["paper note"] == "-"
    # O = 0.80 x (90 - 10) = 64
    assert float(own["OfficeHome"]["O_u-a"]) == pytest.approx(64.0)
    (auth,) = ip["authorization"]
    assert auth["paper D_u-a"] == "48.39"  # miniDomainNet
    # D = 0.80 x (80 - (10+20)/2) = 0.8 x 65 = 52
    assert float(auth["D_u-a"]) == pytest.approx(52.0)
    (tf,) = ip["target_free"]
    assert tf["paper W_u-a"] == "53.46" and tf["paper note"] == "dataset not stated"
    # without the flag: no paper columns
    _, out, _ = run_main(capsys, tmp_path, "--format", "csv")
    assert "paper" not in out


def test_published_mean_table():
    assert pr.published_mean("OfficeHome", "target_specified") == (55.10, "ViT-B/16, their splits")
    assert pr.published_mean("miniDomainNet", "target_specified") == (54.68, "ViT-B/16, their splits")
    assert pr.published_mean("Office31", "authorization") == (58.78, "ViT-B/16, their splits")
    assert pr.published_mean("OfficeHome", "authorization") == (53.89, "ViT-B/16, their splits")
    assert pr.published_mean("Office31", "ownership") == (71.3, "dataset not stated")
    assert pr.published_mean("miniDomainNet", "target_free") == (53.46, "dataset not stated")
    assert pr.published_mean("ToyDomains", "target_specified") is None
    assert pr.published_mean("VisDA17", "ownership") is None


def test_help_states_each_formula_its_source_and_the_roles():
    text = pr.build_parser().format_help()
    lines = text.splitlines()

    def line_after(start):
        i = next(i for i, line in enumerate(lines) if line.strip().startswith(start))
        return lines[i], lines[i + 1]

    w, w_source = line_after("W_{u-a} =")
    assert "(A_a^IP / 100) x (Drop_u - Drop_a)" in w and "target_specified, target_free" in w
    assert "IP-CLIP paper (CVPR 2025)" in w_source
    d, d_source = line_after("D_{u-a} =")
    assert "(A_a^IP / 100) x (A_a^IP - A_u^IP)" in d and "authorization" in d and "needs no reference" in d
    assert "IP-CLIP paper (CVPR 2025)" in d_source
    o, _ = line_after("O_{u-a} =")
    assert "(A_u^SL / 100) x (A_a^IP - A_u^IP)" in o and "ownership" in o
    o_block = text[text.index("O_{u-a} ="):text.index("Roles of the test sets")]
    assert "AoD-IP (CVPR 2026)" in o_block and "SECONDARY source" in o_block
    for start, want in (("target_specified", "u = 'unauthorized'"), ("target_free", "except the source"),
                        ("ownership", "(watermarked)"), ("authorization", "a = '<source>_wm'")):
        assert want in line_after(start + " ")[0]
    for value in ("74.84", "55.10", "54.68", "58.78", "53.89", "48.39", "71.3", "53.46", "--compare-paper"):
        assert value in text


def test_a_shared_reference_serves_every_target_and_scenario(tmp_path):
    """tools/launch.py trains one CoOp reference per source and seed (folder <source>), tested on every
    set: a target-specified group reads its target domain's set as u, an ownership group the
    watermarked source; a reference of the scenario's own (folder <source>_<scenario>) comes first."""
    shared = {"authorized": 90, "photo": 90, "sketch": 80, "clipart": 70, "photo_wm": 60, "sketch_wm": 50,
              "clipart_wm": 40}
    for seed in (1, 2):
        write_run(tmp_path, "CoOp", "tiny", "photo", "photo", seed, shared, pair_folder="photo")
        write_run(tmp_path, "CoOp", "tiny", "photo", "photo", seed, dict(shared, photo_wm=66),
                  pair_folder="photo_authorization")
        for target, u in (("sketch", 5), ("clipart", 7)):
            write_run(tmp_path, "IPCLIP", "tiny", "photo", target, seed, {"authorized": 88, "unauthorized": u},
                      scenario="target_specified")
        write_run(tmp_path, "IPCLIP", "tiny", "photo", "photo", seed, {"authorized": 85, "unauthorized": 9},
                  scenario="ownership", pair_folder="photo_ownership")
        write_run(tmp_path, "IPCLIP", "tiny", "photo", "photo", seed, dict(shared, photo_wm=80),
                  scenario="authorization", pair_folder="photo_authorization")
    summaries, _ = pr.aggregate(pr.group_runs(pr.load_runs(tmp_path)))
    rows, issues = pr.ip_rows(summaries)
    assert not [i for i in issues if "reference" in i.problem], issues
    values = {(r.scenario, r.pair): r.values for r in rows if not r.is_average}
    assert (values[("target_specified", "photo -> sketch")]["a_sl"],
            values[("target_specified", "photo -> sketch")]["u_sl"]) == (90, 80)
    assert values[("target_specified", "photo -> clipart")]["u_sl"] == 70
    assert (values[("ownership", "photo")]["a_sl"], values[("ownership", "photo")]["u_sl"]) == (90, 60)
    # authorization: a = photo_wm of its own reference (66), not of the shared one (60)
    assert values[("authorization", "photo")]["a_sl"] == 66
