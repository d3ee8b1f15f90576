"""The IP-CLIP trainer on the synthetic benchmark: what learns, what is checkpointed, that the
training step never syncs with the host, and (with the pretrained tiny CLIP) that protection works."""
import contextlib
import json
from pathlib import Path

import pytest
import torch

import train
from dassl.config import get_cfg_default
from dassl.engine import build_trainer
from trainers import register_all
from trainers.config import extend_cfg


def _cfg(toy_root, out, backbone, *opts):
    register_all()
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.merge_from_file("configs/datasets/toy_domains.yaml")
    cfg.merge_from_file("configs/trainers/IPCLIP/tiny.yaml")
    cfg.merge_from_list([
        "DATASET.ROOT", str(toy_root), "OUTPUT_DIR", str(out), "SEED", "1",
        "TRAINER.NAME", "IPCLIP", "MODEL.BACKBONE.NAME", str(backbone),
        "DATASET.SOURCE_DOMAINS", "['photo']", "DATASET.TARGET_DOMAINS", "['sketch']",
        "USE_CUDA", "False", "VERBOSE", "False", *opts,
    ])
    cfg.freeze()
    return cfg


@contextlib.contextmanager
def no_host_sync():
    """Make every tensor -> Python conversion raise: the hot path must not synchronise with the host."""
    def forbidden(*args, **kwargs):
        raise AssertionError("host synchronisation (.item()/bool()/int()/float()/tolist()) in the hot path")

    names = ["item", "tolist", "__bool__", "__int__", "__float__"]
    saved = {n: getattr(torch.Tensor, n) for n in names}
    try:
        for n in names:
            setattr(torch.Tensor, n, forbidden)
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.Tensor, n, f)


def _one_step(trainer):
    batch_x = next(iter(trainer.train_loader_x))
    batch_u = next(iter(trainer.train_loader_u))
    # Forward and backward must not synchronise with the host (the optimiser's own CPU step
    # counter is torch's business, so the update runs outside the guard).
    with no_host_sync():
        loss, _ = trainer.compute_loss(*trainer.parse_batch_train(batch_x, batch_u))
        loss.backward()
    trainer.optim.zero_grad(set_to_none=True)
    trainer.batch_idx, trainer.num_batches = 0, 2  # not the last batch: no scheduler step
    return trainer.forward_backward(batch_x, batch_u)


@pytest.mark.parametrize("train_branch", [False, True])
def test_only_the_projector_and_branch_learn(toy_root, tmp_path, random_clip_file, train_branch):
    trainer = build_trainer(_cfg(toy_root, tmp_path, random_clip_file,
                                 "TRAINER.IPCLIP.TRAIN_BRANCH", str(train_branch)))
    model = trainer.model
    trainer.fill_banks()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    summary = _one_step(trainer)
    assert set(summary) >= {"loss", "ce_a", "ce_u", "acc_a", "acc_u"}
    learnable = ("learner.projector.",) + (("learner.branch.",) if train_branch else ())
    for name, p in model.named_parameters():
        should_learn = name.startswith(learnable)
        assert p.requires_grad == should_learn, name
        if should_learn:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name
            assert torch.equal(p, before[name]), f"frozen parameter {name} changed"
    changed = [n for n, p in model.named_parameters() if n.startswith(learnable)
               and not torch.equal(p, before[n])]
    assert changed, "the optimiser step changed no learnable parameter"


def test_each_epoch_trains_with_its_own_kl_weight(toy_root, tmp_path, random_clip_file):
    """LOSS.<S>.W_KL_EARLY / KL_EARLY_EPOCHS: the trainer switches the KL's weight when an epoch
    starts (so a resumed run picks the weight of the epoch it resumes at)."""
    trainer = build_trainer(_cfg(toy_root, tmp_path, random_clip_file,
                                 "TRAINER.IPCLIP.LOSS.TARGET_SPECIFIED.W_KL_EARLY", "7.0",
                                 "TRAINER.IPCLIP.LOSS.TARGET_SPECIFIED.KL_EARLY_EPOCHS", "2"))
    w_kl = trainer.cfg.TRAINER.IPCLIP.LOSS.TARGET_SPECIFIED.W_KL
    seen = []
    for epoch in (3, 0, 1, 2):
        trainer.epoch = epoch
        trainer.before_epoch()
        seen.append(trainer.loss_fn.weights.w_kl)
    assert seen == [w_kl, 7.0, 7.0, w_kl]


