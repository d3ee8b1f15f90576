"""The engine's life cycle on a tiny linear trainer: results.json, named test sets, checkpoints
loadable with weights_only=True, eval-only, and a resumed run ending with the same weights as an
uninterrupted one."""
import json
import os
import re

import pytest
import torch
import torch.nn as nn
from PIL import Image

import train
from dassl.engine import TRAINER_REGISTRY, TrainerX
from dassl.engine.run_folder import RunFolderConflict
from dassl.errors import ConfigError
from dassl.optim import build_lr_scheduler, build_optimizer

COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


class CrashOnEpoch(RuntimeError):
    pass


@TRAINER_REGISTRY.register(force=True)
class TinyLinearTrainer(TrainerX):
    """A linear classifier on 8x8 images: fast enough to train in a test, random enough (shuffling,
    augmentation, dropout) that a resume which loses an RNG state ends with different weights."""

    crash_before_epoch = None  # set by a test to simulate an interruption

    def build_model(self):
        self.model = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(3 * 8 * 8, self.num_classes))
        self.model.to(self.device)
        self.optim = build_optimizer(self.model, self.cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, self.cfg.OPTIM)
        self.register_model("model", self.model, self.optim, self.sched)

    def before_epoch(self):
        if self.crash_before_epoch is not None and self.epoch == self.crash_before_epoch:
            raise CrashOnEpoch(f"simulated crash before epoch {self.epoch + 1}")

    def forward_backward(self, batch):
        x, y, _ = self.parse_batch_train(batch)
        loss = nn.functional.cross_entropy(self.model(x), y)
        self.model_backward_and_update(loss)
        if self.batch_idx + 1 == self.num_batches:
            self.update_lr()
        return {"loss": loss.detach()}


@TRAINER_REGISTRY.register(force=True)
class NaNLossTrainer(TinyLinearTrainer):
    """Returns a NaN loss tensor from epoch 2, batch 3 on, the way a fused GPU step would: no host
    check of its own (the engine has to notice)."""

    def forward_backward(self, batch):
        x, y, _ = self.parse_batch_train(batch)
        loss = nn.functional.cross_entropy(self.model(x), y)
        if (self.epoch, self.batch_idx) >= (1, 2):
            return {"loss": loss.detach() * float("nan")}
        self.optim.zero_grad()
        loss.backward()
        self.optim.step()
        return {"loss": loss.detach()}


def _write_tree(root, n_per_class=10):
    """root/<domain>/<class>/<i>.png: solid colours, darker in domain 'dark'."""
    for domain, scale in (("light", 1.0), ("dark", 0.5)):
        for cname, rgb in COLORS.items():
            folder = root / domain / cname
            folder.mkdir(parents=True)
            for i in range(n_per_class):
                value = tuple(int(c * scale) + i for c in rgb)
                Image.new("RGB", (8, 8), value).save(folder / f"{i:03d}.png")


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "data"
    _write_tree(root)
    return root


def _argv(tree, out, *opts, epochs=2):
    return [
        "--root", str(tree), "--seed", "3", "--trainer", "TinyLinearTrainer",
        "--source-domains", "light", "--target-domains", "dark", "--output-dir", str(out),
        "DATASET.NAME", "DomainFolders",
        "DATASET.TEST_SETS", "['authorized=source', 'unauthorized=target', '{domain}_only=each']",
        "INPUT.SIZE", "(8, 8)", "INPUT.TRANSFORMS", "['random_flip', 'normalize']",
        "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "4",
        "DATALOADER.TEST.BATCH_SIZE", "8", "OPTIM.NAME", "sgd", "OPTIM.LR", "0.05",
        "OPTIM.MAX_EPOCH", str(epochs), "OPTIM.LR_SCHEDULER", "cosine", "OPTIM.WARMUP_EPOCH", "1",
        "OPTIM.WARMUP_TYPE", "linear", "TRAIN.CHECKPOINT_FREQ", "1", "TRAIN.PRINT_FREQ", "1",
        "USE_CUDA", "False", *opts,
    ]


def _weights(out):
    ckpt = torch.load(os.path.join(out, "model", "model.pth.tar-2"), weights_only=True)
    return ckpt["state_dict"]


