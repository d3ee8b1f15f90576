"""Attack every finished IP-CLIP run of a results tree and print the robustness table.

    python tools/attack.py ROOT [--budgets 1 4 16] [--attacks finetune transplant input forgery]
                           [--workers N] [--dry-run | --report-only] [--format table|markdown]
                           [--plot DIR] [--opts KEY VALUE ...]

ROOT is any folder of runs (e.g. output/toy_domains/IPCLIP/tiny, or output/robustness/tiny-rn/IPCLIP/
ownership/photo): every finished IP-CLIP training run below it whose final checkpoint is there gets
  * fine-tuning of its IP projector on k labelled shots per class of the unauthorized data, and CoOp
    trained from scratch on the same shots (the baseline);
  * the style transplant, every image's domain tokens replaced by those of k unlabelled authorized
    images (their mean, or each in turn);
  * the input attacks (blur, JPEG, median, crop + resize, grey-scale; colour and histogram matching
    to k authorized images), applied to every test set (after the watermark, where there is one);
  * where the scenario uses a watermark, forged marks (another pattern, period, colour, opacity,
    position);
  * zero-shot CLIP on its test sets (the baseline of every attack),
each a train.py run in <run>/attacks/<name>/ (the run's own files are only read). Finished attacks
are skipped, interrupted ones resume; the runs go to the local launcher (--workers N at once). The
table then gives, per scenario and pair, each attack's accuracy on the attacked inputs (mean ± std over
seeds) beside the protected model, its CoOp reference (found in ROOT: same source, seed, CLIP and mark),
zero-shot CLIP and the from-scratch attacker, and whether the attack beat the best baseline.

  --dry-run       the planned attacks and their status (done / partial / running / todo / conflict)
  --report-only   the table of what is finished, running nothing
  --plot DIR      also one PNG per attack with a budget: accuracy against k, protected vs baselines
  --opts          KEY VALUE overrides of every attack run (e.g. ATTACK.FINETUNE.EPOCHS 50); they are
                  part of the attacks' configs (a finished attack with other values is a conflict)
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tools import launch as planner  # noqa: E402
from tools.attacks import report as tables  # noqa: E402
from tools.attacks.plan import (  # noqa: E402
    DEFAULT_BUDGETS, FAMILIES, find_protected_runs, plan_attacks, write_reference,
)
from tools.launchers import run_local, summary  # noqa: E402
from tools.results.records import ResultsError  # noqa: E402


def build_parser():
    doc = __doc__.split("\n\n")
    parser = argparse.ArgumentParser(description=doc[0], epilog="\n\n".join(doc[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="results tree holding the protected IP-CLIP runs")
    parser.add_argument("--budgets", nargs="+", type=int, default=list(DEFAULT_BUDGETS), metavar="K",
                        help=f"attacker's budgets k (default {' '.join(map(str, DEFAULT_BUDGETS))})")
    parser.add_argument("--attacks", nargs="+", choices=FAMILIES, default=list(FAMILIES),
                        help="attack families (default: all)")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                        help="config overrides of every attack run")
    parser.add_argument("--coop-config", default=None,
                        help="trainer config of the from-scratch baseline (default configs/trainers/CoOp/"
                             "<the run's CONFIG_NAME>.yaml)")
    parser.add_argument("--zero-shot-config", default=None,
                        help="trainer config of zero-shot CLIP (default configs/trainers/ZeroshotCLIP/"
                             "<the run's CONFIG_NAME>.yaml)")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the runs")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--dry-run", action="store_true", help="list the attacks and their status, run nothing")
    what.add_argument("--report-only", action="store_true", help="print the table of what is finished")
    parser.add_argument("--workers", type=int, default=1, help="attack runs at once (default 1)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per run (default cores // workers)")
    parser.add_argument("--format", choices=tables.FORMATS, default="table")
    parser.add_argument("--decimals", type=int, default=1)
    parser.add_argument("--plot", metavar="DIR", help="also write one PNG per attack with a budget into DIR")
    return parser


def plan(args):
    """(planned attacks, notes) of every protected run below args.root."""
    if any(k < 1 for k in args.budgets):
        raise SystemExit(f"error: --budgets must be >= 1, got {args.budgets}")
    if len(args.opts) % 2:
        raise SystemExit("error: --opts takes KEY VALUE pairs")
    runs, notes = find_protected_runs(args.root)
    planned = []
    for run in runs:
        planned += plan_attacks(run, sorted(set(args.budgets)), args.attacks, python=args.python,
                                opts=args.opts, coop_config=args.coop_config,
                                zero_shot_config=args.zero_shot_config)
    return runs, planned, notes


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        runs, planned, notes = plan(args)
        if not runs:
            print(f"attack.py: no finished IP-CLIP run below {args.root}", file=sys.stderr)
            for note in notes:
                print(f"  {note}", file=sys.stderr)
            return 1
        outcomes = []
        if not args.report_only:
            from trainers import register_all

            register_all()
            status, counts = planner.statuses([p.spec for p in planned])
            print(f"{len(planned)} attack runs on {len(runs)} protected runs: {counts}")
            if args.dry_run:
                planner.print_status_list([p.spec for p in planned], status)
                return 0
            conflicts = [p for p in planned if status[p.spec.output_dir] == "conflict"]
            if conflicts:
                print("error: these attack folders hold runs made with another config (train.py lists the "
                      "keys; move them away or drop the --opts that differ): "
                      + ", ".join(p.spec.output_dir for p in conflicts), file=sys.stderr)
                return 2
            todo = [p for p in planned if status[p.spec.output_dir] in ("todo", "partial")]
            for p in todo:
                write_reference(p, planner.spec_config)
            outcomes = run_local([p.spec for p in todo], workers=args.workers, threads=args.threads)
        reports = tables.collect(planned, tables.reference_runs(args.root))
        sys.stdout.write(tables.render(reports, args.format, args.decimals, notes))
        if args.plot:
            for path in tables.plot_reports(reports, args.plot):
                print(f"wrote {path}")
        if outcomes:
            print(summary(outcomes))
    except ResultsError as err:
        print(f"attack.py: error: {err}", file=sys.stderr)
        return 1
    return 1 if any(not o.ok for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
