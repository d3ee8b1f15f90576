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
import ast
import csv
import io
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from trainers.ipclip.scenarios import (  # noqa: E402  (the scenario definitions: roles, metrics)
    ANY_DATASET, DEFAULT_SCENARIO, SCENARIO_NAMES, SCENARIOS as SCENARIO_DEFS, Roles,
)

RESULTS_FILE = "results.json"
LOG_FILE = "log.txt"
SUPPORTED_FORMAT = 1
IP_TRAINER = "IPCLIP"
REFERENCE_TRAINER = "CoOp"
FORMATS = ("table", "markdown", "csv", "latex")
MISSING = "-"

TARGET_SPECIFIED, TARGET_FREE, OWNERSHIP, AUTHORIZATION = SCENARIOS = SCENARIO_NAMES
# Read from the scenario definitions (trainers/ipclip/scenarios.py): what a and u are (titles,
# plots), the metric each scenario is judged by (what --compare-paper sets the published value
# beside), and the published means by dataset (ANY_DATASET where the source does not say which).
ROLE_TEXT = {name: s.role_text for name, s in SCENARIO_DEFS.items()}
HEADLINE_METRIC = {name: s.headline for name, s in SCENARIO_DEFS.items()}
PUBLISHED = {name: s.published for name, s in SCENARIO_DEFS.items()}
PAPER_DATASETS = ("Office31", "OfficeHome", "miniDomainNet")
PAPER_NOTE = "ViT-B/16, their splits"
PAPER_NOTE_ANY = "dataset not stated"

FORMULAS = """\
IP metrics (accuracies in %; IP = the IP-CLIP run, SL = its unprotected CoOp reference trained on the
same dataset, config, source domain(s), scenario and seeds and tested on the same named sets;
a = the authorized test set(s), u = the unauthorized one(s), the mean where there are several):
  Drop_a  = A_a^SL - A_a^IP                       (lower is better, ideally 0)
  Drop_u  = A_u^SL - A_u^IP                       (higher is better)
  W_{u-a} = (A_a^IP / 100) x (Drop_u - Drop_a)    target_specified, target_free
            source: the IP-CLIP paper (CVPR 2025)
  D_{u-a} = (A_a^IP / 100) x (A_a^IP - A_u^IP)    authorization; needs no reference run
            source: the IP-CLIP paper (CVPR 2025)
  O_{u-a} = (A_u^SL / 100) x (A_a^IP - A_u^IP)    ownership (a = clean, u = watermarked); needs the
            reference's accuracy on the watermarked set
            source: the authors' follow-up paper AoD-IP (CVPR 2026), a SECONDARY source: the IP-CLIP
            paper itself gives no formula for it.
Roles of the test sets (docs/design.md, "IP-CLIP scenarios"):
  target_specified  a = 'authorized'          u = 'unauthorized' (none: every other set)
  target_free       a = 'authorized'          u = mean over the per-domain sets except the source domain(s)
  ownership         a = 'authorized' (clean)  u = 'unauthorized' (watermarked)
  authorization     a = '<source>_wm'         u = mean over every other set
The scenario of a run is run.scenario; CoOp references record none and take the one named by their
pair folder (<source>_target_free, <source>_ownership, <source>_authorization), else target_specified.
Each scenario gets its own results table and IP-metrics table.
The metrics are computed from the seed MEANS of each group (not per seed and then averaged); the
per-dataset 'average' row (datasets with two or more pairs) is the mean of the per-pair rows; its cell
is '-' unless every pair has a value.
Std is the population standard deviation over seeds (ddof 0, as upstream Dassl's parse_test_res.py).
--compare-paper adds the published means (ViT-B/16, the authors' splits) beside each dataset's mean
(the average row, or the pair row of a dataset with one pair):
  W_{u-a} target_specified  Office31 74.84, OfficeHome 55.10, miniDomainNet 54.68
  D_{u-a} authorization     Office31 58.78, OfficeHome 53.89, miniDomainNet 48.39
  O_{u-a} ownership         71.3  (dataset not stated; shown for each of the three datasets)
  W_{u-a} target_free       53.46 (dataset not stated; shown for each of the three datasets)
Other datasets (e.g. ToyDomains) have no published number: '-'.
"""


DESCRIPTION = """\
Summarise every results.json below OUTPUT_ROOT, one table per IP-CLIP scenario. Per group (dataset,
trainer, config, scenario, source -> target): the mean ± population std (ddof 0, as upstream Dassl)
over seeds of each named test set and the number of seeds; the IP metrics of IP-CLIP runs against
their CoOp reference; and a separate 'incomplete' section (unfinished runs, missing seeds: such groups
are marked e.g. '2/3'). Exit status 1 with a message when nothing is found or an input is unusable.
"""


class ResultsError(Exception):
    """Input the tool cannot use; the message names the file, what was expected, and the fix."""


