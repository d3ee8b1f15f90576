"""dassl.utils: file helpers, logger tee, meters, checkpoints and RNG state."""
import json
import os
import pickle
import random
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import dassl.utils as U
from dassl.utils import torchtools

UPSTREAM_NAMES = {
    "mkdir_if_missing", "check_isfile", "read_json", "write_json", "set_random_seed", "download_url",
    "read_image", "collect_env_info", "listdir_nohidden", "get_most_similar_str_to_a_from_b",
    "check_availability", "tolist_if_not", "Logger", "setup_logger", "AverageMeter", "MetricMeter",
    "Registry", "save_checkpoint", "load_checkpoint", "resume_from_checkpoint", "open_all_layers",
    "open_specified_layers", "count_num_param", "load_pretrained_weights", "init_network_weights",
}


def test_star_exports_are_exactly_upstream_names():
    assert set(U.__all__) == UPSTREAM_NAMES
    assert len(U.__all__) == len(UPSTREAM_NAMES)
    for name in U.__all__:
        assert callable(getattr(U, name))
    assert callable(torchtools.get_rng_state) and callable(torchtools.set_rng_state)


# ------------------------------------------------------------------------------------- tools


def test_mkdir_json_listdir(tmp_path):
    nested = tmp_path / "a" / "b"
    U.mkdir_if_missing(str(nested))
    U.mkdir_if_missing(str(nested))  # second call is a no-op
    assert nested.is_dir()

    fpath = tmp_path / "new" / "x.json"
    U.write_json({"k": [1, 2]}, str(fpath))
    assert U.read_json(str(fpath)) == {"k": [1, 2]}
    assert fpath.read_text() == json.dumps({"k": [1, 2]}, indent=4, separators=(",", ": "))

    for name in ["b.txt", ".hidden", "a.txt"]:
        (tmp_path / name).write_text("")
    names = U.listdir_nohidden(str(tmp_path), sort=True)
    assert ".hidden" not in names
    assert names == sorted(names) and {"a.txt", "b.txt"} <= set(names)


