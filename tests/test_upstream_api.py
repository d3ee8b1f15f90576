"""A trainer file written against upstream Dassl's API (tests/upstream_api/coop_upstream_style.py)
trains, checkpoints and evaluates on our engine unchanged, through train.py."""
import importlib.util
import json
import pathlib
import sys

import pytest
import torch
from clip.model import CLIP
from PIL import Image

import train
from trainers.clip_backbone import load_clip_to_cpu

UPSTREAM_STYLE_FILE = pathlib.Path(__file__).parent / "upstream_api" / "coop_upstream_style.py"
COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def import_upstream_style_trainer():
    """Import the file once (it registers CoOpUpstreamStyle, and a registry refuses duplicates)."""
    name = "coop_upstream_style"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, UPSTREAM_STYLE_FILE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def write_color_tree(root, n_per_class=6, size=32):
    """root/<domain>/<class>/<i>.png: solid colours, darker in domain 'dark'."""
    for domain, scale in (("light", 1.0), ("dark", 0.5)):
        for cname, rgb in COLORS.items():
            folder = root / domain / cname
            folder.mkdir(parents=True)
            for i in range(n_per_class):
                value = tuple(int(c * scale) + 3 * i for c in rgb)
                Image.new("RGB", (size, size), value).save(folder / f"{i:03d}.png")


def save_random_tiny_clip(path, seed=0):
    """A random-weight 32-px CLIP saved as a state dict: MODEL.BACKBONE.NAME accepts its path."""
    torch.manual_seed(seed)
    model = CLIP(
        embed_dim=64, image_resolution=32, vision_layers=(1, 1, 1, 1), vision_width=16,
        vision_patch_size=None, context_length=32, vocab_size=49408, transformer_width=64,
        transformer_heads=1, transformer_layers=2,
    )
    torch.save(model.state_dict(), path)
    return str(path)


def run_args(root, out, backbone, trainer, *opts, epochs=2):
    return [
        # --target-domains takes every word up to the next flag, so a flag must follow it.
        "--source-domains", "light", "--target-domains", "dark",
        "--root", str(root), "--seed", "1", "--trainer", trainer, "--output-dir", str(out),
        "DATASET.NAME", "DomainFolders",
        "DATASET.TEST_SETS", "['authorized=source', 'unauthorized=target']",
        "MODEL.BACKBONE.NAME", backbone, "USE_CUDA", "False",
        "INPUT.SIZE", "(32, 32)", "INPUT.TRANSFORMS", "['random_flip', 'normalize']",
        "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "4",
        "DATALOADER.TEST.BATCH_SIZE", "16", "OPTIM.NAME", "sgd", "OPTIM.LR", "0.01",
        "OPTIM.MAX_EPOCH", str(epochs), "OPTIM.LR_SCHEDULER", "cosine", "OPTIM.WARMUP_EPOCH", "1",
        "OPTIM.WARMUP_TYPE", "constant", "OPTIM.WARMUP_CONS_LR", "1e-5", "TRAIN.PRINT_FREQ", "2",
        *opts,
    ]


@pytest.fixture(scope="module")
def data_and_backbone(tmp_path_factory):
    base = tmp_path_factory.mktemp("upstream_api")
    root = base / "data"
    write_color_tree(root)
    return root, save_random_tiny_clip(base / "tiny_clip.pt")


def test_upstream_style_coop_trains_and_reloads(data_and_backbone, tmp_path):
    import_upstream_style_trainer()
    root, backbone = data_and_backbone
    out = tmp_path / "run"
    opts = ("TRAINER.COOP.N_CTX", "4", "TRAINER.COOP.PREC", "fp32")
    trainer = train.main(
        run_args(root, out, backbone, "CoOpUpstreamStyle", *opts, "TRAIN.CHECKPOINT_FREQ", "1")
    )

    # Upstream checkpoint layout, loadable weights-only, with upstream's prompt-learner keys.
    ckpt = torch.load(out / "prompt_learner" / "model.pth.tar-2", weights_only=True)
    assert set(ckpt["state_dict"]) == {"ctx", "token_prefix", "token_suffix"}
    assert ckpt["epoch"] == 2
    trained_ctx = ckpt["state_dict"]["ctx"]
    results = json.loads((out / "results.json").read_text())
    assert results["finished"] is True
    assert set(results["final"]) == {"authorized", "unauthorized"}
    # Only the context learned: CLIP's weights are still those of a freshly loaded CLIP.
    fresh = load_clip_to_cpu(trainer.cfg)
    for key, value in fresh.visual.state_dict().items():
        assert torch.equal(trainer.model.image_encoder.state_dict()[key], value), key
    torch.testing.assert_close(trainer.model.text_encoder.text_projection, fresh.text_projection)
    first_epoch = torch.load(out / "prompt_learner" / "model.pth.tar-1", weights_only=True)
    assert not torch.equal(first_epoch["state_dict"]["ctx"], trained_ctx)
    log = (out / "log.txt").read_text()
    assert "Turning off gradients in both the image and the text encoder" in log
    assert "Finish training" in log

    # Eval-only through the trainer's own load_model override (drops token_prefix/suffix).
    eval_out = tmp_path / "eval"
    evaluator = train.main(
        ["--eval-only", "--model-dir", str(out), "--load-epoch", "2"]
        + run_args(root, eval_out, backbone, "CoOpUpstreamStyle", *opts)
    )
    torch.testing.assert_close(evaluator.model.prompt_learner.ctx.detach(), trained_ctx)
    eval_results = json.loads((eval_out / "results.json").read_text())
    assert eval_results["eval_only"] is True
    assert eval_results["final"] == results["final"]
    assert "Loading weights to prompt_learner from" in (eval_out / "log.txt").read_text()
