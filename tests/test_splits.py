"""The split policy: stratified, deterministic from the split seed only, disjoint, capped, validated."""
import os
import random

import numpy as np
import pytest
import torch
from PIL import Image

from dassl.config import get_cfg_default
from dassl.data.datasets import DatasetError, DomainFolders
from dassl.data.datasets.da.splits import (
    SplitItem,
    SplitPolicy,
    cap_per_class,
    stratified_quotas,
    stratified_split,
)
from dassl.utils import set_random_seed

DOMAINS = ("photo", "sketch")
CLASSES = ("apple_tree", "boat", "cat")


def make_tree(root, domains=DOMAINS, classes=CLASSES, per_class=10):
    for d, domain in enumerate(domains):
        for c, cls in enumerate(classes):
            folder = root / domain / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.new("RGB", (8, 8), (40 * c, 20 * i % 256, 100 * d)).save(folder / f"img_{i:03d}.png")
    return root


def make_cfg(root, **dataset):
    cfg = get_cfg_default()
    cfg.VERBOSE = False
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = "DomainFolders"
    cfg.DATASET.SOURCE_DOMAINS = (DOMAINS[0],)
    cfg.DATASET.TARGET_DOMAINS = (DOMAINS[1],)
    for key, value in dataset.items():
        setattr(cfg.DATASET, key, value)
    return cfg


def items(counts):
    return [SplitItem(f"c{label}/img{i}.png", label) for label, n in counts.items() for i in range(n)]


def read_lines(path):
    with open(path) as f:
        return f.read().splitlines()


# -- pure functions -------------------------------------------------------------------------------
def test_stratified_split_keeps_every_class_on_both_sides():
    data = items({0: 10, 1: 2, 2: 1, 3: 7})
    train, test = stratified_split(data, 0.2, random.Random(0))
    assert sorted(train + test) == sorted(data)
    assert not set(train) & set(test)
    count = lambda part, label: sum(1 for item in part if item.label == label)  # noqa: E731
    assert count(test, 0) == 2 and count(test, 1) == 1 and count(test, 3) == 1
    assert count(train, 1) == 1 and count(train, 2) == 1 and count(test, 2) == 0
    assert train == sorted(train) and test == sorted(test)


def test_stratified_split_depends_only_on_its_generator():
    data = items({0: 30, 1: 30})
    first = stratified_split(data, 0.3, random.Random("s"))
    random.seed(123)
    np.random.seed(5)
    torch.manual_seed(9)
    assert stratified_split(list(reversed(data)), 0.3, random.Random("s")) == first
    assert stratified_split(data, 0.3, random.Random("other")) != first


@pytest.mark.parametrize("cap", [1, 3, 4, 7, 10, 19])
def test_stratified_quotas_sum_to_the_cap_and_keep_classes(cap):
    counts = {0: 12, 1: 5, 2: 1, 3: 2}
    quotas = stratified_quotas(counts, cap)
    assert sum(quotas.values()) == cap
    assert all(0 <= quotas[c] <= counts[c] for c in counts)
    if cap >= len(counts):
        assert all(quotas[c] >= 1 for c in counts)
    assert quotas[0] >= quotas[1] >= quotas[2]  # proportional to class size


def test_stratified_quotas_without_cap_keep_everything():
    counts = {0: 3, 1: 4}
    assert stratified_quotas(counts, -1) == counts
    assert stratified_quotas(counts, 100) == counts


def test_cap_per_class_is_a_stratified_subset():
    data = items({0: 40, 1: 20, 2: 20})
    kept = cap_per_class(data, 8, random.Random(1))
    assert len(kept) == 8 and set(kept) <= set(data)
    assert [sum(1 for k in kept if k.label == c) for c in range(3)] == [4, 2, 2]


@pytest.mark.parametrize(
    "kwargs", [{"test_fraction": 0.0}, {"test_fraction": 1.0}, {"test_fraction": 0.2, "max_train_per_domain": 0}]
)
def test_split_policy_rejects_bad_settings(kwargs):
    with pytest.raises(DatasetError):
        SplitPolicy(seed=0, **kwargs)


# -- split files on disk --------------------------------------------------------------------------
def test_split_files_are_written_once_sorted_and_relative(tmp_path):
    make_tree(tmp_path / "data")
    dataset = DomainFolders(make_cfg(tmp_path / "data"))
    split_dir = tmp_path / "data" / "splits" / "seed0"
    assert dataset.split_dir == str(split_dir)
    names = sorted(os.listdir(split_dir))
    assert names == ["classnames.txt", "photo_test.txt", "photo_train.txt", "sketch_test.txt",
                     "sketch_train.txt", "split_policy.json"]
    assert read_lines(split_dir / "classnames.txt") == list(CLASSES)
    for domain in DOMAINS:
        train = read_lines(split_dir / f"{domain}_train.txt")
        test = read_lines(split_dir / f"{domain}_test.txt")
        assert train == sorted(train) and test == sorted(test)
        assert len(train) == 24 and len(test) == 6  # 2 of 10 per class held out
        assert not set(train) & set(test)
        path, label = test[0].split(" ")
        assert path.startswith(f"{domain}/") and "\\" not in path
        assert path.split("/")[1] == CLASSES[int(label)]


