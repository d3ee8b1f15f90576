"""Plan and launch the runs of one scenario or one paper table: every run is a `train.py` command
with its own output folder, planned here and handed to a launcher (tools/launchers.py).

    python tools/launch.py SCENARIO [--dataset D] [--pairs SRC:TGT ...] [--seeds 1 2 3] [--config C]
                           [--dry-run | --print-commands] [--launcher local|gpus|slurm] ...

SCENARIO is one of IP-CLIP's scenarios (trainers/ipclip/scenarios.py). Without --pairs the whole
paper table of the dataset is planned: every ordered domain pair (target_specified) or every source
domain (the other scenarios). Each IP-CLIP run comes with its CoOp reference: trained on the source
alone, it is one run per source and seed (and dataset config), shared by every target and scenario,
and tested on every set they read. Folders: OUTPUT/<dataset>/<trainer>/<config>/<folder>/seed<N>,
with folder <source>_<target> or <source>_<scenario> (IP-CLIP), <source> (the reference).

  --dry-run          the table of runs and their status (done / partial / running / todo / conflict)
  --print-commands   one shell command per line for the runs not done, for `xargs -P` or GNU parallel
  --launcher local   one run after another (default); `--workers N` runs N at once
  --launcher gpus    one worker per GPU of --gpus 0,1,2,3 (default: every visible GPU), each pinned
                     with CUDA_VISIBLE_DEVICES; on a machine without GPUs, --workers N CPU workers
  --launcher slurm   a submitit job array (one run per task), --partition, --time, --gpus-per-task,
                     --cpus-per-task, --mem-gb, --account, --array-parallelism; a preempted task is
                     requeued and resumes from its last checkpoint

Every launcher ends with the table (tools/parse_results.py) and a line: runs done / failed, with
the failed runs' logs (`console.txt` in the run folder).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import subprocess
import sys
from dataclasses import dataclass

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tools.launchers import (  # noqa: E402
    LAUNCHERS, RunSpec, SlurmOptions, run_local, slurm_executor, submit, summary, wait,
)
from trainers.ipclip.scenarios import (  # noqa: E402
    REFERENCE_TEST_SETS, SCENARIO_NAMES, cli_test_sets, get_scenario,
)

#: The synthetic benchmark's dataset config and trainer config (tiny CLIP on the CPU).
TOY_DATASET, TOY_CONFIG = "toy_domains", "tiny"
PAPER_CONFIG = "vit_b16"
DEFAULT_SEEDS = (1, 2, 3)
#: Trainers of an IP-CLIP experiment: the unprotected reference, then IP-CLIP.
REFERENCE, IPCLIP = "CoOp", "IPCLIP"
STATUSES = ("done", "partial", "running", "todo", "conflict")


@dataclass(frozen=True)
class Plan:
    """Where a table's runs read data and write results, and with which configs."""

    scenario: str
    dataset: str          # name of configs/datasets/<dataset>.yaml
    config: str           # trainer config name: configs/trainers/<trainer>/<config>.yaml
    data: str             # DATASET.ROOT
    output: str = "output"
    python: str = sys.executable


def dataset_domains(dataset: str) -> list[str]:
    """The domains of the dataset that configs/datasets/<dataset>.yaml names."""
    from dassl.config import get_cfg_default
    from dassl.data.datasets import DATASET_REGISTRY
    from trainers import register_all
    from trainers.config import extend_cfg

    cfg = extend_cfg(get_cfg_default())
    cfg.merge_from_file(osp.join(REPO, "configs", "datasets", f"{dataset}.yaml"))
    register_all()
    return list(DATASET_REGISTRY.get(cfg.DATASET.NAME).domains)


def table_pairs(scenario: str, domains) -> list[tuple[str, str]]:
    """Every (source, target) of a scenario's paper table; the target is the source where the
    scenario names none."""
    if get_scenario(scenario).needs_target:
        return [(s, t) for s in domains for t in domains if s != t]
    return [(s, s) for s in domains]


def _existing(*candidates):
    """The first of these repository paths that exists (the last one otherwise, to fail visibly)."""
    return next((c for c in candidates if osp.isfile(osp.join(REPO, c))), candidates[-1])


def reference_spec(plan: Plan, scenario, data_cfg: str, source: str, seed: int, opts=()) -> RunSpec:
    """The CoOp reference of `source` and `seed`: trained on the source alone, so one run serves every
    target and every scenario that reads the same dataset config, tested on every set they need
    (REFERENCE_TEST_SETS). Its folder is <source>, or <source>_<scenario> where the scenario has its
    own dataset config (another watermark)."""
    own_data = data_cfg != f"configs/datasets/{plan.dataset}.yaml"
    folder = f"{source}_{scenario.name}" if own_data else source
    out = osp.join(plan.output, plan.dataset, REFERENCE, plan.config, folder, f"seed{seed}")
    argv = [
        "--root", plan.data, "--seed", str(seed), "--trainer", REFERENCE,
        "--dataset-config-file", data_cfg, "--config-file", f"configs/trainers/{REFERENCE}/{plan.config}.yaml",
        "--source-domains", source, "--target-domains", source, "--output-dir", out,
        "DATASET.TEST_SETS", cli_test_sets(REFERENCE_TEST_SETS), *opts,
    ]
    shown = f"{source} ({osp.basename(data_cfg)[:-5]})" if own_data else source
    return RunSpec(f"{REFERENCE} reference {shown} seed {seed}", out, (plan.python, "train.py", *argv))


