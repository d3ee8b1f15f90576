"""Pretrain the built-in tiny CLIP (`tiny-rn`) into the cache, then report its zero-shot accuracy.

Usage (from the repository root):
    python tools/pretrain_tiny_clip.py [--seed N] [--cache-dir DIR] [--force] [--root DATA]

Training is deterministic and happens once per recipe; later calls only evaluate the cached file.
The accuracy is measured with the prompt "a photo of a {}." (ZeroshotCLIP's template for ToyDomains)
on the test split of every ToyDomains domain, generated under DATA if missing.
"""
import argparse
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from PIL import Image  # noqa: E402
from tabulate import tabulate  # noqa: E402

from dassl.config import get_cfg_default  # noqa: E402
from trainers.config import extend_cfg  # noqa: E402


def evaluate_on_benchmark(model, root, recipe):
    """Zero-shot accuracy (%) per domain on the ToyDomains test split under `root`."""
    from dassl.data.datasets import build_dataset
    from datasets.toy_render import DOMAINS
    from trainers.tiny_clip import EVAL_TEMPLATE, preprocess_images, zero_shot_accuracy

    cfg = extend_cfg(get_cfg_default())
    # The benchmark's own dataset config: a tree generated here must be the one the runs read.
    cfg.merge_from_file(osp.join(REPO, "configs", "datasets", "toy_domains.yaml"))
    cfg.DATASET.ROOT = root
    cfg.DATASET.SOURCE_DOMAINS = (DOMAINS[0],)
    cfg.DATASET.TARGET_DOMAINS = (DOMAINS[1],)
    cfg.VERBOSE = False
    dataset = build_dataset(cfg)
    rows = []
    for domain, items in dataset.test_domains.items():
        images = []
        for item in items:
            with Image.open(item.impath) as img:
                images.append(img.convert("RGB"))
        pixels = preprocess_images(images, recipe.image_resolution)
        labels = [item.label for item in items]
        accuracy = zero_shot_accuracy(model, pixels, labels, dataset.classnames, template=EVAL_TEMPLATE)
        rows.append((domain, len(items), 100.0 * accuracy))
    return rows, len(dataset.classnames)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_cache = extend_cfg(get_cfg_default()).MODEL.CLIP.CACHE_DIR
    parser.add_argument("--cache-dir", default=default_cache,
                        help=f"folder of the cached weights (MODEL.CLIP.CACHE_DIR; default {default_cache})")
    parser.add_argument("--seed", type=int, default=0,
                        help="pretraining seed (default 0: the backbone `tiny-rn`; N > 0: `tiny-rn-seedN`, "
                             "the same recipe from another seed, cached in its own file)")
    parser.add_argument("--force", action="store_true", help="train again even if the cached file exists")
    parser.add_argument("--root", default="data",
                        help="DATASET.ROOT holding (or receiving) the ToyDomains benchmark (default: data)")
    args = parser.parse_args(argv)

    from trainers.clip_backbone import load_clip_file
    from trainers.tiny_clip import backbone_name, cached_weights_path, ensure_tiny_clip_weights, recipe_for_seed

    try:
        recipe = recipe_for_seed(args.seed)
    except ValueError as err:
        parser.error(str(err))
    path = cached_weights_path(args.cache_dir, recipe)
    if osp.isfile(path) and not args.force:
        print(f"Using the cached tiny CLIP {path}")
    start = time.time()
    path = ensure_tiny_clip_weights(args.cache_dir, recipe, force=args.force)
    model = load_clip_file(path)
    rows, num_classes = evaluate_on_benchmark(model, args.root, recipe)
    print(f"Zero-shot accuracy of {backbone_name(args.seed)} ({osp.basename(path)}) with \"a photo of a {{}}.\" "
          f"(chance {100.0 / num_classes:.1f}%):")
    print(tabulate(rows, headers=("domain", "test images", "accuracy %"), floatfmt=".1f"))
    print(f"Done in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
