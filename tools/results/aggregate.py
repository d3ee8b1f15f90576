"""Mean ± population std over seeds of every group's test sets, and what makes a group incomplete."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from .records import RESULTS_FILE, GroupKey, ResultsError, Run


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