def test_a_collapsed_run_stops_with_an_error_and_is_not_finished(toy_root, tmp_path, random_clip_file,
                                                                 capsys):
    """The issue's reproduction (SGD at lr 1e6, no token bound): the loss becomes NaN, the CLI exits
    non-zero naming the epoch and batch, and nothing records the run as finished."""
    out = tmp_path / "nan"
    code = train.cli([
        "--root", str(toy_root), "--seed", "1", "--trainer", "IPCLIP", "--source-domains", "photo",
        "--target-domains", "sketch", "--dataset-config-file", "configs/datasets/toy_domains.yaml",
        "--config-file", "configs/trainers/IPCLIP/tiny.yaml", "--output-dir", str(out),
        "MODEL.BACKBONE.NAME", str(random_clip_file), "OPTIM.NAME", "sgd", "OPTIM.LR", "1e6",
        "OPTIM.WARMUP_EPOCH", "0", "TRAINER.IPCLIP.TOKEN_BOUND", "0.0", "OPTIM.MAX_EPOCH", "1",
    ])
    assert code == 1
    err = capsys.readouterr().err
    assert "NaN" in err and "epoch 1/1, batch" in err and "Traceback" not in err
    results = out / "results.json"
    assert not results.exists() or not json.loads(results.read_text())["finished"]


def test_checkpoint_with_banks_round_trips_weights_only(toy_root, tmp_path, random_clip_file):
    trainer = build_trainer(_cfg(toy_root, tmp_path / "a", random_clip_file))
    trainer.fill_banks()
    banks = trainer.model.banks
    assert banks.authorized.filled.any(), "the authorized bank stayed empty"
    trainer.save_model(0, str(tmp_path / "a"))
    ckpt = torch.load(tmp_path / "a" / "ip_learner" / "model.pth.tar-1", weights_only=True)
    keys = set(ckpt["state_dict"])
    assert any(k.startswith("banks.authorized.") for k in keys)
    assert any(k.startswith("projector.") for k in keys)
    assert not any(k.startswith("clip") for k in keys), "frozen CLIP must not be checkpointed"

    other = build_trainer(_cfg(toy_root, tmp_path / "b", random_clip_file, "SEED", "2"))
    other.load_model(str(tmp_path / "a"), epoch=1)
    for name, value in trainer.model.learner.state_dict().items():
        assert torch.equal(value, other.model.learner.state_dict()[name]), name


def test_inference_matches_between_batch_sizes(toy_root, tmp_path, random_clip_file):
    """Instance-conditional prompts: an image's logits do not depend on the rest of its batch."""
    trainer = build_trainer(_cfg(toy_root, tmp_path, random_clip_file))
    trainer.set_model_mode("eval")
    images = next(iter(trainer.test_loader))["img"][:6]
    with torch.no_grad():
        full = trainer.model_inference(images)
        single = torch.cat([trainer.model_inference(images[i:i + 1]) for i in range(6)])
    torch.testing.assert_close(full, single, rtol=1e-4, atol=1e-4)


def test_protection_on_synthetic_benchmark(toy_root, tiny_clip_cache_dir, tiny_clip_backbone, tmp_path):
    """End to end with the pretrained tiny CLIP: IP-CLIP keeps the source and drops the target,
    where the CoOp reference (same seed) is accurate on both. Loose bounds, fixed seed."""
    common = [
        "--root", str(toy_root), "--seed", "1", "--source-domains", "photo",
        "--target-domains", "sketch", "--dataset-config-file", "configs/datasets/toy_domains.yaml",
    ]
    results = {}
    for trainer in ("CoOp", "IPCLIP"):
        out = tmp_path / trainer
        train.main(common + [
            "--trainer", trainer, "--config-file", f"configs/trainers/{trainer}/tiny.yaml",
            "--output-dir", str(out), "MODEL.CLIP.CACHE_DIR", str(tiny_clip_cache_dir),
            "MODEL.BACKBONE.NAME", tiny_clip_backbone,
        ])
        results[trainer] = json.loads((out / "results.json").read_text())["final"]
    chance = 100.0 / 10
    coop, ip = results["CoOp"], results["IPCLIP"]
    assert coop["unauthorized"]["accuracy"] > chance + 25, coop
    assert ip["authorized"]["accuracy"] > coop["authorized"]["accuracy"] - 10, (ip, coop)
    assert ip["unauthorized"]["accuracy"] < chance + 15, ip
    assert ip["unauthorized"]["accuracy"] < coop["unauthorized"]["accuracy"] - 20, (ip, coop)


