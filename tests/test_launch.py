"""tools/launch.py (the run planner) and tools/launchers.py (local, per-GPU and SLURM launchers):
which runs a table needs, their folders and statuses, the commands, and where each run goes."""
import json
import os
import shlex
import socket
import sys

import pytest

import train
from dassl.engine.run_lock import LOCK_NAME
from dassl.engine.run_record import cfg_to_dict
from tools import launch
from tools.launchers import RunSpec, SlurmOptions, run_local, slurm_executor, submit, summary, wait


def _plan(tmp_path, scenario="target_specified", dataset="toy_domains", config="tiny"):
    return launch.Plan(scenario, dataset, config, str(tmp_path / "data"), str(tmp_path / "out"))


def _argv(spec):
    return list(spec.command[2:])


# --------------------------------------------------------------------------------------------------
# Planning
@pytest.mark.parametrize("scenario, dataset, experiments, sources", [
    ("target_specified", "office31", 6, 3), ("target_specified", "office_home", 12, 4),
    ("target_free", "office31", 3, 3), ("ownership", "office_home", 4, 4), ("authorization", "toy_domains", 4, 4),
])
def test_a_table_plans_every_pair_after_its_shared_reference(tmp_path, scenario, dataset, experiments, sources):
    domains = launch.dataset_domains(dataset)
    pairs = launch.table_pairs(scenario, domains)
    assert len(pairs) == experiments
    specs = launch.run_specs(_plan(tmp_path, scenario, dataset, "vit_b16"), pairs, seeds=(1, 2, 3))
    parsed = {s.output_dir: train.build_parser().parse_args(_argv(s)) for s in specs}
    ips = [a for a in parsed.values() if a.trainer == "IPCLIP"]
    references = [a for a in parsed.values() if a.trainer == "CoOp"]
    # One CoOp reference per source and seed, whatever the number of targets.
    assert len(ips) == 3 * experiments and len(references) == 3 * sources
    assert len(parsed) == len(specs)
    order = [s.output_dir for s in specs]
    for ip in ips:
        reference = next(r for r in references
                         if (r.seed, r.source_domains, r.dataset_config_file) ==
                         (ip.seed, ip.source_domains, ip.dataset_config_file))
        assert order.index(reference.output_dir) < order.index(ip.output_dir)
        assert reference.target_domains == reference.source_domains  # trains on the source alone
        assert "TRAINER.IPCLIP.SCENARIO" not in reference.opts
        folder = ip.output_dir.split(os.sep)
        assert folder[-5:-3] == [dataset, "IPCLIP"] and folder[-3] == "vit_b16"
        expected = (f"{ip.source_domains[0]}_{ip.target_domains[0]}" if scenario == "target_specified"
                    else f"{ip.source_domains[0]}_{scenario}")
        assert folder[-2] == expected and folder[-1] == f"seed{ip.seed}"
        assert ip.opts[ip.opts.index("TRAINER.IPCLIP.SCENARIO") + 1] == scenario


def test_runs_get_the_scenario_config_files_and_test_sets(tmp_path):
    spec = launch.run_specs(_plan(tmp_path, "ownership"), [("photo", "photo")], seeds=(1,))[1]
    args = train.build_parser().parse_args(_argv(spec))
    assert args.config_file == "configs/trainers/IPCLIP/tiny_ownership.yaml"
    # The scenario's own dataset config (its mark), which the CoOp reference gets as well.
    assert args.dataset_config_file == "configs/datasets/toy_domains_ownership.yaml"
    train.register_all()
    cfg = launch.spec_config(spec)
    assert cfg.INPUT.WATERMARK.PATTERN == "frame"
    # No DATASET.TEST_SETS on the command line: train.py gives the scenario's.
    assert list(cfg.DATASET.TEST_SETS) == ["authorized=source", "unauthorized=source+watermark"]
    assert cfg.CONFIG_NAME == "tiny"


def _write_results(spec, finished, **changes):
    config = cfg_to_dict(launch.spec_config(spec))
    for key, value in changes.items():
        node, leaf = key.split(".")
        config[node][leaf] = value
    os.makedirs(spec.output_dir, exist_ok=True)
    with open(os.path.join(spec.output_dir, "results.json"), "w") as f:
        json.dump({"finished": finished, "config": config}, f)


