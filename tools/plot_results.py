"""Figures of the results: accuracy bars for each scenario table, and per-epoch curves of single runs.

    python tools/plot_results.py OUTPUT_ROOT [--out DIR]          one PNG per scenario table
    python tools/plot_results.py --curves RUN_DIR [RUN_DIR ...]   one PNG per run

The groups, CoOp references and test-set roles come from tools/parse_results.py (imported, not
copied), so a bar shows exactly what the matching table row is computed from. Figures are drawn on
matplotlib's Agg canvas (no display needed) and written as PNG.
"""

from __future__ import annotations

import argparse
import math
import os.path as osp
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from tools import parse_results as pr  # noqa: E402

AUTHORIZED_COLOR = "#3a76af"
UNAUTHORIZED_COLOR = "#e1812c"
SET_COLORS = ("#3a76af", "#e1812c", "#3a923a", "#c03d3e", "#9372b2", "#845b53", "#d684bd", "#7f7f7f",
              "#a9aa35", "#2ebdcd")
DPI = 120
DEFAULT_OUT = "plots"


# --------------------------------------------------------------------------------------------------
# Bars: authorized vs unauthorized accuracy, reference vs protected model, per pair


@dataclass
class PairBars:
    """The four bars of one pair (None where the group or its reference is missing)."""

    pair: str
    reference_a: pr.SetStats | None
    reference_u: pr.SetStats | None
    ip_a: pr.SetStats | None
    ip_u: pr.SetStats | None


def pair_bars(pairing: pr.Pairing) -> PairBars:
    """Mean ± std over seeds of the per-seed a and u accuracy (u: mean over its sets first)."""
    a_names, u_names = pairing.roles
    ref, ref_roles = pairing.reference, pairing.reference_roles
    return PairBars(
        pair=pairing.ip.key.pair,
        reference_a=pr.role_stats(ref, ref_roles.authorized) if ref and ref_roles else None,
        reference_u=pr.role_stats(ref, ref_roles.unauthorized) if ref and ref_roles else None,
        ip_a=pr.role_stats(pairing.ip, a_names),
        ip_u=pr.role_stats(pairing.ip, u_names),
    )


def panels_by_scenario(pairings: list[pr.Pairing]) -> dict[str, dict[tuple[str, str], list[PairBars]]]:
    """scenario -> (dataset, config) -> bars of each pair, in table order."""
    usable = [p for p in pairings if p.roles is not None]
    out = {}
    for scenario, members in pr.by_scenario(usable, lambda p: p.scenario).items():
        panels: dict[tuple[str, str], list[PairBars]] = {}
        for pairing in members:
            panels.setdefault((pairing.ip.key.dataset, pairing.ip.key.config_label), []).append(pair_bars(pairing))
        out[scenario] = panels
    return out


def _draw_bar(ax, x, stats, color, hatched, width):
    if stats is None:
        ax.text(x, 1.5, "n/a", ha="center", va="bottom", fontsize=7, color="grey", rotation=90)
        return
    ax.bar(x, stats.mean, width, yerr=stats.std, capsize=3, color=color, alpha=0.45 if hatched else 1.0,
           hatch="///" if hatched else None, edgecolor=color, linewidth=1.0, error_kw={"elinewidth": 1})
    ax.text(x, stats.mean + stats.std + 1.5, f"{stats.mean:.1f}", ha="center", va="bottom", fontsize=7)


