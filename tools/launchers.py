"""Run a list of runs: one after another, N at once (CPU threads or one GPU each), or as a SLURM job
array through submitit.

CLIP is frozen and the batches are small, so the unit of parallelism is the run, not the batch: every
run is one `train.py` process in its own folder, and the launchers only decide where each process
goes. Runs resume exactly and finished runs are skipped (train.py), so a launcher may be stopped and
started again, and a preempted SLURM task simply runs its command again (submitit requeues it). Two
workers can never train into one folder: train.py holds a lock on it (dassl/engine/run_lock.py).
"""
from __future__ import annotations

import os
import os.path as osp
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import count
from queue import Empty, SimpleQueue
from threading import Lock

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: Each run's console output (stdout and stderr of its process), appended across attempts.
CONSOLE_LOG = "console.txt"
LAUNCHERS = ("local", "gpus", "slurm")


@dataclass(frozen=True)
class RunSpec:
    """One run: what it is (label), where it writes, and the command that runs it from the repo root."""

    label: str
    output_dir: str
    command: tuple

    def shell(self) -> str:
        """The command as one shell line, run from the repository root."""
        return shlex.join(self.command)

    @property
    def log(self) -> str:
        return osp.join(self._abs(self.output_dir), CONSOLE_LOG)

    @staticmethod
    def _abs(path):
        return path if osp.isabs(path) else osp.join(REPO, path)


#: train.py's exit status when another process holds the run's folder (dassl/engine/run_lock.py).
HELD_ELSEWHERE = 75


@dataclass
class Outcome:
    spec: RunSpec
    ok: bool
    seconds: float
    log: str
    elsewhere: bool = False  # another process was running it: not failed, not done here


def execute(spec: RunSpec, env: dict | None = None) -> Outcome:
    """Run one command from the repository root, its console output appended to the run's log."""
    os.makedirs(osp.dirname(spec.log), exist_ok=True)
    start = time.time()
    with open(spec.log, "a") as f:
        rc = subprocess.call(list(spec.command), cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                             env=dict(os.environ, **(env or {})))
    return Outcome(spec, rc in (0, HELD_ELSEWHERE), time.time() - start, spec.log, rc == HELD_ELSEWHERE)


def progress_line(done: int, total: int, outcome: Outcome, detail: str = "") -> str:
    state = "running elsewhere" if outcome.elsewhere else ("ok" if outcome.ok else "FAILED")
    tail = f": {detail}" if detail else ""
    if not outcome.ok:
        tail += f" log: {outcome.log}"
    return f"[{done}/{total}] {state} {outcome.spec.label} ({outcome.seconds:.0f} s){tail}"


def run_local(specs, workers: int = 1, gpus=(), describe=None, threads: int = 0) -> list[Outcome]:
    """Run `specs` with `workers` processes at once (one GPU each when `gpus` lists device ids, else
    `threads` CPU threads each, default cores // workers), printing a progress line per run.
    `describe(outcome)`: extra text for that line (e.g. the run's accuracies)."""
    specs = list(specs)
    gpus = [str(g) for g in gpus]
    if gpus:
        workers = len(gpus)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    threads = str(threads or max(1, (os.cpu_count() or 1) // workers))
    queue = SimpleQueue()
    for spec in specs:
        queue.put(spec)
    lock = Lock()
    done = count(1)
    outcomes = []

    def work(worker):
        # A worker keeps its device for all of its runs and takes the next run when one ends.
        env = {"CUDA_VISIBLE_DEVICES": gpus[worker]} if gpus else {}
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        while True:
            try:
                spec = queue.get_nowait()
            except Empty:
                return
            outcome = execute(spec, env)
            detail = describe(outcome) if describe else ""
            with lock:
                outcomes.append(outcome)
                print(progress_line(next(done), len(specs), outcome, detail), flush=True)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, range(workers)))
    return outcomes


# --------------------------------------------------------------------------------------------------
# SLURM (submitit)
def _submitit():
    try:
        import submitit
    except ImportError as err:
        raise RuntimeError("the slurm launcher needs submitit: pip install submitit "
                           "(it is in requirements.txt)") from err
    return submitit


def _train_job_class():
    submitit = _submitit()

    class TrainJob(submitit.helpers.Checkpointable):
        """One run in one SLURM task. On preemption or timeout submitit calls checkpoint(), which
        requeues the same command: train.py resumes from the run's last checkpoint."""

        def __call__(self, spec: RunSpec) -> Outcome:
            return execute(spec)

    return TrainJob


@dataclass(frozen=True)
class SlurmOptions:
    """What `sbatch` is asked for, per task (one run per task)."""

    partition: str = ""
    time_min: int = 240
    gpus_per_task: int = 1
    cpus_per_task: int = 8
    mem_gb: int = 0
    account: str = ""
    array_parallelism: int = 32
    job_name: str = "ipclip"

    def executor_parameters(self) -> dict:
        params = {"name": self.job_name, "timeout_min": self.time_min, "gpus_per_node": self.gpus_per_task,
                  "cpus_per_task": self.cpus_per_task, "tasks_per_node": 1, "nodes": 1,
                  "slurm_array_parallelism": self.array_parallelism}
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.account:
            params["slurm_account"] = self.account
        if self.mem_gb:
            params["mem_gb"] = self.mem_gb
        return params


def slurm_executor(folder: str, options: SlurmOptions, cluster: str | None = None):
    """A submitit executor for `options`; cluster None picks SLURM where sbatch exists, "local" runs
    the tasks as local processes (tests), "slurm" forces SLURM."""
    submitit = _submitit()
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    executor.update_parameters(**options.executor_parameters())
    return executor


def submit(specs, executor) -> list:
    """Submit every run as one task of a job array; returns the submitit jobs."""
    specs = list(specs)
    if not specs:
        return []
    TrainJob = _train_job_class()
    return executor.map_array(TrainJob(), specs)


def wait(jobs, specs) -> list[Outcome]:
    """Each job's Outcome once it ends; a task that failed outside train.py (node failure, a
    cancelled job) counts as failed, with its submitit log."""
    outcomes = []
    total = len(jobs)
    for i, (job, spec) in enumerate(zip(jobs, specs), 1):
        try:
            outcome = job.result()
        except Exception as err:  # submitit raises the task's failure here
            print(f"task {job.job_id} of {spec.label} failed: {str(err).splitlines()[0] if str(err) else err}",
                  file=sys.stderr)
            outcome = Outcome(spec, False, 0.0, str(job.paths.stderr))
        outcomes.append(outcome)
        print(progress_line(i, total, outcome), flush=True)
    return outcomes


def summary(outcomes: list[Outcome]) -> str:
    """One line: runs done / failed, and the failed runs' logs."""
    failed = [o for o in outcomes if not o.ok]
    elsewhere = sum(o.elsewhere for o in outcomes)
    done = len(outcomes) - len(failed) - elsewhere
    line = f"{len(outcomes)} runs launched: {done} done, {len(failed)} failed"
    if elsewhere:
        line += f", {elsewhere} left to the process that holds them"
    if failed:
        line += "; logs: " + ", ".join(o.log for o in failed)
    return line
