"""tools/parse_results.py against the committed fixture tree, with every expected number worked out by hand.

Fixture (tests/fixtures/results_tree/ToyDomains/<trainer>/tiny/<src>_<tgt>/seed<N>/results.json),
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
FIXTURE = REPO / "tests" / "fixtures" / "results_tree"

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


def write_run(root, trainer, cfg, src, tgt, seed, final, scenario="", finished=True, dataset="ToyDomains"):
    """A minimal results.json of the design.md schema; final = {set name: accuracy}."""
    folder = Path(root) / dataset / trainer / cfg / f"{src}_{tgt}" / f"seed{seed}"
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
    # method.md §6: Drop_u 74.57, Drop_a 0.13, A_a about 85.3 -> W = 0.853 * (74.57 - 0.13) = 63.497
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
    assert rule(["authorized", "unauthorized", "extra"]) == ("authorized", ("unauthorized",))
    assert rule(["art", "authorized", "clipart", "product"]) == ("authorized", ("art", "clipart", "product"))
    assert rule(["test"]) is None
    assert rule(["authorized"]) is None


def test_several_unauthorized_sets_are_averaged(tmp_path):
    for seed in (1, 2):
        write_run(tmp_path, "CoOp", "c", "a", "b", seed, {"authorized": 90.0, "dom_b": 70.0, "dom_c": 50.0})
        write_run(tmp_path, "IPCLIP", "c", "a", "b", seed, {"authorized": 88.0, "dom_b": 10.0, "dom_c": 20.0},
                  scenario="target_free")
    summaries, _ = pr.aggregate(pr.group_runs(pr.load_runs(tmp_path)))
    rows, _ = pr.ip_rows(summaries)
    assert len(rows) == 1
    v = rows[0].values
    # u^SL = (70+50)/2 = 60; u^IP = (10+20)/2 = 15; Drop_a = 2; Drop_u = 45; W = 0.88 * 43 = 37.84
    assert v["u_sl"] == pytest.approx(60.0) and v["u_ip"] == pytest.approx(15.0)
    assert v["w"] == pytest.approx(37.84)
    assert v["d"] == pytest.approx(0.88 * (88 - 15))


def test_ownership_column_through_the_cli(tmp_path, capsys):
    write_run(tmp_path, "CoOp", "c", "a", "a", 1, {"authorized": 90.0, "unauthorized": 80.0})
    write_run(tmp_path, "IPCLIP", "c", "a", "a", 1, {"authorized": 88.0, "unauthorized": 8.0},
              scenario="ownership")
    code, out, _ = run_main(capsys, tmp_path, "--format", "csv")
    assert code == 0
    row = csv_sections(out)["IP metrics (from seed means; formulas: --help)"][0]
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
               sections["Results: accuracy (%), mean ± population std (ddof 0) over seeds"]}
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
    ip = sections["IP metrics (from seed means; formulas: --help)"]
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
            sections["Results: macro_f1 (%), mean ± population std (ddof 0) over seeds"]}
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
