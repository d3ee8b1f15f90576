"""Domain datasets: what train_x / train_u / test / test_domains hold, layouts, and bad input."""
import os
import pickle

import pytest
from PIL import Image

from dassl.config import get_cfg_default
from dassl.data.datasets import (
    DATASET_REGISTRY,
    DatasetBase,
    DatasetError,
    Datum,
    DomainFolders,
    Office31,
    build_dataset,
)

CLASSES = ("Alarm_Clock", "bike", "cup")


def make_tree(root, domains, classes=CLASSES, per_class=5, extra_level=""):
    for d, domain in enumerate(domains):
        for c, cls in enumerate(classes):
            folder = root / domain / extra_level / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.new("RGB", (8, 8), (60 * c, 30 * i, 90 * d)).save(folder / f"{i}.png")
    return root


def make_cfg(root, name, source, target, **dataset):
    cfg = get_cfg_default()
    cfg.VERBOSE = False
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = name
    cfg.DATASET.SOURCE_DOMAINS = tuple(source)
    cfg.DATASET.TARGET_DOMAINS = tuple(target)
    for key, value in dataset.items():
        setattr(cfg.DATASET, key, value)
    return cfg


def test_registry_has_the_domain_datasets():
    for name in ("DomainFolders", "Office31", "OfficeHome", "miniDomainNet", "VisDA17"):
        assert name in DATASET_REGISTRY.registered_names()


def test_domain_folders_parts_and_domain_indices(tmp_path, capsys):
    make_tree(tmp_path, ["a", "b", "c"])
    cfg = make_cfg(tmp_path, "DomainFolders", ["a", "c"], ["b"], TEST_FRACTION=0.4)
    cfg.VERBOSE = True
    ds = build_dataset(cfg)
    out = capsys.readouterr().out
    assert "Loading dataset: DomainFolders" in out and 'Creating split of "a"' in out
    assert ds.domains == ["a", "b", "c"]  # discovered, "splits" folder ignored
    assert ds.classnames == ["alarm clock", "bike", "cup"] and ds.num_classes == 3
    assert ds.lab2cname == {0: "alarm clock", 1: "bike", 2: "cup"}
    # 5 per class, 40 % test -> 3 train + 2 test per class
    assert len(ds.train_x) == 18 and len(ds.train_u) == 9 and len(ds.test) == 6
    assert {d.domain for d in ds.train_x} == {0, 1}
    assert {os.path.relpath(d.impath, tmp_path).split(os.sep)[0] for d in ds.train_x if d.domain == 1} == {"c"}
    assert {d.domain for d in ds.train_u} == {0} and {d.domain for d in ds.test} == {0}
    assert list(ds.test_domains) == ["a", "b", "c"]
    for index, (domain, data) in enumerate(ds.test_domains.items()):
        assert len(data) == 6 and {d.domain for d in data} == {index}
        assert all(f"{os.sep}{domain}{os.sep}" in d.impath for d in data)
    assert {d.impath for d in ds.test} == {d.impath for d in ds.test_domains["b"]}
    train_paths = {d.impath for d in ds.train_x + ds.train_u}
    assert not train_paths & {d.impath for data in ds.test_domains.values() for d in data}
    assert all(d.classname == ds.classnames[d.label] for d in ds.train_x)
    again = build_dataset(cfg)
    assert 'Reading split of "a"' in capsys.readouterr().out
    assert [d.impath for d in again.train_x] == [d.impath for d in ds.train_x]


def test_office31_accepts_an_images_level(tmp_path):
    make_tree(tmp_path / "office31", ["amazon", "webcam"], extra_level="images")
    make_tree(tmp_path / "office31", ["dslr"])
    ds = Office31(make_cfg(tmp_path, "Office31", ["amazon"], ["webcam"]))
    assert ds.domains == ["amazon", "webcam", "dslr"]
    assert all(f"{os.sep}images{os.sep}" in d.impath for d in ds.train_x)
    lines = open(tmp_path / "office31" / "splits" / "seed0" / "amazon_train.txt").read().split("\n")
    assert lines[0].startswith("amazon/images/Alarm_Clock/")


