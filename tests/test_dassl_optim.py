"""dassl.optim: optimizer mapping and the per-epoch lr sequences of dassl-api.md §3.8."""
import math
import warnings

import pytest
import torch
import torch.nn as nn

from dassl.config import get_cfg_default
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.optim.lr_scheduler import AVAI_SCHEDS, ConstantWarmupScheduler, LinearWarmupScheduler
from dassl.optim.optimizer import AVAI_OPTIMS
from dassl.optim.radam import RAdam


def optim_cfg(**overrides):
    cfg = get_cfg_default().OPTIM
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def lr_sequence(cfg, model=None):
    """lr in effect during each epoch 0..MAX_EPOCH-1, then the lr after the last step."""
    model = model or nn.Linear(2, 2)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_lr_scheduler(optimizer, cfg)
    lrs = []
    for _ in range(cfg.MAX_EPOCH):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def cosine(base_lr, t, t_max):
    return base_lr * (1 + math.cos(math.pi * t / t_max)) / 2


def assert_lrs(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a == pytest.approx(e, rel=1e-9, abs=1e-12)


# ------------------------------------------------------------------ lr sequences (§3.8 [run])


def test_coop_style_constant_warmup_cosine():
    cfg = optim_cfg(NAME="sgd", LR=0.002, LR_SCHEDULER="cosine", MAX_EPOCH=10,
                    WARMUP_EPOCH=1, WARMUP_TYPE="constant", WARMUP_CONS_LR=1e-5)
    expected = [1e-5] + [cosine(0.002, t, 10) for t in range(9)] + [cosine(0.002, 9, 10)]
    lrs = lr_sequence(cfg)
    assert_lrs(lrs, expected)
    # the numbers printed in the spec
    spec = [1e-5, 0.002, 0.00195106, 0.00180902, 0.00158779, 0.00130902, 0.001,
            0.000690983, 0.000412215, 0.000190983, 4.89e-5]
    assert lrs == pytest.approx(spec, rel=2e-3)
    assert lrs[-1] > 0


def test_cosine_without_warmup():
    cfg = optim_cfg(NAME="sgd", LR=0.002, LR_SCHEDULER="cosine", MAX_EPOCH=5)
    assert_lrs(lr_sequence(cfg), [cosine(0.002, t, 5) for t in range(6)])


def test_cosine_linear_warmup():
    cfg = optim_cfg(NAME="sgd", LR=0.002, LR_SCHEDULER="cosine", MAX_EPOCH=5,
                    WARMUP_EPOCH=2, WARMUP_TYPE="linear", WARMUP_MIN_LR=1e-5)
    expected = [1e-5, 0.002 * 1 / 2, 0.002, cosine(0.002, 1, 5), cosine(0.002, 2, 5), cosine(0.002, 3, 5)]
    lrs = lr_sequence(cfg)
    assert_lrs(lrs, expected)
    assert lrs[:5] == pytest.approx([1e-5, 0.001, 0.002, 0.00180902, 0.00130902], rel=1e-5)


def test_cosine_constant_warmup_without_recount():
    cfg = optim_cfg(NAME="sgd", LR=0.002, LR_SCHEDULER="cosine", MAX_EPOCH=5,
                    WARMUP_EPOCH=1, WARMUP_TYPE="constant", WARMUP_RECOUNT=False)
    # The successor starts at t = 1 holding the base lr and steps with torch's recursive cosine
    # update lr_t = lr_{t-1} * (1 + cos(pi t / T)) / (1 + cos(pi (t - 1) / T)).
    expected = [1e-5, 0.002]
    for t in range(2, 6):
        expected.append(expected[-1] * (1 + math.cos(math.pi * t / 5)) / (1 + math.cos(math.pi * (t - 1) / 5)))
    lrs = lr_sequence(cfg)
    assert_lrs(lrs, expected)
    assert lrs == pytest.approx([1e-5, 0.002, 0.00144721, 0.000763932, 0.000211146, 0.0], rel=1e-5, abs=1e-12)


def test_single_step_default_and_multi_step():
    assert_lrs(lr_sequence(optim_cfg(NAME="sgd", LR=0.1, MAX_EPOCH=4)), [0.1] * 4 + [0.1 * 0.1])
    cfg = optim_cfg(NAME="sgd", LR=0.1, LR_SCHEDULER="multi_step", STEPSIZE=(2, 3), MAX_EPOCH=5)
    assert_lrs(lr_sequence(cfg), [0.1, 0.1, 0.01, 0.001, 0.001, 0.001])
    cfg = optim_cfg(NAME="sgd", LR=0.1, LR_SCHEDULER="single_step", STEPSIZE=(5, 2), MAX_EPOCH=4)
    assert_lrs(lr_sequence(cfg), [0.1, 0.1, 0.01, 0.01, 0.001])


def test_warmup_on_current_torch_emits_no_warnings():
    cfg = optim_cfg(NAME="sgd", LR=0.002, LR_SCHEDULER="cosine", MAX_EPOCH=3, WARMUP_EPOCH=1,
                    WARMUP_TYPE="constant")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lr_sequence(cfg)


# ------------------------------------------------------------------ warm-up scheduler state


@pytest.mark.parametrize("warmup_type, stop_after", [("constant", 1), ("linear", 1), ("linear", 4)])
def test_warmup_state_dict_is_plain_and_resumes(tmp_path, warmup_type, stop_after):
    cfg = optim_cfg(NAME="sgd", LR=0.002, LR_SCHEDULER="cosine", MAX_EPOCH=8,
                    WARMUP_EPOCH=2, WARMUP_TYPE=warmup_type)
    full = lr_sequence(cfg)

    model = nn.Linear(2, 2)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_lr_scheduler(optimizer, cfg)
    assert isinstance(scheduler, ConstantWarmupScheduler if warmup_type == "constant" else LinearWarmupScheduler)
    for _ in range(stop_after):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()
    assert isinstance(state["successor"], dict)
    torch.save({"scheduler": state, "optimizer": optimizer.state_dict()}, tmp_path / "ckpt.pt")

    loaded = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    model2 = nn.Linear(2, 2)
    optimizer2 = build_optimizer(model2, cfg)
    scheduler2 = build_lr_scheduler(optimizer2, cfg)
    optimizer2.load_state_dict(loaded["optimizer"])
    scheduler2.load_state_dict(loaded["scheduler"])
    resumed = []
    for _ in range(stop_after, cfg.MAX_EPOCH):
        resumed.append(optimizer2.param_groups[0]["lr"])
        optimizer2.step()
        scheduler2.step()
    resumed.append(optimizer2.param_groups[0]["lr"])
    assert_lrs(resumed, full[stop_after:])


def test_warmup_scheduler_input_errors():
    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    successor = torch.optim.lr_scheduler.StepLR(optimizer, 2)
    with pytest.raises(ValueError, match="warmup_epoch"):
        ConstantWarmupScheduler(optimizer, successor, 0, 1e-5)
    with pytest.raises(TypeError, match="successor"):
        LinearWarmupScheduler(optimizer, object(), 1, 1e-5)
    other = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="same optimizer"):
        ConstantWarmupScheduler(other, successor, 1, 1e-5)
    sched = ConstantWarmupScheduler(optimizer, successor, 1, 1e-5)
    with pytest.raises(TypeError, match="step\\(\\)"):
        sched.step(3)
    with pytest.raises(ValueError, match="successor"):
        sched.load_state_dict({"last_epoch": 0})


