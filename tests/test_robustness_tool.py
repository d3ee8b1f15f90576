"""tools/robustness.py: which runs the robustness table needs, how each run is scored against its
criteria, and the table it prints (no training here: results.json files are written by hand)."""
import json
import os.path as osp

import pytest

from tools import robustness as rb


def _plan(tmp_path, scenarios=rb.SCENARIOS, clip_seeds=(0, 1)):
    return rb.plan(str(tmp_path / "out"), "data", clip_seeds, scenarios)


def test_plan_covers_every_pair_and_seed_on_every_tiny_clip(tmp_path):
    experiments, runs = _plan(tmp_path)
    per_clip = {s: [e for e in experiments if e.scenario == s and e.ipclip.clip_seed == 0]
                for s in rb.SCENARIOS}
    # target_specified: the 12 ordered pairs with seed 1, photo -> sketch with seeds 2-5.
    assert len(per_clip["target_specified"]) == 12 + 4
    pairs = {(e.ipclip.source, e.ipclip.target) for e in per_clip["target_specified"]}
    assert len(pairs) == 12 and all(s != t for s, t in pairs)
    assert sorted(e.ipclip.seed for e in per_clip["target_specified"]
                  if (e.ipclip.source, e.ipclip.target) == ("photo", "sketch")) == [1, 2, 3, 4, 5]
    for scenario in ("target_free", "ownership", "authorization"):
        mine = per_clip[scenario]
        assert len(mine) == 4 + 4 and all(e.ipclip.target == e.ipclip.source for e in mine)
    # Each run has one folder; CoOp references are shared across scenarios with the same mark.
    assert len({r.output_dir for r in runs}) == len(runs)
    coop = [r for r in runs if r.trainer == "CoOp"]
    marks = {osp.basename(r.dataset_config) for r in coop}
    assert len(coop) == 2 * 8 * len(marks)  # 2 CLIPs x (4 sources seed 1 + photo seeds 2-5) per mark
    assert [r.trainer for r in runs[:2]] == ["ZeroshotCLIP"] * 2  # references first
    # Every IP-CLIP run is paired with the CoOp run of its own CLIP, source and seed.
    for e in experiments:
        assert (e.coop.clip_seed, e.coop.source, e.coop.seed) == (e.ipclip.clip_seed, e.ipclip.source,
                                                                  e.ipclip.seed)
        assert e.coop.dataset_config == e.ipclip.dataset_config
        assert rb.backbone_name(e.ipclip.clip_seed) in e.ipclip.argv()


def _finals(ip, coop):
    return {"ip": ip, "coop": coop}


def _experiment(scenario, source="photo", target="sketch"):
    def spec(trainer, out):
        return rb.RunSpec(trainer, 0, source, target, 1, "d.yaml", "c.yaml", out, rb.TEST_SETS, "data",
                          scenario=scenario if trainer == "IPCLIP" else "")

    return rb.Experiment(scenario, spec("IPCLIP", "ip"), spec("CoOp", "coop"), spec("ZeroshotCLIP", "zs"))


def _accuracies(**sets):
    base = {f"{d}{m}": 50.0 for d in ("photo", "clipart", "sketch", "painting") for m in ("", "_wm")}
    base.update(sets)
    return base


def test_target_specified_criteria_and_metric():
    exp = _experiment("target_specified")
    coop = _accuracies(photo=80.0, sketch=90.0)
    good = rb.score(exp, _finals(_accuracies(photo=78.0, sketch=12.0), coop))
    assert good.met and good.metric == pytest.approx(0.78 * ((90 - 12) - (80 - 78)))
    low_a = rb.score(exp, _finals(_accuracies(photo=76.0, sketch=12.0), coop))
    assert not low_a.met and low_a.shortfall == pytest.approx(1.0) and "authorized 76.0" in low_a.problems[0]
    leaky = rb.score(exp, _finals(_accuracies(photo=80.0, sketch=35.0), coop))
    assert not leaky.met and leaky.shortfall == pytest.approx(15.0)