# --------------------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True, order=True)
class GroupKey:
    """Everything that identifies an experiment on one domain pair, i.e. all but the seed.

    folder_scenario is the scenario named by the pair folder (<source>_<scenario>) of a run that records
    none itself (a CoOp reference): it keeps the references of different scenarios apart.
    """

    dataset: str
    trainer: str
    config_name: str
    scenario: str
    source_domains: tuple[str, ...]
    target_domains: tuple[str, ...]
    eval_only: bool = False
    folder_scenario: str = ""

    @property
    def table_scenario(self) -> str:
        """The scenario table this group belongs to."""
        return self.scenario or self.folder_scenario or TARGET_SPECIFIED

    @property
    def pair(self) -> str:
        """'src -> tgt'; just the source where the scenario trains on the source alone (target = source)."""
        source = "+".join(self.source_domains)
        if self.target_domains == self.source_domains:
            return source
        return f"{source} -> {'+'.join(self.target_domains)}"

    @property
    def experiment(self) -> tuple:
        """Groups of one experiment (all pairs) are expected to share their seeds."""
        return (self.dataset, self.trainer, self.config_name, self.table_scenario, self.eval_only)

    @property
    def config_label(self) -> str:
        return self.config_name + (" [eval-only]" if self.eval_only else "")

    def label(self) -> str:
        if self.scenario:
            scenario = f" {self.scenario}"
        else:
            scenario = f" ({self.folder_scenario} reference)" if self.folder_scenario else ""
        return f"{self.dataset}/{self.trainer}/{self.config_label}{scenario} {self.pair}"


@dataclass
class Run:
    """One seed of one group, as read from its results.json (or log.txt)."""

    path: Path
    key: GroupKey
    seed: int
    finished: bool
    final: dict[str, dict[str, float]]
    epochs: list[dict] = field(default_factory=list)
    defect: str = ""  # why a finished run must not be averaged (collapsed), else ""


_SCENARIO_FOLDER = re.compile(rf".+_({'|'.join(s for s in SCENARIOS if s != TARGET_SPECIFIED)})")


def folder_scenario(path: Path) -> str:
    """The scenario named by the pair folder of a run (…/<source>_<scenario>/seed<N>/results.json), or ''."""
    run_dir = path.parent
    pair_dir = run_dir.parent if re.fullmatch(r"seed\d+", run_dir.name) else run_dir
    match = _SCENARIO_FOLDER.fullmatch(pair_dir.name)
    return match[1] if match else ""


