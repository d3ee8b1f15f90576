"""dassl.engine.run_folder: which keys make two runs different experiments, and the folder states."""
import json

import pytest

from dassl.config import get_cfg_default
from dassl.engine.run_folder import (
    FINISHED, NEW, UNFINISHED, RunFolderConflict, check_run_folder, config_differences, flatten,
)
from dassl.engine.run_record import cfg_to_dict


def test_flatten_gives_dotted_keys():
    assert flatten({"A": {"B": 1, "C": {"D": [2]}}, "E": "x"}) == {"A.B": 1, "A.C.D": [2], "E": "x"}


def test_differences_list_changed_added_and_removed_keys_but_not_paths():
    saved = {"OUTPUT_DIR": "a", "DATASET": {"ROOT": "/x", "NAME": "Toy"}, "OPTIM": {"LR": 0.1},
             "OLD": 1}
    current = {"OUTPUT_DIR": "b", "DATASET": {"ROOT": "/y", "NAME": "Toy"}, "OPTIM": {"LR": 0.2},
               "NEW": 2}
    assert config_differences(saved, current) == [
        ("NEW", None, 2), ("OLD", 1, None), ("OPTIM.LR", 0.1, 0.2)]
    # A key that merely starts like an ignored one is compared.
    assert config_differences({"VERBOSE_X": 1}, {"VERBOSE_X": 2}) == [("VERBOSE_X", 1, 2)]


def test_a_key_added_since_the_run_counts_only_when_set_away_from_its_default():
    """A run made before a key existed ran with the behaviour the key's default keeps."""
    saved = {"OPTIM": {"LR": 0.1}}
    defaults = {"OPTIM": {"LR": 0.002, "NEW_SWITCH": False}}
    assert config_differences(saved, {"OPTIM": {"LR": 0.1, "NEW_SWITCH": False}}, defaults) == []
    assert config_differences(saved, {"OPTIM": {"LR": 0.1, "NEW_SWITCH": True}}, defaults) == [
        ("OPTIM.NEW_SWITCH", None, True)]
    # Without the defaults every new key is a difference.
    assert config_differences(saved, {"OPTIM": {"LR": 0.1, "NEW_SWITCH": False}}) == [
        ("OPTIM.NEW_SWITCH", None, False)]


def _cfg(out, **changes):
    cfg = get_cfg_default()
    cfg.OUTPUT_DIR = str(out)
    for key, value in changes.items():
        node = cfg
        *path, leaf = key.split("__")
        for name in path:
            node = node[name]
        node[leaf] = value
    return cfg


def _write(out, cfg, finished):
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"finished": finished, "config": cfg_to_dict(cfg)}))


def test_folder_states(tmp_path):
    out = tmp_path / "run"
    assert check_run_folder(_cfg(out)) == NEW
    _write(out, _cfg(out), finished=False)
    assert check_run_folder(_cfg(out)) == UNFINISHED
    _write(out, _cfg(out), finished=True)
    assert check_run_folder(_cfg(out, USE_CUDA=False, DATASET__ROOT="/elsewhere")) == FINISHED


def test_conflict_names_the_keys_and_the_way_out(tmp_path):
    out = tmp_path / "run"
    _write(out, _cfg(out), finished=True)
    changed = _cfg(out, SEED=7, OPTIM__MAX_EPOCH=9)
    with pytest.raises(RunFolderConflict) as err:
        check_run_folder(changed)
    message = str(err.value)
    assert "finished run" in message and str(out) in message
    assert "OPTIM.MAX_EPOCH" in message and "SEED: -1 there, 7 now" in message
    assert "--output-dir" in message


def test_long_difference_lists_are_cut(tmp_path):
    out = tmp_path / "run"
    _write(out, _cfg(out), finished=True)
    saved = json.loads((out / "results.json").read_text())
    saved["config"]["EXTRA"] = {f"K{i:02d}": i for i in range(20)}
    (out / "results.json").write_text(json.dumps(saved))
    with pytest.raises(RunFolderConflict, match=r"\(and 12 more\)"):
        check_run_folder(_cfg(out))