def run_specs(plan: Plan, pairs, seeds, opts=()) -> list[RunSpec]:
    """Every IP-CLIP run of (pair, seed), each after its CoOp reference (reference_spec, shared by
    the pairs of one source); `opts`: KEY VALUE pairs added to every run (e.g. a shorter schedule
    for a smoke test)."""
    scenario = get_scenario(plan.scenario)
    data_cfg = _existing(f"configs/datasets/{plan.dataset}_{scenario.name}.yaml",
                         f"configs/datasets/{plan.dataset}.yaml")
    ip_config = _existing(f"configs/trainers/{IPCLIP}/{plan.config}_{scenario.name}.yaml",
                          f"configs/trainers/{IPCLIP}/{plan.config}.yaml")
    specs: dict[str, RunSpec] = {}
    for source, target in pairs:
        folder = scenario.pair_folder(source, target)
        shown = f"{source}->{target}" if scenario.needs_target else source
        for seed in seeds:
            reference = reference_spec(plan, scenario, data_cfg, source, seed, opts)
            specs.setdefault(reference.output_dir, reference)
            out = osp.join(plan.output, plan.dataset, IPCLIP, plan.config, folder, f"seed{seed}")
            argv = [
                "--root", plan.data, "--seed", str(seed), "--trainer", IPCLIP,
                "--dataset-config-file", data_cfg, "--config-file", ip_config,
                "--source-domains", source, "--target-domains", target, "--output-dir", out,
                # a scenario's own config file is filed under the config name
                "TRAINER.IPCLIP.SCENARIO", scenario.name, "CONFIG_NAME", plan.config, *opts,
            ]
            specs[out] = RunSpec(f"{IPCLIP} {scenario.name} {shown} seed {seed}", out,
                                 (plan.python, "train.py", *argv))
    return list(specs.values())


def spec_config(spec: RunSpec):
    """The config train.py builds for a planned run (its paths are relative to the repository)."""
    import train

    args = train.build_parser().parse_args(list(spec.command[2:]))
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        return train.setup_cfg(args)
    finally:
        os.chdir(cwd)


def statuses(specs) -> tuple[dict, str]:
    """{output_dir: run_status} of every spec, and a "N done, N partial, ..." summary of them."""
    status = {s.output_dir: run_status(s) for s in specs}
    counts = ", ".join(f"{sum(v == k for v in status.values())} {k}" for k in STATUSES)
    return status, counts


def print_status_list(specs, status):
    """The --dry-run listing: one "[status] label: folder" line per spec."""
    for spec in specs:
        print(f"[{status[spec.output_dir]}] {spec.label}: {spec.output_dir}")


def run_status(spec: RunSpec) -> str:
    """done / partial / running / todo, or conflict (the folder holds another config's run)."""
    from dassl.config import get_cfg_default
    from dassl.engine.run_folder import FINISHED, NEW, RunFolderConflict, check_run_folder
    from dassl.engine.run_lock import lock_holder
    from trainers.config import extend_cfg

    folder = spec.output_dir if osp.isabs(spec.output_dir) else osp.join(REPO, spec.output_dir)
    if lock_holder(folder) is not None:
        return "running"
    try:
        state = check_run_folder(spec_config(spec), extend_cfg(get_cfg_default()))
    except RunFolderConflict:
        return "conflict"
    return {FINISHED: "done", NEW: "todo"}.get(state, "partial")


def visible_gpus(requested: str) -> list[str]:
    """The devices of the gpus launcher: --gpus, else every GPU torch sees (none: CPU workers)."""
    if requested:
        return [g for g in requested.split(",") if g]
    import torch

    count = torch.cuda.device_count()
    # Children get the parent's device names, which CUDA_VISIBLE_DEVICES may already have narrowed.
    names = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
    return names[:count] if len(names) >= count else [str(i) for i in range(count)]


def print_table(plan: Plan) -> int:
    """tools/parse_results.py on the dataset's output folder."""
    root = osp.join(plan.output, plan.dataset)
    return subprocess.call([plan.python, "tools/parse_results.py", root], cwd=REPO)


# --------------------------------------------------------------------------------------------------
def _pair(text: str) -> tuple[str, str]:
    source, sep, target = text.partition(":")
    if not source or (sep and not target):
        raise argparse.ArgumentTypeError(f"expected SOURCE or SOURCE:TARGET, got {text!r}")
    return source, target or source


