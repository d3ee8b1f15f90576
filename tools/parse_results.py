"""Collect every run's results.json below an output folder into one table per IP-CLIP scenario.

Runs are grouped by experiment and domain pair; each named test set is reported as the mean and the
population standard deviation over seeds, and IP-CLIP runs are set against their CoOp reference to give
the IP metrics of the paper. The four scenarios (target_specified, target_free, ownership, authorization)
give four separate tables because their test sets play different roles. Anything missing (an unfinished
run, a seed that other pairs have) is listed in a separate "incomplete" section so that a mean over fewer
seeds is never passed off as a full one. Old runs that only left an upstream-style log.txt can be read
with --from-logs. tools/plot_results.py draws the same groups.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# The pieces, re-exported: `from tools import parse_results as pr` keeps working.
from tools.results.aggregate import (  # noqa: E402,F401
    GroupSummary, Issue, SetStats, aggregate, expected_seeds_by_experiment, mean_std,
)
from tools.results.pairing import (  # noqa: E402,F401
    IP_TRAINER, MISSING, REFERENCE_TRAINER, IPRow, Pairing, ip_rows, pair_with_references, pick_reference,
    role_stats,
)
from tools.results.records import (  # noqa: E402,F401
    LOG_FILE, RESULTS_FILE, SUPPORTED_FORMAT, GroupKey, ResultsError, Run, folder_scenario, group_runs,
    load_runs, read_results_file, run_defect, run_from_results,
)
from tools.results.render import FORMATS, by_scenario, render, scenario_tables  # noqa: E402,F401
from trainers.ipclip.protocol import (  # noqa: E402,F401
    FORMULAS, HEADLINE_METRIC, IP_COLUMNS, PUBLISHED, ROLE_TEXT, SCENARIO_METRICS, authorized_and_unauthorized,
    d_u_a, drop, ip_metrics, o_u_a, published_mean, w_u_a,
)
from trainers.ipclip.scenarios import SCENARIO_NAMES  # noqa: E402

TARGET_SPECIFIED, TARGET_FREE, OWNERSHIP, AUTHORIZATION = SCENARIOS = SCENARIO_NAMES

DESCRIPTION = """\
Summarise every results.json below OUTPUT_ROOT, one table per IP-CLIP scenario. Per group (dataset,
trainer, config, scenario, source -> target): the mean ± population std (ddof 0, as upstream Dassl)
over seeds of each named test set and the number of seeds; the IP metrics of IP-CLIP runs against
their CoOp reference; and a separate 'incomplete' section (unfinished runs, missing seeds: such groups
are marked e.g. '2/3'). Exit status 1 with a message when nothing is found or an input is unusable.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parse_results.py",
        description=DESCRIPTION,
        epilog=FORMULAS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("root", nargs="?", default="output", metavar="OUTPUT_ROOT",
                        help="folder searched recursively for results.json (default: %(default)s)")
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="output format (default: %(default)s)")
    parser.add_argument("--metric", default="accuracy",
                        help="metric of each test set to report: accuracy, error_rate, macro_f1 "
                             "(default: %(default)s); IP metrics are defined on accuracy only")
    parser.add_argument("--expected-seeds", type=int, nargs="+", metavar="SEED",
                        help="seeds every group must have (default: the seeds any pair of the same "
                             "experiment has); other seeds are ignored and listed")
    parser.add_argument("--reference-config", metavar="NAME",
                        help="config_name of the CoOp reference runs (default: the CoOp config with the "
                             "IP-CLIP run's config_name, else the only one)")
    parser.add_argument("--ip-trainer", default=IP_TRAINER,
                        help="trainer name of protected runs (default: %(default)s)")
    parser.add_argument("--reference-trainer", default=REFERENCE_TRAINER,
                        help="trainer name of the unprotected reference (default: %(default)s)")
    parser.add_argument("--decimals", type=int, default=2,
                        help="digits after the point (default: %(default)s)")
    parser.add_argument("--compare-paper", action="store_true",
                        help="add the published mean of each scenario's headline metric beside each "
                             "dataset's mean (values and sources below)")
    parser.add_argument("--output", metavar="FILE", help="write the report to FILE instead of printing it")
    parser.add_argument("--from-logs", action="store_true",
                        help="also read upstream-style log.txt in run folders without results.json (old "
                             "runs): results after 'Finish training' (anywhere for eval-only runs), the last "
                             "block of each test set")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.decimals < 0:
        parser.error(f"--decimals must be >= 0, got {args.decimals}")
    try:
        runs = load_runs(args.root, from_logs=args.from_logs)
        if not runs:
            looked_for = f"{RESULTS_FILE} or {LOG_FILE}" if args.from_logs else RESULTS_FILE
            hint = "" if args.from_logs else " (old runs with only log.txt: add --from-logs)"
            print(f"parse_results.py: no {looked_for} found under {args.root}{hint}.", file=sys.stderr)
            return 1
        summaries, issues = aggregate(group_runs(runs), args.metric, args.expected_seeds)
        rows, ip_note = [], ""
        if args.metric == "accuracy":
            rows, ip_issues = ip_rows(summaries, args.ip_trainer, args.reference_trainer,
                                      args.reference_config)
            issues += ip_issues
        elif any(s.key.trainer.lower() == args.ip_trainer.lower() for s in summaries):
            ip_note = f"not computed: IP metrics are defined on accuracy, not {args.metric}."
        report = render(summaries, rows, issues, args.format, args.metric, args.decimals, ip_note,
                        args.compare_paper)
    except ResultsError as err:
        print(f"parse_results.py: error: {err}", file=sys.stderr)
        return 1
    if args.output:
        try:
            Path(args.output).write_text(report)
        except OSError as err:
            print(f"parse_results.py: error: cannot write --output {args.output} ({err}).", file=sys.stderr)
            return 1
        print(f"Wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