def table_figure(scenario: str, panels: dict[tuple[str, str], list[PairBars]],
                 ip_trainer: str = pr.IP_TRAINER, reference_trainer: str = pr.REFERENCE_TRAINER) -> Figure:
    """One scenario table: a panel per dataset/config, four bars per pair."""
    widest = max(len(bars) for bars in panels.values())
    fig = Figure(figsize=(max(6.0, 1.5 * widest + 2.5), 3.6 * len(panels) + 0.9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    width = 0.2
    # (legend label, colour, hatched): the unprotected reference hatched and lighter, IP-CLIP solid
    styles = ((f"{reference_trainer}: a", AUTHORIZED_COLOR, True),
              (f"{reference_trainer}: u", UNAUTHORIZED_COLOR, True),
              (f"{ip_trainer}: a", AUTHORIZED_COLOR, False),
              (f"{ip_trainer}: u", UNAUTHORIZED_COLOR, False))
    for ax, ((dataset, config), bars) in zip(axes, panels.items()):
        for i, pair in enumerate(bars):
            values = (pair.reference_a, pair.reference_u, pair.ip_a, pair.ip_u)
            for k, (stats, (_, color, hatched)) in enumerate(zip(values, styles)):
                _draw_bar(ax, i + (k - 1.5) * width, stats, color, hatched, width * 0.92)
        ax.set_xticks(range(len(bars)), [b.pair for b in bars], rotation=30 if len(bars) > 4 else 0,
                      ha="right" if len(bars) > 4 else "center")
        ax.set_xlim(-0.6, len(bars) - 0.4)
        ax.set_ylim(0, 110)
        ax.set_ylabel("accuracy (%)")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        ax.set_title(f"{dataset} / {config}: mean ± std over seeds", fontsize=10)
    handles = [Patch(facecolor=color, edgecolor=color, alpha=0.45 if hatched else 1.0,
                     hatch="///" if hatched else None, label=label) for label, color, hatched in styles]
    fig.legend(handles=handles, fontsize=8, ncol=4, loc="outside lower center")
    roles = textwrap.fill(pr.ROLE_TEXT[scenario], width=int(fig.get_figwidth() * 13))
    fig.suptitle(f"{scenario}\n{roles}", fontsize=10)
    return fig


def plot_tables(root, out_dir=DEFAULT_OUT, *, reference_config=None, expected_seeds=None, from_logs=False,
                ip_trainer=pr.IP_TRAINER, reference_trainer=pr.REFERENCE_TRAINER) -> list[Path]:
    """results_<scenario>.png for each scenario table that has IP-CLIP groups; the paths written."""
    runs = pr.load_runs(root, from_logs=from_logs)
    if not runs:
        raise pr.ResultsError(f"no {pr.RESULTS_FILE} found under {root}; pass the OUTPUT_ROOT your runs wrote to.")
    summaries, _ = pr.aggregate(pr.group_runs(runs), "accuracy", expected_seeds)
    pairings = pr.pair_with_references(summaries, ip_trainer, reference_trainer, reference_config)
    by_scenario = panels_by_scenario(pairings)
    if not by_scenario:
        raise pr.ResultsError(
            f"no {ip_trainer} group under {root} has a finished seed with the test sets its scenario needs; "
            f"run `python tools/parse_results.py {root}` to see what is there and what is incomplete."
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for scenario, panels in by_scenario.items():
        path = out_dir / f"results_{scenario}.png"
        table_figure(scenario, panels, ip_trainer, reference_trainer).savefig(path, dpi=DPI)
        written.append(path)
    return written


# --------------------------------------------------------------------------------------------------
# Curves: per-epoch accuracy of each named test set, and the training loss


def run_results_path(run_dir) -> Path:
    """The results.json of a run folder (or the file itself), with a clear error otherwise."""
    path = Path(run_dir)
    if path.is_file():
        return path
    candidate = path / pr.RESULTS_FILE
    if candidate.is_file():
        return candidate
    if not path.is_dir():
        raise pr.ResultsError(f"{path} does not exist; pass a run folder that train.py wrote (…/seed<N>).")
    below = sorted(p.parent for p in path.rglob(pr.RESULTS_FILE))[:3]
    hint = f"; run folders below it: {', '.join(map(str, below))}" if below else ""
    raise pr.ResultsError(f"{path} has no {pr.RESULTS_FILE}; pass a run folder (…/seed<N>){hint}.")


def _accuracy(metrics, path: Path, where: str) -> float:
    value = metrics.get("accuracy") if isinstance(metrics, dict) else None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise pr.ResultsError(f"{path}: {where} should hold a finite 'accuracy', got {metrics!r}.")
    return float(value)


def epoch_curves(run: pr.Run) -> dict[str, list[tuple[int, float]]]:
    """Test-set name -> [(epoch, accuracy)] from epochs[*].test (written when TEST.EVAL_FREQ > 0)."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for entry in run.epochs:
        for name, metrics in (entry.get("test") or {}).items():
            where = f"epochs[epoch={entry.get('epoch')}].test.{name}"
            curves.setdefault(name, []).append((int(entry["epoch"]), _accuracy(metrics, run.path, where)))
    if not curves:
        raise pr.ResultsError(
            f"{run.path}: no per-epoch test results (no epochs[*].test): the run was trained with "
            f"TEST.EVAL_FREQ 0, which evaluates only after training. To get curves, set TEST.EVAL_FREQ 1 "
            f"(append `TEST.EVAL_FREQ 1` to the train.py command) and rerun it in a new output folder."
        )
    return curves


def loss_curves(run: pr.Run) -> dict[str, list[tuple[int, float]]]:
    """Training loss terms -> [(epoch, value)] from epochs[*].train (accuracies left out)."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for entry in run.epochs:
        for name, value in (entry.get("train") or {}).items():
            if "acc" in name or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            curves.setdefault(name, []).append((int(entry["epoch"]), float(value)))
    return curves


def curves_figure(run: pr.Run) -> Figure:
    """Accuracy of each named test set per epoch (stars: the final evaluation) and the training loss."""
    accuracy = epoch_curves(run)
    losses = loss_curves(run)
    last_epoch = max(int(e["epoch"]) for e in run.epochs)
    roles = pr.authorized_and_unauthorized(accuracy, run.key.table_scenario, run.key.source_domains)
    role_of = {}
    if roles is not None:
        role_of = {**{n: "u" for n in roles.unauthorized}, **{n: "a" for n in roles.authorized}}
    fig = Figure(figsize=(11.0, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax_acc, ax_loss = fig.subplots(1, 2, width_ratios=(3, 2))
    for i, (name, points) in enumerate(accuracy.items()):
        color = SET_COLORS[i % len(SET_COLORS)]
        role = role_of.get(name)
        # a: thick, u: plain, sets in neither role (e.g. the source domain in target_free): dotted
        style = {"a": ("-", 2.6), "u": ("-", 1.4)}.get(role, (":", 1.8))
        ax_acc.plot(*zip(*points), marker="o", markersize=4, color=color, linestyle=style[0],
                    linewidth=style[1], label=f"{name} ({role})" if role else name)
        if name in run.final and "accuracy" in run.final[name]:
            ax_acc.plot(last_epoch, _accuracy(run.final[name], run.path, f"final.{name}"), marker="*",
                        markersize=11, color=color, linestyle="none")
    if any(name in run.final for name in accuracy):
        ax_acc.plot([], [], marker="*", markersize=11, color="black", linestyle="none", label="final evaluation")
    ax_acc.set_xlabel("epoch")
    ax_acc.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_ylim(0, 105)
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(fontsize=8, ncol=2 if len(accuracy) > 4 else 1, loc="best")
    ax_acc.set_title("test accuracy per named set", fontsize=10)
    if losses:
        for name, points in losses.items():
            total = name == "loss"
            ax_loss.plot(*zip(*points), marker="o" if total else None, markersize=4, linewidth=2 if total else 1,
                         linestyle="-" if total else "--", label=name, color="black" if total else None)
        ax_loss.legend(fontsize=8, loc="best")
    else:
        ax_loss.text(0.5, 0.5, "no training loss recorded", ha="center", va="center", transform=ax_loss.transAxes)
    ax_loss.set_xlabel("epoch")
    ax_loss.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_loss.set_ylabel("training loss (epoch mean)")
    ax_loss.grid(alpha=0.3)
    ax_loss.set_title("training loss", fontsize=10)
    key = run.key
    state = "" if run.finished else " (unfinished)"
    fig.suptitle(f"{key.label()} seed {run.seed}{state}", fontsize=10)
    return fig


def curves_filename(run: pr.Run) -> str:
    key = run.key
    parts = [key.dataset, key.trainer, key.config_name or "noconfig", key.pair.replace(" -> ", "_")]
    if key.table_scenario != pr.TARGET_SPECIFIED:
        parts.append(key.table_scenario)
    name = "_".join(parts + [f"seed{run.seed}"])
    return "curves_" + re.sub(r"[^\w.+-]", "-", name) + ".png"


def plot_curves(run_dirs, out_dir=DEFAULT_OUT) -> list[Path]:
    """One curves PNG per run folder; every run is checked before anything is written."""
    runs = [pr.read_results_file(run_results_path(d)) for d in run_dirs]
    figures = [curves_figure(run) for run in runs]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for run, fig in zip(runs, figures):
        path = out_dir / curves_filename(run)
        n = 2
        while path in written:
            path = out_dir / curves_filename(run).replace(".png", f"_{n}.png")
            n += 1
        fig.savefig(path, dpi=DPI)
        written.append(path)
    return written


# --------------------------------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plot_results.py",
        description="PNG figures of the results. With OUTPUT_ROOT: one figure per scenario table "
                    "(results_<scenario>.png): per pair, authorized (a) vs unauthorized (u) accuracy of "
                    "the CoOp reference (hatched) and IP-CLIP (solid), mean ± population std over seeds, "
                    "with the groups, references and test-set roles of tools/parse_results.py. With "
                    "--curves: one figure per run (curves_*.png): accuracy of each named test set per "
                    "epoch (needs a run trained with TEST.EVAL_FREQ > 0) and the training loss.",
    )
    parser.add_argument("root", nargs="?", metavar="OUTPUT_ROOT",
                        help="folder searched recursively for results.json")
    parser.add_argument("--curves", nargs="+", metavar="RUN_DIR",
                        help="run folders (…/seed<N>) or their results.json files")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help="folder the PNGs are written to (default: %(default)s)")
    parser.add_argument("--reference-config", metavar="NAME",
                        help="config_name of the CoOp reference runs (as in parse_results.py)")
    parser.add_argument("--expected-seeds", type=int, nargs="+", metavar="SEED",
                        help="seeds to average (as in parse_results.py)")
    parser.add_argument("--ip-trainer", default=pr.IP_TRAINER,
                        help="trainer name of protected runs (default: %(default)s)")
    parser.add_argument("--reference-trainer", default=pr.REFERENCE_TRAINER,
                        help="trainer name of the unprotected reference (default: %(default)s)")
    parser.add_argument("--from-logs", action="store_true",
                        help="also read log.txt of old runs without results.json (as in parse_results.py)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.root is None) == (args.curves is None):
        parser.error("give either OUTPUT_ROOT (bar charts of the tables) or --curves RUN_DIR ... (per-epoch "
                     "curves of runs), not both and not neither")
    try:
        if args.curves:
            written = plot_curves(args.curves, args.out)
        else:
            written = plot_tables(args.root, args.out, reference_config=args.reference_config,
                                  expected_seeds=args.expected_seeds, from_logs=args.from_logs,
                                  ip_trainer=args.ip_trainer, reference_trainer=args.reference_trainer)
    except pr.ResultsError as err:
        print(f"plot_results.py: error: {err}", file=sys.stderr)
        return 1
    for path in written:
        print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