def test_results_json_named_sets_and_weights_only(tree, tmp_path):
    out = tmp_path / "run"
    train.main(_argv(tree, out, "TEST.EVAL_FREQ", "1"))
    res = json.loads((out / "results.json").read_text())
    assert res["finished"] is True and res["eval_only"] is False
    assert res["run"]["trainer"] == "TinyLinearTrainer"
    assert res["run"]["source_domains"] == ["light"] and res["run"]["seed"] == 3
    names = list(res["final"])
    assert names[:2] == ["authorized", "unauthorized"]
    assert sorted(names[2:]) == ["dark_only", "light_only"]
    # authorized = the source test split, i.e. the same images as the per-domain "light" set
    assert res["final"]["authorized"] == res["final"]["light_only"]
    assert res["final"]["unauthorized"] == res["final"]["dark_only"]
    for entry in res["final"].values():
        assert 0 <= entry["accuracy"] <= 100 and entry["total"] > 0
    assert [e["epoch"] for e in res["epochs"]] == [1, 2]
    assert "test" in res["epochs"][0] and "loss" in res["epochs"][0]["train"]
    # every checkpoint loads with weights_only=True and carries RNG states
    for n in (1, 2):
        ckpt = torch.load(out / "model" / f"model.pth.tar-{n}", weights_only=True)
        assert ckpt["epoch"] == n and "rng_state" in ckpt and ckpt["scheduler"] is not None
    assert (out / "model" / "checkpoint").read_text().strip() == "model.pth.tar-2"
    log = (out / "log.txt").read_text()
    assert "Finish training" in log and "Evaluate on the *unauthorized* set" in log
    assert "* accuracy:" in log


def _crash_before_second_epoch(tree, out):
    """Run the 2-epoch training into `out` and let it crash once epoch 1 is checkpointed."""
    TinyLinearTrainer.crash_before_epoch = 1
    try:
        with pytest.raises(CrashOnEpoch):
            train.main(_argv(tree, out))
    finally:
        TinyLinearTrainer.crash_before_epoch = None


