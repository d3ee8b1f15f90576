"""How far from the authorized style does each test set sit, in what IP-CLIP's projector reads?

Authorization must accept the keyed source and refuse everything else, including keyed images of
domains it never saw. The projector decides from the encoder's AdaIN statistics, standardised by the
authorized images' own mean and std (STATS_NORM authorized). This tool measures, per backbone and
test set (every domain clean and with the dataset config's mark), the distance of each image from
the authorized (marked source) images in those units: the RMS over all statistics of the
standardised values (StatsStandardizer's formula, fitted on half of the marked source's test images;
the other half is the reference). It prints, per set:

  * the mean distance;
  * AUC: how often an image of the set is further than an authorized one of the held-out half
    (50: the distance does not tell them apart, 100: every image of the set is further);
  * the share of the set's images that a distance threshold would let through, for thresholds at
    quantiles of the authorized images' distances (q95, q99, their maximum): how much of a domain
    a one-class rule on distance alone would accept, and what it would cost the authorized side;
  * optionally (--restyle-strengths), the authorized images re-styled in the encoder at those
    strengths (TRAINER.IPCLIP.FEATURE_RESTYLE's stand-in, MU_SHIFT / SIGMA_SCALE as configured),
    to compare where the stand-ins sit with where the real domains do.

    python tools/style_distance.py --root DATA [--source photo]
        [--dataset-config-file configs/datasets/toy_domains_authorization.yaml]
        [--backbones tiny-rn tiny-rn-seed1 tiny-rn-seed2] [--restyle-strengths 0.1 0.5 1.0]
        [--format table|markdown] [KEY VALUE ...]
"""
import os.path as osp
import sys
import tempfile

import torch
from tabulate import tabulate

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from dassl.config import get_cfg_default  # noqa: E402
from tools.mark_probe import (MARKED_SUFFIX, build_zero_shot_trainer, projector_inputs_and_accuracy,  # noqa: E402
                              tool_parser)
from trainers.config import extend_cfg  # noqa: E402
from trainers.ipclip.feature_restyle import FeatureRestyle  # noqa: E402
from trainers.ipclip.stats_standardizer import StatsStandardizer  # noqa: E402

#: Quantiles of the authorized images' distances used as thresholds (1.0: their maximum).
GATE_QUANTILES = (0.95, 0.99, 1.0)


def standardized_distance(rows, fit_rows, min_std, clip):
    """RMS over features [N, D] -> [N] of the projector's standardised input: a StatsStandardizer
    fitted on `fit_rows` (std floored at min_std, softly clipped to +-clip; 0: no clip). Its
    standardisation is elementwise, so the concatenated statistics go in as one layer of width D
    (given as both of its inputs; the first output is kept)."""
    standardizer = StatsStandardizer(n_layers=1, width=rows.shape[1], min_std=min_std, clip=clip)
    standardizer.fit(fit_rows[:, None], fit_rows[:, None])
    z = standardizer(rows[:, None], rows[:, None])[0][:, 0]
    return z.pow(2).mean(dim=1).sqrt()


def auc_further(distances, reference):
    """% of (image of the set, reference image) pairs where the set's image is further (ties: half)."""
    diff = distances[:, None] - reference[None, :]
    return 100.0 * ((diff > 0).float() + 0.5 * (diff == 0).float()).mean().item()


def restyled_inputs(trainer, loader, strength, node):
    """Projector inputs [N, D] of `loader`'s images, every one re-styled in the encoder at `strength`
    with the FEATURE_RESTYLE settings of `node` (LAYERS, MU_SHIFT, SIGMA_SCALE)."""
    restyle = FeatureRestyle(1.0, node.LAYERS, node.MU_SHIFT, node.SIGMA_SCALE, 0.0)

    def restyle_for(batch_size, device):
        return restyle.hook(torch.full((batch_size,), float(strength), device=device))

    return projector_inputs_and_accuracy(trainer, loader, restyle_for)[0]