def build_parser():
    doc = __doc__.split("\n\n")
    parser = argparse.ArgumentParser(description=doc[0], epilog="\n\n".join(doc[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=SCENARIO_NAMES)
    parser.add_argument("--dataset", default=TOY_DATASET,
                        help=f"dataset config name (configs/datasets/<name>.yaml; default {TOY_DATASET})")
    parser.add_argument("--pairs", nargs="+", type=_pair, default=None, metavar="SRC[:TGT]",
                        help="the experiments (default: the dataset's whole table)")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    parser.add_argument("--config", default=None,
                        help=f"trainer config name (default {TOY_CONFIG} for {TOY_DATASET}, else {PAPER_CONFIG})")
    parser.add_argument("--data", default=None, help="DATASET.ROOT (default ./data for the synthetic benchmark)")
    parser.add_argument("--output", default="output", help="output root (default output)")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the runs")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                        help="config overrides added to every run (note: they are part of its config)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--dry-run", action="store_true", help="list the runs and their status, run nothing")
    what.add_argument("--print-commands", action="store_true",
                      help="print one shell command per run not done, run nothing")
    parser.add_argument("--no-table", action="store_true", help="do not print the results table at the end")
    group = parser.add_argument_group("launchers")
    group.add_argument("--launcher", choices=LAUNCHERS, default="local")
    group.add_argument("--workers", type=int, default=1,
                       help="local, or gpus without GPUs: runs at once (default 1)")
    group.add_argument("--gpus", default="", help="gpus: device ids, e.g. 0,1,2,3 (default: every visible GPU)")
    group.add_argument("--threads", type=int, default=0,
                       help="CPU threads per run (default: cores // workers)")
    slurm = parser.add_argument_group("slurm launcher (submitit)")
    defaults = SlurmOptions()
    slurm.add_argument("--partition", default=defaults.partition)
    slurm.add_argument("--time", type=int, default=defaults.time_min, help="minutes per run")
    slurm.add_argument("--gpus-per-task", type=int, default=defaults.gpus_per_task)
    slurm.add_argument("--cpus-per-task", type=int, default=defaults.cpus_per_task)
    slurm.add_argument("--mem-gb", type=int, default=defaults.mem_gb)
    slurm.add_argument("--account", default=defaults.account)
    slurm.add_argument("--array-parallelism", type=int, default=defaults.array_parallelism)
    slurm.add_argument("--slurm-folder", default="output/slurm/%j", help="submitit's logs")
    slurm.add_argument("--no-wait", action="store_true", help="submit and return (print the job ids)")
    slurm.add_argument("--cluster", default=None, help=argparse.SUPPRESS)  # tests: "local"
    return parser


def make_plan(args) -> Plan:
    toy = args.dataset == TOY_DATASET
    data = args.data or (osp.join(REPO, "data") if toy else "")
    if not data and not (args.dry_run or args.print_commands):
        raise SystemExit("error: pass --data DIR, the folder that holds the datasets (README, section Datasets)")
    if not osp.isfile(osp.join(REPO, "configs", "datasets", f"{args.dataset}.yaml")):
        raise SystemExit(f"error: no dataset config configs/datasets/{args.dataset}.yaml")
    return Plan(args.scenario, args.dataset, args.config or (TOY_CONFIG if toy else PAPER_CONFIG),
                data or "/path/to/datasets", args.output, args.python)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    plan = make_plan(args)
    pairs = args.pairs or table_pairs(plan.scenario, dataset_domains(plan.dataset))
    if len(args.opts) % 2:
        raise SystemExit("error: --opts takes KEY VALUE pairs")
    specs = run_specs(plan, pairs, args.seeds, args.opts)
    status, counts = statuses(specs)
    todo = [s for s in specs if status[s.output_dir] in ("todo", "partial")]
    conflicts = [s for s in specs if status[s.output_dir] == "conflict"]
    if args.print_commands:
        for spec in todo:
            print(spec.shell())
        return 0
    print(f"{len(specs)} runs of {plan.scenario} on {plan.dataset} ({plan.config}): {counts}")
    if args.dry_run:
        print_status_list(specs, status)
        return 0
    if conflicts:
        print("error: these folders hold runs made with another config (train.py lists the keys): "
              + ", ".join(s.output_dir for s in conflicts), file=sys.stderr)
        return 2
    if args.launcher == "slurm":
        options = SlurmOptions(args.partition, args.time, args.gpus_per_task, args.cpus_per_task,
                               args.mem_gb, args.account, args.array_parallelism)
        jobs = submit(todo, slurm_executor(osp.join(REPO, args.slurm_folder), options, args.cluster))
        print(f"submitted {len(jobs)} runs: " + ", ".join(j.job_id for j in jobs))
        if args.no_wait:
            return 0
        outcomes = wait(jobs, todo)
    else:
        gpus = visible_gpus(args.gpus) if args.launcher == "gpus" else []
        outcomes = run_local(todo, workers=args.workers, gpus=gpus, threads=args.threads)
    if not args.no_table:
        print_table(plan)
    print(summary(outcomes))
    return 1 if any(not o.ok for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