_AUTHORIZATION_DOMAINS = [f"{domain}{mark}" for mark in ("", "_wm")
                          for domain in ("photo", "clipart", "sketch", "painting")]


@pytest.mark.parametrize("scenario, test_sets, authorized_set, unauthorized_sets", [
    ("ownership", "['authorized=source','unauthorized=source+watermark']", "authorized",
     ["unauthorized"]),
    ("target_free", "['authorized=source','{domain}=each']", "authorized",
     ["clipart", "sketch", "painting"]),
    ("authorization", "['{domain}=each','{domain}_wm=each+watermark']", "photo_wm",
     [name for name in _AUTHORIZATION_DOMAINS if name != "photo_wm"]),
])
def test_scenario_protection_on_synthetic_benchmark(toy_root, tiny_clip_cache_dir, tiny_clip_backbone, tmp_path,
                                                    scenario,
                                                    test_sets, authorized_set, unauthorized_sets):
    """The scenario script's runs (CoOp reference and IP-CLIP with configs/trainers/IPCLIP/
    tiny_<scenario>.yaml and the scenario's dataset config, seed 1): IP-CLIP stays near CoOp on the
    authorized set and drops the unauthorized sets (watermarked source / the other domains / all but
    the watermarked source) far below CoOp and below its own authorized accuracy. Loose bounds."""
    dataset_config = Path(f"configs/datasets/toy_domains_{scenario}.yaml")
    if not dataset_config.is_file():
        dataset_config = Path("configs/datasets/toy_domains.yaml")
    common = [
        "--root", str(toy_root), "--seed", "1", "--source-domains", "photo",
        "--target-domains", "photo", "--dataset-config-file", str(dataset_config),
    ]
    configs = {"CoOp": "configs/trainers/CoOp/tiny.yaml",
               "IPCLIP": f"configs/trainers/IPCLIP/tiny_{scenario}.yaml"}
    results = {}
    for trainer, config in configs.items():
        out = tmp_path / trainer
        train.main(common + [
            "--trainer", trainer, "--config-file", config, "--output-dir", str(out),
            "MODEL.CLIP.CACHE_DIR", str(tiny_clip_cache_dir), "MODEL.BACKBONE.NAME", tiny_clip_backbone,
            "DATASET.TEST_SETS", test_sets,
            "TRAINER.IPCLIP.SCENARIO", scenario,
        ])
        final = json.loads((out / "results.json").read_text())["final"]
        unauthorized = sum(final[name]["accuracy"] for name in unauthorized_sets) / len(unauthorized_sets)
        results[trainer] = (final[authorized_set]["accuracy"], unauthorized)
    (coop_a, coop_u), (ip_a, ip_u) = results["CoOp"], results["IPCLIP"]
    chance = 100.0 / 10
    assert coop_u > chance + 25, results  # the unauthorized sets are not unrecognisable by themselves
    assert ip_a > coop_a - 15, results
    assert ip_u < coop_u - 25, results
    assert ip_u < ip_a - 25, results


#: Every release-fidelity key at the release's value (docs/method.md).
RELEASE_FORM_OPTS = [
    "TRAINER.IPCLIP.PROJECTOR", "release", "TRAINER.IPCLIP.BRANCH", "release",
    "TRAINER.IPCLIP.BANK_FILL", "release", "TRAINER.IPCLIP.BANK_PROTOTYPE", "all_slots",
    "TRAINER.IPCLIP.LR_STEP_EVERY", "iteration", "TRAINER.IPCLIP.TOKEN_BOUND", "0.0",
    "TRAINER.IPCLIP.IMAGE_TOKEN_INIT", "",
    "TRAINER.IPCLIP.LOSS.TARGET_SPECIFIED.KL_FORM", "release",
    "TRAINER.IPCLIP.LOSS.TARGET_SPECIFIED.ENTROPY_FORM", "release",
]


def test_release_forms_keep_the_step_free_of_host_syncs(toy_root, tmp_path, random_clip_file):
    """The release's forms (projector, branch with batch statistics, all-slot prototypes, KL and
    entropy) in the same guarded step; the scheduler then steps after every iteration."""
    trainer = build_trainer(_cfg(toy_root, tmp_path, random_clip_file, *RELEASE_FORM_OPTS))
    trainer.fill_banks()
    steps = trainer.sched.last_epoch
    summary = _one_step(trainer)
    assert torch.isfinite(summary["loss"])
    assert trainer.sched.last_epoch == steps + 1


