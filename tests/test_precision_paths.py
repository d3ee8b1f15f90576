"""IP-CLIP's fp16 and amp code paths, run on the CPU so that a dtype mismatch (like the release's
half-precision branch fed float32 features) fails here and not on a user's GPU.

On a CPU the trainer resolves fp16/amp to fp32 (trainers/precision.py); `cuda_like_precision`
is a test-only hook that skips that fallback: CLIP's weights really become float16, the step runs
under float16 autocast with a GradScaler, exactly the calls the CUDA path makes. The tests marked
`cuda` run the real thing on a GPU (tools/gpu_check.sh).
"""
import contextlib
import math

import pytest
import torch

import trainers.clip_backbone
import trainers.ipclip.trainer
import trainers.precision
from dassl.config import get_cfg_default
from dassl.engine import build_trainer
from trainers import register_all
from trainers.config import extend_cfg

#: (TRAINER.IPCLIP key, value) pairs of the release's forms.
RELEASE_FORMS = ["TRAINER.IPCLIP.PROJECTOR", "release", "TRAINER.IPCLIP.BRANCH", "release",
                 "TRAINER.IPCLIP.BANK_FILL", "release", "TRAINER.IPCLIP.BANK_PROTOTYPE", "all_slots",
                 "TRAINER.IPCLIP.LR_STEP_EVERY", "iteration",
                 "TRAINER.IPCLIP.LOSS.TARGET_SPECIFIED.KL_FORM", "release",
                 "TRAINER.IPCLIP.LOSS.TARGET_SPECIFIED.ENTROPY_FORM", "release"]
FORMS = {"ours": [], "release": RELEASE_FORMS}
#: A GradScaler starts at scale 2^16 and halves it after each overflowing step it skips.
MAX_STEPS_TO_A_CHANGE = 20


@pytest.fixture
def cuda_like_precision(monkeypatch):
    """fp16 weights, float16 autocast and a GradScaler on the CPU (test-only)."""
    def keep(prec, device):
        return prec

    def cpu_autocast(prec, device):
        if prec == "amp":
            return torch.autocast("cpu", dtype=torch.float16)
        return contextlib.nullcontext()

    def cpu_scaler(prec, device):
        return torch.amp.GradScaler("cpu") if prec == "amp" else None

    monkeypatch.setattr(trainers.precision, "resolve_precision", keep)
    monkeypatch.setattr(trainers.clip_backbone, "resolve_precision", keep)
    monkeypatch.setattr(trainers.ipclip.trainer, "autocast", cpu_autocast)
    monkeypatch.setattr(trainers.ipclip.trainer, "make_grad_scaler", cpu_scaler)


def _trainer(small_domains, out, backbone, prec, form, device_opts=()):
    """The tiny config on the tiny CLIP (random weights) and conftest's 2 + 2-image data set."""
    register_all()
    root, split_dir = small_domains
    cfg = extend_cfg(get_cfg_default())
    cfg.merge_from_file("configs/trainers/IPCLIP/tiny.yaml")
    cfg.merge_from_list([
        "DATASET.NAME", "DomainFolders", "DATASET.ROOT", str(root), "DATASET.SPLIT_DIR", str(split_dir),
        "DATASET.TEST_SETS", "['authorized=source']", "DATALOADER.TRAIN_X.BATCH_SIZE", "2",
        "OUTPUT_DIR", str(out), "SEED", "1", "TRAINER.NAME", "IPCLIP",
        "MODEL.BACKBONE.NAME", str(backbone), "DATASET.SOURCE_DOMAINS", "['photo']",
        "DATASET.TARGET_DOMAINS", "['sketch']", "VERBOSE", "False", "TRAINER.IPCLIP.PREC", prec,
        "TRAINER.IPCLIP.IMAGE_TOKEN_INIT", "", *FORMS[form], *device_opts,
    ])
    cfg.freeze()
    return build_trainer(cfg)


def _step_and_evaluate(trainer, expect_dtype):
    model = trainer.model
    assert model.clip_model.visual.conv1.weight.dtype == expect_dtype
    trainer.fill_banks()
    assert model.banks.authorized.filled.any() or model.banks.unauthorized.filled.any()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.batch_idx, trainer.num_batches = 0, 2
    changed = []
    # The GradScaler skips the steps whose float16 gradients overflowed (and halves its scale).
    for _ in range(MAX_STEPS_TO_A_CHANGE):
        summary = trainer.forward_backward(next(iter(trainer.train_loader_x)),
                                           next(iter(trainer.train_loader_u)))
        assert math.isfinite(float(summary["loss"]))
        changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
        if changed:
            break
    assert changed and all(n.startswith("learner.projector.") for n in changed)
    trainer.set_model_mode("eval")
    images = next(iter(trainer.test_loader))["img"].to(trainer.device)
    with torch.no_grad():
        logits = trainer.model_inference(images)
    assert logits.shape == (len(images), model.banks.authorized.num_classes)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("form", ["ours", "release"])
@pytest.mark.parametrize("prec", ["fp16", "amp"])
def test_fp16_and_amp_paths_on_cpu(small_domains, tmp_path, random_clip_file, cuda_like_precision, prec,
                                   form):
    trainer = _trainer(small_domains, tmp_path, random_clip_file, prec, form)
    assert trainer.prec == prec
    assert (trainer.scaler is not None) == (prec == "amp")
    _step_and_evaluate(trainer, torch.float16 if prec == "fp16" else torch.float32)


def test_release_branch_runs_in_the_compute_dtype():
    """The release built its branch with .half() and fed it the image features as they came: float32
    features crash that. Ours takes float32 features in float32, and float16 under autocast."""
    from trainers.ipclip.style_branch import ReleaseStyleEnhancement

    branch = ReleaseStyleEnhancement(16)
    features = torch.nn.functional.normalize(torch.randn(3, 16), dim=-1)
    protos, mask = torch.randn(5, 16), torch.ones(5, dtype=torch.bool)
    out_fp32 = branch(features, protos, mask, protos, mask)
    with torch.autocast("cpu", dtype=torch.float16):
        out_amp = branch(features, protos, mask, protos, mask)
    for a, b in zip(out_fp32, out_amp):
        assert a.dtype == b.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0, atol=2e-2)
    half = ReleaseStyleEnhancement(16).half()  # the release's module as it built it
    with pytest.raises(RuntimeError):
        half(features, protos, mask, protos, mask)


def test_cpu_users_get_fp32_with_one_warning(small_domains, tmp_path, random_clip_file):
    trainers.precision._already_warned.discard("amp")
    with pytest.warns(UserWarning, match="needs a CUDA device"):
        trainer = _trainer(small_domains, tmp_path, random_clip_file, "amp", "release")
    assert trainer.prec == "fp32" and trainer.scaler is None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (tools/gpu_check.sh)")
@pytest.mark.parametrize("form", ["ours", "release"])
@pytest.mark.parametrize("prec", ["fp16", "amp"])
def test_fp16_and_amp_paths_on_cuda(small_domains, tmp_path, random_clip_file, prec, form):
    trainer = _trainer(small_domains, tmp_path, random_clip_file, prec, form, ["USE_CUDA", "True"])
    assert trainer.device.type == "cuda" and trainer.prec == prec
    _step_and_evaluate(trainer, torch.float16 if prec == "fp16" else torch.float32)
