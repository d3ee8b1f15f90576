"""DataManager: loaders, named test sets with pre-transforms, reproducible order; samplers; wrapper."""
import pytest
import torch
from PIL import Image

from dassl.config import get_cfg_default
from dassl.data import DataManager, DatasetWrapper
from dassl.data.data_manager import build_data_loader
from dassl.data.datasets import Datum
from dassl.data.samplers import (
    RandomClassSampler,
    RandomDomainSampler,
    SeqDomainSampler,
    build_sampler,
)
from dassl.data.test_sets import parse_test_sets
from dassl.data.transforms import PRE_TRANSFORM_REGISTRY, build_transform
from dassl.utils import set_random_seed

DOMAINS = ("art", "photo", "sketch")
CLASSES = ("bird", "car")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for d, domain in enumerate(DOMAINS):
        for c, cls in enumerate(CLASSES):
            folder = root / domain / cls
            folder.mkdir(parents=True)
            for i in range(10):
                Image.new("RGB", (10, 12), (100 * c, 20 * i, 80 * d)).save(folder / f"{i}.png")
    return root


def make_cfg(root, test_sets=(), **loader):
    cfg = get_cfg_default()
    cfg.VERBOSE = False
    cfg.USE_CUDA = False
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = "DomainFolders"
    cfg.DATASET.SOURCE_DOMAINS = ("art",)
    cfg.DATASET.TARGET_DOMAINS = ("photo", "sketch")
    cfg.DATASET.TEST_SETS = tuple(test_sets)
    cfg.INPUT.SIZE = (8, 8)
    cfg.INPUT.TRANSFORMS = ("random_flip",)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.TRAIN_X.BATCH_SIZE = 4
    cfg.DATALOADER.TEST.BATCH_SIZE = 5
    for key, value in loader.items():
        setattr(cfg.DATALOADER, key, value)
    return cfg


def whiten(img):
    """Test pre-transform: a white image of the same size."""
    return Image.new("RGB", img.size, (255, 255, 255))


class Tint:
    """Test pre-transform built from the config (a class entry is instantiated with cfg)."""

    def __init__(self, cfg):
        self.value = 0 if cfg.INPUT.SIZE[0] == 8 else 255

    def __call__(self, img):
        return Image.new("RGB", img.size, (self.value, self.value, self.value))


@pytest.fixture
def pre_transforms():
    PRE_TRANSFORM_REGISTRY.register(whiten, force=True)
    PRE_TRANSFORM_REGISTRY.register(Tint, force=True)
    yield
    for name in ("whiten", "Tint"):
        PRE_TRANSFORM_REGISTRY._obj_map.pop(name, None)


def test_loaders_and_default_test_set(data_root, capsys):
    cfg = make_cfg(data_root)
    cfg.VERBOSE = True
    dm = DataManager(cfg)
    out = capsys.readouterr().out
    assert "# train_x" in out and "# test" in out and "Building transform_train" in out
    assert dm.num_classes == 2 and dm.num_source_domains == 1 and dm.lab2cname == {0: "bird", 1: "car"}
    assert list(dm.test_loaders) == ["test"] and dm.test_loaders["test"] is dm.test_loader
    assert dm.val_loader is None and dm.train_loader_u is not None
    assert len(dm.train_loader_x) == 16 // 4  # 8 train images per class, drop_last
    batch = next(iter(dm.train_loader_x))
    assert batch["img"].shape == (4, 3, 8, 8) and batch["label"].dtype == torch.int64
    assert set(batch) == {"img", "label", "domain", "impath", "index"}
    assert len(dm.test_loader.dataset) == 8  # 2 test images x 2 classes x 2 target domains
    assert dm.train_loader_x.persistent_workers is False  # no workers here


def test_named_test_sets_with_pre_transforms(data_root, pre_transforms, capsys):
    cfg = make_cfg(
        data_root,
        ["authorized=source", "unauthorized=target", "{domain}_wm=each+whiten", "dark=photo+whiten+Tint"],
    )
    cfg.VERBOSE = True
    dm = DataManager(cfg)
    assert "# test (unauthorized)" in capsys.readouterr().out
    assert list(dm.test_loaders) == ["authorized", "unauthorized", "art_wm", "photo_wm", "sketch_wm", "dark"]
    sizes = {name: len(loader.dataset) for name, loader in dm.test_loaders.items()}
    assert sizes == {"authorized": 4, "unauthorized": 8, "art_wm": 4, "photo_wm": 4, "sketch_wm": 4, "dark": 4}
    test_domains = dm.dataset.test_domains
    assert [d.impath for d in dm.test_loaders["photo_wm"].dataset.data_source] == [
        d.impath for d in test_domains["photo"]
    ]
    clean = next(iter(dm.test_loaders["authorized"]))["img"]
    marked = next(iter(dm.test_loaders["art_wm"]))["img"]
    dark = next(iter(dm.test_loaders["dark"]))["img"]
    assert clean.min() < 0.9 and torch.all(marked == 1.0) and torch.all(dark == 0.0)


