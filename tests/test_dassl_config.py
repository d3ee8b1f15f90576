"""dassl.config: yacs merging semantics that CoOp-style train.py relies on (dassl-api.md §2)."""
import pytest
from yacs.config import CfgNode

from dassl.config import clean_cfg, get_cfg_default


def write_yaml(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_get_cfg_default_is_a_fresh_clone():
    cfg = get_cfg_default()
    assert isinstance(cfg, CfgNode)
    cfg.OPTIM.LR = 123.0
    assert get_cfg_default().OPTIM.LR == 0.0003
    # a few upstream defaults and the engine extensions
    assert get_cfg_default().INPUT.SIZE == (224, 224)
    assert get_cfg_default().OPTIM.STEPSIZE == (-1,)
    ext = get_cfg_default()
    assert ext.CONFIG_NAME == "" and ext.DATASET.SPLIT_SEED == 0 and ext.DATASET.TEST_SETS == ()
    assert ext.TEST.EVAL_FREQ == 0


def test_merge_from_file_coerces_values(tmp_path):
    cfg = get_cfg_default()
    cfg.merge_from_file(write_yaml(tmp_path, """
INPUT:
  SIZE: (32, 32)
  TRANSFORMS: ["random_flip", "normalize"]
OPTIM:
  NAME: "sgd"
  LR: 0.002
  WARMUP_CONS_LR: 1e-5
  STEPSIZE: [30]
  MAX_EPOCH: 5
DATASET:
  SOURCE_DOMAINS: ["photo"]
TEST:
  NO_TEST: False
"""))
    assert cfg.INPUT.SIZE == (32, 32)
    assert cfg.INPUT.TRANSFORMS == ("random_flip", "normalize")  # YAML list -> tuple default
    assert cfg.OPTIM.NAME == "sgd" and cfg.OPTIM.LR == 0.002
    assert isinstance(cfg.OPTIM.WARMUP_CONS_LR, float) and cfg.OPTIM.WARMUP_CONS_LR == 1e-5
    assert cfg.OPTIM.STEPSIZE == (30,)
    assert cfg.OPTIM.MAX_EPOCH == 5 and isinstance(cfg.OPTIM.MAX_EPOCH, int)
    assert cfg.DATASET.SOURCE_DOMAINS == ("photo",)
    assert cfg.TEST.NO_TEST is False


def test_merge_from_list_literal_eval():
    cfg = get_cfg_default()
    cfg.merge_from_list([
        "INPUT.SIZE", "(224, 224)",
        "USE_CUDA", "False",
        "DATALOADER.TRAIN_X.BATCH_SIZE", "16",
        "OPTIM.LR", "1e-3",
        "OPTIM.LR_SCHEDULER", "cosine",  # not a literal: stays a string
        "INPUT.PIXEL_MEAN", "(0.5, 0.5, 0.5)",  # tuple -> list default
        "DATASET.TARGET_DOMAINS", "['sketch', 'art']",
    ])
    assert cfg.INPUT.SIZE == (224, 224)
    assert cfg.USE_CUDA is False
    assert cfg.DATALOADER.TRAIN_X.BATCH_SIZE == 16
    assert cfg.OPTIM.LR == pytest.approx(1e-3)
    assert cfg.OPTIM.LR_SCHEDULER == "cosine"
    assert cfg.INPUT.PIXEL_MEAN == [0.5, 0.5, 0.5]
    assert cfg.DATASET.TARGET_DOMAINS == ("sketch", "art")


def test_type_mismatch_is_rejected():
    cfg = get_cfg_default()
    with pytest.raises(ValueError, match="Type mismatch"):
        cfg.merge_from_list(["OPTIM.MAX_EPOCH", "ten"])


def test_unknown_keys_rejected_from_list_and_file(tmp_path):
    cfg = get_cfg_default()
    with pytest.raises(AssertionError, match="Non-existent key"):
        cfg.merge_from_list(["OPTIM.LEARNING_RATE", "0.1"])
    with pytest.raises(KeyError, match="Non-existent config key"):
        cfg.merge_from_file(write_yaml(tmp_path, "OPTIM:\n  LEARNING_RATE: 0.1\n"))
    with pytest.raises(KeyError, match="Non-existent config key"):
        cfg.merge_from_file(write_yaml(tmp_path, "TRAINER:\n  COOP:\n    N_CTX: 4\n", "coop.yaml"))


def test_added_keys_then_merge_and_freeze(tmp_path):
    cfg = get_cfg_default()
    cfg.TRAINER.COOP = CfgNode()
    cfg.TRAINER.COOP.N_CTX = 16
    cfg.merge_from_file(write_yaml(tmp_path, "TRAINER:\n  COOP:\n    N_CTX: 4\n"))
    assert cfg.TRAINER.COOP.N_CTX == 4
    cfg.freeze()
    with pytest.raises(AttributeError):
        cfg.OPTIM.LR = 1.0


def test_clean_cfg_keeps_only_the_named_trainer():
    cfg = get_cfg_default()
    cfg.TRAINER.NAME = "DAEL"
    clean_cfg(cfg, "DAEL")
    assert set(cfg.TRAINER.keys()) == {"NAME", "DAEL"}