def test_office_home_and_visda_layouts(tmp_path):
    make_tree(tmp_path / "office_home", ["art", "clipart", "product", "real_world"], per_class=2)
    ds = build_dataset(make_cfg(tmp_path, "OfficeHome", ["art"], ["real_world"]))
    assert len(ds.test_domains) == 4 and len(ds.train_x) == 3 and len(ds.test) == 3
    make_tree(tmp_path / "visda17", ["train", "validation"], per_class=3)
    (tmp_path / "visda17" / "train" / "image_list.txt").write_text("ignored\n")
    ds = build_dataset(make_cfg(tmp_path, "VisDA17", ["synthetic"], ["real"]))
    assert list(ds.test_domains) == ["synthetic", "real"]
    assert all(f"{os.sep}validation{os.sep}" in d.impath for d in ds.test)


def write_official(root, domain, part, lines):
    folder = root / "domainnet" / "splits_mini"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{domain}_{part}.txt").write_text("".join(f"{line}\n" for line in lines))


def make_mini_domainnet(root, per_class=6):
    domains = ["clipart", "painting", "real", "sketch"]
    classes = ["zebra", "apple"]  # official labels need not follow sorted order
    make_tree(root / "domainnet", domains, classes=classes, per_class=per_class)
    for domain in domains:
        lines = [f"{domain}/{cls}/{i}.png {label}" for label, cls in enumerate(classes) for i in range(per_class)]
        write_official(root, domain, "train", [line for line in lines if not line.split("/")[2].startswith("0")])
        write_official(root, domain, "test", [line for line in lines if line.split("/")[2].startswith("0")])
    return domains


def test_mini_domainnet_uses_official_lists_and_caps(tmp_path):
    make_mini_domainnet(tmp_path)
    ds = build_dataset(make_cfg(tmp_path, "miniDomainNet", ["clipart"], ["sketch"]))
    assert ds.classnames == ["zebra", "apple"]
    assert len(ds.train_x) == 10 and len(ds.test) == 2
    assert all(os.path.basename(d.impath) == "0.png" for d in ds.test)
    capped = build_dataset(make_cfg(tmp_path, "miniDomainNet", ["clipart"], ["sketch"],
                                    MAX_TRAIN_PER_DOMAIN=4, SPLIT_DIR=str(tmp_path / "capped")))
    assert sorted(d.label for d in capped.train_x) == [0, 0, 1, 1]
    assert {d.impath for d in capped.train_x} <= {d.impath for d in ds.train_x}


def test_mini_domainnet_missing_official_list(tmp_path):
    make_mini_domainnet(tmp_path)
    os.remove(tmp_path / "domainnet" / "splits_mini" / "real_test.txt")
    with pytest.raises(DatasetError, match=r"real_test\.txt.*Datasets"):
        build_dataset(make_cfg(tmp_path, "miniDomainNet", ["clipart"], ["sketch"]))


def test_prepare_data_runs_before_anything_is_read(tmp_path):
    calls = []

    class Generated(DomainFolders):
        dataset_dir = "generated"
        domains = ["x", "y"]

        def prepare_data(self, dataset_root):
            calls.append(dataset_root)
            if not os.path.isdir(dataset_root):
                make_tree(tmp_path / "generated", self.domains, per_class=2)

    ds = Generated(make_cfg(tmp_path, "Generated", ["x"], ["y"]))
    assert calls == [str(tmp_path / "generated")] and len(ds.train_x) == 3


# -- bad input ------------------------------------------------------------------------------------
def test_missing_dataset_folder(tmp_path):
    with pytest.raises(DatasetError, match=r"office31.*does not exist.*amazon|office31.*does not exist"):
        build_dataset(make_cfg(tmp_path, "Office31", ["amazon"], ["webcam"]))


