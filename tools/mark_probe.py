"""Can IP-CLIP's projector see a watermark, and can CLIP still read through it?

IP-CLIP tells a marked image from a clean one only through the projector's input: every tapped
layer's AdaIN statistics of the frozen image encoder (`VisualFeatureTap` + `squash_stats`). So before
training anything with a mark, this tool asks, per backbone and domain, on the domain's test images
clean and marked (INPUT.WATERMARK of the dataset config and the KEY VALUE overrides):

  * probe: the held-out accuracy of a linear probe (L2-regularised logistic regression) that tells
    the marked version of an image from the clean one on those statistics, trained on half of the
    test split's images (both versions of each) and tested on the other half: a lower bound on what
    the statistics show linearly. Near 50 % they hardly show the mark, and a model that conditions
    on them can hardly refuse one version and accept the other, whatever its loss or schedule;
  * zero-shot clean / marked: CLIP's own accuracy (ZeroshotCLIP's prompts), i.e. what the mark costs
    the frozen model before any protection (a probe near 100 % with a blinded CLIP is a mark that
    protects by destroying the images, not a result).

    python tools/mark_probe.py --root DATA [--dataset-config-file configs/datasets/toy_domains.yaml]
        [--config-file configs/trainers/ZeroshotCLIP/tiny.yaml]
        [--backbones tiny-rn tiny-rn-seed1 tiny-rn-seed2] [--format table|markdown] [KEY VALUE ...]

e.g. the benchmark's default white stripes, the ownership mark (an azure frame), and the stripes
and frame painted together:
    python tools/mark_probe.py --root data
    python tools/mark_probe.py --root data --dataset-config-file configs/datasets/toy_domains_ownership.yaml
    python tools/mark_probe.py --root data INPUT.WATERMARK.PATTERN stripes+frame
"""
import argparse
import os.path as osp
import sys
import tempfile

import torch
import torch.nn.functional as F
from tabulate import tabulate

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import train  # noqa: E402
from dassl.data.datasets import DATASET_REGISTRY  # noqa: E402
from dassl.engine import build_trainer  # noqa: E402
from trainers.ipclip.feature_hooks import VisualFeatureTap  # noqa: E402
from trainers.ipclip.ip_projector import squash_stats  # noqa: E402
from trainers.tiny_clip import backbone_name  # noqa: E402

MARKED_SUFFIX = "_wm"
#: Every domain clean, and with the configured watermark as `<domain>_wm` (test split).
TEST_SETS = f"['{{domain}}=each','{{domain}}{MARKED_SUFFIX}=each+watermark']"
DEFAULT_BACKBONES = [backbone_name(seed) for seed in (0, 1, 2)]


