"""ToyDomains: Office-31 in miniature, generated on first use so the whole pipeline runs without downloads.

The tree `<DATASET.ROOT>/toy_domains/<domain>/<class>/<nnnn>.png` is written into a temporary folder
and renamed into place, with a marker file recording how it was made; a tree made with other
parameters is refused rather than mixed with new images.

Beside those images, which the split policy divides into train and test as for any folder dataset,
each class folder holds `test_<nnnn>.png` images from a random stream of their own that only the test
split gets: the test split can grow (so that a few points between two runs are more than noise)
while the train split, and so every trained model, stays what it was.
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
from dassl.data.datasets.da.splits import stratified_split
from dassl.data.datasets.errors import DatasetError

from .toy_render import CLASSNAMES, DOMAINS, RENDER_VERSION, render_images

__all__ = ["ToyDomains", "ToyParams", "generate_toy_domains", "toy_rng", "MARKER_FILE", "DATASET_DIR",
           "EXTRA_TEST_PREFIX"]

DATASET_DIR = "toy_domains"
MARKER_FILE = "toy_domains.json"
# Random streams: the benchmark's files and the tiny CLIP's pretraining pool never share images.
BENCHMARK_STREAM = 0
PRETRAIN_STREAM = 1
EXTRA_TEST_STREAM = 2
#: File-name prefix of the images only the test split gets (they sort after the numbered ones).
EXTRA_TEST_PREFIX = "test_"


def toy_rng(stream, seed, domain, classname):
    """The generator of one (domain, class) cell of one stream: independent of every other cell."""
    return np.random.default_rng([stream, int(seed), DOMAINS.index(domain), CLASSNAMES.index(classname)])


@dataclass(frozen=True)
class ToyParams:
    """Everything that decides the generated pixels; written to the marker file."""

    images_per_class: int = 50
    image_size: int = 40
    seed: int = 0
    extra_test_per_class: int = 0

    def __post_init__(self):
        if self.images_per_class < 2:
            raise DatasetError(
                f"DATASET.TOY.IMAGES_PER_CLASS must be at least 2 (one train and one test image per "
                f"class), got {self.images_per_class}."
            )
        if self.image_size < 8:
            raise DatasetError(f"DATASET.TOY.IMAGE_SIZE must be at least 8 pixels, got {self.image_size}.")
        if self.extra_test_per_class < 0:
            raise DatasetError(
                f"DATASET.TOY.EXTRA_TEST_PER_CLASS must be 0 or more, got {self.extra_test_per_class}."
            )

    @classmethod
    def from_cfg(cls, cfg):
        toy = cfg.DATASET.TOY
        return cls(int(toy.IMAGES_PER_CLASS), int(toy.IMAGE_SIZE), int(toy.SEED), int(toy.EXTRA_TEST_PER_CLASS))

    def record(self):
        fields = asdict(self)
        if not self.extra_test_per_class:
            del fields["extra_test_per_class"]  # trees made before the test-only images stay readable
        return {"generator": "ToyDomains", "render_version": RENDER_VERSION, **fields,
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
    pools = ((BENCHMARK_STREAM, params.images_per_class, ""),
             (EXTRA_TEST_STREAM, params.extra_test_per_class, EXTRA_TEST_PREFIX))
    for domain in DOMAINS:
        for classname in CLASSNAMES:
            class_dir = osp.join(folder, domain, classname)
            os.makedirs(class_dir)
            for stream, count, prefix in pools:
                rng = toy_rng(stream, params.seed, domain, classname)
                images = render_images(classname, domain, count, rng, size=params.image_size)
                for index, pixels in enumerate(images):
                    Image.fromarray(pixels).save(osp.join(class_dir, f"{prefix}{index:04d}.png"), format="PNG")
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
        total = (params.images_per_class + params.extra_test_per_class) * len(CLASSNAMES) * len(DOMAINS)
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

    def make_domain_split(self, domain, rng):
        """The policy's split of the numbered images, plus every test-only image in the test part.
        The numbered images are split as they were before test-only images existed (same items, same
        draws), so a longer test split leaves the train split unchanged."""
        items = self.scan_domain_images(domain)
        extra = [item for item in items if _is_extra_test(item)]
        train, test = stratified_split([item for item in items if not _is_extra_test(item)],
                                       self.policy.test_fraction, rng)
        return train, sorted(test + extra)

    def split_policy_record(self):
        record = super().split_policy_record()
        if self.toy_params.extra_test_per_class:
            record["toy_extra_test_per_class"] = self.toy_params.extra_test_per_class
        return record


def _is_extra_test(item):
    return osp.basename(item.relpath).startswith(EXTRA_TEST_PREFIX)
