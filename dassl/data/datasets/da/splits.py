"""The split policy: fixed, reproducible, class-stratified train/test splits stored beside the data.

Why: upstream reshuffles every domain with the training seed, so the test images of one seed are the
training images of another. Here each domain is split once, from `DATASET.SPLIT_SEED` alone (an RNG
local to the domain, never the global one), written to plain text files, and read back on every later
run. Users may hand in their own split files (`DATASET.SPLIT_DIR`); they are validated on reading.

Files in a split folder:
  <domain>_train.txt, <domain>_test.txt   one "relative/path label" per line, sorted, forward slashes,
                                          paths relative to the dataset folder
  classnames.txt                          class folder names, one per line, in label order
  split_policy.json                       the settings the files were created with (absent for
                                          hand-made folders); a run asking for other settings stops
"""
import json
import math
import os
import os.path as osp
import random
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import NamedTuple


from ..errors import README_HINT, DatasetError

__all__ = [
    "SplitItem",
    "SplitPolicy",
    "SplitStore",
    "stratified_split",
    "stratified_quotas",
    "cap_per_class",
    "CLASSNAMES_FILE",
    "POLICY_FILE",
]

CLASSNAMES_FILE = "classnames.txt"
POLICY_FILE = "split_policy.json"


class SplitItem(NamedTuple):
    """One line of a split file: a path relative to the dataset folder and its class label."""

    relpath: str
    label: int


@dataclass(frozen=True)
class SplitPolicy:
    """Everything that decides a created split; recorded next to the files it produced."""

    seed: int
    test_fraction: float
    max_train_per_domain: int = -1
    max_test_per_domain: int = -1

    def __post_init__(self):
        if not 0.0 < self.test_fraction < 1.0:
            raise DatasetError(
                f"DATASET.TEST_FRACTION must be strictly between 0 and 1 (got {self.test_fraction}); "
                "it is the fraction of each class held out for test."
            )
        for key in ("max_train_per_domain", "max_test_per_domain"):
            value = getattr(self, key)
            if value == 0 or value < -1:
                raise DatasetError(
                    f"DATASET.{key.upper()} must be -1 (no cap) or a positive number of images, got {value}."
                )

    @classmethod
    def from_cfg(cls, cfg):
        return cls(
            seed=int(cfg.DATASET.SPLIT_SEED),
            test_fraction=float(cfg.DATASET.TEST_FRACTION),
            max_train_per_domain=int(cfg.DATASET.MAX_TRAIN_PER_DOMAIN),
            max_test_per_domain=int(cfg.DATASET.MAX_TEST_PER_DOMAIN),
        )

    def record(self):
        return asdict(self)

    def rng(self, domain):
        """A generator owned by one domain: its split does not depend on which other domains exist."""
        return random.Random(f"dassl-split:{self.seed}:{domain}")


def _group_by_label(items):
    groups = defaultdict(list)
    for item in sorted(items):
        groups[item.label].append(item)
    return dict(sorted(groups.items()))


def stratified_split(items, test_fraction, rng):
    """Hold out `test_fraction` of every class (at least one test and one train image per class
    that has two or more; a single image goes to train). Returns (train, test), each sorted."""
    train, test = [], []
    for group in _group_by_label(items).values():
        rng.shuffle(group)
        n = len(group)
        n_test = 0 if n < 2 else min(max(math.floor(n * test_fraction + 0.5), 1), n - 1)
        test.extend(group[:n_test])
        train.extend(group[n_test:])
    return sorted(train), sorted(test)


def stratified_quotas(counts, cap):
    """Per-class sizes summing to `cap`, proportional to `counts` (largest remainder), with every
    class kept when the cap allows it. `counts` maps label -> size; a cap < 0 keeps everything."""
    total = sum(counts.values())
    if cap < 0 or cap >= total:
        return dict(counts)
    exact = {label: cap * n / total for label, n in counts.items()}
    quota = {label: math.floor(value) for label, value in exact.items()}
    if cap >= len(counts):
        quota = {label: max(q, 1) for label, q in quota.items()}
    missing = cap - sum(quota.values())
    # Too few: give one more to the classes with the largest remainders (ties: smaller label first).
    by_remainder = sorted(counts, key=lambda label: (-(exact[label] - math.floor(exact[label])), label))
    while missing > 0:
        for label in by_remainder:
            if missing and quota[label] < counts[label]:
                quota[label] += 1
                missing -= 1
    # Too many (only after keeping every class): take from the largest quotas, never below one.
    while missing < 0:
        label = max(quota, key=lambda lab: (quota[lab], -lab))
        quota[label] -= 1
        missing += 1
    return quota


def cap_per_class(items, cap, rng):
    """Keep at most `cap` items, class-stratified; a random subset of each class (sorted result)."""
    groups = _group_by_label(items)
    quotas = stratified_quotas({label: len(group) for label, group in groups.items()}, cap)
    kept = []
    for label, group in groups.items():
        rng.shuffle(group)
        kept.extend(group[: quotas[label]])
    return sorted(kept)


