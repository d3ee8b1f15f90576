"""`results.json`: the structured record of one run, which tools/parse_results.py reads.

Written atomically after every evaluation, so a crash never leaves a half-written file and a resumed
run keeps the epochs it had already recorded.
"""
import json
import math
import os
import time

from dassl.errors import UserError
from dassl.utils.tools import atomic_write

FORMAT_VERSION = 1
FILENAME = "results.json"


def cfg_to_dict(node):
    """A yacs CfgNode as plain JSON-able nested dicts (tuples become lists)."""
    if isinstance(node, dict):
        return {k: cfg_to_dict(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [cfg_to_dict(v) for v in node]
    return node


def finite_or_none(value):
    """Nested data with every non-finite float replaced by None: strict JSON has no NaN/Infinity
    (Python's json writes them as bare NaN, which other parsers reject)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def run_identity(cfg):
    """The fields that group runs into experiments (dataset, trainer, config, tag, pair, seed)."""
    return {
        "dataset": cfg.DATASET.NAME,
        "trainer": cfg.TRAINER.NAME,
        "config_name": cfg.CONFIG_NAME,
        "source_domains": list(cfg.DATASET.SOURCE_DOMAINS),
        "target_domains": list(cfg.DATASET.TARGET_DOMAINS),
        "tag": cfg.RUN_TAG,
        "backbone": cfg.MODEL.BACKBONE.NAME,
        "seed": cfg.SEED,
        "max_epoch": cfg.OPTIM.MAX_EPOCH,
    }


class DamagedRecordError(UserError, ValueError):
    """A run folder's results.json that is not a readable record."""


def read_results(output_dir):
    """The parsed results.json of a run folder, or None if there is none; a file that is empty or
    not a JSON object (a disk filled up, a hand edit) is a DamagedRecordError naming it and the fix."""
    path = os.path.join(output_dir, FILENAME)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        data, problem = None, f"cannot be read as JSON ({err})"
    else:
        problem = "" if isinstance(data, dict) else f"holds a {type(data).__name__}, not a run record"
    if problem:
        raise DamagedRecordError(
            f"{path} {problem}. It should be the record train.py writes for this run. Move it away (or "
            "delete it) and rerun: the checkpoints in the folder are kept and the run resumes from them."
        )
    return data


class RunRecord:
    def __init__(self, cfg):
        self.path = os.path.join(cfg.OUTPUT_DIR, FILENAME)
        self.data = {
            "format": FORMAT_VERSION,
            "finished": False,
            "eval_only": False,
            "run": run_identity(cfg),
            "epochs": [],
            "final": {},
            "wall_time_s": 0.0,
            "config": cfg_to_dict(cfg),
        }
        self._start = time.time()
        self._previous_wall = 0.0

    def set_num_classes(self, num_classes):
        """Recorded so that readers can tell chance level (a collapsed run) from protection."""
        self.data["run"]["num_classes"] = int(num_classes)

    def keep_previous(self, upto_epoch):
        """On resume: keep the epochs (<= upto_epoch) and the wall time an earlier attempt recorded."""
        old = read_results(os.path.dirname(self.path))
        if not old:
            return
        self.data["epochs"] = [e for e in old.get("epochs", []) if e["epoch"] <= upto_epoch]
        self._previous_wall = float(old.get("wall_time_s", 0.0))

    def add_epoch(self, epoch, train=None, lr=None, test=None):
        entry = {"epoch": epoch}
        if train:
            entry["train"] = train
        if lr is not None:
            entry["lr"] = lr
        if test:
            entry["test"] = test
        epochs = [e for e in self.data["epochs"] if e["epoch"] != epoch]
        epochs.append(entry)
        self.data["epochs"] = sorted(epochs, key=lambda e: e["epoch"])

    def set_final(self, test, eval_only=False):
        self.data["final"] = test
        self.data["eval_only"] = eval_only

    def save(self, finished=False):
        self.data["finished"] = finished
        self.data["wall_time_s"] = round(self._previous_wall + time.time() - self._start, 3)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        data = finite_or_none(self.data)

        def write(tmp):
            with open(tmp, "w") as f:
                json.dump(data, f, indent=2, allow_nan=False)

        atomic_write(self.path, write)