def _require(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise ResultsError(
            f"{path}: {what}. Files named {RESULTS_FILE} are expected to be written by this project's "
            f"train.py (schema in docs/design.md); move or delete this one, or rerun that run."
        )


def _domains(value, path: Path, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    _require(
        isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value),
        path,
        f"run.{name} should be a list of domain names, got {value!r}",
    )
    return tuple(value)


def run_from_results(data, path: Path) -> Run:
    """Validate one parsed results.json and turn it into a Run."""
    _require(isinstance(data, dict), path, "the top level should be a JSON object")
    fmt = data.get("format")
    _require(fmt is not None, path, "no 'format' field")
    _require(
        isinstance(fmt, int) and fmt <= SUPPORTED_FORMAT,
        path,
        f"format {fmt!r} is newer than this tool reads ({SUPPORTED_FORMAT}); update tools/parse_results.py",
    )
    run = data.get("run")
    _require(isinstance(run, dict), path, "no 'run' object")
    for name in ("dataset", "trainer", "seed", "source_domains", "target_domains"):
        _require(name in run, path, f"run.{name} is missing")
    seed = run["seed"]
    _require(isinstance(seed, int) and not isinstance(seed, bool), path,
             f"run.seed should be an int, got {seed!r}")
    final = data.get("final") or {}
    _require(
        isinstance(final, dict) and all(isinstance(v, dict) for v in final.values()),
        path,
        "'final' should map each test set name to a dict of metrics",
    )
    scenario = str(run.get("scenario") or "")
    _require(
        scenario in ("", *SCENARIOS),
        path,
        f"run.scenario {scenario!r} is not one of {', '.join(SCENARIOS)} (or '' for a reference run); "
        f"a new scenario needs its test-set roles in tools/parse_results.py (test_set_roles)",
    )
    epochs = data.get("epochs") or []
    _require(
        isinstance(epochs, list) and all(isinstance(e, dict) for e in epochs),
        path,
        "'epochs' should be a list of per-epoch objects",
    )
    key = GroupKey(
        dataset=str(run["dataset"]),
        trainer=str(run["trainer"]),
        config_name=str(run.get("config_name") or ""),
        scenario=scenario,
        source_domains=_domains(run["source_domains"], path, "source_domains"),
        target_domains=_domains(run["target_domains"], path, "target_domains"),
        eval_only=bool(data.get("eval_only", False)),
        folder_scenario="" if scenario else folder_scenario(path),
    )
    return Run(path=path, key=key, seed=seed, finished=bool(data.get("finished", False)), final=final,
               epochs=epochs, defect=run_defect(data, final, epochs))


#: A run is "at chance" when every test set's accuracy is below this multiple of chance (1 / classes).
CHANCE_MULTIPLE = 2.0


def _is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def run_defect(data: dict, final: dict, epochs: list) -> str:
    """Why a run that says it finished is no result: its recorded losses were not finite (NaN and
    infinity are written as null by this project, as bare NaN by older versions), or its model is at
    chance level on every test set (a collapsed model; for IP-CLIP it would pass for protection)."""
    for entry in epochs:
        for name, value in (entry.get("train") or {}).items():
            if not _is_finite_number(value):
                return (f"collapsed: training term '{name}' was {value!r} (not finite) at epoch "
                        f"{entry.get('epoch')}")
    classes = (data.get("run") or {}).get("num_classes")
    accuracies = [v.get("accuracy") for v in final.values()]
    if isinstance(classes, int) and classes > 1 and accuracies:
        chance = 100.0 / classes
        if all(_is_finite_number(a) and a < CHANCE_MULTIPLE * chance for a in accuracies):
            return (f"collapsed: every test set below {CHANCE_MULTIPLE:g} x chance "
                    f"({CHANCE_MULTIPLE * chance:.1f}%)")
    for name, value in final.items():
        if not _is_finite_number(value.get("accuracy")):
            return f"test set '{name}' has no finite accuracy"
    return ""


def read_results_file(path: Path) -> Run:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ResultsError(
            f"{path}: cannot be read as JSON ({err}); move or delete it, or rerun that run."
        ) from err
    return run_from_results(data, path)


_EVAL_LINE = re.compile(r"^Evaluate on the \*(?P<name>.+)\* set$")
_RESULT_LINE = re.compile(r"^\* (?P<key>[\w ]+): (?P<value>[\d,.eE+-]+)%?$")
_KV_LINE = re.compile(r"^(?P<indent> *)(?P<key>[\w.-]+):(?: (?P<value>.*))?$")
_LOG_KEYS = {"error": "error_rate"}


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _read_log_sections(lines: list[str]) -> tuple[dict, dict]:
    """The '** Arguments **' block as a dict, and the '** Config **' dump as dotted keys."""
    args, config = {}, {}
    section, stack = None, []
    for raw in lines:
        line = raw.rstrip("\n")
        stripped = line.strip()
        if stripped == "** Arguments **":
            section = "args"
            continue
        if stripped == "** Config **":
            section, stack = "config", []
            continue
        if stripped.startswith("Collecting env info") or stripped == "** System info **":
            section = None
            continue
        if section is None or not stripped or set(stripped) == {"*"}:
            continue
        match = _KV_LINE.match(line)
        if not match:
            continue
        if section == "args":
            args[match["key"]] = _literal((match["value"] or "").strip())
        else:
            indent = len(match["indent"])
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, match["key"]))
            if match["value"] is not None and match["value"].strip():
                config[".".join(k for _, k in stack)] = _literal(match["value"].strip())
    return args, config


def _read_log_results(lines: list[str], eval_only: bool) -> tuple[bool, dict[str, dict[str, float]]]:
    """Final result blocks (after 'Finish training', or anywhere for eval-only runs); last one wins."""
    finished = any(line.strip() == "Finish training" for line in lines)
    counting = eval_only
    final: dict[str, dict[str, float]] = {}
    current, block = "test", None
    for raw in lines:
        line = raw.strip()
        if line == "Finish training":
            counting = True
            continue
        if not counting:
            continue
        match = _EVAL_LINE.match(line)
        if match:
            current, block = match["name"], None
            continue
        if line == "=> result":
            block = final[current] = {}
            continue
        match = _RESULT_LINE.match(line)
        if match and block is not None:
            try:
                block[_LOG_KEYS.get(match["key"], match["key"])] = float(match["value"].replace(",", ""))
            except ValueError:
                continue
        elif block is not None and not line.startswith("*"):
            block = None
    return finished or (eval_only and bool(final)), final


def _identity_from_path(run_dir: Path, root: Path) -> dict:
    """Fallback identity from the layout <dataset>/<trainer>/<cfg>/<src>_<tgt>/seed<N>."""
    parts = run_dir.relative_to(root).parts
    found = {}
    if parts and re.fullmatch(r"seed\d+", parts[-1]):
        found["seed"] = int(parts[-1][4:])
        parts = parts[:-1]
    if len(parts) >= 4:
        found.update(dataset=parts[-4], trainer=parts[-3], config_name=parts[-2])
        if parts[-1].count("_") == 1:
            src, tgt = parts[-1].split("_")
            found.update(source_domains=[src], target_domains=[tgt])
    return found


_RUN_LOG_MARKERS = ("** Arguments **", "Finish training", "=> result")


