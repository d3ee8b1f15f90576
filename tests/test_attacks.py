"""The attack suite on a tiny protected run (random tiny CLIP, one epoch on the synthetic benchmark):
the attacker's data, the fine-tuning attack and its from-scratch baseline, the style transplant,
`train.py --run-config`, and tools/attack.py (planning, running through the launcher, skipping what is
finished, the table and its plots). Every attack must leave the protected run's files as they were."""
import hashlib
import json
import shutil
import sys
from collections import namedtuple
from pathlib import Path

import pytest
import torch

import train
from dassl.data import DataManager
from dassl.engine import build_trainer
from dassl.errors import ConfigError, MissingFileError
from dassl.utils import load_checkpoint
from dassl.utils.logger import Logger
from tools import attack as attack_tool
from tools.attacks import plan as attack_plan
from tools.attacks import report as attack_report
from tools.results.records import ATTACKS_FOLDER, load_runs
from trainers import register_all
from trainers.clip_backbone import build_random_clip
from trainers.ipclip.attacks.attacker_data import donor_data, draw_images, draw_per_class, shots_loader
from trainers.ipclip.attacks.style_transplant import (
    context_from_tokens,
    donor_domain_tokens,
    transplant_logits,
)
from trainers.ipclip.ip_projector_release import ReleaseIPProjector
from trainers.ipclip.scenarios import SCENARIO_NAMES

#: Small splits (4 train and 2 test images per class and domain) keep every run to about a second.
CAPS = ["DATASET.MAX_TRAIN_PER_DOMAIN", "40", "DATASET.MAX_TEST_PER_DOMAIN", "20"]
TRAIN_PER_CLASS = 4
NUM_CLASSES = 10
LEARNER = "ip_learner"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    register_all()
    yield
    torch.set_num_threads(threads)


def run_train(argv, cli=False):
    """train.py in this process, its console tee into the run's log.txt detached afterwards (a later
    print must not land in that run's log: the tests hash the protected run's files)."""
    try:
        return train.cli(argv) if cli else train.main(argv)
    finally:
        for name in ("stderr", "stdout"):
            stream = getattr(sys, name)
            if isinstance(stream, Logger):
                setattr(sys, name, stream.console)
                stream.close()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, toy_root):
    """(DATASET.ROOT, a random tiny CLIP file, a split folder of its own)."""
    folder = tmp_path_factory.mktemp("attacks")
    clip_file = folder / "random_tiny.pt"
    torch.save(build_random_clip("tiny-rn").state_dict(), clip_file)
    return toy_root, clip_file, folder / "splits"


def _protected_argv(workspace, out, scenario="target_specified", target="sketch"):
    root, clip_file, splits = workspace
    config = "configs/trainers/IPCLIP/" + ("tiny.yaml" if scenario == "target_specified" else f"tiny_{scenario}.yaml")
    return ["--root", str(root), "--seed", "1", "--trainer", "IPCLIP", "--source-domains", "photo",
            "--target-domains", target, "--dataset-config-file", "configs/datasets/toy_domains.yaml",
            "--config-file", config, "--output-dir", str(out), "MODEL.BACKBONE.NAME", str(clip_file),
            "OPTIM.MAX_EPOCH", "1", "DATASET.SPLIT_DIR", str(splits), "TRAIN.PRINT_FREQ", "1000",
            "TRAINER.IPCLIP.SCENARIO", scenario, "CONFIG_NAME", "tiny", *CAPS]


@pytest.fixture(scope="module")
def protected_run(workspace, tmp_path_factory):
    """A finished target-specified IP-CLIP run (photo -> sketch), one epoch."""
    out = tmp_path_factory.mktemp("protected") / "photo_sketch" / "seed1"
    run_train(_protected_argv(workspace, out))
    assert json.loads((out / "results.json").read_text())["finished"]
    _accuracies(out, authorized=80.0, unauthorized=5.0)
    return out