def probe_accuracy(marked, clean, seed=0, l2=1e-3, max_iter=200):
    """Held-out accuracy (%) of a logistic-regression probe telling `marked` rows from `clean` ones.

    Row i of both is the same image: half of the images (drawn with `seed`) train the probe on both
    their versions, the other half test it, so the probe cannot pass by recognising an image.
    Features are standardised with the training half's mean and std.
    """
    if marked.shape != clean.shape or marked.dim() != 2 or len(clean) < 4:
        raise ValueError(f"probe_accuracy expects two [N, D] feature tensors of the same shape with "
                         f"N >= 4 (row i = image i, marked / clean); got {tuple(marked.shape)} and "
                         f"{tuple(clean.shape)}")
    marked, clean = marked.double(), clean.double()
    order = torch.randperm(len(clean), generator=torch.Generator().manual_seed(seed))
    train_rows, test_rows = order[: len(order) // 2], order[len(order) // 2:]

    def split(rows):
        x = torch.cat([marked[rows], clean[rows]])
        y = torch.cat([torch.ones(len(rows)), torch.zeros(len(rows))]).double()
        return x, y

    x_train, y_train = split(train_rows)
    x_test, y_test = split(test_rows)
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-8)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    weight = torch.zeros(x_train.shape[1], dtype=torch.double, requires_grad=True)
    bias = torch.zeros(1, dtype=torch.double, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(x_train @ weight + bias, y_train)
        loss = loss + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        predicted = (x_test @ weight + bias > 0).double()
    return 100.0 * (predicted == y_test).double().mean().item()


def build_zero_shot_trainer(root, backbone, dataset_config, config_file, opts, output_dir):
    """The ZeroshotCLIP trainer of `backbone` (a name such as tiny-rn, or a CLIP file) whose test
    loaders are every domain clean and marked."""
    args = train.build_parser().parse_args([
        "--root", root, "--trainer", "ZeroshotCLIP", "--config-file", config_file,
        "--dataset-config-file", dataset_config, "--output-dir", output_dir, "--eval-only",
        "MODEL.BACKBONE.NAME", backbone, "DATASET.TEST_SETS", TEST_SETS, *opts,
    ])
    train.register_all()
    cfg = train.setup_cfg(args)
    if not cfg.DATASET.SOURCE_DOMAINS:
        # The test sets name every domain; the data manager still wants a source to build.
        first = DATASET_REGISTRY.get(cfg.DATASET.NAME).domains[0]
        cfg.defrost()
        cfg.DATASET.SOURCE_DOMAINS = cfg.DATASET.TARGET_DOMAINS = [first]
        cfg.freeze()
    return build_trainer(cfg)


def projector_inputs_and_accuracy(trainer, loader, restyle_for=None):
    """(features [N, D]: every tapped layer's squashed mu and sigma, concatenated; zero-shot accuracy
    in %) over `loader`, in the loader's order. `restyle_for`: optional callable (batch size, device)
    -> the `VisualFeatureTap.tap` restyle hook for that batch (e.g. FeatureRestyle.hook)."""
    model = trainer.model
    features, correct, total = [], 0, 0
    with VisualFeatureTap(model.image_encoder) as tap, torch.no_grad():
        for batch in loader:
            images, labels = trainer.parse_batch_test(batch)
            restyle = restyle_for(images.shape[0], images.device) if restyle_for else None
            image_features, stats = tap.tap(images, restyle)
            features.append(torch.cat([torch.cat(squash_stats(mu, sigma), 1) for mu, sigma in stats], 1))
            correct += (model.classify(image_features).argmax(1) == labels).sum().item()
            total += len(labels)
    return torch.cat(features).cpu(), 100.0 * correct / max(total, 1)


def probe_backbone(root, backbone, dataset_config, config_file, opts, seed=0):
    """Rows (backbone, domain, probe %, zero-shot clean %, zero-shot marked %) for every domain."""
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = build_zero_shot_trainer(root, backbone, dataset_config, config_file, opts, output_dir)
        measured = {name: projector_inputs_and_accuracy(trainer, loader)
                    for name, loader in trainer.dm.test_loaders.items()}
    rows = []
    for name, (clean, clean_accuracy) in measured.items():
        if name.endswith(MARKED_SUFFIX) or name + MARKED_SUFFIX not in measured:
            continue
        marked, marked_accuracy = measured[name + MARKED_SUFFIX]
        rows.append((backbone, name, probe_accuracy(marked, clean, seed=seed), clean_accuracy,
                     marked_accuracy))
    return rows


def format_rows(rows, fmt="table"):
    body = [(b, d, f"{p:.0f}", f"{c:.0f}", f"{m:.0f}") for b, d, p, c, m in rows]
    return tabulate(body, headers=["backbone", "domain", "probe marked vs clean", "zero-shot clean",
                                   "zero-shot marked"],
                    tablefmt="github" if fmt == "markdown" else "simple", disable_numparse=True)


def tool_parser(doc, dataset_config_file, dataset_help, opts_help):
    """The arguments this tool shares with tools/style_distance.py (data, key, backbones, output)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="data", help="DATASET.ROOT (default data)")
    parser.add_argument("--dataset-config-file", default=dataset_config_file, help=dataset_help)
    parser.add_argument("--config-file", default="configs/trainers/ZeroshotCLIP/tiny.yaml",
                        help="ZeroshotCLIP config (input size, template)")
    parser.add_argument("--backbones", nargs="+", default=DEFAULT_BACKBONES,
                        help="MODEL.BACKBONE.NAME values or CLIP files (default: the three tiny CLIPs)")
    parser.add_argument("--format", choices=("table", "markdown"), default="table")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help=opts_help)
    return parser


def main(argv=None):
    parser = tool_parser(__doc__, "configs/datasets/toy_domains.yaml",
                         "dataset config whose INPUT.WATERMARK is the mark (default: the synthetic "
                         "benchmark's white stripes; toy_domains_ownership.yaml: its ownership mark)",
                         "KEY VALUE overrides, e.g. INPUT.WATERMARK.*")
    parser.add_argument("--seed", type=int, default=0, help="seed of the probe's train / test split")
    args = parser.parse_args(argv)
    rows = []
    for backbone in args.backbones:
        rows += probe_backbone(args.root, backbone, args.dataset_config_file, args.config_file, args.opts,
                               seed=args.seed)
    print(format_rows(rows, args.format))
    return rows


if __name__ == "__main__":
    main()