def run_from_log(path: Path, root: Path) -> Run | None:
    """Read an upstream-style log.txt: identity from its argument/config dump, else from its folder.

    None for a log.txt that is not a training/evaluation log (none of the markers train.py prints).
    """
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as err:
        raise ResultsError(f"{path}: cannot be read ({err}).") from err
    if not any(line.strip() in _RUN_LOG_MARKERS for line in lines):
        return None
    args, config = _read_log_sections(lines)
    from_path = _identity_from_path(path.parent, root)
    eval_only = args.get("eval_only") is True
    finished, final = _read_log_results(lines, eval_only)
    config_file = args.get("config_file")
    identity = {
        "dataset": config.get("DATASET.NAME") or from_path.get("dataset"),
        "trainer": config.get("TRAINER.NAME") or args.get("trainer") or from_path.get("trainer"),
        "config_name": config.get("CONFIG_NAME")
        or (Path(config_file).stem if isinstance(config_file, str) and config_file else None)
        or from_path.get("config_name"),
        "source_domains": args.get("source_domains") or config.get("DATASET.SOURCE_DOMAINS")
        or from_path.get("source_domains"),
        "target_domains": args.get("target_domains") or config.get("DATASET.TARGET_DOMAINS")
        or from_path.get("target_domains"),
        "seed": config.get("SEED") if isinstance(config.get("SEED"), int) and config["SEED"] >= 0 else None,
        "scenario": config.get("TRAINER.IPCLIP.SCENARIO") or "",
    }
    if identity["seed"] is None:
        seed = args.get("seed")
        identity["seed"] = seed if isinstance(seed, int) and seed >= 0 else from_path.get("seed")
    unknown = [name for name, value in identity.items() if value is None]
    if unknown:
        raise ResultsError(
            f"{path}: cannot tell the run's {', '.join(unknown)} (no '** Arguments **' / '** Config **' "
            f"dump in the log, and the folder is not laid out as "
            f"<dataset>/<trainer>/<cfg>/<src>_<tgt>/seed<N>). "
            f"Move the run into such a folder or rerun it to get a {RESULTS_FILE}."
        )
    data = {"format": SUPPORTED_FORMAT, "finished": finished, "eval_only": eval_only,
            "run": identity, "final": final}
    return run_from_results(data, path)


def load_runs(root: str | Path, from_logs: bool = False) -> list[Run]:
    """Every run below root; with from_logs, folders without results.json are read from log.txt."""
    root = Path(root)
    if not root.is_dir():
        raise ResultsError(f"output root {root} is not a folder; pass the OUTPUT_ROOT your runs wrote to.")
    result_files = sorted(root.rglob(RESULTS_FILE))
    runs = [read_results_file(p) for p in result_files if p.is_file()]
    if from_logs:
        covered = {p.parent for p in result_files}
        logs = sorted(p for p in root.rglob(LOG_FILE) if p.is_file() and p.parent not in covered)
        runs += [run for run in (run_from_log(p, root) for p in logs) if run is not None]
    return runs


def group_runs(runs: list[Run]) -> dict[GroupKey, list[Run]]:
    """Runs by group, sorted by key and seed; two runs of one group with the same seed are an error."""
    groups: dict[GroupKey, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.key, []).append(run)
    for key, members in groups.items():
        members.sort(key=lambda r: r.seed)
        for first, second in zip(members, members[1:]):
            if first.seed == second.seed:
                raise ResultsError(
                    f"two runs of {key.label()} have seed {first.seed}: {first.path} and {second.path}. "
                    f"Move one of them out of the output root (e.g. an older copy)."
                )
    return dict(sorted(groups.items()))


# --------------------------------------------------------------------------------------------------
# Aggregation


@dataclass
class SetStats:
    mean: float
    std: float
    n: int


@dataclass
class Issue:
    """One line of the incomplete section."""

    group: str
    seed: str
    problem: str
    where: str = ""


