"""The synthetic benchmark: renderer, generated tree, marker checks, and the registered dataset."""
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from dassl.data.datasets import DATASET_REGISTRY, build_dataset
from dassl.data.datasets.errors import DatasetError
from datasets import ToyDomains
from datasets.toy_domains import DATASET_DIR, EXTRA_TEST_PREFIX, MARKER_FILE, ToyParams, generate_toy_domains
from datasets.toy_render import CLASSNAMES, DOMAINS, render_images

SMALL = ToyParams(images_per_class=2, image_size=16, seed=3)


def _tree_bytes(folder):
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = osp.join(dirpath, name)
            with open(path, "rb") as f:
                out[osp.relpath(path, folder)] = f.read()
    return out


# -- renderer ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("domain", DOMAINS)
def test_render_returns_uint8_images_of_the_asked_size(domain):
    images = render_images("star", domain, 3, np.random.default_rng(0), size=24)
    assert images.shape == (3, 24, 24, 3) and images.dtype == np.uint8
    assert images.std() > 5  # not a blank canvas


def test_render_is_a_function_of_the_generator_state():
    a = render_images("heart", "painting", 4, np.random.default_rng(7))
    b = render_images("heart", "painting", 4, np.random.default_rng(7))
    c = render_images("heart", "painting", 4, np.random.default_rng(8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_render_classes_differ_in_shape():
    """Same generator state, different class: the silhouette (not only colours) changes."""
    sketches = {c: render_images(c, "sketch", 1, np.random.default_rng(0), size=32)[0].mean(-1) for c in CLASSNAMES}
    ink = {c: img < 128 for c, img in sketches.items()}
    for i, a in enumerate(CLASSNAMES):
        for b in CLASSNAMES[i + 1:]:
            assert (ink[a] != ink[b]).mean() > 0.01, (a, b)


def test_render_rejects_bad_input_clearly():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="circle"):
        render_images("circel", "photo", 1, rng)
    with pytest.raises(ValueError, match="sketch"):
        render_images("circle", "cartoon", 1, rng)
    with pytest.raises(TypeError, match="default_rng"):
        render_images("circle", "photo", 1, 0)
    assert render_images("circle", "photo", 0, rng).shape == (0, 40, 40, 3)


def _style_features(images):
    x = images.astype(np.float32) / 255
    grey = x.mean(-1)
    saturation = x.max(-1) - x.min(-1)
    return np.stack([
        grey.mean((1, 2)), grey.std((1, 2)), saturation.mean((1, 2)),
        (grey > 0.85).mean((1, 2)), np.abs(np.diff(grey, axis=2)).mean((1, 2)),
    ], axis=1)


def test_domains_are_told_apart_by_style_alone():
    """A nearest-centroid rule on five global image statistics recognises the domain of new images."""
    def sample(seed):
        feats, labels = [], []
        rng = np.random.default_rng(seed)
        for d, domain in enumerate(DOMAINS):
            for cls in CLASSNAMES:
                feats.append(_style_features(render_images(cls, domain, 2, rng, size=24)))
                labels += [d, d]
        return np.concatenate(feats), np.array(labels)

    train_x, train_y = sample(0)
    test_x, test_y = sample(1)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    centroids = np.stack([((train_x - mean) / std)[train_y == d].mean(0) for d in range(len(DOMAINS))])
    dist = ((((test_x - mean) / std)[:, None, :] - centroids[None]) ** 2).sum(-1)
    assert (dist.argmin(1) == test_y).mean() > 0.9


# -- generated tree ---------------------------------------------------------------------------------
def test_default_tree_layout_and_counts(toy_root, make_cfg):
    params = ToyParams.from_cfg(make_cfg("configs/datasets/toy_domains.yaml"))
    assert params.extra_test_per_class > 0  # the benchmark's config asks for test-only images
    root = osp.join(toy_root, DATASET_DIR)
    assert sorted(d for d in os.listdir(root) if osp.isdir(osp.join(root, d)) and d != "splits") == sorted(DOMAINS)
    for domain in DOMAINS:
        assert sorted(os.listdir(osp.join(root, domain))) == sorted(CLASSNAMES)
        for cls in CLASSNAMES:
            files = sorted(os.listdir(osp.join(root, domain, cls)))
            assert files == ([f"{i:04d}.png" for i in range(params.images_per_class)]
                             + [f"{EXTRA_TEST_PREFIX}{i:04d}.png" for i in range(params.extra_test_per_class)])
    with Image.open(osp.join(root, DOMAINS[0], CLASSNAMES[0], "0000.png")) as img:
        assert img.size == (params.image_size, params.image_size) and img.mode == "RGB"
    with open(osp.join(root, MARKER_FILE)) as f:
        assert json.load(f) == params.record()


def test_generation_is_deterministic_to_the_byte(tmp_path):
    a = generate_toy_domains(tmp_path / "a" / DATASET_DIR, SMALL)
    b = generate_toy_domains(tmp_path / "b" / DATASET_DIR, SMALL)
    bytes_a, bytes_b = _tree_bytes(a), _tree_bytes(b)
    assert len(bytes_a) == len(DOMAINS) * len(CLASSNAMES) * SMALL.images_per_class + 1
    assert bytes_a == bytes_b
    other = generate_toy_domains(tmp_path / "c" / DATASET_DIR, ToyParams(2, 16, seed=4))
    assert _tree_bytes(other) != bytes_a


def test_existing_tree_is_reused_not_rewritten(tmp_path):
    root = generate_toy_domains(tmp_path / DATASET_DIR, SMALL)
    marker = osp.join(root, MARKER_FILE)
    before = os.stat(marker).st_mtime_ns
    assert generate_toy_domains(root, SMALL) == root
    assert os.stat(marker).st_mtime_ns == before
    assert not [n for n in os.listdir(tmp_path) if n != DATASET_DIR]  # no temporary folder left


def test_tree_made_with_other_parameters_is_refused(tmp_path):
    root = generate_toy_domains(tmp_path / DATASET_DIR, SMALL)
    with pytest.raises(DatasetError, match=r"images_per_class: 2 there, 5 asked.*DATASET.TOY"):
        generate_toy_domains(root, ToyParams(images_per_class=5, image_size=16, seed=3))


def test_foreign_folder_is_refused_and_empty_folder_filled(tmp_path):
    foreign = tmp_path / "x" / DATASET_DIR
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match=MARKER_FILE):
        generate_toy_domains(foreign, SMALL)
    empty = tmp_path / "y" / DATASET_DIR
    empty.mkdir(parents=True)
    generate_toy_domains(empty, SMALL)
    assert (empty / MARKER_FILE).is_file()