def test_resume_after_crash_matches_uninterrupted_run(tree, tmp_path):
    clean = tmp_path / "clean"
    train.main(_argv(tree, clean))

    crashed = tmp_path / "crashed"
    _crash_before_second_epoch(tree, crashed)
    assert not (crashed / "results.json").exists() or not json.loads(
        (crashed / "results.json").read_text())["finished"]
    # The same command again resumes from epoch 1 and finishes.
    train.main(_argv(tree, crashed))
    a, b = _weights(clean), _weights(crashed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    res = json.loads((crashed / "results.json").read_text())
    assert res["finished"] and [e["epoch"] for e in res["epochs"]] == [1, 2]
    assert any("log.txt-" in p for p in os.listdir(crashed)), "rerun must not overwrite log.txt"


def test_rerun_of_finished_run_is_skipped(tree, tmp_path, capsys):
    out = tmp_path / "run"
    train.main(_argv(tree, out))
    before = _weights(out)
    results = (out / "results.json").read_bytes()
    capsys.readouterr()
    # Paths and hardware may differ between invocations of the same experiment.
    moved = tmp_path / "moved_data"
    tree.rename(moved)
    assert train.main(_argv(moved, out, "DATALOADER.NUM_WORKERS", "1")) is None
    assert "nothing to do" in capsys.readouterr().out
    assert (out / "results.json").read_bytes() == results
    after = _weights(out)
    for k in before:
        assert torch.equal(before[k], after[k])


def test_output_folder_of_another_config_is_refused(tree, tmp_path, capsys):
    out = tmp_path / "run"
    train.main(_argv(tree, out))
    results = (out / "results.json").read_bytes()
    with pytest.raises(RunFolderConflict, match=r"finished run .*OPTIM\.LR: 0\.05 there, 0\.1 now"):
        train.main(_argv(tree, out, "OPTIM.LR", "0.1"))
    assert (out / "results.json").read_bytes() == results
    # The command line prints the message, no traceback, exit code 2.
    assert train.cli(_argv(tree, out, "OPTIM.LR", "0.1")) == 2
    assert "another --output-dir" in capsys.readouterr().err


def test_unfinished_run_of_another_config_is_not_resumed(tree, tmp_path):
    crashed = tmp_path / "crashed"
    _crash_before_second_epoch(tree, crashed)
    with pytest.raises(RunFolderConflict, match=r"unfinished run .*OPTIM\.MAX_EPOCH: 2 there, 3 now"):
        train.main(_argv(tree, crashed, epochs=3))


def test_eval_only_with_model_dir(tree, tmp_path):
    out = tmp_path / "run"
    train.main(_argv(tree, out))
    ev = tmp_path / "eval"
    train.main(_argv(tree, ev) + [])  # placeholder so argv building stays in one place
    ev2 = tmp_path / "eval2"
    argv = _argv(tree, ev2)
    argv[argv.index("--output-dir") + 2:argv.index("--output-dir") + 2] = [
        "--eval-only", "--model-dir", str(out), "--load-epoch", "2"]
    train.main(argv)
    res = json.loads((ev2 / "results.json").read_text())
    ref = json.loads((out / "results.json").read_text())
    assert res["eval_only"] is True and res["finished"] is True
    assert res["final"]["authorized"]["accuracy"] == ref["final"]["authorized"]["accuracy"]
    assert not (ev2 / "model").exists(), "eval-only writes no checkpoint"


def test_eval_only_missing_checkpoint_is_clear(tree, tmp_path):
    argv = _argv(tree, tmp_path / "ev")
    argv[0:0] = ["--eval-only", "--model-dir", str(tmp_path / "nothing"), "--load-epoch", "2"]
    with pytest.raises(FileNotFoundError, match="model.pth.tar-2"):
        train.main(argv)


def test_unknown_config_key_is_rejected(tree, tmp_path):
    with pytest.raises(ConfigError, match="command-line override: Non-existent key: OPTIM.NOT_A_KEY"):
        train.main(_argv(tree, tmp_path / "x", "OPTIM.NOT_A_KEY", "1"))


@pytest.mark.parametrize("trainer, first_bad", [("NaNLossTrainer", r"epoch 2/2, batch 3/6"),
                                                 ("TinyLinearTrainer", r"epoch [12]/2, batch \d/6")])
def test_non_finite_loss_stops_the_run_unfinished(tree, tmp_path, capsys, trainer, first_bad):
    """A NaN loss (seen by the engine's device-side watch, or by upstream's detect_anomaly) ends the
    run with exit status 1 and a message naming the epoch and batch; nothing says it finished."""
    out = tmp_path / "run"
    argv = _argv(tree, out, "TRAIN.PRINT_FREQ", "100")
    argv[argv.index("TinyLinearTrainer")] = trainer
    if trainer == "TinyLinearTrainer":
        argv += ["OPTIM.LR", "1e38"]  # the first update overflows the weights to inf
    assert train.cli(argv) == 1
    err = capsys.readouterr().err
    assert "NaN" in err and re.search(first_bad, err) and "Traceback" not in err
    record = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    assert not record.get("finished", False)
    assert not (out / "model" / "model.pth.tar-2").exists(), "the collapsed epoch left a checkpoint"


def test_results_json_is_strict_json(tree, tmp_path):
    """Python's json writes NaN as a bare token that strict parsers reject: non-finite values are null."""
    from dassl.engine.run_record import RunRecord

    cfg = train.setup_cfg(train.build_parser().parse_args(_argv(tree, tmp_path / "rec")))
    record = RunRecord(cfg)
    record.add_epoch(1, train={"loss": float("nan"), "acc": float("inf")}, lr=0.1)
    record.save()

    def reject(token):
        raise ValueError(f"non-standard JSON token {token}")

    data = json.loads((tmp_path / "rec" / "results.json").read_text(), parse_constant=reject)
    assert data["epochs"][0]["train"] == {"loss": None, "acc": None}


def test_zero_epochs_and_eval_only_without_weights_are_refused(tree, tmp_path, capsys):
    """Both would record an untrained model as a finished run."""
    assert train.cli(_argv(tree, tmp_path / "zero", epochs=0)) == 2
    assert "OPTIM.MAX_EPOCH is 0" in capsys.readouterr().err
    assert not (tmp_path / "zero" / "results.json").exists()
    argv = ["--eval-only"] + _argv(tree, tmp_path / "eval")
    assert train.cli(argv) == 2
    assert "--eval-only without --model-dir" in capsys.readouterr().err
    assert not (tmp_path / "eval" / "results.json").exists()
