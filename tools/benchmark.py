"""Cost of IP-CLIP's training step: batched + EOT-truncated text encoding vs. the per-image loop.

IP-CLIP's prompts depend on the image, so every training step encodes B x C prompts with CLIP's
text transformer; that dominates the step. `IPCLIPModel.encode_prompts` (path "a") encodes all of
them in ONE text-encoder call cut after the longest EOT token. The reference (path "b",
`PerImageFullContextIPCLIP`) does what the release and upstream CoCoOp do: a Python loop over the
images, each encoding its C prompts over the full, untruncated context. Both paths share one
model (same CLIP, same projector / banks / branch weights) and see the same batch; before timing,
their losses are checked to agree, so the comparison is between two ways of computing one thing.

Usage (from the repository root):
    python tools/benchmark.py [--models tiny-rn vit-b16-shape] [--batch N] [--classes C]
                              [--repeats R] [--warmup W] [--device cpu|cuda] [--prec fp32|amp]
                              [--json FILE]

The defaults fit a 2-core CPU (tiny-rn: 8 + 8 images, 10 classes; vit-b16-shape: 2 + 2 images,
31 classes as Office-31);
on a GPU use `--batch 8 --classes 65 --device cuda --prec amp` (Office-Home's 65 classes).

What is measured, per model and path (CLIP has random weights: speed and memory do not depend on them):
  * step time: median wall time of one training step (forward over the authorized + unauthorized
    batch, IP-CLIP's loss, backward, optimizer step over the projector), after warm-up steps; the
    two paths are timed alternately so that load from other processes hits both alike.
  * peak memory: the highest amount of memory allocated *during* one step above what was
    allocated when it began (weights, inputs and banks are the same for both paths and excluded).
    CUDA: torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), minus
    memory_allocated() at the start. CPU: the step runs under torch.profiler(profile_memory=True);
    every allocation and free it records is summed in time order and the maximum of that running
    sum is the peak (allocations of all threads; memory the allocator caches is not counted).
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time

# Kineto prints a line per profiler start/stop (and a GPU-probe error on CPU-only machines).
os.environ.setdefault("KINETO_LOG_LEVEL", "5")

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
from tabulate import tabulate  # noqa: E402

from trainers.clip_backbone import RANDOM_ARCHITECTURES, build_random_clip  # noqa: E402
from trainers.ipclip.loss import IPCLIPLoss, IPCLIPLossWeights  # noqa: E402
from trainers.ipclip.model import IPCLIPModel  # noqa: E402
from trainers.ipclip.trainer import trainable_parameters, training_loss  # noqa: E402
from trainers.precision import autocast, cast_clip, make_grad_scaler, resolve_precision  # noqa: E402

DEFAULT_MODELS = ("tiny-rn", "vit-b16-shape")
#: Images per stream (authorized and unauthorized each) by model; others use DEFAULT_BATCH.
DEFAULT_BATCH_BY_MODEL = {"vit-b16-shape": 2}
DEFAULT_BATCH = 8
#: Classes by model: the synthetic benchmark's 10 for the tiny CLIP; Office-31's 31 (the fewest of the
#: paper's datasets) for the ViT-B/16-shaped one. Others use DEFAULT_CLASSES.
DEFAULT_CLASSES_BY_MODEL = {"tiny-rn": 10, "vit-b16-shape": 31}
DEFAULT_CLASSES = 10
#: IP-CLIP's architecture as benchmarked (the paper's M = 4 image tokens; linear projector/branch).
MODEL_KWARGS = dict(n_image_tokens=4, projector_hidden=0, bank_size=5, branch_hidden=0)
#: (rtol, atol) for the loss-equality check: truncation is exact in exact arithmetic, but the two
#: paths multiply matrices of different shapes, so their rounding differs.
LOSS_TOLERANCE = {"fp32": (1e-4, 1e-5), "amp": (2e-2, 2e-2)}
MIB = 2 ** 20


class PerImageFullContextIPCLIP(IPCLIPModel):
    """IP-CLIP with the reference text encoding: one text-encoder call per image, full context."""

    def encode_prompts(self, prompts):
        """[B, C, L, D] -> [B, C, E], looping over the B images, no truncation (all L tokens)."""
        tokenized = self.template.tokenized_prompts
        return torch.stack([self.text_encoder(prompts[b], tokenized, truncate=False)
                            for b in range(prompts.shape[0])])


class BenchmarkCase:
    """One model, its two encoding paths sharing every weight, one batch, and a training step."""

    def __init__(self, name, batch, num_classes, device, prec, seed):
        self.name = name
        self.batch = batch
        self.device = torch.device(device)
        self.prec = resolve_precision(prec, self.device)
        clip_model = cast_clip(build_random_clip(name, seed=seed), self.prec, self.device)
        classnames = [f"class {i}" for i in range(num_classes)]
        torch.manual_seed(seed)
        self.batched = IPCLIPModel(clip_model, classnames, **MODEL_KWARGS)
        self.reference = PerImageFullContextIPCLIP(clip_model, classnames, **MODEL_KWARGS)
        self.reference.learner = self.batched.learner  # one projector, one set of banks, one branch
        self.batched.to(self.device)
        self.reference.to(self.device)
        params = trainable_parameters(self.batched, train_branch=False)
        self.optim = torch.optim.SGD(params, lr=1e-4)
        self.scaler = make_grad_scaler(self.prec, self.device)
        self.loss_fn = IPCLIPLoss(IPCLIPLossWeights())
        self._fill_banks(num_classes)
        size = clip_model.visual.input_resolution
        gen = torch.Generator().manual_seed(seed)
        self.inputs = [
            torch.randn(batch, 3, size, size, generator=gen).to(self.device),
            torch.randint(num_classes, (batch,), generator=gen).to(self.device),
            torch.randn(batch, 3, size, size, generator=gen).to(self.device),
            torch.randint(num_classes, (batch,), generator=gen).to(self.device),
        ]
        self.prompt_tokens = {"a": self.batched.template.max_length,
                              "b": self.batched.template.tokenized_prompts.shape[1]}

    def _fill_banks(self, num_classes):
        """Two random features per class in each bank, so that every class has a prototype."""
        banks = self.batched.banks
        dim = banks.authorized.feat_dim
        labels = torch.arange(num_classes, device=self.device).repeat(2)
        features = torch.nn.functional.normalize(torch.randn(len(labels), dim, device=self.device), dim=-1)
        logits = torch.randn(len(labels), num_classes, device=self.device)
        logits = logits + 10 * torch.nn.functional.one_hot(labels, num_classes)  # predicted = label
        banks.file_authorized(features, logits, labels)
        banks.file_unauthorized(features.flip(0), logits)

    def model(self, path):
        return self.batched if path == "a" else self.reference

    @torch.no_grad()
    def losses(self, path):
        with autocast(self.prec, self.device):
            _, terms = training_loss(self.model(path), self.loss_fn, *self.inputs)
        return {name: float(value) for name, value in terms.items()}

    def step(self, path):
        """One training step (zero_grad happens before, outside the measured region)."""
        with autocast(self.prec, self.device):
            loss, _ = training_loss(self.model(path), self.loss_fn, *self.inputs)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optim)
            self.scaler.update()
        else:
            loss.backward()
            self.optim.step()

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def timed_step(self, path):
        self.optim.zero_grad(set_to_none=True)
        self._sync()
        start = time.perf_counter()
        self.step(path)
        self._sync()
        return time.perf_counter() - start

    def peak_step_memory(self, path):
        """Bytes allocated at the peak of one step above the allocation at its start (None if the
        profiler API this relies on is unavailable on CPU)."""
        self.optim.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            self._sync()
            torch.cuda.reset_peak_memory_stats(self.device)
            start = torch.cuda.memory_allocated(self.device)
            self.step(path)
            self._sync()
            return torch.cuda.max_memory_allocated(self.device) - start
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            self.step(path)
        return _peak_of_allocations(prof, self.device.type)


def _peak_of_allocations(prof, device_type):
    """Maximum of the running sum of the profiler's allocation (+) / free (-) events, in time order."""
    try:
        from torch._C._profiler import _EventType

        events = []
        stack = list(prof.profiler.kineto_results.experimental_event_tree())
        while stack:
            node = stack.pop()
            stack.extend(node.children)
            if node.tag == _EventType.Allocation and node.extra_fields.device.type == device_type:
                events.append((node.start_time_ns, node.extra_fields.alloc_size))
    except (AttributeError, ImportError) as err:
        print(f"warning: CPU peak memory not measured (this torch's profiler lacks {err})")
        return None
    running = peak = 0
    for _, size in sorted(events):
        running += size
        peak = max(peak, running)
    return peak