def test_check_isfile_warns(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    assert U.check_isfile(str(f))
    with pytest.warns(UserWarning, match="No file found"):
        assert not U.check_isfile(str(tmp_path / "missing"))


def test_lookup_helpers():
    assert U.tolist_if_not(3) == [3]
    assert U.tolist_if_not([3]) == [3]
    assert U.get_most_similar_str_to_a_from_b("CoOpp", ["ZeroshotCLIP", "CoOp", "CoCoOp"]) == "CoOp"
    U.check_availability("CoOp", ["CoOp"])
    with pytest.raises(ValueError, match=r"do you mean \[CoOp\]"):
        U.check_availability("Coop", ["CoOp", "IPCLIP"])


def test_read_image(tmp_path):
    p = tmp_path / "gray.png"
    Image.new("L", (4, 3), color=7).save(p)
    img = U.read_image(str(p))
    assert img.mode == "RGB" and img.size == (4, 3)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        U.read_image(str(tmp_path / "nope.png"))
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(OSError, match="bad.png"):
        U.read_image(str(bad))


def test_set_random_seed_reproduces_all_generators():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    U.set_random_seed(3)
    a = draw()
    U.set_random_seed(3)
    assert draw() == a
    U.set_random_seed(4)
    assert draw() != a


def test_collect_env_info_is_guarded(monkeypatch):
    import torch.utils.collect_env as ce

    monkeypatch.setattr(ce, "get_pretty_env_info", lambda: "ENV REPORT")
    info = U.collect_env_info()
    assert info.startswith("ENV REPORT") and "Pillow" in info

    def broken():
        raise OSError("no shell")

    monkeypatch.setattr(ce, "get_pretty_env_info", broken)
    info = U.collect_env_info()
    assert torch.__version__ in info and "no shell" in info and "Pillow" in info


def test_download_url_failure_is_clear(tmp_path):
    dst = tmp_path / "sub" / "file.bin"
    with pytest.raises(RuntimeError, match="download the file by hand"):
        U.download_url("file:///definitely/not/here.bin", str(dst))
    assert not dst.exists() and not (tmp_path / "sub" / "file.bin.part").exists()


def test_download_url_local_file(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"abc" * 100)
    dst = tmp_path / "out" / "dst.bin"
    U.download_url(src.as_uri(), str(dst))
    assert dst.read_bytes() == src.read_bytes()


# ------------------------------------------------------------------------------------- logger


def test_setup_logger_tees_and_never_overwrites(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # restored after the test
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    U.setup_logger(None)
    assert not isinstance(sys.stdout, U.Logger)

    U.setup_logger(str(tmp_path))
    print("first run")
    sys.stdout.flush()
    assert isinstance(sys.stdout, U.Logger)
    assert (tmp_path / "log.txt").read_text() == "first run\n"

    U.setup_logger(str(tmp_path))  # same folder again: a new, suffixed file
    print("second run")
    sys.stdout.flush()
    logs = sorted(p.name for p in tmp_path.iterdir())
    assert len(logs) == 2 and logs[0] == "log.txt" and logs[1].startswith("log.txt-")
    assert (tmp_path / "log.txt").read_text() == "first run\n"  # untouched, not double-teed
    assert (tmp_path / logs[1]).read_text() == "second run\n"
    assert "first run" in capsys.readouterr().out

    explicit = tmp_path / "deep" / "train.log"
    U.setup_logger(str(explicit))
    print("explicit")
    # stderr too (warnings, the fatal error), but not progress-bar redraws
    sys.stderr.write(warnings.formatwarning("a warning for the log", UserWarning, "x.py", 1))
    sys.stderr.write("\r 50%|#####     |")
    sys.stderr.write("\n")
    print("error: the end", file=sys.stderr)
    sys.stdout.flush()
    text = explicit.read_text()
    assert text == "explicit\nx.py:1: UserWarning: a warning for the log\nerror: the end\n"
    sys.stdout.close()


def test_logger_delegates_stream_attributes(tmp_path):
    logger = U.Logger(str(tmp_path / "l.txt"))
    assert logger.isatty() == logger.console.isatty()
    logger.write("x")
    logger.close()
    logger.write("y")  # after close only the console receives output
    assert (tmp_path / "l.txt").read_text() == "x"


# ------------------------------------------------------------------------------------- meters


def test_average_meter():
    m = U.AverageMeter()
    m.update(torch.tensor(2.0))
    m.update(4.0, n=3)
    assert m.val == 4.0 and m.count == 4 and m.sum == pytest.approx(14.0)
    assert m.avg == pytest.approx(3.5)
    ema = U.AverageMeter(ema=True)
    ema.update(10.0)
    ema.update(0.0)
    assert ema.avg == pytest.approx(0.9 * (0.1 * 10.0))


def test_metric_meter():
    mm = U.MetricMeter()
    mm.update({"loss": torch.tensor(1.5), "acc": 50})
    mm.update({"loss": 0.5, "acc": 100.0})
    mm.update(None)
    assert str(mm) == "loss 0.5000 (1.0000) acc 100.0000 (75.0000)"
    assert U.MetricMeter(delimiter="\t").delimiter == "\t"
    with pytest.raises(TypeError, match="dict"):
        mm.update([1.0])


# ------------------------------------------------------------------------------------- checkpoints


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(3, 4)
        self.head = nn.Linear(4, 2)


def _state(model, epoch):
    return {
        "state_dict": {"module." + k: v for k, v in model.state_dict().items()},
        "epoch": epoch,
        "optimizer": None,
        "scheduler": None,
        "val_result": None,
    }


def test_save_checkpoint_layout(tmp_path, capsys):
    model = TwoLayer()
    state = _state(model, 3)
    U.save_checkpoint(state, str(tmp_path / "m"), is_best=True)
    out = capsys.readouterr().out
    fpath = tmp_path / "m" / "model.pth.tar-3"
    assert f"Checkpoint saved to {fpath}" in out
    assert f'Best checkpoint saved to "{tmp_path / "m" / "model-best.pth.tar"}"' in out
    assert (tmp_path / "m" / "checkpoint").read_text() == "model.pth.tar-3\n"
    assert sorted(os.listdir(tmp_path / "m")) == ["checkpoint", "model-best.pth.tar", "model.pth.tar-3"]
    assert all(k.startswith("module.") for k in state["state_dict"])  # caller's dict untouched

    loaded = U.load_checkpoint(str(fpath))
    assert set(loaded["state_dict"]) == set(model.state_dict())
    best = U.load_checkpoint(str(tmp_path / "m" / "model-best.pth.tar"))
    assert torch.equal(best["state_dict"]["head.weight"], model.head.weight)

    U.save_checkpoint(state, str(tmp_path / "m"), model_name="named.pth", remove_module_from_keys=False)
    assert (tmp_path / "m" / "checkpoint").read_text() == "named.pth\n"
    assert all(k.startswith("module.") for k in U.load_checkpoint(str(tmp_path / "m" / "named.pth"))["state_dict"])


def test_save_checkpoint_is_atomic(tmp_path, monkeypatch):
    model = TwoLayer()
    U.save_checkpoint(_state(model, 1), str(tmp_path))
    good = (tmp_path / "model.pth.tar-1").read_bytes()

    real_save = torch.save

    def crashing_save(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        U.save_checkpoint(_state(model, 1), str(tmp_path))
    monkeypatch.setattr(torch, "save", real_save)
    assert (tmp_path / "model.pth.tar-1").read_bytes() == good
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "model.pth.tar-1"]  # no temp files left


class Opaque:
    """A plain Python object: torch.load(weights_only=True) must refuse it."""


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(ValueError, match="None"):
        U.load_checkpoint(None)
    missing = tmp_path / "nothing.pth"
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        U.load_checkpoint(str(missing))

    objfile = tmp_path / "obj.pth"
    torch.save({"sched": Opaque()}, objfile)
    with pytest.raises(pickle.UnpicklingError, match="not a weights-only checkpoint"):
        U.load_checkpoint(str(objfile))

    torch.save({"w": torch.zeros(64)}, tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(RuntimeError, match="trunc.pth"):
        U.load_checkpoint(str(tmp_path / "trunc.pth"))
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(RuntimeError, match="not a readable torch checkpoint"):
        U.load_checkpoint(str(tmp_path / "empty.pth"))


def test_resume_from_checkpoint_restores_everything(tmp_path, capsys):
    from dassl.config import get_cfg_default
    from dassl.optim import build_lr_scheduler, build_optimizer

    cfg = get_cfg_default()
    cfg.OPTIM.NAME = "sgd"
    cfg.OPTIM.LR_SCHEDULER = "cosine"
    cfg.OPTIM.WARMUP_EPOCH = 1
    cfg.OPTIM.WARMUP_TYPE = "constant"

    torch.manual_seed(0)
    model = TwoLayer()
    optim = build_optimizer(model, cfg.OPTIM)
    sched = build_lr_scheduler(optim, cfg.OPTIM)
    for _ in range(3):
        model.head(model.backbone(torch.randn(2, 3))).sum().backward()
        optim.step()
        sched.step()
    U.save_checkpoint(
        {"state_dict": model.state_dict(), "epoch": 3, "optimizer": optim.state_dict(),
         "scheduler": sched.state_dict(), "val_result": None},
        str(tmp_path),
    )

    fresh = TwoLayer()
    fresh_optim = build_optimizer(fresh, cfg.OPTIM)
    fresh_sched = build_lr_scheduler(fresh_optim, cfg.OPTIM)
    capsys.readouterr()
    epoch = U.resume_from_checkpoint(str(tmp_path), fresh, fresh_optim, fresh_sched)
    out = capsys.readouterr().out.splitlines()
    assert epoch == 3
    assert out == [
        f'Loading checkpoint from "{tmp_path / "model.pth.tar-3"}"',
        "Loaded model weights",
        "Loaded optimizer",
        "Loaded scheduler",
        "Previous epoch: 3",
    ]
    assert torch.equal(fresh.head.weight, model.head.weight)
    assert fresh_optim.param_groups[0]["lr"] == pytest.approx(optim.param_groups[0]["lr"])
    sched.step()
    fresh_sched.step()
    assert fresh_sched.get_last_lr() == pytest.approx(sched.get_last_lr())

    with pytest.raises(FileNotFoundError, match="checkpoint"):
        U.resume_from_checkpoint(str(tmp_path / "elsewhere"), fresh)


def test_rng_state_round_trip(tmp_path):
    def draw():
        return (
            [random.random() for _ in range(3)] + [random.gauss(0, 1)],
            np.random.rand(3).tolist() + [float(np.random.randn())],
            torch.rand(3).tolist() + torch.randn(1).tolist(),
        )

    U.set_random_seed(11)
    draw()
    random.gauss(0, 1)  # leave a cached gaussian in python's state
    np.random.randn()
    state = torchtools.get_rng_state()
    first = draw()
    second = draw()
    assert first != second

    torchtools.set_rng_state(state)
    assert draw() == first

    torch.save({"rng_state": state}, tmp_path / "rng.pt")
    reloaded = torch.load(tmp_path / "rng.pt", weights_only=True)["rng_state"]
    torchtools.set_rng_state(reloaded)
    assert draw() == first
    assert draw() == second

    with pytest.raises(ValueError, match="get_rng_state"):
        torchtools.set_rng_state({"seed": 1})


# ------------------------------------------------------------------------------------- nn helpers


def test_load_pretrained_weights_partial(tmp_path, capsys):
    src = TwoLayer()
    state = {"module." + k: v for k, v in src.state_dict().items()}
    state["module.head.weight"] = torch.zeros(5, 5)  # wrong shape: discarded
    state["extra.bias"] = torch.zeros(1)  # unknown key: discarded
    torch.save({"state_dict": state}, tmp_path / "w.pth")

    dst = TwoLayer()
    head_before = dst.head.weight.clone()
    U.load_pretrained_weights(dst, str(tmp_path / "w.pth"))
    out = capsys.readouterr().out
    assert "Successfully loaded pretrained weights" in out
    assert "'head.weight'" in out and "'extra.bias'" in out
    assert torch.equal(dst.backbone.weight, src.backbone.weight)
    assert torch.equal(dst.head.weight, head_before)

    torch.save({"nothing": torch.zeros(1)}, tmp_path / "none.pth")
    with pytest.warns(UserWarning, match="Cannot load"):
        U.load_pretrained_weights(dst, str(tmp_path / "none.pth"))


def test_layer_helpers():
    model = TwoLayer()
    assert U.count_num_param(model) == 3 * 4 + 4 + 4 * 2 + 2
    assert U.count_num_param(params=model.head.parameters()) == 4 * 2 + 2
    U.open_specified_layers(model, "head")
    assert model.head.training and not model.backbone.training
    assert all(p.requires_grad for p in model.head.parameters())
    assert not any(p.requires_grad for p in model.backbone.parameters())
    with pytest.raises(ValueError, match="neck"):
        U.open_specified_layers(model, ["neck"])
    U.open_all_layers(model)
    assert all(p.requires_grad for p in model.parameters()) and model.backbone.training

    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Linear(2, 2))
    with torch.no_grad():
        net[1].weight.fill_(5.0)
        net[2].bias.fill_(5.0)
    U.init_network_weights(net, init_type="normal", gain=0.02)
    assert torch.all(net[1].weight == 1.0) and torch.all(net[2].bias == 0.0)
    assert net[0].weight.abs().max() < 0.2
    with pytest.raises(ValueError, match="init_type"):
        U.init_network_weights(net, init_type="zeros")