def test_target_free_averages_the_other_domains():
    exp = _experiment("target_free", target="photo")
    coop = _accuracies(photo=80.0)
    ip = _accuracies(photo=79.0, clipart=10.0, sketch=20.0, painting=45.0)  # mean 25 <= 30
    outcome = rb.score(exp, _finals(ip, coop))
    assert outcome.met and outcome.unauthorized == pytest.approx(25.0) and outcome.worst_unauthorized == 45.0


def test_ownership_uses_the_watermarked_source_and_o_metric():
    exp = _experiment("ownership", target="photo")
    coop = _accuracies(photo=80.0, photo_wm=70.0)
    outcome = rb.score(exp, _finals(_accuracies(photo=79.0, photo_wm=5.0), coop))
    assert outcome.met and outcome.metric == pytest.approx(0.70 * (79 - 5))


def test_authorization_checks_every_other_set():
    exp = _experiment("authorization", target="photo")
    coop = _accuracies(photo_wm=70.0)
    ip = {name: 10.0 for name in _accuracies()}
    ip["photo_wm"] = 66.0
    assert rb.score(exp, _finals(ip, coop)).met
    ip["sketch_wm"] = 30.0  # one leaky set fails the run even though the mean is low
    outcome = rb.score(exp, _finals(ip, coop))
    assert not outcome.met and "set sketch_wm 30.0 > 25" in outcome.problems[0]
    assert outcome.metric == pytest.approx(0.66 * (66 - outcome.unauthorized))


def test_missing_runs_are_reported_not_scored():
    outcome = rb.score(_experiment("target_specified"), {"coop": _accuracies()})
    assert outcome.missing and not outcome.met


def test_summary_counts_share_required_and_names_the_worst_run():
    exp = _experiment("target_free", target="photo")
    coop = _accuracies(photo=80.0)
    outcomes = [rb.score(exp, _finals(_accuracies(photo=80.0, clipart=5, sketch=5, painting=5), coop))
                for _ in range(19)]
    outcomes.append(rb.score(exp, _finals(_accuracies(photo=50.0, clipart=5, sketch=5, painting=5), coop)))
    row = rb.summary_rows(outcomes, ["target_free"])[0]
    assert row[2] == "19/20" and row[3] == "19" and row[4] == "yes"  # 95 % of 20 runs
    assert "a 50" in row[-1] and "authorized 50.0" in row[-1]
    row = rb.summary_rows(outcomes[-2:], ["target_free"])[0]
    assert row[4] == "NO"
    text = rb.render(outcomes, [], ["target_free"])
    assert "Runs that miss the criteria" in text and "short by" in text


def test_baseline_soundness():
    assert rb.Baseline(0, "photo", 1, zero_shot=70.0, coop=68.0).sound
    assert not rb.Baseline(0, "painting", 1, zero_shot=65.0, coop=20.0).sound


def test_dry_run_lists_runs_and_reads_finished_ones(tmp_path, capsys):
    argv = ["--output", str(tmp_path / "out"), "--clip-seeds", "0", "--scenarios", "ownership",
            "--seeds", "1", "--dry-run"]
    assert rb.main(argv) == 0
    out = capsys.readouterr().out
    assert "9 runs: 0 done, 9 to run" in out  # zero-shot, 1 CoOp + 1 IP-CLIP per source
    assert out.count("[todo]") == 9
    assert rb.main(argv[:-1] + ["--report-only"]) == 0
    assert "ownership" in capsys.readouterr().out
    assert rb.main(argv[:-1] + ["--ipclip-opts", "ONE"]) == 2
    # An unknown scenario is refused by argparse.
    with pytest.raises(SystemExit):
        rb.main(["--scenarios", "nothing"])


def test_read_final_needs_a_finished_run(tmp_path):
    spec = rb.RunSpec("CoOp", 0, "photo", "photo", 1, "d", "c", str(tmp_path / "run"), rb.TEST_SETS, "data")
    assert rb.read_final(spec) is None
    (tmp_path / "run").mkdir()
    record = {"finished": False, "final": {"photo": {"accuracy": 80.0}}}
    (tmp_path / "run" / "results.json").write_text(json.dumps(record))
    assert rb.read_final(spec) is None
    record["finished"] = True
    (tmp_path / "run" / "results.json").write_text(json.dumps(record))
    assert rb.read_final(spec) == {"photo": 80.0}
