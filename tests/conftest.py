"""Shared session fixtures: the generated benchmark, the pretrained tiny CLIP, and config building.

Generating the benchmark and training the tiny CLIP are done once per session (the tiny CLIP once per
machine: its weights are cached in MODEL.CLIP.CACHE_DIR, `~/.cache/clip` by default).
"""
import os.path as osp

import pytest

from dassl.config import get_cfg_default
from trainers.config import extend_cfg


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
def toy_root(tmp_path_factory):
    """A DATASET.ROOT in which ToyDomains has been generated with the default parameters.

    Shared by the session: tests that change split settings should point DATASET.SPLIT_DIR to their
    own temporary folder rather than write a second split policy here.
    """
    from datasets.toy_domains import DATASET_DIR, ToyParams, generate_toy_domains

    root = tmp_path_factory.mktemp("toy_data")
    generate_toy_domains(root / DATASET_DIR, ToyParams())
    return str(root)


@pytest.fixture(scope="session")
def tiny_clip_cache_dir():
    """A MODEL.CLIP.CACHE_DIR holding the default-recipe tiny CLIP weights.

    The default cache folder is reused when the file is there; otherwise the weights are trained
    once into it (minutes; `python tools/pretrain_tiny_clip.py` does the same ahead of time).
    """
    from trainers.tiny_clip import DEFAULT_RECIPE, ensure_tiny_clip_weights

    cache_dir = osp.expanduser(extend_cfg(get_cfg_default()).MODEL.CLIP.CACHE_DIR)
    path = ensure_tiny_clip_weights(cache_dir, DEFAULT_RECIPE)
    return osp.dirname(path)