def test_same_split_seed_gives_identical_files_whatever_the_training_seed(tmp_path):
    make_tree(tmp_path / "data")
    contents = []
    for run, (seed, split_dir) in enumerate([(1, "a"), (2, "b")]):
        set_random_seed(seed)
        torch.randn(run * 7 + 1)  # consume the global RNGs differently
        random.random()
        DomainFolders(make_cfg(tmp_path / "data", SPLIT_DIR=str(tmp_path / split_dir)))
        contents.append({n: read_lines(tmp_path / split_dir / n) for n in os.listdir(tmp_path / split_dir)})
    assert contents[0] == contents[1]
    DomainFolders(make_cfg(tmp_path / "data", SPLIT_DIR=str(tmp_path / "c"), SPLIT_SEED=1))
    other = read_lines(tmp_path / "c" / "photo_test.txt")
    assert other != contents[0]["photo_test.txt"]


def test_existing_split_files_are_read_not_rewritten(tmp_path):
    make_tree(tmp_path / "data")
    cfg = make_cfg(tmp_path / "data")
    first = DomainFolders(cfg)
    test_file = tmp_path / "data" / "splits" / "seed0" / "sketch_test.txt"
    kept = read_lines(test_file)[:2]
    test_file.write_text("".join(line + "\n" for line in kept))
    again = DomainFolders(cfg)
    assert len(first.test) == 6
    assert len(again.test) == 2 and read_lines(test_file) == kept


def test_caps_are_stratified_and_train_test_stay_disjoint(tmp_path):
    make_tree(tmp_path / "data", per_class=12)
    cfg = make_cfg(tmp_path / "data", MAX_TRAIN_PER_DOMAIN=6, MAX_TEST_PER_DOMAIN=4)
    dataset = DomainFolders(cfg)
    assert len(dataset.train_x) == 6 and len(dataset.train_u) == 6 and len(dataset.test) == 4
    assert sorted(d.label for d in dataset.train_x) == [0, 0, 1, 1, 2, 2]
    for domain in DOMAINS:
        train, test = dataset.store.read_split(domain, dataset.class_folders)
        assert not {i.relpath for i in train} & {i.relpath for i in test}
    # uncapped split of the same seed: the capped test images are among its test images
    full = DomainFolders(make_cfg(tmp_path / "data", SPLIT_DIR=str(tmp_path / "full")))
    assert {d.impath for d in dataset.test} <= {d.impath for d in full.test}
    assert {d.impath for d in dataset.train_x} <= {d.impath for d in full.train_x}


def test_changed_settings_on_an_existing_split_folder_stop_the_run(tmp_path):
    make_tree(tmp_path / "data")
    DomainFolders(make_cfg(tmp_path / "data"))
    with pytest.raises(DatasetError, match="TEST_FRACTION|test_fraction"):
        DomainFolders(make_cfg(tmp_path / "data", TEST_FRACTION=0.5))


# -- user-provided split files --------------------------------------------------------------------
def write_user_split(split_dir, train, test, domains=DOMAINS):
    split_dir.mkdir(parents=True, exist_ok=True)
    for domain in domains:
        (split_dir / f"{domain}_train.txt").write_text("".join(f"{domain}/{p}\n" for p in train))
        (split_dir / f"{domain}_test.txt").write_text("".join(f"{domain}/{p}\n" for p in test))


def test_user_split_files_are_used(tmp_path):
    make_tree(tmp_path / "data")
    write_user_split(tmp_path / "mine", ["boat/img_000.png 1", "cat/img_001.png 2"], ["cat/img_002.png 2"])
    dataset = DomainFolders(make_cfg(tmp_path / "data", SPLIT_DIR=str(tmp_path / "mine")))
    assert [d.label for d in dataset.train_x] == [1, 2]
    assert [os.path.basename(d.impath) for d in dataset.test] == ["img_002.png"]
    assert not (tmp_path / "mine" / "split_policy.json").exists()


@pytest.mark.parametrize(
    "train, test, message",
    [
        (["boat/missing.png 1"], ["cat/img_002.png 2"], r"line 1 of .*photo_train\.txt.*no such file"),
        (["boat/img_000.png 7"], ["cat/img_002.png 2"], r"line 1 of .*photo_train\.txt.*out of range"),
        (["boat/img_000.png 2"], ["cat/img_002.png 2"], r"class folder"),
        (["boat/img_000.png"], ["cat/img_002.png 2"], r"expected \"relative/path label\""),
        (["cat/img_002.png 2"], ["cat/img_002.png 2"], r"disjoint"),
    ],
)
def test_bad_user_split_files_name_the_problem(tmp_path, train, test, message):
    make_tree(tmp_path / "data")
    write_user_split(tmp_path / "mine", train, test)
    with pytest.raises(DatasetError, match=message):
        DomainFolders(make_cfg(tmp_path / "data", SPLIT_DIR=str(tmp_path / "mine")))


def test_half_a_split_pair_is_an_error(tmp_path):
    make_tree(tmp_path / "data")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "photo_train.txt").write_text("photo/boat/img_000.png 1\n")
    with pytest.raises(DatasetError, match="photo_test.txt"):
        DomainFolders(make_cfg(tmp_path / "data", SPLIT_DIR=str(tmp_path / "mine")))
