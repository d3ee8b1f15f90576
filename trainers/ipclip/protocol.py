"""How IP-CLIP is judged: the roles of the test sets, the paper's metrics and the published numbers.
Beside the scenario definitions (scenarios.py) that they read; tools/parse_results.py and
tools/robustness.py compute their tables with these."""
from __future__ import annotations

from .scenarios import ANY_DATASET, DEFAULT_SCENARIO, SCENARIOS, Roles

ROLE_TEXT = {name: s.role_text for name, s in SCENARIOS.items()}
HEADLINE_METRIC = {name: s.headline for name, s in SCENARIOS.items()}
PUBLISHED = {name: s.published for name, s in SCENARIOS.items()}
# Metric columns each scenario's table shows after the accuracies and drops, the headline first.
SCENARIO_METRICS = {name: s.metrics for name, s in SCENARIOS.items()}
# What a missing reference leaves blank, per scenario.
NEEDS_REFERENCE = {name: s.needs_reference for name, s in SCENARIOS.items()}
IP_COLUMNS = ("a_sl", "u_sl", "a_ip", "u_ip", "drop_a", "drop_u", "w", "d", "o")
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



def authorized_and_unauthorized(set_names, scenario: str = "", source_domains=()) -> Roles | None:
    """Which test sets are "a" and "u" in a scenario ('' — runs that record none — reads as
    target_specified): Scenario.roles in trainers/ipclip/scenarios.py."""
    return SCENARIOS[scenario or DEFAULT_SCENARIO].roles(set_names, source_domains)


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
        "o": o_u_a(u_sl, a_ip, u_ip) if has_ref and scenario == "ownership" else None,
    }



def published_mean(dataset: str, scenario: str) -> tuple[float, str] | None:
    """The published mean of a scenario's headline metric on a dataset and what it is, or None."""
    by_dataset = PUBLISHED.get(scenario, {})
    if dataset in by_dataset:
        return by_dataset[dataset], PAPER_NOTE
    if ANY_DATASET in by_dataset and dataset in PAPER_DATASETS:
        return by_dataset[ANY_DATASET], PAPER_NOTE_ANY
    return None
