"""Run folders that survive concurrent runs, crashes and hand edits: the per-run lock, unique
temporary files, the config on record before the first checkpoint, fallback from unreadable
checkpoints, and --resume of a folder without one."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

import train
from dassl.engine.run_folder import RunFolderConflict, clean_temporary_files
from dassl.engine.run_lock import LOCK_NAME, RunFolderLocked, RunLock
from dassl.utils.tools import atomic_write
from test_engine import TinyLinearTrainer, _argv, _crash_before_second_epoch, tree  # noqa: F401


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(folder, **holder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_NAME).write_text(json.dumps(holder))


def _weights(out, epoch):
    return torch.load(out / "model" / f"model.pth.tar-{epoch}", weights_only=True)["state_dict"]


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# --------------------------------------------------------------------------------------------------
# The lock
def test_a_held_folder_refuses_a_second_run_until_released(tmp_path):
    with RunLock(tmp_path / "run") as first:
        lock = json.loads((tmp_path / "run" / LOCK_NAME).read_text())
        assert lock["pid"] == os.getpid() and lock["host"] == socket.gethostname()
        with pytest.raises(RunFolderLocked, match=f"process {os.getpid()} on host"):
            RunLock(tmp_path / "run").acquire()
        assert first.held
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    with RunLock(tmp_path / "run"):
        pass


def test_a_stale_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path, capsys):
    _write_lock(tmp_path / "run", host=socket.gethostname(), pid=_dead_pid(), slurm={})
    with RunLock(tmp_path / "run"):
        assert json.loads((tmp_path / "run" / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert "no longer running" in capsys.readouterr().out


def test_a_lock_of_another_host_is_refused_with_the_way_out(tmp_path):
    _write_lock(tmp_path / "run", host="node-17", pid=_dead_pid(), slurm={})
    with pytest.raises(RunFolderLocked, match=r"host node-17.*delete .*\.run\.lock"):
        RunLock(tmp_path / "run").acquire()


def test_a_requeued_slurm_task_takes_over_its_own_lock(tmp_path, monkeypatch):
    ids = {"SLURM_JOB_ID": "4242", "SLURM_ARRAY_JOB_ID": "4240", "SLURM_ARRAY_TASK_ID": "2"}
    for key, value in ids.items():
        monkeypatch.setenv(key, value)
    _write_lock(tmp_path / "run", host="node-3", pid=1234, slurm=ids)
    with RunLock(tmp_path / "run"):
        pass
    # The same task's live process on this host (two launchers inside one job) keeps its lock.
    _write_lock(tmp_path / "run", host=socket.gethostname(), pid=os.getppid(), slurm=ids)
    with pytest.raises(RunFolderLocked, match="SLURM job 4242"):
        RunLock(tmp_path / "run").acquire()
    # Another task of the same array is another run: refused.
    _write_lock(tmp_path / "run", host="node-3", pid=1234, slurm=dict(ids, SLURM_ARRAY_TASK_ID="3"))
    with pytest.raises(RunFolderLocked, match="SLURM job 4242"):
        RunLock(tmp_path / "run").acquire()


def test_train_into_a_folder_held_by_a_live_run_exits_without_writing(tree, tmp_path, capsys):
    out = tmp_path / "run"
    _write_lock(out, host=socket.gethostname(), pid=os.getppid(), slurm={})
    assert train.cli(_argv(tree, out)) == RunFolderLocked.EXIT_STATUS  # launchers: running elsewhere
    assert "is in use by process" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == [LOCK_NAME]


# --------------------------------------------------------------------------------------------------
# Temporary files
def test_overlapping_writers_each_write_their_own_temporary_file(tmp_path):
    """Writer B starts and finishes while writer A is half-way: both files stay whole."""
    target = tmp_path / "results.json"
    temporaries = []

    def write_b(tmp):
        temporaries.append(tmp)
        with open(tmp, "w") as f:
            json.dump({"writer": "B"}, f)

    def write_a(tmp):
        temporaries.append(tmp)
        with open(tmp, "w") as f:
            f.write('{"writer": ')
            atomic_write(target, write_b)  # B runs inside A's write
            f.write('"A"}')

    atomic_write(target, write_a)
    assert temporaries[0] != temporaries[1]
    assert json.loads(target.read_text()) == {"writer": "A"}
    assert os.listdir(tmp_path) == ["results.json"]


def test_leftover_temporary_files_are_removed_on_rerun(tree, tmp_path, capsys):
    out = tmp_path / "run"
    _crash_before_second_epoch(tree, out)
    leftovers = [out / "model" / ".model.pth.tar-2.x1y2z3_4.tmp", out / ".results.json.abcdefgh.tmp",
                 out / "results.json.tmp"]
    for path in leftovers:
        path.write_text("torn")
    kept = out / "notes.tmp"
    kept.write_text("the user's")
    capsys.readouterr()
    train.main(_argv(tree, out))
    assert not any(p.exists() for p in leftovers) and kept.exists()
    assert "Removed 3 temporary file(s)" in capsys.readouterr().out
    assert clean_temporary_files(out) == []


# --------------------------------------------------------------------------------------------------
# The config on record before the first checkpoint
def test_a_run_killed_before_its_first_checkpoint_still_refuses_another_config(tree, tmp_path):
    out = tmp_path / "run"
    TinyLinearTrainer.crash_before_epoch = 0
    try:
        with pytest.raises(Exception, match="simulated crash before epoch 1"):
            train.main(_argv(tree, out))
    finally:
        TinyLinearTrainer.crash_before_epoch = None
    assert not (out / "model").exists()
    saved = json.loads((out / "results.json").read_text())
    assert saved["finished"] is False and saved["config"]["OPTIM"]["LR"] == 0.05
    assert not (out / LOCK_NAME).exists()  # released by the crash
    with pytest.raises(RunFolderConflict, match=r"OPTIM\.LR: 0\.05 there, 0\.1 now"):
        train.main(_argv(tree, out, "OPTIM.LR", "0.1"))


# --------------------------------------------------------------------------------------------------
# Unreadable checkpoints
def _crash_before_third_epoch(tree, out):
    TinyLinearTrainer.crash_before_epoch = 2
    try:
        with pytest.raises(Exception, match="simulated crash before epoch 3"):
            train.main(_argv(tree, out, epochs=3))
    finally:
        TinyLinearTrainer.crash_before_epoch = None


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_resume_falls_back_to_the_newest_readable_checkpoint(tree, tmp_path, damage, capsys):
    clean = tmp_path / "clean"
    train.main(_argv(tree, clean, epochs=3))
    out = tmp_path / "crashed"
    _crash_before_third_epoch(tree, out)
    newest = out / "model" / "model.pth.tar-2"
    assert (out / "model" / "checkpoint").read_text().strip() == newest.name
    if damage == "truncate":
        newest.write_bytes(newest.read_bytes()[:100])
    else:
        newest.unlink()
    capsys.readouterr()
    train.main(_argv(tree, out, epochs=3))
    log = capsys.readouterr().out
    assert f"Skipping checkpoint {newest}" in log and "Previous epoch: 1" in log
    _assert_same_weights(_weights(clean, 3), _weights(out, 3))
    res = json.loads((out / "results.json").read_text())
    assert res["finished"] and [e["epoch"] for e in res["epochs"]] == [1, 2, 3]


def test_no_readable_checkpoint_starts_over_and_says_so(tree, tmp_path, capsys):
    clean = tmp_path / "clean"
    train.main(_argv(tree, clean))
    out = tmp_path / "crashed"
    _crash_before_second_epoch(tree, out)
    (out / "model" / "model.pth.tar-1").write_bytes(b"")
    capsys.readouterr()
    train.main(_argv(tree, out))
    assert "No readable checkpoint left, train from scratch" in capsys.readouterr().out
    _assert_same_weights(_weights(clean, 2), _weights(out, 2))


def test_resume_from_a_folder_without_checkpoint_is_refused(tree, tmp_path, capsys):
    empty = tmp_path / "not_a_run"
    empty.mkdir()
    out = tmp_path / "run"
    assert train.cli(["--resume", str(empty), *_argv(tree, out)]) == 2
    assert f"--resume {empty}: no readable checkpoint there" in capsys.readouterr().err
    assert not (out / "model").exists()