def test_bad_parameters_give_a_config_key(make_cfg):
    with pytest.raises(DatasetError, match="DATASET.TOY.IMAGES_PER_CLASS"):
        ToyParams.from_cfg(make_cfg(DATASET__TOY__IMAGES_PER_CLASS=1))
    with pytest.raises(DatasetError, match="DATASET.TOY.EXTRA_TEST_PER_CLASS"):
        ToyParams.from_cfg(make_cfg(DATASET__TOY__EXTRA_TEST_PER_CLASS=-1))


def test_tree_made_before_test_only_images_reads_with_none(tmp_path):
    # A marker without the key (trees made before it existed) is the tree with no test-only images.
    root = generate_toy_domains(tmp_path / DATASET_DIR, SMALL)
    with open(osp.join(root, MARKER_FILE)) as f:
        assert "extra_test_per_class" not in json.load(f)
    with pytest.raises(DatasetError, match=r"extra_test_per_class: None there, 3 asked"):
        generate_toy_domains(root, ToyParams(2, 16, seed=3, extra_test_per_class=3))


# -- the registered dataset -------------------------------------------------------------------------
def test_dataset_config_file(make_cfg):
    cfg = make_cfg("configs/datasets/toy_domains.yaml")
    assert cfg.DATASET.NAME == "ToyDomains" and "ToyDomains" in DATASET_REGISTRY
    # Test sets are the scenario's business (train.py gives them, trainers/ipclip/scenarios.py).
    assert list(cfg.DATASET.TEST_SETS) == []


def test_toy_domains_as_a_domain_dataset(toy_root, make_cfg):
    cfg = make_cfg("configs/datasets/toy_domains.yaml", DATASET__ROOT=toy_root,
                   DATASET__SOURCE_DOMAINS=("photo",), DATASET__TARGET_DOMAINS=("sketch",))
    cfg.VERBOSE = False
    dataset = build_dataset(cfg)
    assert isinstance(dataset, ToyDomains)
    per_domain = cfg.DATASET.TOY.IMAGES_PER_CLASS * len(CLASSNAMES)
    n_split_test = len(CLASSNAMES) * round(cfg.DATASET.TOY.IMAGES_PER_CLASS * cfg.DATASET.TEST_FRACTION)
    n_test = n_split_test + len(CLASSNAMES) * cfg.DATASET.TOY.EXTRA_TEST_PER_CLASS
    assert sorted(dataset.classnames) == sorted(CLASSNAMES)
    assert list(dataset.test_domains) == list(DOMAINS)
    assert all(len(items) == n_test for items in dataset.test_domains.values())
    assert len(dataset.train_x) == len(dataset.train_u) == per_domain - n_split_test
    assert {osp.basename(osp.dirname(osp.dirname(d.impath))) for d in dataset.train_x} == {"photo"}
    assert not {d.impath for d in dataset.train_x} & {d.impath for d in dataset.test_domains["photo"]}
    for datum in dataset.train_x + dataset.test:
        assert osp.basename(osp.dirname(datum.impath)) == datum.classname == dataset.classnames[datum.label]


def test_test_only_images_go_to_test_and_leave_the_train_split_alone(tmp_path, make_cfg):
    """The split of the numbered images is the one made without test-only images: a longer test
    split leaves every trained model as it was."""
    def build(root, extra):
        params = ToyParams(images_per_class=5, image_size=16, seed=3, extra_test_per_class=extra)
        generate_toy_domains(root / DATASET_DIR, params)
        cfg = make_cfg("configs/datasets/toy_domains.yaml", DATASET__ROOT=str(root),
                       DATASET__SOURCE_DOMAINS=("photo",), DATASET__TARGET_DOMAINS=("sketch",),
                       DATASET__TOY__IMAGES_PER_CLASS=5, DATASET__TOY__IMAGE_SIZE=16, DATASET__TOY__SEED=3,
                       DATASET__TOY__EXTRA_TEST_PER_CLASS=extra)
        cfg.VERBOSE = False
        return build_dataset(cfg)

    def rel(datums, root):
        return sorted(osp.relpath(d.impath, root) for d in datums)

    plain, extended = build(tmp_path / "plain", 0), build(tmp_path / "extended", 3)
    assert rel(plain.train_x, tmp_path / "plain") == rel(extended.train_x, tmp_path / "extended")
    for domain in DOMAINS:
        before = rel(plain.test_domains[domain], tmp_path / "plain")
        after = rel(extended.test_domains[domain], tmp_path / "extended")
        extra = [p for p in after if osp.basename(p).startswith(EXTRA_TEST_PREFIX)]
        assert len(extra) == 3 * len(CLASSNAMES)
        assert sorted(set(after) - set(extra)) == before
        assert not {osp.basename(p) for p in rel(extended.train_x, tmp_path / "extended")
                    if osp.basename(p).startswith(EXTRA_TEST_PREFIX)}
