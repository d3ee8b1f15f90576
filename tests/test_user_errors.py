"""Bad input ends with a message that names the file and the fix (exit status 2, no traceback);
anything else is a bug and keeps its traceback. Each case here was once a traceback or a bare
`error: state_dict`."""
import json

import pytest
import torch

import train
from test_engine import CrashOnEpoch, TinyLinearTrainer, _argv, _crash_before_second_epoch, tree  # noqa: F401


def _error(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err


def _first_run(tree, out):
    train.main(_argv(tree, out, epochs=1))


def test_a_damaged_results_json_names_the_file_and_the_fix(tree, tmp_path, capsys):
    out = tmp_path / "run"
    _first_run(tree, out)
    for content in ("", "{not json", "[1, 2]"):
        (out / "results.json").write_text(content)
        assert train.cli(_argv(tree, out, epochs=1)) == 2
        err = _error(capsys)
        assert f"{out / 'results.json'}" in err and "Move it away" in err


def test_a_checkpoint_without_state_dict_names_the_file(tree, tmp_path, capsys):
    fake = tmp_path / "fake" / "model"
    fake.mkdir(parents=True)
    torch.save({"weights": torch.zeros(2)}, fake / "model.pth.tar-1")
    argv = ["--eval-only", "--model-dir", str(tmp_path / "fake"), "--load-epoch", "1",
            *_argv(tree, tmp_path / "eval")]
    assert train.cli(argv) == 2
    err = _error(capsys)
    assert f"{fake / 'model.pth.tar-1'}" in err and "['state_dict', 'epoch']" in err and "['weights']" in err


def test_a_resume_skips_a_checkpoint_without_state_dict(tree, tmp_path, capsys):
    out = tmp_path / "run"
    _crash_before_second_epoch(tree, out)
    torch.save({"epoch": 1}, out / "model" / "model.pth.tar-1")
    capsys.readouterr()
    train.main(_argv(tree, out))
    assert "Skipping checkpoint" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text())["finished"]


def test_a_bug_keeps_its_traceback(tree, tmp_path):
    """Not every ValueError or KeyError is the user's: only the project's own error types are."""
    TinyLinearTrainer.crash_before_epoch = 0
    try:
        with pytest.raises(CrashOnEpoch):
            train.cli(_argv(tree, tmp_path / "run"))
    finally:
        TinyLinearTrainer.crash_before_epoch = None


def test_malformed_yaml_and_unknown_keys_name_the_source(tree, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("OPTIM:\n  LR: [0.1\n")
    assert train.cli(["--config-file", str(bad), *_argv(tree, tmp_path / "a")]) == 2
    assert f"--config-file '{bad}' is not valid YAML" in _error(capsys)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("OPTIM:\n  LEARNING_RATE: 0.1\n")
    assert train.cli(["--config-file", str(unknown), *_argv(tree, tmp_path / "b")]) == 2
    assert "OPTIM.LEARNING_RATE" in _error(capsys)
    assert train.cli(_argv(tree, tmp_path / "c", "OPTIM.NOPE", "1")) == 2
    assert "command-line override" in _error(capsys)


def test_an_output_path_that_is_a_file(tree, tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("a file")
    assert train.cli(_argv(tree, out)) == 2
    assert "is a file; pass another --output-dir" in _error(capsys)


def test_a_read_only_dataset_folder_points_to_split_dir(tree, tmp_path, capsys, monkeypatch):
    """Root ignores file modes here, so the refused write is simulated where the split is written."""
    import dassl.data.datasets.da.splits as splits

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", dst)

    monkeypatch.setattr(splits.os, "replace", refuse)
    assert train.cli(_argv(tree, tmp_path / "run")) == 2
    err = _error(capsys)
    assert "cannot write the split file" in err and "DATASET.SPLIT_DIR" in err


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_corrupt_image_under_an_existing_split_names_the_image(tree, tmp_path, capsys, workers):
    _first_run(tree, tmp_path / "first")  # makes the split files
    image = sorted((tree / "light" / "red").iterdir())[0]
    image.write_bytes(b"not a png")
    try:
        assert train.cli(_argv(tree, tmp_path / "run", "DATALOADER.NUM_WORKERS", workers)) == 2
        err = _error(capsys)
        assert f'Cannot read image "{image}"' in err and "Replace or remove it" in err
    finally:
        image.unlink()


def test_a_domain_with_an_empty_test_split_is_named(tree, tmp_path, capsys):
    _first_run(tree, tmp_path / "first")
    split = next(p for p in (tree / "splits").rglob("dark_test.txt"))
    split.write_text("")
    assert train.cli(_argv(tree, tmp_path / "run")) == 2
    err = _error(capsys)
    assert "dark" in err and "has no image" in err


def test_log_txt_receives_the_fatal_error(tree, tmp_path, capsys):
    out = tmp_path / "run"
    argv = _argv(tree, out, "OPTIM.LR", "1e38", "TRAIN.PRINT_FREQ", "100")
    assert train.cli(argv) == 1  # the weights overflow: a non-finite loss stops the run
    log = (out / "log.txt").read_text()
    fatal = [line for line in log.splitlines() if line.startswith("error:")]
    assert len(fatal) == 1 and "NaN" in fatal[0], log[-2000:]