@dataclass
class GroupSummary:
    key: GroupKey
    seeds: tuple[int, ...]  # finished seeds that were averaged
    expected_seeds: tuple[int, ...]
    sets: dict[str, SetStats] = field(default_factory=dict)
    per_seed: dict[str, dict[int, float]] = field(default_factory=dict)  # set name -> seed -> value

    @property
    def complete(self) -> bool:
        all_seeds = set(self.seeds) == set(self.expected_seeds)
        return all_seeds and all(s.n == len(self.seeds) for s in self.sets.values())

    @property
    def seeds_label(self) -> str:
        """'3' for a complete group, '2/3' where seeds are missing."""
        if set(self.seeds) == set(self.expected_seeds):
            return str(len(self.seeds))
        return f"{len(self.seeds)}/{len(self.expected_seeds)}"


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population std (ddof 0, upstream's np.std)."""
    return math.fsum(values) / len(values), statistics.pstdev(values)


def _metric_value(run: Run, set_name: str, metric: str) -> float:
    metrics = run.final[set_name]
    if metric not in metrics:
        raise ResultsError(
            f"{run.path}: test set '{set_name}' has no metric '{metric}' (it has: {', '.join(metrics)}); "
            f"choose one of those with --metric."
        )
    value = metrics[metric]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ResultsError(f"{run.path}: {set_name}.{metric} should be a finite number, got {value!r}.")
    return float(value)


def expected_seeds_by_experiment(groups: dict[GroupKey, list[Run]]) -> dict[tuple, set[int]]:
    """Seeds any pair of an experiment has: the other pairs are expected to have them too."""
    seeds: dict[tuple, set[int]] = {}
    for key, runs in groups.items():
        seeds.setdefault(key.experiment, set()).update(r.seed for r in runs)
    return seeds


def aggregate(
    groups: dict[GroupKey, list[Run]], metric: str = "accuracy", expected_seeds=None
) -> tuple[list[GroupSummary], list[Issue]]:
    """Mean/std over the finished seeds of each group, plus the issues that make a group incomplete."""
    by_experiment = expected_seeds_by_experiment(groups)
    summaries, issues = [], []
    for key, runs in groups.items():
        expected = set(expected_seeds) if expected_seeds else by_experiment[key.experiment]

        def note(seed, problem, where=""):
            issues.append(Issue(key.label(), str(seed), problem, str(where)))

        used = []
        for run in runs:
            if run.seed not in expected:
                note(run.seed, "ignored: not in --expected-seeds", run.path)
            elif not run.finished:
                note(run.seed, "unfinished (finished: false), not averaged", run.path)
            elif not run.final:
                note(run.seed, "finished but has no final results", run.path)
            elif run.defect:
                note(run.seed, f"{run.defect}; not averaged", run.path)
            else:
                used.append(run)
        for seed in sorted(expected - {r.seed for r in runs}):
            note(seed, f"missing: no {RESULTS_FILE} for this seed")
        summary = GroupSummary(key, tuple(r.seed for r in used), tuple(sorted(expected)))
        for name in dict.fromkeys(name for r in used for name in r.final):
            having = [r for r in used if name in r.final]
            for run in used:
                if name not in run.final:
                    note(run.seed, f"has no test set '{name}'", run.path)
            summary.per_seed[name] = {r.seed: _metric_value(r, name, metric) for r in having}
            mean, std = mean_std(list(summary.per_seed[name].values()))
            summary.sets[name] = SetStats(mean, std, len(having))
        if not summary.complete:
            note("", f"incomplete: averaged {summary.seeds_label} seeds {list(summary.seeds)}")
        summaries.append(summary)
    return summaries, issues


# --------------------------------------------------------------------------------------------------
# IP metrics


def authorized_and_unauthorized(set_names, scenario: str = "", source_domains=()) -> Roles | None:
    """Which test sets are "a" and "u" in a scenario ('' — runs that record none — reads as
    target_specified): Scenario.roles in trainers/ipclip/scenarios.py."""
    return SCENARIO_DEFS[scenario or DEFAULT_SCENARIO].roles(set_names, source_domains)


def drop(a_sl: float, a_ip: float) -> float:
    """Accuracy lost by protecting the model: A^SL - A^IP."""
    return a_sl - a_ip


def w_u_a(a_a_ip: float, drop_a: float, drop_u: float) -> float:
    """W_{u-a} = (A_a^IP/100) x (Drop_u - Drop_a): unauthorized drop beyond the authorized one."""
    return a_a_ip / 100.0 * (drop_u - drop_a)


def d_u_a(a_a_ip: float, a_u_ip: float) -> float:
    """D_{u-a} = (A_a^IP/100) x (A_a^IP - A_u^IP): the authorized/unauthorized gap (no reference)."""
    return a_a_ip / 100.0 * (a_a_ip - a_u_ip)


def o_u_a(a_u_sl: float, a_a_ip: float, a_u_ip: float) -> float:
    """O_{u-a} = (A_u^SL/100) x (A_a^IP - A_u^IP), ownership (clean vs watermarked); from AoD-IP."""
    return a_u_sl / 100.0 * (a_a_ip - a_u_ip)


def ip_metrics(a_ip: float, u_ip: float, a_sl: float | None = None, u_sl: float | None = None,
               scenario: str = "") -> dict[str, float | None]:
    """All IP metrics of one pair from seed means; those needing a missing reference are None."""
    has_ref = a_sl is not None and u_sl is not None
    drop_a = drop(a_sl, a_ip) if has_ref else None
    drop_u = drop(u_sl, u_ip) if has_ref else None
    return {
        "drop_a": drop_a,
        "drop_u": drop_u,
        "w": w_u_a(a_ip, drop_a, drop_u) if has_ref else None,
        "d": d_u_a(a_ip, u_ip),
        "o": o_u_a(u_sl, a_ip, u_ip) if has_ref and scenario == OWNERSHIP else None,
    }


IP_COLUMNS = ("a_sl", "u_sl", "a_ip", "u_ip", "drop_a", "drop_u", "w", "d", "o")
# Metric columns each scenario's table shows after the accuracies and drops, the headline first.
SCENARIO_METRICS = {name: s.metrics for name, s in SCENARIO_DEFS.items()}
# What a missing reference leaves blank, per scenario.
NEEDS_REFERENCE = {name: s.needs_reference for name, s in SCENARIO_DEFS.items()}


@dataclass
class IPRow:
    dataset: str
    config: str
    scenario: str
    pair: str
    reference: str
    seeds_ip: str
    seeds_sl: str
    values: dict[str, float | None]
    complete: bool
    is_average: bool = False
    dataset_mean: bool = False  # the row that stands for its dataset: the average, or a lone pair


def pick_reference(ip: GroupSummary, references: list[GroupSummary], reference_config: str | None):
    """The reference group of the same dataset, pair and scenario, and all candidates considered.

    Several reference configs need a rule: --reference-config, else the one named like the IP-CLIP
    config, else an error. Runs of the IP group's kind (trained vs eval-only) are preferred.
    """
    place = (ip.key.dataset, ip.key.source_domains, ip.key.target_domains, ip.key.table_scenario)
    candidates = [
        r for r in references
        if (r.key.dataset, r.key.source_domains, r.key.target_domains, r.key.table_scenario) == place
    ]
    candidates = [r for r in candidates if r.key.eval_only == ip.key.eval_only] or candidates
    if reference_config is not None:
        return next((r for r in candidates if r.key.config_name == reference_config), None), candidates
    if len(candidates) <= 1:
        return (candidates[0] if candidates else None), candidates
    same = [r for r in candidates if r.key.config_name == ip.key.config_name]
    if len(same) == 1:
        return same[0], candidates
    names = ", ".join(sorted({r.key.config_label for r in candidates}))
    raise ResultsError(
        f"{ip.key.label()}: several reference configs exist for this dataset and pair ({names}) "
        f"and none is named '{ip.key.config_name}'; choose one with --reference-config NAME."
    )


@dataclass
class Pairing:
    """An IP-CLIP group, its reference (None: there is none), the roles of their sets, and problems."""

    ip: GroupSummary
    reference: GroupSummary | None
    roles: Roles | None
    notes: list[str] = field(default_factory=list)

    @property
    def scenario(self) -> str:
        return self.ip.key.table_scenario


def pair_with_references(summaries: list[GroupSummary], ip_trainer: str = IP_TRAINER,
                         reference_trainer: str = REFERENCE_TRAINER,
                         reference_config: str | None = None) -> list[Pairing]:
    """Every IP-CLIP group with at least one finished seed, set against its reference."""
    ips = [s for s in summaries if s.key.trainer.lower() == ip_trainer.lower() and s.seeds]
    refs = [s for s in summaries if s.key.trainer.lower() == reference_trainer.lower() and s.seeds]
    pairings = []
    for ip in ips:
        scenario = ip.key.table_scenario
        roles = authorized_and_unauthorized(ip.sets, scenario, ip.key.source_domains)
        ref, candidates = pick_reference(ip, refs, reference_config)
        pairing = Pairing(ip, ref, roles)
        if roles is None:
            pairing.notes.append(f"no IP metrics: test sets {list(ip.sets)} lack what the {scenario} "
                                 f"scenario needs ({ROLE_TEXT[scenario]})")
        if ref is None:
            names = ", ".join(sorted(c.key.config_label for c in candidates))
            have = f"; available: {names}" if candidates else ""
            wanted = f" with config '{reference_config}'" if reference_config is not None else ""
            pairing.notes.append(f"no {reference_trainer} reference{wanted} for this pair{have}: "
                                 f"{NEEDS_REFERENCE[scenario]} left blank")
        else:
            lacking = [n for n in (roles.authorized + roles.unauthorized if roles else ()) if n not in ref.sets]
            if lacking:
                pairing.notes.append(f"reference {ref.key.label()} lacks test set(s) {lacking}: "
                                     f"{NEEDS_REFERENCE[scenario]} left blank")
            if set(ref.seeds) != set(ip.seeds):
                pairing.notes.append(f"reference seeds {list(ref.seeds)} differ from IP seeds {list(ip.seeds)}")
        pairings.append(pairing)
    return pairings


def _mean_of(summary: GroupSummary, names) -> float | None:
    if not all(n in summary.sets for n in names):
        return None
    return math.fsum(summary.sets[n].mean for n in names) / len(names)


def role_stats(summary: GroupSummary, names) -> SetStats | None:
    """Mean and population std over seeds of the per-seed mean of several sets (for error bars).

    Only seeds that have every set count; None when none has. With one set this is that set's stats.
    """
    seeds = [seed for seed in summary.seeds if all(seed in summary.per_seed.get(n, {}) for n in names)]
    if not names or not seeds:
        return None
    per_seed = [math.fsum(summary.per_seed[n][seed] for n in names) / len(names) for seed in seeds]
    return SetStats(*mean_std(per_seed), len(seeds))


def ip_rows(summaries: list[GroupSummary], ip_trainer: str = IP_TRAINER,
            reference_trainer: str = REFERENCE_TRAINER,
            reference_config: str | None = None) -> tuple[list[IPRow], list[Issue]]:
    """One row per IP-CLIP group (pair) and one average row per dataset/config/scenario."""
    rows, issues = [], []
    for pairing in pair_with_references(summaries, ip_trainer, reference_trainer, reference_config):
        ip, ref, scenario = pairing.ip, pairing.reference, pairing.scenario
        issues += [Issue(ip.key.label(), "", note) for note in pairing.notes]
        if pairing.roles is None:
            continue
        a_names, u_names = pairing.roles
        a_sl = u_sl = None
        if ref is not None:
            a_sl, u_sl = _mean_of(ref, a_names), _mean_of(ref, u_names)
            if a_sl is None or u_sl is None:
                a_sl = u_sl = None
        a_ip, u_ip = _mean_of(ip, a_names), _mean_of(ip, u_names)
        values = {"a_sl": a_sl, "u_sl": u_sl, "a_ip": a_ip, "u_ip": u_ip,
                  **ip_metrics(a_ip, u_ip, a_sl, u_sl, scenario)}
        if ref is None:
            reference_ok = scenario == AUTHORIZATION  # D needs no reference
        else:
            reference_ok = ref.complete and set(ref.seeds) == set(ip.seeds) and a_sl is not None
        rows.append(IPRow(
            dataset=ip.key.dataset, config=ip.key.config_label, scenario=scenario, pair=ip.key.pair,
            reference=ref.key.config_label if ref else MISSING, seeds_ip=ip.seeds_label,
            seeds_sl=ref.seeds_label if ref else MISSING, values=values,
            complete=ip.complete and reference_ok,
        ))
    return _with_averages(rows), issues


def _with_averages(rows: list[IPRow]) -> list[IPRow]:
    """Append, after each dataset/config/scenario block, the mean of its pair rows."""
    blocks: dict[tuple, list[IPRow]] = {}
    for row in rows:
        blocks.setdefault((row.dataset, row.config, row.scenario), []).append(row)
    out = []
    for (dataset, config, scenario), members in blocks.items():
        out += members
        if len(members) < 2:
            members[0].dataset_mean = True
            continue
        values = {}
        for col in IP_COLUMNS:
            column = [m.values[col] for m in members]
            values[col] = None if any(v is None for v in column) else math.fsum(column) / len(column)
        complete = all(m.complete for m in members)
        marker = "" if complete else "incomplete"
        reference = ", ".join(dict.fromkeys(m.reference for m in members))
        out.append(IPRow(dataset, config, scenario, f"average ({len(members)} pairs)", reference,
                         marker, marker, values, complete, is_average=True, dataset_mean=True))
    return out


def published_mean(dataset: str, scenario: str) -> tuple[float, str] | None:
    """The published mean of a scenario's headline metric on a dataset and what it is, or None."""
    by_dataset = PUBLISHED.get(scenario, {})
    if dataset in by_dataset:
        return by_dataset[dataset], PAPER_NOTE
    if ANY_DATASET in by_dataset and dataset in PAPER_DATASETS:
        return by_dataset[ANY_DATASET], PAPER_NOTE_ANY
    return None


# --------------------------------------------------------------------------------------------------
# Rendering


def _num(value: float | None, decimals: int) -> str:
    return MISSING if value is None else f"{value:.{decimals}f}"


def _mean_std_cell(stats: SetStats | None, fmt: str, decimals: int, n_seeds: int) -> str:
    if stats is None:
        return MISSING
    pm = r" $\pm$ " if fmt == "latex" else " ± "
    text = f"{stats.mean:.{decimals}f}{pm}{stats.std:.{decimals}f}"
    return text if stats.n == n_seeds else f"{text} ({stats.n}/{n_seeds})"


def _latex_text(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                          ("->", r"$\rightarrow$")):
        text = text.replace(char, escaped)
    return text


def _text_escaper(fmt: str):
    """Names and labels go into LaTeX cells escaped; other formats take them as they are."""
    return _latex_text if fmt == "latex" else str


def _table(headers: list[str], rows: list[list[str]], fmt: str) -> str:
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(rows)
        return buf.getvalue().rstrip("\n")
    if fmt == "latex":
        return tabulate(rows, headers=headers, tablefmt="latex_raw", disable_numparse=True)
    tablefmt = "github" if fmt == "markdown" else "simple"
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)