class SplitStore:
    """One split folder: reads (and validates) existing split files, writes missing ones once."""

    def __init__(self, split_dir, dataset_root):
        self.split_dir = split_dir
        self.dataset_root = dataset_root

    # -- paths ------------------------------------------------------------------------------------
    def split_files(self, domain):
        return (
            osp.join(self.split_dir, f"{domain}_train.txt"),
            osp.join(self.split_dir, f"{domain}_test.txt"),
        )

    def has_split(self, domain):
        """Whether both files of `domain` exist; one without the other is an error."""
        present = [osp.isfile(path) for path in self.split_files(domain)]
        if all(present):
            return True
        if any(present):
            found, lost = self.split_files(domain) if present[0] else self.split_files(domain)[::-1]
            raise DatasetError(
                f'Split folder "{self.split_dir}" has "{osp.basename(found)}" but not '
                f'"{osp.basename(lost)}": a domain needs both files. Add the missing one, or remove '
                f"the other to have the pair created. {README_HINT}"
            )
        return False

    # -- policy -----------------------------------------------------------------------------------
    def check_policy(self, policy_record):
        """Stop when the folder was created with other settings than the ones asked for now."""
        path = osp.join(self.split_dir, POLICY_FILE)
        if not osp.isfile(path):
            return
        with open(path) as f:
            recorded = json.load(f)
        if recorded != policy_record:
            differences = ", ".join(
                f"{key}: {recorded.get(key)!r} there, {policy_record.get(key)!r} now"
                for key in sorted(set(recorded) | set(policy_record))
                if recorded.get(key) != policy_record.get(key)
            )
            raise DatasetError(
                f'The split files in "{self.split_dir}" were created with other settings '
                f"({differences}). Use the settings they were made with, set DATASET.SPLIT_DIR to a "
                "new folder, or delete that folder to create the split again."
            )

    def _write_policy(self, policy_record):
        path = osp.join(self.split_dir, POLICY_FILE)
        if not osp.isfile(path):
            _write_atomic(path, json.dumps(policy_record, indent=2, sort_keys=True) + "\n")

    # -- class names ------------------------------------------------------------------------------
    def read_classnames(self):
        """The class folder names in label order, or None when the folder has no classnames.txt."""
        path = osp.join(self.split_dir, CLASSNAMES_FILE)
        if not osp.isfile(path):
            return None
        with open(path) as f:
            names = [line.strip() for line in f if line.strip()]
        if len(set(names)) != len(names):
            raise DatasetError(f'"{path}" lists a class more than once. {README_HINT}')
        return names

    # -- split files ------------------------------------------------------------------------------
    def read_split(self, domain, class_folders):
        """Read and validate the (train, test) items of `domain`."""
        train_path, test_path = self.split_files(domain)
        train = self._read_file(train_path, class_folders)
        test = self._read_file(test_path, class_folders)
        shared = sorted({item.relpath for item in train} & {item.relpath for item in test})
        if shared:
            raise DatasetError(
                f'"{train_path}" and "{test_path}" share {len(shared)} image(s) (e.g. "{shared[0]}"): '
                "train and test must be disjoint."
            )
        return train, test

    def _read_file(self, path, class_folders):
        items, seen = [], set()
        expected = (f'"relative/path label" (a path relative to "{self.dataset_root}" and an integer '
                    "label)")
        for where, relpath, label in read_path_label_lines(path, expected):
            if not 0 <= label < len(class_folders):
                raise DatasetError(
                    f"{where} has label {label}, out of range: the dataset has {len(class_folders)} "
                    f"classes (labels 0..{len(class_folders) - 1}). {README_HINT}"
                )
            if not osp.isfile(osp.join(self.dataset_root, relpath)):
                raise DatasetError(
                    f'{where} names "{relpath}", but there is no such file under '
                    f'"{self.dataset_root}". {README_HINT}'
                )
            folder = relpath.split("/")[-2] if "/" in relpath else ""
            if folder != class_folders[label]:
                raise DatasetError(
                    f'{where}: "{relpath}" has label {label} ("{class_folders[label]}") but lies in '
                    f'class folder "{folder}". Labels follow the class order of classnames.txt '
                    f"(default: sorted class folder names). {README_HINT}"
                )
            if relpath in seen:
                raise DatasetError(f'{where} repeats "{relpath}"; every image may appear once.')
            seen.add(relpath)
            items.append(SplitItem(relpath, label))
        return items

    def write_split(self, domain, train, test, class_folders, policy_record):
        """Write a new domain split (never over an existing file) plus classnames and policy."""
        names_path = osp.join(self.split_dir, CLASSNAMES_FILE)
        if not osp.isfile(names_path):
            _write_atomic(names_path, "".join(f"{name}\n" for name in class_folders))
        self._write_policy(policy_record)
        for path, items in zip(self.split_files(domain), (train, test)):
            if osp.exists(path):  # a concurrent run made it first: keep it, it is read back anyway
                continue
            _write_atomic(path, "".join(f"{item.relpath} {item.label}\n" for item in sorted(items)))


def read_path_label_lines(path, expected):
    """Yield (where, relpath, label) for every non-empty `relative/path label` line of a split list;
    a malformed line raises a DatasetError saying what was `expected`."""
    with open(path) as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            where = f'line {lineno} of "{path}"'
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not _is_int(parts[1]):
                raise DatasetError(f'{where} reads "{line}"; expected {expected}. {README_HINT}')
            yield where, parts[0].replace("\\", "/"), int(parts[1])


def _is_int(text):
    try:
        int(text)
    except ValueError:
        return False
    return True


def _write_atomic(path, text):
    """Write via a temporary file so an interrupted run never leaves a truncated split behind; a
    folder that cannot be written (a read-only dataset root) is a DatasetError saying where to go."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        os.makedirs(osp.dirname(path) or ".", exist_ok=True)
        with open(tmp, "w", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as err:
        raise DatasetError(
            f'cannot write the split file "{path}" ({err.strerror or err}): the split files are made '
            "once, beside the data by default. If the dataset folder is read-only, set "
            "DATASET.SPLIT_DIR to a writable folder (the splits are written there). " + README_HINT
        ) from err