def check_same_loss(case):
    """Both paths must give the same loss terms, or the timing compares different computations."""
    a, b = case.losses("a"), case.losses("b")
    rtol, atol = LOSS_TOLERANCE[case.prec]
    diff = {k: abs(a[k] - b[k]) for k in a}
    bad = [k for k in a if not diff[k] <= atol + rtol * abs(b[k])]
    if bad:
        raise RuntimeError(
            f"{case.name}: the batched/truncated path and the per-image/full-context reference disagree "
            f"on {bad} (batched {[a[k] for k in bad]}, reference {[b[k] for k in bad]}; rtol {rtol}, "
            f"atol {atol}); the encodings are not equivalent, so the benchmark would be meaningless. "
            "Check TextEncoder's truncation and IPCLIPModel.encode_prompts."
        )
    print(f"{case.name}: loss check passed: batched {a['total']:.6f}, reference {b['total']:.6f}, "
          f"max |diff| over the {len(a)} terms {max(diff.values()):.2e} (rtol {rtol}, atol {atol})")
    return a["total"], b["total"], max(diff.values())


def time_model(case, repeats, warmup):
    """Median step time per path; the paths alternate (a b, then b a, ...) so load hits both alike."""
    for _ in range(warmup):
        for path in "ab":
            case.timed_step(path)
    times = {"a": [], "b": []}
    for i in range(repeats):
        for path in ("ab" if i % 2 == 0 else "ba"):
            times[path].append(case.timed_step(path))
    return times