def test_standardized_inputs_and_feature_restyle_in_the_guarded_step(toy_root, tmp_path,
                                                                     random_clip_file):
    """STATS_NORM authorized is fitted on the authorized stream before the banks are filled (and
    saved with the learner); FEATURE_RESTYLE re-styles unauthorized images in the same step without
    a host sync, along directions taken from the batch (DIRECTIONS batch), half of them moving one
    moment only (DECOUPLE)."""
    trainer = build_trainer(_cfg(toy_root, tmp_path, random_clip_file,
                                 "TRAINER.IPCLIP.STATS_NORM", "authorized",
                                 "TRAINER.IPCLIP.FEATURE_RESTYLE.PROB", "1.0",
                                 "TRAINER.IPCLIP.FEATURE_RESTYLE.DIRECTIONS", "batch",
                                 "TRAINER.IPCLIP.FEATURE_RESTYLE.DECOUPLE", "0.5"))
    assert trainer.restyle.directions == "batch" and trainer.restyle.decouple == 0.5
    standardizer = trainer.model.projector.standardizer
    assert torch.equal(standardizer.mean, torch.zeros_like(standardizer.mean))
    trainer.fit_standardizer()
    trainer.fill_banks()
    assert standardizer.mean.abs().sum() > 0 and (standardizer.std >= 0.1).all()
    assert "projector.standardizer.std" in trainer.model.learner.state_dict()
    summary = _one_step(trainer)
    assert torch.isfinite(summary["loss"])


def test_learned_anchor_teacher_and_restyled_authorized_copies_in_the_guarded_step(
        toy_root, tmp_path, random_clip_file):
    """ANCHOR.TEACHER learned_context: the teacher's context learns beside the projector (and
    nothing else does), its cross-entropy is logged, and its context is checkpointed and restored;
    FEATURE_RESTYLE.AUTHORIZED_SHARE (along directions from the authorized images, DIRECTIONS
    source, in their own spread, UNITS source_spread), AUTHORIZED_JITTER and
    ANCHOR.ONLY_WHERE_RIGHT run in the same step without a host sync."""
    opts = ("TRAINER.IPCLIP.LOSS.TARGET_SPECIFIED.W_ZS", "1.0",
            "TRAINER.IPCLIP.ANCHOR.TEACHER", "learned_context",
            "TRAINER.IPCLIP.ANCHOR.ONLY_WHERE_RIGHT", "True",
            "TRAINER.IPCLIP.FEATURE_RESTYLE.AUTHORIZED_SHARE", "0.5",
            "TRAINER.IPCLIP.FEATURE_RESTYLE.AUTHORIZED_JITTER", "0.05",
            "TRAINER.IPCLIP.FEATURE_RESTYLE.DIRECTIONS", "source",
            "TRAINER.IPCLIP.FEATURE_RESTYLE.UNITS", "source_spread")
    trainer = build_trainer(_cfg(toy_root, tmp_path / "a", random_clip_file, *opts))
    assert trainer.loss_fn.anchor_only_where_right is True
    assert trainer.restyle.units == "source_spread" and trainer.restyle.authorized_jitter == 0.05
    trainer.fill_banks()
    model = trainer.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    summary = _one_step(trainer)
    assert torch.isfinite(summary["loss"]) and "ce_teacher" in summary and "kl_zs" in summary
    # The context is one parameter registered twice (the teacher's, and the learner's to be
    # checkpointed); named_parameters lists it once, as the teacher's.
    learnable = ("learner.projector.", "teacher.context")
    for name, p in model.named_parameters():
        if name.startswith(learnable):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None and torch.equal(p, before[name]), name
    assert model.learner.anchor_context is model.teacher.context
    assert not torch.equal(model.learner.anchor_context, before["teacher.context"])
    trainer.save_model(0, str(tmp_path / "a"))
    other = build_trainer(_cfg(toy_root, tmp_path / "b", random_clip_file, "SEED", "2", *opts))
    other.load_model(str(tmp_path / "a"), epoch=1)
    assert torch.equal(other.model.learner.anchor_context, model.learner.anchor_context)
