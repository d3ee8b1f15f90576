"""ToyDomains: Office-31 in miniature, generated on first use so the whole pipeline runs without downloads.

The tree `<DATASET.ROOT>/toy_domains/<domain>/<class>/<nnnn>.png` is written into a temporary folder
and renamed into place, with a marker file recording how it was made; a tree made with other
parameters is refused rather than mixed with new images.
"""
import json
import os
import os.path as osp
import shutil
import tempfile
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from dassl.data.datasets import DATASET_REGISTRY
from dassl.data.datasets.da.domain_folders import DomainFolders
from dassl.data.datasets.errors import DatasetError

from .toy_render import CLASSNAMES, DOMAINS, RENDER_VERSION, render_images

__all__ = ["ToyDomains", "ToyParams", "generate_toy_domains", "toy_rng", "MARKER_FILE", "DATASET_DIR"]

DATASET_DIR = "toy_domains"
MARKER_FILE = "toy_domains.json"
# Random streams: the benchmark's files and the tiny CLIP's pretraining pool never share images.
BENCHMARK_STREAM = 0
PRETRAIN_STREAM = 1


def toy_rng(stream, seed, domain, classname):
    """The generator of one (domain, class) cell of one stream: independent of every other cell."""
    return np.random.default_rng([stream, int(seed), DOMAINS.index(domain), CLASSNAMES.index(classname)])


@dataclass(frozen=True)
class ToyParams:
    """Everything that decides the generated pixels; written to the marker file."""

    images_per_class: int = 50
    image_size: int = 40
    seed: int = 0

    def __post_init__(self):
        if self.images_per_class < 2:
            raise DatasetError(
                f"DATASET.TOY.IMAGES_PER_CLASS must be at least 2 (one train and one test image per "
                f"class), got {self.images_per_class}."
            )
        if self.image_size < 8:
            raise DatasetError(f"DATASET.TOY.IMAGE_SIZE must be at least 8 pixels, got {self.image_size}.")

    @classmethod
    def from_cfg(cls, cfg):
        toy = cfg.DATASET.TOY
        return cls(int(toy.IMAGES_PER_CLASS), int(toy.IMAGE_SIZE), int(toy.SEED))

    def record(self):
        return {"generator": "ToyDomains", "render_version": RENDER_VERSION, **asdict(self),
                "domains": list(DOMAINS), "classes": list(CLASSNAMES)}


def _read_marker(dataset_root):
    path = osp.join(dataset_root, MARKER_FILE)
    if not osp.isfile(path):
        raise DatasetError(
            f'"{dataset_root}" exists but has no "{MARKER_FILE}", so it was not made by the ToyDomains '
            "generator (or its generation was interrupted). Move it away, or point DATASET.ROOT to "
            "another folder, and the benchmark is generated there."
        )
    with open(path) as f:
        return json.load(f)


def _check_marker(dataset_root, params):
    recorded, wanted = _read_marker(dataset_root), params.record()
    if recorded != wanted:
        differences = ", ".join(
            f"{key}: {recorded.get(key)!r} there, {wanted.get(key)!r} asked"
            for key in sorted(set(recorded) | set(wanted)) if recorded.get(key) != wanted.get(key)
        )
        raise DatasetError(
            f'The ToyDomains tree in "{dataset_root}" was generated with other parameters ({differences}). '
            "Set DATASET.TOY.* to the recorded values, point DATASET.ROOT to another folder, or delete "
            "that folder to generate it again."
        )


def _write_tree(folder, params):
    for domain in DOMAINS:
        for classname in CLASSNAMES:
            rng = toy_rng(BENCHMARK_STREAM, params.seed, domain, classname)
            images = render_images(classname, domain, params.images_per_class, rng, size=params.image_size)
            class_dir = osp.join(folder, domain, classname)
            os.makedirs(class_dir)
            for index, pixels in enumerate(images):
                Image.fromarray(pixels).save(osp.join(class_dir, f"{index:04d}.png"), format="PNG")
    with open(osp.join(folder, MARKER_FILE), "w") as f:
        json.dump(params.record(), f, indent=2, sort_keys=True)
        f.write("\n")


def generate_toy_domains(dataset_root, params=ToyParams(), verbose=False):
    """Make sure `dataset_root` holds the benchmark made with `params`; generate it if missing.

    Safe against concurrent callers: each writes a private temporary folder and renames it into
    place; a loser of that race discards its copy and checks the winner's marker.
    """
    dataset_root = osp.abspath(osp.expanduser(dataset_root))
    if osp.isdir(dataset_root) and not os.listdir(dataset_root):
        os.rmdir(dataset_root)  # an empty folder (e.g. made by hand) is simply filled
    if osp.exists(dataset_root):
        _check_marker(dataset_root, params)
        return dataset_root
    parent = osp.dirname(dataset_root)
    os.makedirs(parent, exist_ok=True)
    if verbose:
        total = params.images_per_class * len(CLASSNAMES) * len(DOMAINS)
        print(f"Generating the ToyDomains benchmark ({total} images) in {dataset_root}")
    tmp = tempfile.mkdtemp(prefix=f".{osp.basename(dataset_root)}.tmp-", dir=parent)
    try:
        _write_tree(tmp, params)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the benchmark is meant to be shared
        try:
            os.rename(tmp, dataset_root)
        except OSError:
            if not osp.isdir(dataset_root):
                raise
    finally:
        if osp.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    _check_marker(dataset_root, params)
    return dataset_root


@DATASET_REGISTRY.register()
class ToyDomains(DomainFolders):
    """Ten shape classes in four styles (photo, clipart, sketch, painting), generated on first use."""

    dataset_dir = DATASET_DIR
    domains = list(DOMAINS)

    def __init__(self, cfg):
        # Read before the base class runs, since it calls prepare_data() while initialising.
        self.toy_params = ToyParams.from_cfg(cfg)
        super().__init__(cfg)

    def prepare_data(self, dataset_root):
        generate_toy_domains(dataset_root, self.toy_params, verbose=self.verbose)
