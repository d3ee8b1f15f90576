"""Is the gap between two runs on one test set real, or within what the test images can resolve?

The robustness criteria compare an IP-CLIP run with its CoOp reference on the same test images
(500 per domain on the synthetic benchmark, 100 before `DATASET.TOY.EXTRA_TEST_PER_CLASS`). Two models scored on the same images are a paired
comparison: what decides whether a difference of a few points means anything is how many images
one gets right and the other wrong. This tool re-evaluates both runs' last checkpoints (or
--epochs) on one test set and prints their accuracies, the two discordant counts, the standard
error of the paired difference and McNemar's exact two-sided p-value.

    python tools/paired_compare.py RUN_A RUN_B --test-set "painting=painting" [--epochs 10 5]
        [--root DATA]

RUN_A / RUN_B are output folders of train.py (each rebuilt from its results.json, as
`train.py --run-config` does); the test set is one DATASET.TEST_SETS item (NAME=SELECTOR[+PRE...]).
"""
import argparse
import math
import os.path as osp
import sys
import tempfile

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import train  # noqa: E402
from dassl.engine import build_trainer  # noqa: E402
from dassl.errors import UserError  # noqa: E402


def mcnemar_exact(only_a, only_b):
    """Two-sided exact McNemar p-value from the discordant counts (a binomial test at 1/2)."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_summary(hits_a, hits_b):
    """Per-image correctness [N] of two models on the same images -> dict of the paired figures."""
    if hits_a.shape != hits_b.shape or hits_a.dim() != 1 or hits_a.numel() < 2:
        raise ValueError(f"expected two [N] correctness vectors of the same length N >= 2 (the same "
                         f"test images in the same order); got {tuple(hits_a.shape)} and "
                         f"{tuple(hits_b.shape)}")
    a, b = hits_a.bool(), hits_b.bool()
    n = a.numel()
    diff = a.float() - b.float()
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    return {"n": n, "acc_a": 100 * float(a.float().mean()), "acc_b": 100 * float(b.float().mean()),
            "only_a": only_a, "only_b": only_b, "se_diff": 100 * float(diff.std() / math.sqrt(n)),
            "p_mcnemar": mcnemar_exact(only_a, only_b)}


def run_hits(run_dir, test_set, epoch=None, root=""):
    """Per-image correctness [N] of the run in `run_dir` (its checkpoint of `epoch`, default the
    last) on `test_set`, in the test loader's order."""
    with tempfile.TemporaryDirectory(prefix="paired_compare-") as out:
        argv = ["--run-config", run_dir, "--output-dir", out, "--eval-only", "--model-dir", run_dir]
        argv += ["--root", root] if root else []
        argv += ["DATASET.TEST_SETS", f"['{test_set}']"]
        args = train.build_parser().parse_args(argv)
        train.register_all()
        cfg = train.setup_cfg(args)
        trainer = build_trainer(cfg)
        trainer.load_model(run_dir, epoch=cfg.OPTIM.MAX_EPOCH if epoch is None else epoch)
        trainer.test()  # the one test set: the evaluator then holds its per-image predictions
        return trainer.evaluator.hits()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    parser.add_argument("--test-set", required=True,
                        help='one DATASET.TEST_SETS item, e.g. "photo=photo" or "photo_wm=photo+watermark"')
    parser.add_argument("--epochs", type=int, nargs=2, metavar=("EPOCH_A", "EPOCH_B"),
                        help="checkpoints to load (default: each run's last epoch)")
    parser.add_argument("--root", default="", help="DATASET.ROOT, where it moved since the runs")
    args = parser.parse_args(argv)
    epochs = args.epochs or (None, None)
    try:
        hits = [run_hits(run, args.test_set, epoch, args.root)
                for run, epoch in zip((args.run_a, args.run_b), epochs)]
        s = paired_summary(*hits)
    except (UserError, ValueError) as err:
        print(f"paired_compare: {err}", file=sys.stderr)
        return 2
    print(f"{args.test_set}: A {s['acc_a']:.1f} %, B {s['acc_b']:.1f} % on {s['n']} images; right only "
          f"in A {s['only_a']}, only in B {s['only_b']}; A - B = {s['acc_a'] - s['acc_b']:+.1f} points, "
          f"paired standard error {s['se_diff']:.1f}, McNemar exact p = {s['p_mcnemar']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