def test_scheduler_config_errors():
    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    assert AVAI_SCHEDS == ["single_step", "multi_step", "cosine"]
    with pytest.raises(ValueError, match="LR_SCHEDULER"):
        build_lr_scheduler(optimizer, optim_cfg(LR_SCHEDULER="poly"))
    with pytest.raises(TypeError, match="STEPSIZE"):
        build_lr_scheduler(optimizer, optim_cfg(LR_SCHEDULER="single_step", STEPSIZE=2.5))
    with pytest.raises(TypeError, match="STEPSIZE"):
        build_lr_scheduler(optimizer, optim_cfg(LR_SCHEDULER="multi_step", STEPSIZE=3))
    with pytest.raises(ValueError, match="WARMUP_TYPE"):
        build_lr_scheduler(optimizer, optim_cfg(WARMUP_EPOCH=1, WARMUP_TYPE="exp"))


# ------------------------------------------------------------------ optimizers


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(3, 3)
        self.classifier = nn.Linear(3, 2)


@pytest.mark.parametrize("name, cls", [
    ("adam", torch.optim.Adam), ("amsgrad", torch.optim.Adam), ("sgd", torch.optim.SGD),
    ("rmsprop", torch.optim.RMSprop), ("radam", torch.optim.RAdam), ("adamw", torch.optim.AdamW),
])
def test_optimizer_mapping(name, cls):
    cfg = optim_cfg(NAME=name, LR=0.01, WEIGHT_DECAY=0.1, ADAM_BETA1=0.8, ADAM_BETA2=0.99,
                    MOMENTUM=0.7, RMSPROP_ALPHA=0.95, SGD_NESTEROV=(name == "sgd"))
    optimizer = build_optimizer(Net(), cfg)
    assert type(optimizer) is cls
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.01 and group["weight_decay"] == 0.1
    if name in ("adam", "amsgrad", "radam", "adamw"):
        assert tuple(group["betas"]) == (0.8, 0.99)
    if name in ("adam", "amsgrad"):
        assert group["amsgrad"] is (name == "amsgrad")
    if name == "sgd":
        assert group["momentum"] == 0.7 and group["nesterov"] is True and group["dampening"] == 0
    if name == "rmsprop":
        assert group["momentum"] == 0.7 and group["alpha"] == 0.95
    assert sum(p.numel() for p in group["params"]) == sum(p.numel() for p in Net().parameters())


def test_optimizer_inputs():
    assert set(AVAI_OPTIMS) == {"adam", "amsgrad", "sgd", "rmsprop", "radam", "adamw"}
    assert RAdam is torch.optim.RAdam
    net = Net()
    with pytest.raises(ValueError, match="OPTIM.NAME"):
        build_optimizer(net, optim_cfg(NAME="lion"))

    params = [p for p in net.classifier.parameters()]
    optimizer = build_optimizer(params, optim_cfg(NAME="sgd"))
    assert len(optimizer.param_groups[0]["params"]) == 2

    staged = optim_cfg(NAME="sgd", LR=0.1, STAGED_LR=True, NEW_LAYERS=("classifier",), BASE_LR_MULT=0.5)
    optimizer = build_optimizer(net, staged)
    base, new = optimizer.param_groups
    assert base["lr"] == pytest.approx(0.05) and new["lr"] == pytest.approx(0.1)
    assert {id(p) for p in new["params"]} == {id(p) for p in net.classifier.parameters()}
    assert {id(p) for p in base["params"]} == {id(p) for p in net.backbone.parameters()}

    with pytest.raises(ValueError, match="head"):
        build_optimizer(net, optim_cfg(STAGED_LR=True, NEW_LAYERS=("head",)))
    with pytest.raises(TypeError, match="nn.Module"):
        build_optimizer(list(net.parameters()), staged)
    with pytest.warns(UserWarning, match="STAGED_LR is ignored"):
        optimizer = build_optimizer(net, staged, param_groups=[{"params": params, "lr": 0.3}])
    assert optimizer.param_groups[0]["lr"] == 0.3
