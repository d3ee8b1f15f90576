"""Shared session fixtures: the generated benchmark, the pretrained tiny CLIP, and config building.

Generating the benchmark and training the tiny CLIP are done once per session (the tiny CLIP once per
machine: its weights are cached in MODEL.CLIP.CACHE_DIR, `~/.cache/clip` by default).

`--tiny-clip-seed N` (or the environment variable TINY_CLIP_SEED) runs the tests that use the
pretrained tiny CLIP on `tiny-rn-seed<N>`: the same recipe pretrained from another seed stands in for
the same recipe on another machine, whose float kernels give slightly different weights.
"""
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from dassl.config import get_cfg_default
from trainers.config import extend_cfg


SMALL_DOMAINS = ("photo", "sketch")
SMALL_CLASSES = ("apple", "boat", "cat")
SMALL_IMAGES_PER_CLASS = 2
SMALL_IMAGE_SIDE = 64


TINY_CLIP_SEED_ENV = "TINY_CLIP_SEED"


def pytest_addoption(parser):
    parser.addoption("--tiny-clip-seed", type=int, default=None,
                     help=f"pretraining seed of the tiny CLIP the end-to-end tests use (default: "
                          f"${TINY_CLIP_SEED_ENV}, else 0, i.e. `tiny-rn`)")


@pytest.fixture(scope="session")
def tiny_clip_seed(request):
    seed = request.config.getoption("--tiny-clip-seed")
    if seed is None:
        value = os.environ.get(TINY_CLIP_SEED_ENV, "0")
        if not value.isdigit():
            raise pytest.UsageError(f"{TINY_CLIP_SEED_ENV} must be an integer >= 0, got {value!r}")
        seed = int(value)
    return seed


@pytest.fixture(scope="session")
def tiny_clip_backbone(tiny_clip_seed):
    """MODEL.BACKBONE.NAME of the pretrained tiny CLIP under test (`tiny-rn` or `tiny-rn-seed<N>`)."""
    from trainers.tiny_clip import backbone_name

    return backbone_name(tiny_clip_seed)


@pytest.fixture(scope="session")
def make_cfg():
    """`make_cfg(*files, opts=(...), **overrides)` -> a fresh config built the way train.py builds it.

    Engine defaults + `extend_cfg`, then each YAML in `files` (paths relative to the repository root
    or absolute), then `opts` as a flat `KEY VALUE` list (CLI style), then `overrides` given as
    `SECTION__KEY=value` (double underscores for dots, python values). Returned unfrozen.
    """
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))

    def build(*files, opts=(), **overrides):
        cfg = extend_cfg(get_cfg_default())
        for path in files:
            cfg.merge_from_file(path if osp.isabs(path) else osp.join(repo, path))
        if opts:
            cfg.merge_from_list(list(opts))
        for key, value in overrides.items():
            *parents, leaf = key.split("__")
            node = cfg
            for part in parents:
                node = node[part]
            if leaf not in node:
                raise KeyError(f"make_cfg: unknown config key {key.replace('__', '.')}")
            node[leaf] = value
        return cfg

    return build


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory, make_cfg):
    """A DATASET.ROOT in which ToyDomains has been generated with the parameters of its dataset config.

    Shared by the session: tests that change split settings should point DATASET.SPLIT_DIR to their
    own temporary folder rather than write a second split policy here.
    """
    from datasets.toy_domains import DATASET_DIR, ToyParams, generate_toy_domains

    root = tmp_path_factory.mktemp("toy_data")
    generate_toy_domains(root / DATASET_DIR, ToyParams.from_cfg(make_cfg("configs/datasets/toy_domains.yaml")))
    return str(root)


@pytest.fixture(scope="session")
def tiny_clip_cache_dir(tiny_clip_seed):
    """A MODEL.CLIP.CACHE_DIR holding the weights of the tiny CLIP under test (`tiny_clip_backbone`).

    The default cache folder is reused when the file is there; otherwise the weights are trained
    once into it (minutes; `python tools/pretrain_tiny_clip.py --seed N` does the same ahead of time).
    """
    from trainers.tiny_clip import ensure_tiny_clip_weights, recipe_for_seed

    cache_dir = osp.expanduser(extend_cfg(get_cfg_default()).MODEL.CLIP.CACHE_DIR)
    path = ensure_tiny_clip_weights(cache_dir, recipe_for_seed(tiny_clip_seed))
    return osp.dirname(path)


@pytest.fixture(scope="session")
def small_domains(tmp_path_factory):
    """(DATASET.ROOT, DATASET.SPLIT_DIR) of a tiny DomainFolders tree (random pixels): domains
    photo and sketch, 3 classes, 2 images each; the split files put the first image of classes 0 and
    1 in train (2 train images per domain, for 2 + 2 image steps) and the rest in test."""
    root = tmp_path_factory.mktemp("small_domains")
    rng = np.random.default_rng(0)
    train, test = {d: [] for d in SMALL_DOMAINS}, {d: [] for d in SMALL_DOMAINS}
    for domain in SMALL_DOMAINS:
        for label, name in enumerate(SMALL_CLASSES):
            (root / domain / name).mkdir(parents=True)
            for index in range(SMALL_IMAGES_PER_CLASS):
                pixels = rng.integers(0, 256, (SMALL_IMAGE_SIDE, SMALL_IMAGE_SIDE, 3), dtype=np.uint8)
                relative = f"{domain}/{name}/{index}.png"
                Image.fromarray(pixels).save(root / relative)
                in_train = index == 0 and label < 2
                (train if in_train else test)[domain].append(f"{relative} {label}")
    split_dir = root / "splits"
    split_dir.mkdir()
    for domain in SMALL_DOMAINS:
        (split_dir / f"{domain}_train.txt").write_text("\n".join(train[domain]) + "\n")
        (split_dir / f"{domain}_test.txt").write_text("\n".join(test[domain]) + "\n")
    return root, split_dir


@pytest.fixture(scope="session")
def random_clip_file(tmp_path_factory):
    """A random-weight tiny CLIP saved as a plain state dict (MODEL.BACKBONE.NAME accepts a path)."""
    import torch

    from trainers.clip_backbone import build_random_clip

    path = tmp_path_factory.mktemp("clip") / "random_tiny.pt"
    torch.save(build_random_clip("tiny-rn").state_dict(), path)
    return path
