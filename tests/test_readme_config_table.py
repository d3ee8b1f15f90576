"""Every config key the project adds beyond upstream Dassl is documented in the README's table,
with the default the code really has."""
import re
from pathlib import Path

from dassl.config import get_cfg_default
from trainers.config import extend_cfg

SCENARIO_NODES = ("TARGET_SPECIFIED", "TARGET_FREE", "OWNERSHIP", "AUTHORIZATION")


def _flatten(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _flatten(value, prefix + key + ".")
        else:
            yield prefix + key, value


def _upstream_keys():
    """Keys of upstream 0.6.3: the table of the engine contract, read from dassl/config/defaults.py
    (everything above its "Engine extensions" banner)."""
    text = Path("dassl/config/defaults.py").read_text()
    upstream_part = text.split("# Engine extensions")[0]
    return set(re.findall(r"^_C\.([A-Z0-9_.]+) = (?!CN\(\))", upstream_part, flags=re.M))


def _documented_rows():
    rows = {}
    for line in Path("README.md").read_text().splitlines():
        m = re.match(r"\| `([A-Z0-9_.<>]+)` \| (.+?) \|", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def _doc_name(key):
    for scenario in SCENARIO_NODES:
        key = key.replace(f".LOSS.{scenario}.", ".LOSS.<SCENARIO>.")
    return key


def test_every_added_key_is_documented_with_its_default():
    cfg = extend_cfg(get_cfg_default())
    upstream = _upstream_keys()
    assert "OPTIM.LR" in upstream and "DATASET.TEST_SETS" not in upstream
    rows = _documented_rows()
    missing, wrong_default = [], []
    for key, value in _flatten(cfg):
        if key in upstream:
            continue
        name = _doc_name(key)
        if name not in rows:
            missing.append(name)
            continue
        if isinstance(value, str):
            shown = value or '""'
        else:
            shown = str(value)
        cell = rows[name]
        if f"`{shown}`" not in cell:
            wrong_default.append((name, shown, cell))
    assert not missing, f"config keys missing from the README table: {sorted(set(missing))}"
    assert not wrong_default, f"README defaults differ from the code: {wrong_default}"
