"""The robustness table of the attacks on a results tree, and its plots.

Per experiment (scenario, dataset, config, pair; the seeds averaged), one row per attack and budget:
the accuracy on the attacked inputs after the attack (mean ± population std over seeds), the
authorized accuracy after it, beside the protected model before any attack, the unprotected CoOp
reference (the tree's own CoOp run of the same source, seed, CLIP and mark), zero-shot CLIP and the
from-scratch attacker (CoOp trained on the same shots; fine-tuning rows only: the other attacks use
no labelled data). "robust" says whether the attack stayed at or below the best the attacker gets
without our model: max(zero-shot, from-scratch at that budget), comparing means.

The attacked inputs are the scenario's unauthorized test sets (Scenario.roles; per-domain set
names as tools/robustness.py writes them are read by `attack_roles`), except for a forged key in
the authorization scenario, where they are the sets carrying the forged key in place of the owner's.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate

from tools.results.aggregate import SetStats, mean_std
from tools.results.pairing import MISSING, REFERENCE_TRAINER
from tools.results.records import GroupKey, is_attack_record, run_from_results
from trainers.ipclip.scenarios import SCENARIO_NAMES, WATERMARKED_SUFFIX, Roles, get_scenario
from trainers.ipclip.transforms.watermark import NO_OFFSET

# FINETUNE_FAMILY: the rows that have a from-scratch baseline (CoOp trained on the same shots)
from .plan import FINETUNE_FAMILY, RESULTS_FILE, ZERO_SHOT_FAMILY, PlannedAttack, read_record

#: --format: a terminal table, or GitHub markdown (the README's tables).
FORMATS = ("table", "markdown")
HEADERS = ["attack", "k", "u after", "a after", "protected u", "CoOp reference u", "zero-shot u",
           "from-scratch u", "robust"]
ROBUST, BROKEN, NOT_JUDGED, UNKNOWN = "yes", "NO", "n/a", "?"
DPI = 120
ATTACK_COLOR, PROTECTED_COLOR, REFERENCE_COLOR, ZERO_SHOT_COLOR, SCRATCH_COLOR = (
    "#c03d3e", "#3a76af", "#7f7f7f", "#3a923a", "#e1812c")


def attack_roles(scenario, set_names, source_domains=(), target_domains=()) -> Roles | None:
    """(authorized, unauthorized) set names: the scenario's own (Scenario.roles), else per-domain sets
    named `<domain>` / `<domain>_wm` (tools/robustness.py's runs)."""
    names = list(set_names)
    roles = get_scenario(scenario).roles(names, source_domains)
    if roles is not None:
        return roles
    sources = list(source_domains)
    marked = [s + WATERMARKED_SUFFIX for s in sources]
    if scenario == "authorization":
        a, u = marked, [n for n in names if n not in marked]
    elif scenario == "ownership":
        a, u = sources, marked
    elif scenario == "target_specified":
        a, u = sources, [t for t in target_domains if t not in sources]
    else:  # target_free: every other domain, clean
        a, u = sources, [n for n in names if not n.endswith(WATERMARKED_SUFFIX) and n not in sources]
    if not a or not u or not all(n in names for n in a + u):
        return None
    return Roles(tuple(a), tuple(u))


def role_accuracy(final: dict, names) -> float | None:
    """Mean accuracy over the named test sets of a run's final results; None if one is missing."""
    if not names or not all(n in final and "accuracy" in final[n] for n in names):
        return None
    return math.fsum(final[n]["accuracy"] for n in names) / len(names)


def stats(per_seed: dict[int, float]) -> SetStats | None:
    values = [v for v in per_seed.values() if v is not None]
    return SetStats(*mean_std(values), len(values)) if values else None


@dataclass
class AttackRow:
    """One attack of one budget over the seeds of an experiment: seed -> accuracy."""

    family: str
    budget: int | None
    judged: bool
    after: dict[int, float] = field(default_factory=dict)
    authorized_after: dict[int, float] = field(default_factory=dict)
    shows_authorized: bool = True


@dataclass
class ExperimentReport:
    """One experiment: a group of runs (GroupKey) on one CLIP (`backbone`), over its seeds."""

    key: GroupKey
    backbone: str
    scenario: str
    seeds: tuple[int, ...]
    protected: dict[int, float] = field(default_factory=dict)
    reference: dict[int, float] = field(default_factory=dict)
    zero_shot: dict[int, float] = field(default_factory=dict)
    from_scratch: dict[int, dict[int, float]] = field(default_factory=dict)  # k -> seed -> u
    rows: dict[str, AttackRow] = field(default_factory=dict)  # attack name -> row, in plan order
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        seeds = ", ".join(str(s) for s in self.seeds)
        return (f"{self.scenario}: {self.key.dataset}/{self.key.config_name} ({self.backbone_label}) "
                f"{self.key.pair} (seeds {seeds})")

    @property
    def backbone_label(self) -> str:
        """MODEL.BACKBONE.NAME, a weights file by its file name."""
        return Path(self.backbone).name if "/" in self.backbone or "\\" in self.backbone else self.backbone

    def best_baseline(self, row: AttackRow) -> SetStats | None:
        candidates = [stats(self.zero_shot)]
        if row.family == FINETUNE_FAMILY:
            candidates.append(stats(self.from_scratch.get(row.budget, {})))
        candidates = [c for c in candidates if c is not None]
        return max(candidates, key=lambda c: c.mean) if candidates else None

    def verdict(self, row: AttackRow) -> str:
        if not row.judged:
            return NOT_JUDGED
        after, best = stats(row.after), self.best_baseline(row)
        if after is None or best is None:
            return UNKNOWN
        return ROBUST if after.mean <= best.mean else BROKEN


# --------------------------------------------------------------------------------------------------
# Reading the tree
def _finished_final(folder) -> dict | None:
    path = Path(folder) / RESULTS_FILE
    if not path.is_file():
        return None
    data = read_record(path)
    return data.get("final") if data.get("finished") else None


def reference_runs(root) -> list[tuple]:
    """(Run, config) of every finished, sound CoOp run of the tree (attacks left out)."""
    found = []
    for path in sorted(Path(root).resolve().rglob(RESULTS_FILE)):
        if not path.is_file() or is_attack_record(path):
            continue
        data = read_record(path)
        if (data.get("run") or {}).get("trainer") != REFERENCE_TRAINER or not data.get("finished"):
            continue
        run = run_from_results(data, path)
        if not run.defect:
            found.append((run, data.get("config") or {}))
    return found


def _mark(config: dict) -> dict:
    """The watermark settings of a recorded config (a record made before OFFSET existed: (0, 0))."""
    mark = dict((config.get("INPUT") or {}).get("WATERMARK") or {})
    mark.setdefault("OFFSET", list(NO_OFFSET))
    return {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in mark.items()}


def reference_accuracy(target, u_names, references) -> float | None:
    """The unauthorized accuracy of the target's CoOp reference: same dataset, source, seed, CLIP and
    mark; trained on the source alone (shared) or on this pair; the same config name preferred."""
    config, key = target.config, target.run.key
    candidates = []
    for run, ref_config in references:
        same = (run.key.dataset == key.dataset and run.key.source_domains == key.source_domains
                and run.seed == target.seed
                and run.key.target_domains in (key.source_domains, key.target_domains)
                and ref_config.get("MODEL", {}).get("BACKBONE", {}).get("NAME")
                == config["MODEL"]["BACKBONE"]["NAME"]
                and _mark(ref_config) == _mark(config))
        if same:
            candidates.append((run.key.config_name != key.config_name, str(run.path), run))
    for _, _, run in sorted(candidates):
        names = get_scenario(target.scenario).reference_names(
            u_names, set(run.final), key.source_domains, key.target_domains)
        if names is not None:
            return role_accuracy(run.final, names)
    return None


def collect(planned: list[PlannedAttack], references=()) -> list[ExperimentReport]:
    """The reports of every experiment the planned attacks cover, read from their folders."""
    reports: dict[tuple, ExperimentReport] = {}  # (GroupKey, backbone) -> report
    accepted = set()  # the folders of the protected runs the report reads
    targets = {}
    for item in planned:
        targets.setdefault(str(item.target.path), item.target)
    for target in targets.values():
        report = reports.setdefault(_experiment(target), ExperimentReport(
            target.run.key, _backbone(target), target.scenario, ()))
        if target.seed in report.seeds:
            report.notes.append(f"{target.path}: a second run of seed {target.seed} of this experiment; "
                                "left out (move one copy out of the tree)")
            continue
        report.seeds = tuple(sorted({*report.seeds, target.seed}))
        roles = attack_roles(target.scenario, target.run.final, *_domains(target))
        if roles is None:
            report.notes.append(f"{target.path}: its test sets {sorted(target.run.final)} lack what the "
                                f"{target.scenario} scenario reads; left out")
            continue
        report.protected[target.seed] = role_accuracy(target.run.final, roles.unauthorized)
        accepted.add(str(target.path))
        reference = reference_accuracy(target, roles.unauthorized, references)
        if reference is not None:
            report.reference[target.seed] = reference
    for item in planned:
        report, target, attack = reports[_experiment(item.target)], item.target, item.attack
        if str(target.path) not in accepted:
            continue
        final = _finished_final(item.spec.output_dir)
        roles = attack_roles(target.scenario, final, *_domains(target)) if final else None
        if attack.baseline:
            if roles is not None:
                value = role_accuracy(final, roles.unauthorized)
                if attack.family == ZERO_SHOT_FAMILY:
                    report.zero_shot[target.seed] = value
                else:
                    report.from_scratch.setdefault(attack.budget, {})[target.seed] = value
            continue
        row = report.rows.setdefault(attack.name, AttackRow(attack.family, attack.budget, attack.judged))
        row.shows_authorized = attack.measured == "unauthorized"
        if roles is None:
            continue
        row.after[target.seed] = role_accuracy(final, getattr(roles, attack.measured))
        if row.shows_authorized:
            row.authorized_after[target.seed] = role_accuracy(final, roles.authorized)
    return [reports[k] for k in sorted(reports, key=lambda k: (SCENARIO_NAMES.index(reports[k].scenario), k))]


def _domains(target):
    return target.run.key.source_domains, target.run.key.target_domains


def _backbone(target) -> str:
    return str(target.config["MODEL"]["BACKBONE"]["NAME"])


def _experiment(target) -> tuple:
    """Runs averaged together: one group (dataset, config, scenario, pair) on one CLIP (the tiny
    CLIPs of tools/robustness.py share their config name)."""
    return target.run.key, _backbone(target)


# --------------------------------------------------------------------------------------------------
# Rendering
def _cell(per_seed: dict[int, float], n_seeds: int, decimals: int) -> str:
    s = stats(per_seed)
    if s is None:
        return MISSING
    text = f"{s.mean:.{decimals}f} ± {s.std:.{decimals}f}"
    return text if s.n == n_seeds else f"{text} ({s.n}/{n_seeds})"


def table_rows(report: ExperimentReport, decimals: int = 1) -> list[list[str]]:
    n = len(report.seeds)
    protected, reference, zero_shot = (_cell(v, n, decimals) for v in
                                       (report.protected, report.reference, report.zero_shot))
    rows = []
    for row in report.rows.values():
        scratch = (_cell(report.from_scratch.get(row.budget, {}), n, decimals)
                   if row.family == FINETUNE_FAMILY else MISSING)
        rows.append([row.family, MISSING if row.budget is None else str(row.budget),
                     _cell(row.after, n, decimals),
                     _cell(row.authorized_after, n, decimals) if row.shows_authorized else MISSING,
                     protected, reference, zero_shot, scratch, report.verdict(row)])
    return rows


def _title(text: str, fmt: str) -> str:
    return f"### {text}" if fmt == "markdown" else f"{text}\n{'=' * len(text)}"


def _table(rows: list[list[str]], fmt: str) -> str:
    return tabulate(rows, headers=HEADERS, tablefmt="github" if fmt == "markdown" else "simple",
                    disable_numparse=True)


def render(reports: list[ExperimentReport], fmt: str = "table", decimals: int = 1, notes=()) -> str:
    """Every experiment's table, then the notes (runs left out, attacks not finished)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    parts = []
    for report in reports:
        parts.append(_title(report.title, fmt))
        parts.append(_table(table_rows(report, decimals), fmt))
        broken = [r for r in report.rows.values() if report.verdict(r) == BROKEN]
        parts.append(f"{len(broken)} of {len(report.rows)} attacks beat the best baseline."
                     if report.rows else "No attack planned.")
    lines = list(notes) + [note for report in reports for note in report.notes]
    if lines:
        parts.append(_title("Notes", fmt))
        parts.append("\n".join(f"- {line}" for line in lines))
    parts.append(LEGEND)
    return "\n\n".join(parts) + "\n"


LEGEND = (
    "u after: accuracy (%) on the attacked inputs after the attack, mean ± std over seeds ((n/N): only n "
    "seeds finished); a after: on the authorized sets; protected u: the protected model before any attack; "
    "from-scratch u: CoOp trained from scratch on the same k shots; robust: 'yes' when u after <= "
    "max(zero-shot u, from-scratch u), 'NO' when the attack beats it, 'n/a' for a forged mark in the "
    "ownership scenario (there a high accuracy means the mark is specific), '?' when a baseline is missing."
)


# --------------------------------------------------------------------------------------------------
# Plots: per experiment and attack with budgets, accuracy against k
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def _line(ax, budgets, per_budget, color, label):
    points = [(k, stats(v)) for k, v in zip(budgets, per_budget)]
    points = [(k, s) for k, s in points if s is not None]
    if points:
        ax.errorbar([k for k, _ in points], [s.mean for _, s in points], yerr=[s.std for _, s in points],
                    color=color, marker="o", capsize=3, label=label)


def _level(ax, per_seed, color, label):
    s = stats(per_seed)
    if s is not None:
        ax.axhline(s.mean, color=color, linestyle="--", label=f"{label} ({s.mean:.1f})")


def plot_reports(reports: list[ExperimentReport], out_dir) -> list[Path]:
    """One PNG per experiment and attack family with budgets: u after the attack against k, the
    protected model, the CoOp reference, zero-shot CLIP and (fine-tuning) the from-scratch attacker."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for report in reports:
        families: dict[str, list[AttackRow]] = {}
        for row in report.rows.values():
            if row.budget is not None:
                families.setdefault(row.family, []).append(row)
        families = {f: rows for f, rows in families.items() if any(stats(r.after) for r in rows)}
        for family, rows in families.items():
            rows = sorted(rows, key=lambda r: r.budget)
            budgets = [r.budget for r in rows]
            fig = Figure(figsize=(5.5, 4))
            FigureCanvasAgg(fig)
            ax = fig.add_subplot()
            _line(ax, budgets, [r.after for r in rows], ATTACK_COLOR, f"{family} (protected, attacked)")
            if family == FINETUNE_FAMILY:
                _line(ax, budgets, [report.from_scratch.get(k, {}) for k in budgets], SCRATCH_COLOR,
                      "CoOp from scratch")
            _level(ax, report.protected, PROTECTED_COLOR, "protected, no attack")
            _level(ax, report.reference, REFERENCE_COLOR, "CoOp reference (unprotected)")
            _level(ax, report.zero_shot, ZERO_SHOT_COLOR, "zero-shot CLIP")
            ax.set_xscale("log", base=2)
            ax.set_xticks(budgets, [str(k) for k in budgets])
            ax.set_xlabel("attacker's budget k")
            ax.set_ylabel("accuracy on attacked inputs (%)")
            ax.set_ylim(0, 100)
            ax.set_title(f"{report.title}\n{family}", fontsize=8)
            ax.legend(fontsize=7)
            fig.tight_layout()
            path = out_dir / (_slug(f"{report.scenario} {report.key.dataset} {report.key.config_name} "
                                    f"{report.backbone_label} {report.key.pair} {family}") + ".png")
            fig.savefig(path, dpi=DPI)
            written.append(path)
    return written