def measure_backbone(root, backbone, source, dataset_config, config_file, opts, restyle_strengths=(),
                     restyle_opts=(), seed=0):
    """Rows (backbone, set, mean distance, AUC, % let through at each GATE_QUANTILES threshold)."""
    ip = extend_cfg(get_cfg_default()).TRAINER.IPCLIP
    ip.defrost()
    ip.merge_from_list(list(restyle_opts))
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = build_zero_shot_trainer(root, backbone, dataset_config, config_file, opts, output_dir)
        loaders = trainer.dm.test_loaders
        authorized_name = source + MARKED_SUFFIX
        if authorized_name not in loaders:
            raise SystemExit(f"error: no test set {authorized_name!r}; --source must be one of the "
                             f"dataset's domains ({', '.join(n for n in loaders if not n.endswith(MARKED_SUFFIX))})")
        inputs = {name: projector_inputs_and_accuracy(trainer, loader)[0] for name, loader in loaders.items()}
        for index, strength in enumerate(restyle_strengths):
            # The re-style draws its shifts from torch's global generator: seeded here (and restored
            # after), so that a rerun gives the same stand-ins.
            with torch.random.fork_rng():
                torch.manual_seed(seed + index)
                inputs[f"{authorized_name} restyled {strength:g}"] = restyled_inputs(
                    trainer, loaders[authorized_name], strength, ip.FEATURE_RESTYLE)
    authorized = inputs[authorized_name]
    order = torch.randperm(len(authorized), generator=torch.Generator().manual_seed(seed))
    fit, held = authorized[order[::2]], authorized[order[1::2]]

    def distance(rows):
        return standardized_distance(rows, fit, ip.STATS_NORM_MIN_STD, ip.STATS_NORM_CLIP)

    fitted = distance(fit)
    thresholds = [fitted.quantile(q) for q in GATE_QUANTILES]
    reference = distance(held)
    rows = []
    for name, features in inputs.items():
        d = reference if name == authorized_name else distance(features)
        through = [100.0 * (d <= t).float().mean().item() for t in thresholds]
        rows.append((backbone, name, d.mean().item(), auc_further(d, reference), *through))
    return rows


def format_rows(rows, fmt="table"):
    gates = [f"through at {'max' if q == 1.0 else f'q{round(100 * q)}'}" for q in GATE_QUANTILES]
    body = [(b, n, f"{d:.2f}", f"{a:.1f}", *(f"{t:.1f}" for t in through)) for b, n, d, a, *through in rows]
    return tabulate(body, headers=["backbone", "test set", "distance", "AUC vs authorized", *gates],
                    tablefmt="github" if fmt == "markdown" else "simple", disable_numparse=True)


def main(argv=None):
    parser = tool_parser(__doc__, "configs/datasets/toy_domains_authorization.yaml",
                         "dataset config whose INPUT.WATERMARK is the key (default: authorization's)",
                         "KEY VALUE overrides of the dataset / input")
    parser.add_argument("--source", default="photo", help="authorized (keyed) domain (default photo)")
    parser.add_argument("--restyle-strengths", nargs="*", type=float, default=[],
                        help="also the authorized images re-styled in the encoder at these strengths")
    parser.add_argument("--restyle-opts", nargs="*", default=[],
                        help="TRAINER.IPCLIP KEY VALUE pairs for the re-style and the standardiser, e.g. "
                             "FEATURE_RESTYLE.MU_SHIFT 2.0 FEATURE_RESTYLE.SIGMA_SCALE 1.0")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the fit / reference split and of the re-style draws")
    args = parser.parse_args(argv)
    rows = []
    for backbone in args.backbones:
        rows += measure_backbone(args.root, backbone, args.source, args.dataset_config_file, args.config_file,
                                 args.opts, args.restyle_strengths, args.restyle_opts, seed=args.seed)
    print(format_rows(rows, args.format))
    return rows


if __name__ == "__main__":
    main()
