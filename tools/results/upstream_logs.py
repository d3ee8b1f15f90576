"""Old runs that left only an upstream-style log.txt (no results.json): their identity from the
argument and config dumps (else from the folder layout), their results from the final blocks."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from .records import RESULTS_FILE, SUPPORTED_FORMAT, ResultsError, Run, run_from_results


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


