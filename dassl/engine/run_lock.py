"""One process per run folder: a lock file created atomically, naming who holds it.

Two workers started on the same run (two launchers, a script run twice by hand) would both train
from scratch into one folder, and the later would silently overwrite the earlier's checkpoints and
results. The lock (`OUTPUT_DIR/.run.lock`, created with O_CREAT | O_EXCL, so exactly one creator
wins) holds the host, the pid and, under SLURM, the job. A second run on a held folder stops with
a message naming the holder. A lock left by a process that died (killed, node crash) is taken
over when that can be known: the same host and a pid that no longer runs, or the same SLURM job
and array task (a preempted job that was requeued, possibly on another node).
"""
import json
import os
import os.path as osp
import socket
import time

from dassl.errors import UserError

LOCK_NAME = ".run.lock"
#: Guards the check-and-replace of a stale lock, so two runs cannot both take it over.
TAKEOVER_SUFFIX = ".takeover"
#: SLURM variables that identify one task of one job; a requeued job keeps them.
SLURM_IDENTITY = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID")


class RunFolderLocked(UserError, RuntimeError):
    """Another live process is running in this output folder."""

    #: train.py's exit status for it (EX_TEMPFAIL): the run is not failed, it runs elsewhere.
    EXIT_STATUS = 75


def holder_identity():
    """Who this process is: written into the lock, compared with a lock found in a folder."""
    slurm = {k: os.environ[k] for k in SLURM_IDENTITY if k in os.environ}
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm": slurm,
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def is_stale(holder, me):
    """True when the holder of a lock is known to be gone (see the module docstring)."""
    pid = holder.get("pid")
    same_host = holder.get("host") == me["host"]
    if same_host:  # this machine's processes can be looked at
        return isinstance(pid, int) and pid != me["pid"] and not _pid_alive(pid)
    # Another machine: only a requeued attempt of the same SLURM task knows its earlier one is gone
    # (two runs of one task on this host are told apart by their pids above).
    return bool(holder.get("slurm")) and holder.get("slurm") == me["slurm"]


def _read(path):
    """The holder recorded in a lock file, {} for a file being written or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _create(path, me):
    """Create the lock file if it does not exist; True if this call created it."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(me, f)
    return True


def _describe(holder, path):
    if not holder:
        return f"another process is creating {path}"
    job = holder.get("slurm", {}).get("SLURM_JOB_ID")
    job = f", SLURM job {job}" if job else ""
    return (f"process {holder.get('pid')} on host {holder.get('host')}{job}, running since "
            f"{holder.get('started', '?')}")


def lock_holder(output_dir):
    """Who holds the folder's lock, or None when it is free or its holder is known to be gone."""
    holder = _read(osp.join(output_dir, LOCK_NAME))
    if not holder and not osp.exists(osp.join(output_dir, LOCK_NAME)):
        return None
    return None if holder and is_stale(holder, holder_identity()) else holder


class RunLock:
    """`with RunLock(output_dir):` holds the folder for the duration of one run."""

    def __init__(self, output_dir):
        self.path = osp.join(output_dir, LOCK_NAME)
        self.me = holder_identity()
        self.held = False

    def acquire(self):
        os.makedirs(osp.dirname(self.path) or ".", exist_ok=True)
        if _create(self.path, self.me):
            self.held = True
            return self
        holder = _read(self.path)
        if holder and is_stale(holder, self.me) and self._take_over(holder):
            print(f"Took over the lock of {self.path} left by {_describe(holder, self.path)}, "
                  "which is no longer running")
            self.held = True
            return self
        raise RunFolderLocked(
            f"{osp.dirname(self.path)} is in use by {_describe(holder, self.path)}: two runs in one "
            "folder would overwrite each other's checkpoints and results. Wait for that run, or "
            "pass another --output-dir. If that process is gone (a crashed node), delete "
            f"{self.path} and run again."
        )

    def _take_over(self, holder):
        """Replace a stale lock, once: the takeover guard makes the check and the replace one step."""
        guard = self.path + TAKEOVER_SUFFIX
        if not _create(guard, self.me):
            # A takeover in progress, or one whose process died in these few lines.
            if not is_stale(_read(guard), self.me):
                return False
            os.remove(guard)
            if not _create(guard, self.me):
                return False
        try:
            if _read(self.path) != holder:  # someone else took it over meanwhile
                return False
            os.remove(self.path)
            return _create(self.path, self.me)
        finally:
            os.remove(guard)

    def release(self):
        if self.held and _read(self.path) == self.me:
            os.remove(self.path)
        self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