def benchmark_models(names, batch_of, classes_of, repeats, warmup, device, prec, seed):
    """Every model is timed first, then profiled for memory, so that no profiler session (its
    bookkeeping threads and buffers) can overlap or precede a timed step."""
    cases, rows = [], []
    for name in names:
        started = time.perf_counter()
        num_classes = classes_of(name)
        case = BenchmarkCase(name, batch_of(name), num_classes, device, prec, seed)
        loss_a, loss_b, loss_diff = check_same_loss(case)
        times = time_model(case, repeats, warmup)
        median = {path: statistics.median(values) for path, values in times.items()}
        print(f"{name}: step a {median['a']:.3f} s, step b {median['b']:.3f} s")
        rows.append({
            "model": name, "images": f"{case.batch}+{case.batch}", "classes": num_classes,
            "prec": case.prec, "tokens_a": case.prompt_tokens["a"], "tokens_b": case.prompt_tokens["b"],
            "time_a_s": median["a"], "time_b_s": median["b"], "time_ratio": median["b"] / median["a"],
            "times_a_s": times["a"], "times_b_s": times["b"],
            "loss_a": loss_a, "loss_b": loss_b, "loss_max_abs_diff": loss_diff, "loss_check": "passed",
            "wall_s": time.perf_counter() - started,
        })
        cases.append(case)
    for case, row in zip(cases, rows):
        started = time.perf_counter()
        memory = {path: case.peak_step_memory(path) for path in "ab"}
        row["peak_mem_a_mib"] = None if memory["a"] is None else memory["a"] / MIB
        row["peak_mem_b_mib"] = None if memory["b"] is None else memory["b"] / MIB
        row["mem_ratio"] = memory["b"] / memory["a"] if memory["a"] and memory["b"] is not None else None
        row["wall_s"] += time.perf_counter() - started
    return rows