def _title(text: str, fmt: str) -> str:
    prefixed = {"markdown": f"### {text}", "latex": f"% {text}", "csv": f"# {text}"}
    return prefixed.get(fmt, f"{text}\n{'=' * len(text)}")


def by_scenario(items, scenario_of) -> dict[str, list]:
    """Items (groups, IP rows) split into the scenario tables, in the order of SCENARIOS."""
    tables: dict[str, list] = {scenario: [] for scenario in SCENARIOS}
    for item in items:
        tables[scenario_of(item)].append(item)
    return {scenario: members for scenario, members in tables.items() if members}


def scenario_tables(summaries: list[GroupSummary]) -> dict[str, list[GroupSummary]]:
    """The groups of each scenario's results table (CoOp references with the scenario they serve)."""
    return by_scenario([s for s in summaries if s.sets], lambda s: s.key.table_scenario)


def results_section(summaries: list[GroupSummary], fmt: str, metric: str, decimals: int,
                    scenario: str) -> list[str]:
    """One scenario's table: a column per test set any of its groups has ('-' where a group lacks it)."""
    members = [s for s in summaries if s.sets]
    if not members:
        return []
    set_names = list(dict.fromkeys(name for s in members for name in s.sets))
    text = _text_escaper(fmt)
    headers = ["dataset", "trainer", "config", "scenario", "pair", "seeds"]
    if fmt == "csv":
        headers += [f"{n}_{suffix}" for n in set_names for suffix in ("mean", "std")]
    else:
        headers += [text(n) for n in set_names]
    rows = []
    for s in members:
        row = [text(s.key.dataset), text(s.key.trainer), text(s.key.config_label),
               text(s.key.scenario or MISSING), text(s.key.pair), s.seeds_label]
        for name in set_names:
            stats = s.sets.get(name)
            if fmt == "csv":
                row += [_num(stats and stats.mean, decimals), _num(stats and stats.std, decimals)]
            else:
                row.append(_mean_std_cell(stats, fmt, decimals, len(s.seeds)))
        rows.append(row)
    title = f"Results {scenario}: {metric} (%), mean ± population std (ddof 0) over seeds"
    return [_title(text(title), fmt), _table(headers, rows, fmt)]


