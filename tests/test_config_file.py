"""Config files with `_BASE_`: the base is merged first, relative paths, clear errors."""
import pytest

from dassl.config import get_cfg_default, merge_config_file


def write(path, text):
    path.write_text(text)
    return str(path)


def test_file_overrides_its_base_and_keeps_the_rest(tmp_path):
    write(tmp_path / "base.yaml", "OPTIM:\n  LR: 0.5\n  MAX_EPOCH: 7\nSEED: 3\n")
    (tmp_path / "sub").mkdir()
    child = write(tmp_path / "sub" / "child.yaml", "_BASE_: ../base.yaml\nOPTIM:\n  LR: 0.25\n")
    cfg = merge_config_file(get_cfg_default(), child)
    assert (cfg.OPTIM.LR, cfg.OPTIM.MAX_EPOCH, cfg.SEED) == (0.25, 7, 3)


def test_without_base_it_is_yacs_merge_from_file(tmp_path):
    path = write(tmp_path / "plain.yaml", "INPUT:\n  SIZE: (32, 32)\nOPTIM:\n  NAME: adam\n")
    ours, theirs = get_cfg_default(), get_cfg_default()
    merge_config_file(ours, path)
    theirs.merge_from_file(path)
    assert ours == theirs and tuple(ours.INPUT.SIZE) == (32, 32)


@pytest.mark.parametrize("text, error, message", [
    ("_BASE_: missing.yaml\n", FileNotFoundError, "missing.yaml.*does not exist"),
    ("_BASE_: 3\n", ValueError, "must be the path of another config file"),
    ("_BASE_: self.yaml\n", ValueError, "cycle"),
    ("NOT_A_KEY: 1\n", KeyError, "NOT_A_KEY"),
    ("- 1\n- 2\n", ValueError, "must hold a mapping"),
])
def test_bad_files_say_what_is_wrong(tmp_path, text, error, message):
    path = write(tmp_path / "self.yaml", text)
    with pytest.raises(error, match=message):
        merge_config_file(get_cfg_default(), path)


def test_every_shipped_config_loads():
    """Every file under configs/ merges (bases resolve, keys exist) on top of the trainer extensions."""
    import glob

    from trainers.config import extend_cfg

    paths = sorted(glob.glob("configs/**/*.yaml", recursive=True))
    assert paths
    for path in paths:
        merge_config_file(extend_cfg(get_cfg_default()), path)