def format_table(rows):
    def fmt(value, spec):
        return "n/a" if value is None else format(value, spec)

    table = [[
        r["model"], r["prec"], r["images"], r["classes"], f"{r['tokens_a']} / {r['tokens_b']}",
        fmt(r["time_a_s"], ".3f"), fmt(r["time_b_s"], ".3f"), fmt(r["time_ratio"], ".2f"),
        fmt(r["peak_mem_a_mib"], ".1f"), fmt(r["peak_mem_b_mib"], ".1f"), fmt(r["mem_ratio"], ".2f"),
        f"{r['loss_max_abs_diff']:.1e}",
    ] for r in rows]
    headers = ["model", "prec", "images a+u", "classes", "tokens a / b", "step a (s)", "step b (s)", "time b/a",
               "peak a (MiB)", "peak b (MiB)", "mem b/a", "|loss a-b|"]
    return tabulate(table, headers=headers, disable_numparse=True)


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="a = IPCLIPModel (one text-encoder call, truncated after the longest EOT); "
               "b = per-image loop over the full context (release / upstream CoCoOp). "
               "On a GPU: --batch 8 --classes 65 --device cuda --prec amp",
    )
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), choices=sorted(RANDOM_ARCHITECTURES),
                        help=f"random-weight CLIP architectures (default: {' '.join(DEFAULT_MODELS)})")
    parser.add_argument("--batch", type=int, default=None,
                        help=f"images per stream, authorized and unauthorized each (default: "
                             f"{DEFAULT_BATCH}, vit-b16-shape {DEFAULT_BATCH_BY_MODEL['vit-b16-shape']})")
    parser.add_argument("--classes", type=int, default=None,
                        help=f"number of classes C (default: {DEFAULT_CLASSES_BY_MODEL}, else {DEFAULT_CLASSES})")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per path (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per path first (default 1)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--prec", default="fp32", choices=("fp32", "amp"),
                        help="amp: float16 autocast + GradScaler (CUDA only; fp32 on the CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="", help="also write the settings and rows to this JSON file")
    return parser


def main(argv=None):
    """Run the benchmark; prints the table and returns the rows (one dict per model)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for option in ("batch", "classes", "repeats"):
        value = getattr(args, option)
        if value is not None and value < 1:
            parser.error(f"--{option} must be at least 1, got {value}")
    if args.warmup < 0:
        parser.error(f"--warmup must be at least 0, got {args.warmup}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was requested but torch sees no CUDA device; use --device cpu")

    torch.manual_seed(args.seed)
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} CPU threads, "
          f"prec {args.prec} requested, {args.repeats} timed + {args.warmup} warm-up steps per path")
    rows = benchmark_models(
        args.models, lambda name: args.batch or DEFAULT_BATCH_BY_MODEL.get(name, DEFAULT_BATCH),
        lambda name: args.classes or DEFAULT_CLASSES_BY_MODEL.get(name, DEFAULT_CLASSES),
        args.repeats, args.warmup, args.device, args.prec, args.seed)
    print()
    print("a = batched, truncated after the longest EOT (IPCLIPModel); "
          "b = per-image loop over the full context (reference)")
    print("step = median time of one training step (forward + loss + backward + optimizer step); "
          "peak = memory allocated during one step above its start")
    print(format_table(rows))
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        settings.update(torch=torch.__version__, threads=torch.get_num_threads())
        with open(args.json, "w") as f:
            json.dump({"settings": settings, "rows": rows}, f, indent=2)
        print(f"wrote {args.json}")
    return rows


if __name__ == "__main__":
    main()
