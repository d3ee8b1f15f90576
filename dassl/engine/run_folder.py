"""What a run's output folder already holds, and whether this run may use it.

A rerun of a finished run must not train again (and overwrite its results), and a folder that holds
a run made with another config must not be resumed or overwritten: its checkpoints and its
results.json would silently mix with the new run's, and a table would report a stale number. The
config saved in results.json is compared with the current one, key by key.

What a crash leaves behind is handled here too: the temporary files of writes that were killed, and
checkpoints that cannot be read (a truncated file, or one deleted by hand while the `checkpoint`
pointer still names it): a resume falls back to the newest epoch every model can load.
"""
import os
import os.path as osp
import re

from dassl.errors import UserError
from dassl.utils.tools import TMP_SUFFIX
from dassl.utils.torchtools import check_checkpoint, checkpoint_pointer, load_checkpoint

from .run_record import cfg_to_dict, read_results

#: Keys (and key prefixes) that may differ between two invocations of the same experiment: where
#: files live and which hardware runs it.
IGNORED_KEYS = (
    "OUTPUT_DIR", "RESUME", "DATASET.ROOT", "MODEL.CLIP.CACHE_DIR", "USE_CUDA", "VERBOSE",
    "DATALOADER.NUM_WORKERS", "RUN_TAG",
    # an attack's inputs that live in a results tree (tools/attack.py): the tree may be moved
    "ATTACK.FINETUNE.MODEL_DIR", "ATTACK.REFERENCE_FILE",
)
#: How many differing keys an error message lists.
MAX_LISTED = 8

NEW, UNFINISHED, FINISHED = "new", "unfinished", "finished"


class RunFolderConflict(UserError, ValueError):
    """The output folder holds a run made with a different config."""


def flatten(tree, prefix=""):
    """Nested dicts -> {"A.B.C": value}."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _ignored(key):
    return any(key == k or key.startswith(k + ".") for k in IGNORED_KEYS)


def config_differences(saved, current, defaults=None):
    """[(key, saved value, current value)] for every key whose values differ (a key missing on one
    side shows as None there), IGNORED_KEYS excepted; sorted by key.

    `defaults` (the default config tree): a key the saved run does not have, set now to its default,
    is no difference: the key was added after that run, and a new key's default keeps the behaviour
    the code had before it existed.
    """
    old, new = flatten(saved), flatten(current)
    default = flatten(defaults) if defaults else {}
    missing = object()
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, missing), new.get(key, missing)
        if a is missing and key in default and default[key] == b:
            continue
        if a != b and not _ignored(key):
            diffs.append((key, None if a is missing else a, None if b is missing else b))
    return diffs


def check_run_folder(cfg, defaults=None):
    """NEW (no results.json), UNFINISHED (a run to resume) or FINISHED (nothing to do) for the run of
    `cfg` in cfg.OUTPUT_DIR; raises RunFolderConflict if the folder's run used another config.
    `defaults`: the default config (see config_differences)."""
    saved = read_results(cfg.OUTPUT_DIR)
    if saved is None:
        return NEW
    diffs = config_differences(saved.get("config", {}), cfg_to_dict(cfg),
                               cfg_to_dict(defaults) if defaults is not None else None)
    if diffs:
        listed = "; ".join(f"{key}: {a!r} there, {b!r} now" for key, a, b in diffs[:MAX_LISTED])
        more = f" (and {len(diffs) - MAX_LISTED} more)" if len(diffs) > MAX_LISTED else ""
        state = "finished" if saved.get("finished") else "unfinished"
        raise RunFolderConflict(
            f"the output folder {cfg.OUTPUT_DIR} holds a {state} run made with a different config "
            f"({listed}{more}). Resuming or overwriting it would mix two experiments. Pass another "
            "--output-dir (scripts: OUTPUT=...), or move that folder away to run this one there."
        )
    return FINISHED if saved.get("finished") else UNFINISHED


#: Names of atomic_write's temporary files (".<target>.<8 random chars>.tmp"), and the fixed name
#: that results.json was once written through.
TEMPORARY_FILE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}" + re.escape(TMP_SUFFIX) + r"$|^results\.json\.tmp$")
#: Checkpoints saved per epoch (save_checkpoint's default name).
EPOCH_CHECKPOINT = re.compile(r"^model\.pth\.tar-(\d+)$")


def clean_temporary_files(output_dir):
    """Delete the temporary files that killed writes left in a run folder; return their paths.
    Call it only while holding the folder's lock (RunLock): a live writer's file would go too."""
    removed = []
    for folder, _, files in os.walk(output_dir):
        for name in files:
            if TEMPORARY_FILE.match(name):
                os.remove(osp.join(folder, name))
                removed.append(osp.join(folder, name))
    return sorted(removed)


def _epochs(folder):
    if not osp.isdir(folder):
        return set()
    return {int(m.group(1)) for m in map(EPOCH_CHECKPOINT.match, os.listdir(folder)) if m}


def find_resume_checkpoints(directory, names):
    """The checkpoints to resume the models `names` from: ({name: loaded checkpoint} or None,
    [(path, why it was skipped)]).

    Tried in order: the file every `directory/<name>/checkpoint` pointer names, then each epoch that
    every model has, newest first. A candidate is taken when every model's file loads; one that is
    missing or unreadable is skipped (and reported) in favour of the next.
    """
    pointed = {checkpoint_pointer(osp.join(directory, name)) for name in names}
    candidates = [pointed.pop()] if len(pointed) == 1 and None not in pointed else []
    common = set.intersection(*(_epochs(osp.join(directory, name)) for name in names)) if names else set()
    candidates += [f"model.pth.tar-{e}" for e in sorted(common, reverse=True)
                   if f"model.pth.tar-{e}" not in candidates]
    skipped = []
    for fname in candidates:
        loaded = {}
        for name in names:
            path = osp.join(directory, name, fname)
            try:
                loaded[name] = check_checkpoint(load_checkpoint(path), path)
            except (FileNotFoundError, RuntimeError) as err:
                skipped.append((path, str(err).split(". ")[0]))
                break
        else:
            return loaded, skipped
    return None, skipped
