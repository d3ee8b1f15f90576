"""The report: per scenario its results table and IP-metrics table, then what is incomplete; in
terminal, markdown, csv or LaTeX form."""
from __future__ import annotations

import csv
import io

from tabulate import tabulate

from trainers.ipclip.protocol import HEADLINE_METRIC, ROLE_TEXT, SCENARIO_METRICS, published_mean
from trainers.ipclip.scenarios import SCENARIO_NAMES

from .aggregate import GroupSummary, Issue, SetStats
from .pairing import MISSING, IPRow
from .records import ResultsError

FORMATS = ("table", "markdown", "csv", "latex")


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
    tables: dict[str, list] = {scenario: [] for scenario in SCENARIO_NAMES}
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