@pytest.mark.parametrize(
    "item, message",
    [
        ("authorized", "expected NAME=SELECTOR"),
        ("x=elsewhere", 'unknown selector "elsewhere"'),
        ("x=source+sepia", 'unknown pre-transform "sepia"'),
        ("x=each", r"must contain \{domain\}"),
        ("{domain}=source", "needs the \"each\" selector"),
        ("{domian}_x=each", r"must contain \{domain\}"),
    ],
)
def test_bad_test_set_items_list_what_is_valid(data_root, item, message):
    with pytest.raises(ValueError, match=message) as info:
        DataManager(make_cfg(data_root, [item]))
    assert "'source', 'target', 'each'" in str(info.value) and "'art', 'photo', 'sketch'" in str(info.value)


def test_duplicate_test_set_names():
    with pytest.raises(ValueError, match="used twice"):
        parse_test_sets(["a=source", "a=target"], ["x", "y"], ["x"], ["y"], [])
    specs = parse_test_sets(["{domain}=each", "only_y=y"], ["x", "y"], ["x"], ["y"], [])
    assert [(s.name, s.domains) for s in specs] == [("x", ("x",)), ("y", ("y",)), ("only_y", ("y",))]


def train_order(cfg, seed, noise):
    set_random_seed(seed)
    dm = DataManager(cfg)
    torch.randn(noise)  # e.g. a model initialised between building the loaders and training
    return [i for batch in dm.train_loader_x for i in batch["index"].tolist()]


def test_data_order_is_fixed_by_the_training_seed(data_root):
    cfg = make_cfg(data_root)
    first = train_order(cfg, 1, noise=3)
    assert train_order(cfg, 1, noise=1000) == first
    assert train_order(cfg, 2, noise=3) != first


def test_worker_processes_get_the_pre_transforms(data_root, pre_transforms):
    dm = DataManager(make_cfg(data_root, ["wm=art+whiten"], NUM_WORKERS=1))
    assert not dm.train_loader_x.persistent_workers and not dm.test_loaders["wm"].persistent_workers
    assert torch.all(next(iter(dm.test_loaders["wm"]))["img"] == 1.0)


def test_wrapper_views_and_img0(data_root):
    cfg = make_cfg(data_root, K_TRANSFORMS=2, RETURN_IMG0=True)
    cfg.INPUT.TRANSFORMS = ("random_flip", "normalize")
    data = DataManager(make_cfg(data_root)).dataset.train_x
    tfm = build_transform(cfg, is_train=True)
    sample = DatasetWrapper(cfg, data, transform=[tfm, tfm], is_train=True)[3]
    assert isinstance(sample["img"], list) and len(sample["img"]) == 2 and len(sample["img2"]) == 2
    assert sample["img0"].shape == (3, 8, 8) and sample["index"] == 3
    assert torch.is_tensor(DatasetWrapper(cfg, data, transform=tfm, is_train=False)[0]["img"])
    with pytest.raises(ValueError, match="K_TRANSFORMS"):
        DatasetWrapper(cfg, data, transform=None, is_train=True)


def test_empty_data_source_is_explained(data_root):
    with pytest.raises(ValueError, match='"val" data loader has no data'):
        build_data_loader(make_cfg(data_root), data_source=[], name="val")


# -- samplers -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def datums(data_root):
    path = str(next(data_root.glob("art/bird/*.png")))
    # domain d has 4 + 2d items; labels cycle over 3 classes
    return [Datum(path, label=i % 3, domain=d) for d in range(3) for i in range(4 + 2 * d)]


def test_random_domain_sampler_batches(datums):
    sampler = RandomDomainSampler(datums, batch_size=4, n_domain=2)
    indices = list(sampler)
    assert len(indices) == len(sampler) and len(indices) % 4 == 0 and len(set(indices)) == len(indices)
    for b in range(0, len(indices), 4):
        domains = [datums[i].domain for i in indices[b : b + 4]]
        assert domains[0] == domains[1] and domains[2] == domains[3] and domains[0] != domains[2]
    with pytest.raises(ValueError, match="divisible"):
        RandomDomainSampler(datums, batch_size=5, n_domain=2)


def test_seq_domain_sampler_batches(datums):
    sampler = SeqDomainSampler(datums, batch_size=6)
    indices = list(sampler)
    assert len(indices) == len(sampler) == 12  # smallest domain (4 items) gives 2 batches
    assert [datums[i].domain for i in indices[:6]] == [0, 0, 1, 1, 2, 2]


def test_random_class_sampler_batches(datums):
    sampler = RandomClassSampler(datums, batch_size=4, n_ins=2)
    indices = list(sampler)
    assert indices and len(indices) % 4 == 0 and len(indices) <= len(sampler)
    for b in range(0, len(indices), 2):
        assert datums[indices[b]].label == datums[indices[b + 1]].label
    with pytest.raises(ValueError, match="at least n_ins"):
        RandomClassSampler(datums, batch_size=2, n_ins=4)


def test_unknown_sampler():
    with pytest.raises(ValueError, match="Unknown sampler type: Shuffle"):
        build_sampler("Shuffle", data_source=[1, 2])