@pytest.fixture(scope="module")
def ownership_run(workspace, tmp_path_factory):
    out = tmp_path_factory.mktemp("protected") / "photo_ownership" / "seed1"
    run_train(_protected_argv(workspace, out, "ownership", target="photo"))
    _accuracies(out, authorized=80.0, unauthorized=5.0)
    return out


def tree_hashes(folder):
    """sha256 of every file of a run folder but its attacks/ sub-folder."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and ATTACKS_FOLDER not in p.relative_to(folder).parts}


def _split_paths(splits, domains, part):
    """Relative image paths of the split files of `domains` (part: train or test)."""
    paths = set()
    for domain in domains:
        for line in (Path(splits) / f"{domain}_{part}.txt").read_text().splitlines():
            paths.add(line.rsplit(" ", 1)[0])
    return paths


def _relative(impath):
    return "/".join(Path(impath).parts[-3:])


# --------------------------------------------------------------------------------------------------
# The attacker's data
Item = namedtuple("Item", ["impath", "label", "domain"])


def test_the_k_shot_draw_is_per_class_reproducible_nested_and_order_free():
    data = [Item(f"d{d}/c{c}/{i:02d}.png", c, d) for d in range(2) for c in range(3) for i in range(9)]
    four = draw_per_class(data, 4, seed=5)
    assert len(four) == 2 * 3 * 4
    assert all(sum(1 for x in four if (x.domain, x.label) == (d, c)) == 4 for d in range(2) for c in range(3))
    assert four == draw_per_class(list(reversed(data)), 4, seed=5)  # the listing order does not matter
    assert four != draw_per_class(data, 4, seed=6)
    assert set(draw_per_class(data, 1, seed=5)) <= set(four) <= set(draw_per_class(data, 16, seed=5))
    assert len(draw_per_class(data, 16, seed=5)) == len(data)  # a small class gives all it has
    donors = draw_images(data, 3, seed=5)
    assert len(donors) == 3 and donors == draw_images(data, 3, seed=5)
    assert set(donors) <= set(draw_images(data, 7, seed=5))
    with pytest.raises(ConfigError, match="SHOTS"):
        draw_per_class(data, 0, seed=5)
    with pytest.raises(ConfigError, match="has 54 images"):
        draw_images(data, 55, seed=5)


@pytest.mark.parametrize("scenario, domains, marked", [
    ("target_specified", ["sketch"], False), ("target_free", ["clipart", "sketch", "painting"], False),
    ("ownership", ["photo"], True), ("authorization", ["photo", "clipart", "sketch", "painting"], False),
])
def test_the_attackers_shots_are_train_images_of_the_scenarios_unauthorized_data(
        make_cfg, workspace, tmp_path, scenario, domains, marked):
    root, _, splits = workspace
    target = "sketch" if scenario == "target_specified" else "photo"
    cfg = make_cfg("configs/datasets/toy_domains.yaml", opts=[
        "DATASET.ROOT", str(root), "DATASET.SPLIT_DIR", str(splits), "DATASET.SOURCE_DOMAINS", "['photo']",
        "DATASET.TARGET_DOMAINS", f"['{target}']", "TRAINER.IPCLIP.SCENARIO", scenario, "VERBOSE", "False",
        "ATTACK.FINETUNE.SHOTS", "2", "ATTACK.DATA_SEED", "3", "OUTPUT_DIR", str(tmp_path),
        "DATALOADER.NUM_WORKERS", "0", *CAPS])
    dm = DataManager(cfg)
    loader = shots_loader(cfg, dm)
    drawn = {_relative(d.impath) for d in loader.dataset.data_source}
    assert len(drawn) == 2 * NUM_CLASSES * len(domains)
    assert drawn <= _split_paths(splits, domains, "train")
    assert not drawn & _split_paths(splits, ["photo", "clipart", "sketch", "painting"], "test")
    assert ("watermark" in repr(loader.dataset.pre_transform)) == marked
    assert drawn == {_relative(d.impath) for d in shots_loader(cfg, dm).dataset.data_source}  # reproducible
    donors = {_relative(d.impath) for d in donor_data(cfg, dm.dataset, 4)}
    assert len(donors) == 4 and donors <= _split_paths(splits, ["photo"], "train")


# --------------------------------------------------------------------------------------------------
# Fine-tuning attack and its baseline
def _learner_state(run_dir, epoch):
    return load_checkpoint(str(Path(run_dir) / LEARNER / f"model.pth.tar-{epoch}"))["state_dict"]


def test_fine_tuning_trains_only_the_projector_and_leaves_the_run_untouched(protected_run):
    before = tree_hashes(protected_run)
    out = protected_run / ATTACKS_FOLDER / "finetune_k1"
    trainer = run_train(["--run-config", str(protected_run), "--trainer", "IPCLIPFinetuneAttack",
                         "--output-dir", str(out), "ATTACK.FINETUNE.MODEL_DIR", str(protected_run),
                         "ATTACK.FINETUNE.SHOTS", "1", "ATTACK.FINETUNE.EPOCHS", "1"])
    assert tree_hashes(protected_run) == before
    for name, p in trainer.model.named_parameters():
        assert p.requires_grad == name.startswith("learner.projector."), name
    record = json.loads((out / "results.json").read_text())
    protected = json.loads((protected_run / "results.json").read_text())
    assert record["finished"] and set(record["final"]) == set(protected["final"]) == {"authorized", "unauthorized"}
    assert record["config"]["ATTACK"]["FINETUNE"]["MODEL_DIR"] == str(protected_run)
    old, new = _learner_state(protected_run, 1), _learner_state(out, 1)
    assert set(old) == set(new)
    changed = {k for k in old if not torch.equal(old[k], new[k])}
    assert changed and all(k.startswith("projector.") for k in changed), changed
    assert len(trainer.train_loader_x.dataset) == NUM_CLASSES  # one shot per class of the target


def test_the_from_scratch_baseline_trains_coop_on_the_same_shots(protected_run):
    [target], _ = attack_plan.find_protected_runs(protected_run.parent)
    planned = attack_plan.plan_attacks(target, budgets=(4,), families=("finetune",),
                                       opts=["ATTACK.FINETUNE.EPOCHS", "1"])
    commands = {p.attack.name: list(p.spec.command[2:]) for p in planned}
    assert set(commands) == {"baseline_zero_shot", "baseline_coop_k4", "finetune_k4"}
    attack = build_trainer(train.setup_cfg(train.build_parser().parse_args(commands["finetune_k4"])))
    before = tree_hashes(protected_run)
    baseline = run_train(commands["baseline_coop_k4"])
    assert type(baseline).__name__ == "KShotCoOp" and baseline.max_epoch == 1
    assert baseline.cfg.ATTACK.DATA_SEED == attack.cfg.ATTACK.DATA_SEED == 1
    assert baseline.cfg.MODEL.BACKBONE.NAME == target.config["MODEL"]["BACKBONE"]["NAME"]
    shots = [sorted(d.impath for d in t.train_loader_x.dataset.data_source) for t in (baseline, attack)]
    assert shots[0] == shots[1] and len(shots[0]) == TRAIN_PER_CLASS * NUM_CLASSES
    record = json.loads((protected_run / ATTACKS_FOLDER / "baseline_coop_k4" / "results.json").read_text())
    assert record["finished"] and set(record["final"]) == {"authorized", "unauthorized"}
    assert tree_hashes(protected_run) == before


# --------------------------------------------------------------------------------------------------
# Style transplant
@pytest.fixture(scope="module")
def transplant_trainer(protected_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("transplant")
    cfg = train.setup_cfg(train.build_parser().parse_args([
        "--run-config", str(protected_run), "--trainer", "IPCLIPStyleTransplant", "--output-dir", str(out),
        "ATTACK.TRANSPLANT.SHOTS", "3"]))
    trainer = build_trainer(cfg)
    trainer.load_model(str(protected_run), epoch=1)
    trainer.set_model_mode("eval")
    return trainer


@torch.no_grad()
def test_transplanting_an_images_own_domain_tokens_changes_nothing(transplant_trainer):
    model = transplant_trainer.model
    images = next(iter(transplant_trainer.test_loaders["unauthorized"]))["img"][:5]
    own = donor_domain_tokens(model, images)
    assert own.shape == (5, model.projector.n_domain_tokens, model.template.ctx_dim)
    logits = transplant_logits(model, images, own)
    assert logits.shape == (5, 5, NUM_CLASSES)
    torch.testing.assert_close(logits.diagonal(dim1=0, dim2=1).T, model(images), rtol=1e-4, atol=1e-4)
    assert transplant_logits(model, images, own.mean(0, keepdim=True)).shape == (5, 1, NUM_CLASSES)


@torch.no_grad()
def test_context_from_tokens_is_the_projectors_own_layout(transplant_trainer):
    model = transplant_trainer.model
    images = next(iter(transplant_trainer.test_loaders["authorized"]))["img"][:3]
    _, stats = model.tap.tap(images)
    release = ReleaseIPProjector(model.tap.layer_dims, model.projector.text_width, n_image_tokens=2)
    for projector in (model.projector, release):
        torch.testing.assert_close(context_from_tokens(projector, *projector(stats)), projector.context(stats))


def test_the_transplant_run_scores_every_image_with_every_donor(protected_run):
    before = tree_hashes(protected_run)
    out = protected_run / ATTACKS_FOLDER / "transplant_each_k2"
    run_train(["--run-config", str(protected_run), "--trainer", "IPCLIPStyleTransplant", "--eval-only",
               "--model-dir", str(protected_run), "--load-epoch", "1", "--output-dir", str(out),
               "ATTACK.TRANSPLANT.SHOTS", "2", "ATTACK.TRANSPLANT.MODE", "each"])
    record = json.loads((out / "results.json").read_text())
    protected = json.loads((protected_run / "results.json").read_text())
    assert record["finished"] and record["eval_only"]
    for name, entry in protected["final"].items():
        assert record["final"][name]["total"] == 2 * entry["total"]
    assert tree_hashes(protected_run) == before


# --------------------------------------------------------------------------------------------------
# fp16 and amp on the CPU (tests/test_precision_paths.py's hook: the CUDA path's calls without CUDA)
@pytest.fixture
def cuda_like_precision(monkeypatch):
    import contextlib

    import trainers.clip_backbone
    import trainers.ipclip.attacks.finetune
    import trainers.ipclip.attacks.style_transplant
    import trainers.ipclip.trainer
    import trainers.precision

    def cpu_autocast(prec, device):
        return torch.autocast("cpu", dtype=torch.float16) if prec == "amp" else contextlib.nullcontext()

    def keep(prec, device):
        return prec

    monkeypatch.setattr(trainers.precision, "resolve_precision", keep)
    monkeypatch.setattr(trainers.clip_backbone, "resolve_precision", keep)
    monkeypatch.setattr(trainers.ipclip.trainer, "make_grad_scaler",
                        lambda prec, device: torch.amp.GradScaler("cpu") if prec == "amp" else None)
    for module in (trainers.ipclip.trainer, trainers.ipclip.attacks.finetune,
                   trainers.ipclip.attacks.style_transplant):
        monkeypatch.setattr(module, "autocast", cpu_autocast)


@pytest.mark.parametrize("prec", ["fp16", "amp"])
def test_the_attacks_run_in_fp16_and_amp(protected_run, tmp_path, cuda_like_precision, prec):
    def trainer(name, *opts):
        argv = ["--run-config", str(protected_run), "--trainer", name, "--output-dir", str(tmp_path / name),
                "TRAINER.IPCLIP.PREC", prec, *opts]
        return build_trainer(train.setup_cfg(train.build_parser().parse_args(argv)))

    attack = trainer("IPCLIPFinetuneAttack", "ATTACK.FINETUNE.MODEL_DIR", str(protected_run))
    assert attack.prec == prec and (attack.scaler is not None) == (prec == "amp")
    model = attack.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    attack.set_model_mode("train")
    attack.batch_idx, attack.num_batches = 0, 2
    changed = []
    for _ in range(20):  # a GradScaler skips (and halves its scale on) the steps that overflow
        summary = attack.forward_backward(next(iter(attack.train_loader_x)))
        assert torch.isfinite(summary["loss"])
        changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
        if changed:
            break
    assert changed and all(n.startswith("learner.projector.") for n in changed)
    transplant = trainer("IPCLIPStyleTransplant", "ATTACK.TRANSPLANT.SHOTS", "2")
    transplant.load_model(str(protected_run), epoch=1)
    transplant.test()
    assert transplant.donor_tokens.shape[0] == 1  # MODE mean
    assert all(0 <= r["accuracy"] <= 100 and r["total"] == 20 for r in transplant.last_test_results.values())


# --------------------------------------------------------------------------------------------------
# train.py --run-config
def test_run_config_refuses_what_would_touch_the_recorded_run(protected_run, tmp_path):
    parse = train.build_parser().parse_args
    with pytest.raises(ConfigError, match="needs --output-dir"):
        train.setup_cfg(parse(["--run-config", str(protected_run)]))
    with pytest.raises(ConfigError, match="its own folder"):
        train.setup_cfg(parse(["--run-config", str(protected_run), "--output-dir", str(protected_run)]))
    with pytest.raises(MissingFileError, match="no results.json"):
        train.setup_cfg(parse(["--run-config", str(tmp_path), "--output-dir", str(tmp_path / "x")]))
    cfg = train.setup_cfg(parse(["--run-config", str(protected_run), "--output-dir", str(tmp_path / "x")]))
    recorded = json.loads((protected_run / "results.json").read_text())["config"]
    assert cfg.MODEL.BACKBONE.NAME == recorded["MODEL"]["BACKBONE"]["NAME"]
    assert list(cfg.DATASET.TEST_SETS) == recorded["DATASET"]["TEST_SETS"] and cfg.RESUME == ""


# --------------------------------------------------------------------------------------------------
# tools/attack.py
def _accuracies(run_dir, **accuracy):
    """Give a fixture run plausible accuracies: a random CLIP is at chance on every set, which the
    tools set aside as a collapsed run (nothing to attack)."""
    path = Path(run_dir) / "results.json"
    record = json.loads(path.read_text())
    for name, value in accuracy.items():
        record["final"][name]["accuracy"] = value
    path.write_text(json.dumps(record))


def _in_process(specs, **_):
    """run_local, each train.py command run in this process (a subprocess costs seconds of imports)."""
    from tools.launchers import Outcome

    outcomes = []
    for spec in specs:
        assert spec.command[1] == "train.py"
        outcomes.append(Outcome(spec, run_train(list(spec.command[2:]), cli=True) == 0, 0.0, spec.log))
    return outcomes


def test_the_tool_runs_the_input_attacks_then_skips_them_and_reports(protected_run, tmp_path, monkeypatch,
                                                                     capsys):
    root = tmp_path / "tree"
    run = root / "IPCLIP" / "target_specified" / "photo_sketch" / "seed1"
    shutil.copytree(protected_run, run, ignore=shutil.ignore_patterns(ATTACKS_FOLDER))
    before = tree_hashes(run)
    launched = []

    def launcher(specs, **kwargs):
        launched.append([s.label for s in specs])
        return _in_process(specs)

    monkeypatch.setattr(attack_tool, "run_local", launcher)
    argv = [str(root), "--attacks", "input", "--budgets", "1", "--format", "markdown"]
    assert attack_tool.main(argv) == 0
    assert len(launched[0]) == 8  # zero-shot, 5 input attacks, colour and histogram matching with k = 1
    assert (run / ATTACKS_FOLDER / "color_match_k1" / "reference.json").is_file()
    blur = json.loads((run / ATTACKS_FOLDER / "blur" / "results.json").read_text())
    assert blur["config"]["DATASET"]["TEST_SETS"] == ["authorized=source+attack_blur",
                                                      "unauthorized=target+attack_blur"]
    out = capsys.readouterr().out
    assert "| blur " in out and "| histogram match | 1 " in out and "attacks beat the best baseline" in out
    assert attack_tool.main(argv) == 0
    assert launched[1] == []  # everything finished: nothing runs again
    assert tree_hashes(run) == before
    assert [r.path.parent for r in load_runs(root)] == [run]  # the tables never read an attack


def test_forgeries_are_planned_where_the_scenario_has_a_mark(ownership_run, protected_run, tmp_path):
    [owner], _ = attack_plan.find_protected_runs(ownership_run.parent)
    [plain], _ = attack_plan.find_protected_runs(protected_run.parent)
    forgeries = [p for p in attack_plan.plan_attacks(owner, families=("forgery",))
                 if p.attack.name.startswith("forgery_")]
    assert {p.attack.name for p in forgeries} == {f"forgery_{w}" for w in
                                                  ("pattern", "period", "color", "alpha", "offset")}
    assert not any(p.attack.name.startswith("forgery_") for p in attack_plan.plan_attacks(plain))
    assert all(not p.attack.judged for p in forgeries)  # ownership: a specific mark keeps accuracy
    spec = next(p.spec for p in forgeries if p.attack.name == "forgery_offset")
    before = tree_hashes(ownership_run)
    run_train(list(spec.command[2:]))
    record = json.loads((Path(spec.output_dir) / "results.json").read_text())
    assert record["config"]["DATASET"]["TEST_SETS"] == ["authorized=source",
                                                        "unauthorized=source+forged_watermark"]
    assert record["config"]["ATTACK"]["FORGERY"]["OFFSET"] == [1, 1] and record["finished"]
    assert tree_hashes(ownership_run) == before


# --------------------------------------------------------------------------------------------------
# The table on a fixture tree (records written by hand: no model runs)
def _write(folder, trainer, seed, final, config, eval_only=False, target="sketch"):
    folder.mkdir(parents=True, exist_ok=True)
    record = {"format": 1, "finished": True, "eval_only": eval_only,
              "run": {"dataset": "ToyDomains", "trainer": trainer, "config_name": "tiny",
                      "source_domains": ["photo"], "target_domains": [target],
                      "tag": "target_specified" if trainer == "IPCLIP" else "", "backbone": "tiny-rn",
                      "seed": seed, "max_epoch": 1, "num_classes": NUM_CLASSES},
              "epochs": [], "final": {k: {"accuracy": v} for k, v in final.items()}, "config": config}
    (folder / "results.json").write_text(json.dumps(record))


@pytest.fixture
def fixture_tree(tmp_path, make_cfg):
    """Three seeds of a target-specified run with a CoOp reference and finished attacks."""
    from dassl.engine.run_record import cfg_to_dict

    cfg = make_cfg("configs/trainers/IPCLIP/tiny.yaml", opts=[
        "CONFIG_NAME", "tiny", "OPTIM.MAX_EPOCH", "1", "DATASET.NAME", "ToyDomains",
        "DATASET.TEST_SETS", "['authorized=source','unauthorized=target']"])
    config = cfg_to_dict(cfg)
    root = tmp_path / "tree"
    values = {  # attack folder -> unauthorized accuracy of seeds 1, 2, 3
        "finetune_k1": (30, 40, 50), "baseline_coop_k1": (60, 60, 60),
        "finetune_k4": (70, 75, 80), "baseline_coop_k4": (60, 62, 64),
        "blur": (10, 10, 10), "baseline_zero_shot": (50, 50, 50),
    }
    for i, seed in enumerate((1, 2, 3)):
        run = root / "IPCLIP" / "tiny" / "photo_sketch" / f"seed{seed}"
        _write(run, "IPCLIP", seed, {"authorized": 80, "unauthorized": 5 + i}, config)
        (run / LEARNER).mkdir()
        (run / LEARNER / "model.pth.tar-1").write_bytes(b"")
        for name, accuracies in values.items():
            _write(run / ATTACKS_FOLDER / name, "IPCLIP", seed,
                   {"authorized": 70, "unauthorized": accuracies[i]}, config, eval_only=True)
        _write(root / "CoOp" / "tiny" / "photo" / f"seed{seed}", "CoOp", seed,
               {"authorized": 95, "photo": 95, "sketch": 90, "photo_wm": 80}, config, target="photo")
    return root


def test_the_table_sets_each_attack_against_the_baselines(fixture_tree, capsys, tmp_path):
    assert attack_tool.main([str(fixture_tree), "--report-only", "--attacks", "finetune", "input",
                             "--budgets", "1", "4", "--plot", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    rows = {tuple(line.split()[:2]): line for line in out.splitlines()
            if line.startswith(("fine-tuning", "blur"))}
    assert "40.0 ± 8.2" in rows[("fine-tuning", "1")] and rows[("fine-tuning", "1")].rstrip().endswith("yes")
    assert "75.0 ± 4.1" in rows[("fine-tuning", "4")] and rows[("fine-tuning", "4")].rstrip().endswith("NO")
    assert "62.0 ± 1.6" in rows[("fine-tuning", "4")]  # the from-scratch attacker with 4 shots
    for cells in ("6.0 ± 0.8", "90.0 ± 0.0", "50.0 ± 0.0"):  # protected, CoOp reference, zero-shot
        assert cells in rows[("blur", "-")]
    assert "1 of 11 attacks beat the best baseline" in out  # jpeg ...: never run, "-" and "?"
    assert rows[("blur", "-")].rstrip().endswith("yes")
    # attacks with a budget and a finished run only: the fine-tuning attack
    assert [p.name for p in (tmp_path / "plots").iterdir()] == [
        "target_specified_ToyDomains_tiny_tiny_rn_photo_sketch_fine_tuning.png"]


def test_the_dry_run_lists_every_attack_with_its_status(fixture_tree, capsys):
    assert attack_tool.main([str(fixture_tree), "--dry-run", "--attacks", "finetune", "--budgets", "1"]) == 0
    out = capsys.readouterr().out
    assert "9 attack runs on 3 protected runs" in out
    assert out.count("[conflict] finetune_k1") == 3  # the hand-written records hold another config
    assert out.count("[todo] baseline_zero_shot") == 0


def test_roles_of_per_domain_test_sets():
    sets = ["photo", "clipart", "sketch", "painting", "photo_wm", "sketch_wm"]
    assert attack_report.attack_roles("ownership", sets, ["photo"]) == (("photo",), ("photo_wm",))
    assert attack_report.attack_roles("target_free", sets, ["photo"]).unauthorized == ("clipart", "sketch",
                                                                                      "painting")
    assert attack_report.attack_roles("target_specified", sets, ["photo"], ["sketch"]).unauthorized == ("sketch",)
    assert attack_report.attack_roles("authorization", sets, ["photo"]).authorized == ("photo_wm",)
    assert all(attack_report.attack_roles(s, ["authorized"], ["photo"], ["sketch"]) is None
               for s in SCENARIO_NAMES)


def test_runs_on_other_clips_are_other_experiments(fixture_tree, capsys):
    """tools/robustness.py's tiny CLIPs share config name, pair and seeds: each gets its own table."""
    copy = fixture_tree / "other_clip" / "photo_sketch" / "seed1"
    shutil.copytree(fixture_tree / "IPCLIP" / "tiny" / "photo_sketch" / "seed1", copy)
    for path in copy.rglob("results.json"):
        record = json.loads(path.read_text())
        record["config"]["MODEL"]["BACKBONE"]["NAME"] = "tiny-rn-seed1"
        path.write_text(json.dumps(record))
    assert attack_tool.main([str(fixture_tree), "--report-only", "--attacks", "finetune", "--budgets", "1"]) == 0
    out = capsys.readouterr().out
    assert "(tiny-rn) photo -> sketch (seeds 1, 2, 3)" in out
    assert "(tiny-rn-seed1) photo -> sketch (seeds 1)" in out and "second run" not in out