def test_unknown_domain_lists_valid_ones(tmp_path):
    make_tree(tmp_path / "office31", ["amazon", "webcam", "dslr"], per_class=2)
    with pytest.raises(DatasetError, match=r"Unknown domain \"amazn\".*'amazon', 'webcam', 'dslr'"):
        build_dataset(make_cfg(tmp_path, "Office31", ["amazn"], ["webcam"]))
    with pytest.raises(DatasetError, match="TARGET_DOMAINS is empty"):
        build_dataset(make_cfg(tmp_path, "Office31", ["amazon"], []))


def test_missing_domain_folder(tmp_path):
    make_tree(tmp_path / "office31", ["amazon", "webcam"], per_class=2)
    with pytest.raises(DatasetError, match=r"office31.dslr.*does not exist.*Datasets"):
        build_dataset(make_cfg(tmp_path, "Office31", ["amazon"], ["webcam"]))


def test_empty_class_folder(tmp_path):
    make_tree(tmp_path, ["a", "b"], per_class=2)
    for name in os.listdir(tmp_path / "b" / "cup"):
        os.remove(tmp_path / "b" / "cup" / name)
    (tmp_path / "b" / "cup" / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetError, match=r"b.cup.*holds no images"):
        build_dataset(make_cfg(tmp_path, "DomainFolders", ["a"], ["b"]))


def test_unreadable_image(tmp_path):
    make_tree(tmp_path, ["a", "b"], per_class=2)
    (tmp_path / "a" / "bike" / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(DatasetError, match=r"Cannot read image .*broken\.jpg"):
        build_dataset(make_cfg(tmp_path, "DomainFolders", ["a"], ["b"]))


def test_domains_with_different_classes(tmp_path):
    make_tree(tmp_path, ["a"], per_class=2)
    make_tree(tmp_path, ["b"], classes=("bike", "cup", "dog"), per_class=2)
    with pytest.raises(DatasetError, match=r"\"b\" lacks \['Alarm_Clock'\] and has extra \['dog'\]"):
        build_dataset(make_cfg(tmp_path, "DomainFolders", ["a"], ["b"]))


def test_split_file_naming_a_deleted_image(tmp_path):
    make_tree(tmp_path, ["a", "b"], per_class=3)
    cfg = make_cfg(tmp_path, "DomainFolders", ["a"], ["b"])
    build_dataset(cfg)
    first = open(tmp_path / "splits" / "seed0" / "b_test.txt").readline().split(" ")[0]
    os.remove(tmp_path / first)
    with pytest.raises(DatasetError, match=rf"line 1 of .*b_test\.txt.*{first}"):
        build_dataset(cfg)


# -- Datum / DatasetBase --------------------------------------------------------------------------
def test_datum_pickle_layout_matches_upstream(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(path)
    datum = Datum(str(path), 3, 1, "cat")
    blob = pickle.dumps([datum])
    assert b"dassl.data.datasets.base_dataset" in blob and b"Datum" in blob
    assert set(vars(datum)) == {"_impath", "_label", "_domain", "_classname"}
    back = pickle.loads(blob)[0]
    assert (back.impath, back.label, back.domain, back.classname) == (str(path), 3, 1, "cat")
    with pytest.raises(DatasetError, match="no image file"):
        Datum(str(tmp_path / "missing.png"))


def test_dataset_base_derives_classes_from_train_x(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(path)
    data = [Datum(str(path), label, 0, name) for label, name in [(2, "c"), (0, "a"), (2, "c")]]
    base = DatasetBase(train_x=data, test=data)
    assert base.num_classes == 3 and base.classnames == ["a", "c"] and base.lab2cname == {0: "a", 2: "c"}
    assert base.test_domains == {} and base.train_u is None
    assert base.generate_fewshot_dataset(data, num_shots=-1) is data
    assert len(base.generate_fewshot_dataset(data, num_shots=1)) == 2
    assert len(base.generate_fewshot_dataset(data, num_shots=3, repeat=True)) == 6