def test_statuses_and_the_commands_of_what_is_left(tmp_path, capsys):
    specs = launch.run_specs(_plan(tmp_path), [("photo", "sketch")], seeds=(1, 2, 3))
    assert [launch.run_status(s) for s in specs] == ["todo"] * 6
    _write_results(specs[0], finished=True)
    _write_results(specs[1], finished=False)
    _write_results(specs[2], finished=True, **{"OPTIM.LR": 123.0})
    os.makedirs(specs[3].output_dir)
    with open(os.path.join(specs[3].output_dir, LOCK_NAME), "w") as f:
        json.dump({"host": socket.gethostname(), "pid": os.getppid(), "slurm": {}}, f)
    assert [launch.run_status(s) for s in specs] == ["done", "partial", "conflict", "running", "todo", "todo"]

    argv = ["target_specified", "--pairs", "photo:sketch", "--output", str(tmp_path / "out"),
            "--data", str(tmp_path / "data")]
    assert launch.main(argv + ["--print-commands"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [tuple(shlex.split(line)) for line in lines] == [specs[i].command for i in (1, 4, 5)]
    assert launch.main(argv + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "6 runs of target_specified on toy_domains (tiny): 1 done, 1 partial, 1 running, 2 todo, 1 conflict" in out
    assert f"[conflict] CoOp reference photo seed 2: {specs[2].output_dir}" in out
    # A conflict stops the launch before anything runs.
    assert launch.main(argv) == 2
    assert "another config" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# Launchers
def _probe(tmp_path, name, code="ok"):
    """A run whose command records its environment in its folder (and fails when code != 'ok')."""
    out = tmp_path / name
    script = (f"import os, json; os.makedirs({str(out)!r}, exist_ok=True); "
              f"json.dump({{k: os.environ.get(k) for k in ('CUDA_VISIBLE_DEVICES', 'OMP_NUM_THREADS')}}, "
              f"open(os.path.join({str(out)!r}, 'env.json'), 'w')); "
              + ("" if code == "ok" else "raise SystemExit(3)"))
    return RunSpec(name, str(out), (sys.executable, "-c", script))


def _env(spec):
    with open(os.path.join(spec.output_dir, "env.json")) as f:
        return json.load(f)


def test_local_workers_share_the_cores_and_report_failures(tmp_path, capsys):
    specs = [_probe(tmp_path, f"run{i}") for i in range(3)] + [_probe(tmp_path, "bad", code="fail")]
    outcomes = run_local(specs, workers=2)
    assert sorted(o.spec.label for o in outcomes) == sorted(s.label for s in specs)
    assert {o.spec.label: o.ok for o in outcomes} == {"run0": True, "run1": True, "run2": True, "bad": False}
    threads = str(max(1, (os.cpu_count() or 1) // 2))
    assert all(_env(s)["OMP_NUM_THREADS"] == threads for s in specs)
    out = capsys.readouterr().out
    assert out.count("] ok ") == 3 and "FAILED bad" in out
    line = summary(outcomes)
    assert line.startswith("4 runs launched: 3 done, 1 failed") and str(tmp_path / "bad" / "console.txt") in line


def test_one_worker_per_gpu_each_pinned_to_its_device(tmp_path):
    specs = [_probe(tmp_path, f"run{i}") for i in range(5)]
    outcomes = run_local(specs, gpus=["2", "5"])
    assert all(o.ok for o in outcomes)
    devices = [_env(s)["CUDA_VISIBLE_DEVICES"] for s in specs]
    assert sorted(set(devices)) == ["2", "5"]  # each run sees exactly one device, both are used


def test_submitit_local_executor_runs_the_array(tmp_path):
    specs = [_probe(tmp_path, f"run{i}") for i in range(2)] + [_probe(tmp_path, "bad", code="fail")]
    executor = slurm_executor(str(tmp_path / "submitit" / "%j"), SlurmOptions(time_min=5), cluster="local")
    jobs = submit(specs, executor)
    outcomes = wait(jobs, specs)
    assert [o.ok for o in outcomes] == [True, True, False]
    assert all(os.path.isfile(os.path.join(s.output_dir, "env.json")) for s in specs)


def test_slurm_submission_asks_sbatch_for_an_array_with_the_options(tmp_path, monkeypatch):
    """SLURM is not here: a stand-in sbatch keeps the submission file that submitit hands it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    capture = tmp_path / "submission.sh"
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {capture}\necho "Submitted batch job 4242"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\n")
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    specs = [_probe(tmp_path, f"run{i}") for i in range(3)]
    options = SlurmOptions(partition="gpu", time_min=120, gpus_per_task=1, cpus_per_task=6, mem_gb=32,
                           account="lab", array_parallelism=2)
    jobs = submit(specs, slurm_executor(str(tmp_path / "slurm" / "%j"), options, cluster="slurm"))
    assert [j.job_id for j in jobs] == ["4242_0", "4242_1", "4242_2"]
    lines = set(capture.read_text().splitlines())
    for flag in ("--array=0-2%2", "--partition=gpu", "--time=120", "--gpus-per-node=1", "--cpus-per-task=6",
                 "--mem=32GB", "--account=lab", "--ntasks-per-node=1", "--nodes=1",
                 # submitit's preemption signal: the task checkpoints (requeues) and the run resumes
                 "--signal=USR2@90"):
        assert f"#SBATCH {flag}" in lines, flag


# --------------------------------------------------------------------------------------------------
# The synthetic benchmark through the launchers (short runs of the tiny CLIP)
@pytest.fixture(scope="module")
def small_toy_root(tmp_path_factory):
    """ToyDomains with 6 images per class and no test-only images: a launch of real runs in seconds."""
    from datasets.toy_domains import DATASET_DIR, ToyParams, generate_toy_domains

    root = tmp_path_factory.mktemp("small_toy")
    generate_toy_domains(root / DATASET_DIR, ToyParams(images_per_class=6))
    return root


def _table(small_toy_root, out, cache_dir, backbone, *flags):
    return ["ownership", "--pairs", "photo", "--seeds", "1", "--data", str(small_toy_root),
            "--output", str(out), "--threads", "1", "--no-table", *flags,
            "--opts", "OPTIM.MAX_EPOCH", "1", "DATASET.TOY.IMAGES_PER_CLASS", "6",
            "DATASET.TOY.EXTRA_TEST_PER_CLASS", "0",
            "MODEL.CLIP.CACHE_DIR", str(cache_dir), "MODEL.BACKBONE.NAME", backbone]


def _finals(out):
    found = {}
    for path in sorted(out.rglob("results.json")):
        data = json.loads(path.read_text())
        assert data["finished"], path
        found[str(path.relative_to(out))] = {k: v["accuracy"] for k, v in data["final"].items()}
    return found


def _trainings(out):
    """How many times each run folder trained (every training ends with this line in console.txt)."""
    return {str(p.parent.relative_to(out)): p.read_text().count("Finish training")
            for p in sorted(out.rglob("console.txt"))}


def test_two_workers_give_the_sequential_results(small_toy_root, tiny_clip_cache_dir, tiny_clip_backbone,
                                                 tmp_path, capsys):
    sequential, parallel = tmp_path / "sequential", tmp_path / "parallel"
    assert launch.main(_table(small_toy_root, sequential, tiny_clip_cache_dir, tiny_clip_backbone)) == 0
    assert launch.main(_table(small_toy_root, parallel, tiny_clip_cache_dir, tiny_clip_backbone,
                              "--launcher", "gpus", "--workers", "2")) == 0
    assert "2 runs launched: 2 done, 0 failed" in capsys.readouterr().out
    assert len(_finals(sequential)) == 2 and _finals(sequential) == _finals(parallel)
    # The table pairs the IP-CLIP run with its shared reference (u: the reference's watermarked source).
    from tools import parse_results as pr

    rows, _ = pr.ip_rows(pr.aggregate(pr.group_runs(pr.load_runs(sequential)))[0])
    assert len(rows) == 1 and rows[0].scenario == "ownership"
    assert rows[0].values["a_sl"] is not None and rows[0].values["u_sl"] is not None


def test_two_launchers_at_once_never_train_a_folder_twice(small_toy_root, tiny_clip_cache_dir,
                                                          tiny_clip_backbone, tmp_path):
    import subprocess

    out = tmp_path / "shared"
    argv = [sys.executable, "tools/launch.py", *_table(small_toy_root, out, tiny_clip_cache_dir, tiny_clip_backbone)]
    procs = [subprocess.Popen(argv, cwd=launch.REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert len(_finals(out)) == 2
    assert set(_trainings(out).values()) == {1}, (_trainings(out), outputs)


def test_submitit_local_executor_runs_the_synthetic_table(small_toy_root, tiny_clip_cache_dir,
                                                          tiny_clip_backbone, tmp_path, capsys):
    out = tmp_path / "submitit"
    argv = _table(small_toy_root, out, tiny_clip_cache_dir, tiny_clip_backbone, "--launcher", "slurm",
                  "--cluster", "local", "--slurm-folder", str(tmp_path / "logs" / "%j"), "--time", "10")
    assert launch.main(argv) == 0
    assert "2 runs launched: 2 done, 0 failed" in capsys.readouterr().out
    assert len(_finals(out)) == 2
    # Everything is done now: a second launch submits nothing.
    assert launch.main(argv) == 0
    assert "submitted 0 runs" in capsys.readouterr().out


def test_a_preempted_task_requeues_the_same_run():
    """submitit calls checkpoint() on preemption or timeout and requeues what it returns: the same
    command, which resumes from the run's last checkpoint (train.py) under the same lock owner."""
    from tools.launchers import _train_job_class

    job = _train_job_class()()
    spec = RunSpec("a run", "/nowhere/run", ("python", "train.py"))
    delayed = job.checkpoint(spec)
    assert delayed.function is job and delayed.args == (spec,) and not delayed.kwargs