_IP_HEADERS = {
    "a_sl": ("A_a^SL", r"$A_a^{SL}$"), "u_sl": ("A_u^SL", r"$A_u^{SL}$"),
    "a_ip": ("A_a^IP", r"$A_a^{IP}$"), "u_ip": ("A_u^IP", r"$A_u^{IP}$"),
    "drop_a": ("Drop_a", r"Drop$_a$"), "drop_u": ("Drop_u", r"Drop$_u$"),
    "w": ("W_u-a", r"$W_{u-a}$"), "d": ("D_u-a", r"$D_{u-a}$"), "o": ("O_u-a", r"$O_{u-a}$"),
}
_ACCURACY_COLUMNS = ("a_sl", "u_sl", "a_ip", "u_ip", "drop_a", "drop_u")


def ip_section(rows: list[IPRow], fmt: str, decimals: int, scenario: str,
               compare_paper: bool = False) -> list[str]:
    """One scenario's IP metrics; with compare_paper the published mean beside each dataset's mean."""
    if not rows:
        return []
    columns = [*_ACCURACY_COLUMNS, *SCENARIO_METRICS[scenario]]
    latex = fmt == "latex"
    text = _text_escaper(fmt)
    headers = ["dataset", "config", "scenario", "pair", "reference", "seeds IP", "seeds SL"]
    headers = [text(h) for h in headers] + [_IP_HEADERS[c][latex] for c in columns]
    if compare_paper:
        headers += [f"paper {_IP_HEADERS[HEADLINE_METRIC[scenario]][latex]}", "paper note"]
    body = []
    for r in rows:
        line = [text(r.dataset), text(r.config), text(r.scenario or MISSING), text(r.pair),
                text(r.reference), r.seeds_ip, r.seeds_sl] + [_num(r.values[c], decimals) for c in columns]
        if compare_paper:
            published = published_mean(r.dataset, scenario) if r.dataset_mean else None
            line += [_num(published[0], decimals), text(published[1])] if published else [MISSING, MISSING]
        body.append(line)
    title = f"IP metrics {scenario}: {ROLE_TEXT[scenario]} (from seed means; formulas: --help)"
    return [_title(text(title), fmt), _table(headers, body, fmt)]


