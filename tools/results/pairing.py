"""IP-CLIP groups set against their unprotected reference: one row of IP metrics per pair, and
one average row per dataset."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from trainers.ipclip.protocol import (
    IP_COLUMNS,
    NEEDS_REFERENCE,
    ROLE_TEXT,
    authorized_and_unauthorized,
    ip_metrics,
)
from trainers.ipclip.scenarios import SCENARIOS, Roles

from .aggregate import GroupSummary, Issue, SetStats, mean_std
from .records import ResultsError

IP_TRAINER = "IPCLIP"
REFERENCE_TRAINER = "CoOp"
MISSING = "-"


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
    """The reference group of an IP-CLIP group, and all candidates considered.

    First a reference of the same dataset, pair and scenario (one trained per pair, as the scripts
    did before); else a shared one (tools/launch.py: trained once per source and seed, tested on
    every set, in a <source> folder, or <source>_<scenario> where the scenario has its own dataset
    config). Several reference configs need a rule: --reference-config, else the one named like
    the IP-CLIP config, else an error. Runs of the IP group's kind (trained vs eval-only) are
    preferred.
    """
    place = (ip.key.dataset, ip.key.source_domains, ip.key.target_domains, ip.key.table_scenario)
    exact = [
        r for r in references
        if (r.key.dataset, r.key.source_domains, r.key.target_domains, r.key.table_scenario) == place
    ]
    shared = [
        r for r in references
        if r.key.dataset == ip.key.dataset and r.key.source_domains == ip.key.source_domains
        and r.key.target_domains == r.key.source_domains and not r.key.scenario
    ]
    own = [r for r in shared if r.key.folder_scenario == ip.key.table_scenario]
    candidates = exact or own or [r for r in shared if not r.key.folder_scenario]
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
    """An IP-CLIP group, its reference (None: there is none), the roles of their sets (the
    reference's own names for them: reference_roles), and problems."""

    ip: GroupSummary
    reference: GroupSummary | None
    roles: Roles | None
    notes: list[str] = field(default_factory=list)
    reference_roles: Roles | None = None

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
        elif roles is not None:
            definition = SCENARIOS[scenario]
            names = [definition.reference_names(side, ref.sets, ip.key.source_domains, ip.key.target_domains)
                     for side in roles]
            if None in names:
                lacking = [n for n in roles.authorized + roles.unauthorized if n not in ref.sets]
                pairing.notes.append(f"reference {ref.key.label()} lacks test set(s) {lacking}: "
                                     f"{NEEDS_REFERENCE[scenario]} left blank")
            else:
                pairing.reference_roles = Roles(*names)
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
        if ref is not None and pairing.reference_roles is not None:
            a_sl, u_sl = (_mean_of(ref, names) for names in pairing.reference_roles)
            if a_sl is None or u_sl is None:
                a_sl = u_sl = None
        a_ip, u_ip = _mean_of(ip, a_names), _mean_of(ip, u_names)
        values = {"a_sl": a_sl, "u_sl": u_sl, "a_ip": a_ip, "u_ip": u_ip,
                  **ip_metrics(a_ip, u_ip, a_sl, u_sl, scenario)}
        if ref is None:
            reference_ok = scenario == "authorization"  # D needs no reference
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


