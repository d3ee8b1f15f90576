"""results.json -> Run: reading and validating the record train.py writes (dassl/engine/run_record.py),
grouping runs into experiments, and telling a collapsed run from a result."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from dassl.engine.run_record import FILENAME as RESULTS_FILE
from dassl.engine.run_record import FORMAT_VERSION as SUPPORTED_FORMAT
from trainers.ipclip.scenarios import DEFAULT_SCENARIO, SCENARIO_NAMES

LOG_FILE = "log.txt"
#: Attacks on a run write their own runs under <run>/attacks/<attack>/ (tools/attack.py reads them).
ATTACKS_FOLDER = "attacks"


class ResultsError(Exception):
    """Input the tool cannot use; the message names the file, what was expected, and the fix."""


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
        return self.scenario or self.folder_scenario or DEFAULT_SCENARIO

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


_SCENARIO_FOLDER = re.compile(rf".+_({'|'.join(s for s in SCENARIO_NAMES if s != DEFAULT_SCENARIO)})")


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
    # The project tags IP-CLIP runs with their scenario (run.tag); runs recorded before the tag
    # existed name it in run.scenario. Any other tag (a reference run, a user's label) is no scenario.
    tag = run.get("tag")
    scenario = str(run.get("scenario") or "") if tag is None else (tag if tag in SCENARIO_NAMES else "")
    _require(
        scenario in ("", *SCENARIO_NAMES),
        path,
        f"run.scenario {scenario!r} is not one of {', '.join(SCENARIO_NAMES)} (or '' for a reference run); "
        f"a new scenario is an entry of trainers/ipclip/scenarios.py",
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


def is_attack_record(path: Path) -> bool:
    """Whether a results.json is an attack's on another run (<run>/attacks/<attack>/results.json)."""
    path = Path(path)
    return (len(path.parents) > 2 and path.parents[1].name == ATTACKS_FOLDER
            and (path.parents[2] / RESULTS_FILE).is_file())


def load_runs(root: str | Path, from_logs: bool = False, include_attacks: bool = False) -> list[Run]:
    """Every run below root; with from_logs, folders without results.json are read from log.txt.
    Attacks on runs (is_attack_record) are left out unless include_attacks: they are no experiment
    of their own, and their eval-only records would share a group and seed with each other."""
    root = Path(root)
    if not root.is_dir():
        raise ResultsError(f"output root {root} is not a folder; pass the OUTPUT_ROOT your runs wrote to.")
    result_files = sorted(root.rglob(RESULTS_FILE))
    runs = [read_results_file(p) for p in result_files
            if p.is_file() and (include_attacks or not is_attack_record(p))]
    if from_logs:
        covered = {p.parent for p in result_files}
        logs = sorted(p for p in root.rglob(LOG_FILE) if p.is_file() and p.parent not in covered)
        from .upstream_logs import run_from_log

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