def issues_section(issues: list[Issue], fmt: str) -> list[str]:
    if not issues:
        return []
    text = _text_escaper(fmt)
    body = [[text(i.group), i.seed, text(i.problem), text(i.where)] for i in issues]
    return [_title("Incomplete", fmt), _table(["group", "seed", "problem", "path"], body, fmt)]


def render(summaries: list[GroupSummary], rows: list[IPRow], issues: list[Issue], fmt: str = "table",
           metric: str = "accuracy", decimals: int = 2, ip_note: str = "",
           compare_paper: bool = False) -> str:
    """The report: per scenario its results table and IP-metrics table, then what is incomplete."""
    if fmt not in FORMATS:
        raise ResultsError(f"unknown format '{fmt}'; use one of {', '.join(FORMATS)}.")
    rows_by_scenario = by_scenario(rows, lambda r: r.scenario)
    sections = []
    for scenario, members in scenario_tables(summaries).items():
        sections.append(results_section(members, fmt, metric, decimals, scenario))
        sections.append(ip_section(rows_by_scenario.get(scenario, []), fmt, decimals, scenario, compare_paper))
    if ip_note:
        sections.append([_title("IP metrics", fmt), ip_note])
    sections.append(issues_section(issues, fmt))
    return "\n\n".join("\n".join(s) for s in sections if s) + "\n"


# --------------------------------------------------------------------------------------------------
# CLI


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
