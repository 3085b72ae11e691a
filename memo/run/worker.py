"""Run one point: call the trial, turn whatever happens into a record, store it.

Every backend calls :func:`run_point`, in whatever process it runs points. A trial
exception, a NaN metric, a metric named like a param or one of the record's own columns
(memo.store.RESERVED) or a timeout becomes a record with status "error" or "timeout";
only an interrupt (Ctrl-C, SIGTERM) leaves the point without a record, so it stays
pending and the next run does it. While it runs, the point is claimed (memo/store/claims.py):
a point another process runs, or recorded since the run was planned, is skipped.
A record that cannot be written (disk full) raises memo.store.RecordWriteError.
"""

import contextlib
import ctypes
import functools
import importlib.metadata
import math
import os
import platform
import signal
import socket
import subprocess
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from memo.run import point_progress
from memo.store import claims
from memo.store import paths
from memo.datasets import DatasetDamaged
from memo.run.point import Point
from memo.store.records import RESERVED, RecordWriteError, Store, error_line
from memo.run.trial_lookup import trial_module

PACKAGES = ("numpy", "scipy", "scikit-learn", "torch", "pandas", "joblib")


@dataclass(frozen=True)
class Job:
    """What every point of one run shares; small and picklable, sent to each worker."""

    experiment: str
    trial: str
    results_dir: str
    timeout: float | None  # seconds per point; None for no limit
    threads: int  # BLAS/torch threads each worker may use
    provenance: dict  # backend, git and package versions, taken once per run
    since: float | None = None  # time.time() when the run was planned: a record newer than
    # that (another run's) makes a failed point's rerun needless; None: only ok records do
    run: str | None = None  # a token of this run.py's: its claims of points (memo/store/claims.py)
    group: int | None = None  # the most points run as one group (memo/run/groups.py); 1: none


@dataclass(frozen=True)
class Outcome:
    """What the runner hears back about a finished point."""

    id: str
    status: str  # "ok" | "error" | "timeout", or "skipped" (run or recorded by another process)
    wall_time: float
    message: str = ""  # last line of the error, if any


class RunError(Exception):
    """The run cannot go on (a backend's: the scheduler refused the job, bad options); the
    message is one line for the user."""


class PointTimeout(Exception):
    """Raised inside a trial when its point's time limit has passed."""


def run_point(job: Job, point: Point) -> Outcome:
    """Claim the point, run the trial on it and store its record; skip it if another process
    holds its claim or has recorded it since the run was planned."""
    store = store_of(job)
    try:
        other = claims.take(store.dir, point.id, job.run)
    except OSError as e:
        raise RecordWriteError.of(f"the claim of point {point.id} ({e.filename})", e) from None
    if other is not None:
        return Outcome(point.id, "skipped", 0.0, f"running elsewhere ({other})")
    try:
        if recorded_since(store, point.id, job.since):
            return Outcome(point.id, "skipped", 0.0, "recorded by another run meanwhile")
        return run_claimed(job, point, store)
    finally:
        claims.release(store.dir, point.id)


def store_of(job: Job) -> Store:
    """The Store of the job's experiment (made once a process: a point's cost)."""
    return _store(job.experiment, job.results_dir)


_store = functools.lru_cache(maxsize=8)(Store)


def recorded_since(store: Store, point_id: str, since: float | None) -> bool:
    """Whether the point has an ok record, or any record written after ``since``."""
    found = store.recorded(point_id)
    return found is not None and (found[0] or (since is not None and found[1] >= since))


def run_claimed(job: Job, point: Point, store: Store) -> Outcome:
    """Run the trial on one point and store its record."""
    trial = trial_module(job.trial).trial
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    status, metrics, error = "ok", {}, None
    try:
        with time_limit(job.timeout), point_progress.reporting(store.dir, point.id):
            metrics = trial(dict(point.params))
        error = check_metrics(metrics, point.params)
        status = "error" if error else "ok"
    except PointTimeout:
        status, error = "timeout", f"PointTimeout: no result within {job.timeout:g} s"
    except DatasetDamaged:  # the user's data, not this point's result: the run stops
        raise
    except Exception:
        status, error = "error", traceback.format_exc()
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    return store_record(store, make_record(job, point, status, metrics, error, wall, cpu, started))


def store_record(store: Store, record: dict) -> Outcome:
    """Write the record (as an error record if its metrics are not JSON-ready)."""
    try:
        store.write(record)
    except (TypeError, ValueError) as e:  # the trial returned something JSON cannot hold
        record.update(status="error", metrics={}, error=f"metrics are not JSON-ready: {e}")
        store.write(record)
    return Outcome(record["id"], record["status"], record["wall_time"], error_line(record["error"]))


def record_lost(job: Job, point: Point, why: str) -> Outcome:
    """Store an error record for a point whose process died under it (killed, out of
    memory, a crash in C), so that a rerun does not die on it again; --retry-failed does."""
    error = f"WorkerDied: the process running this point died ({why})"
    Store(job.experiment, job.results_dir).write(make_record(job, point, "error", {}, error))
    return Outcome(point.id, "error", 0.0, error)


def make_record(job, point, status, metrics, error, wall=None, cpu=None, started=None) -> dict:
    """A point's record: what happened, and where and with what it ran."""
    return {
        "id": point.id,
        "experiment": job.experiment,
        "trial": job.trial,
        "status": status,
        "params": point.params,
        "seed": point.seed,
        "_index": point.index,
        "metrics": metrics if isinstance(metrics, dict) else {},
        "error": error,
        "wall_time": wall,
        "cpu_time": cpu,
        "started": started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "threads": job.threads,
        **job.provenance,
    }


def check_metrics(metrics, params: dict) -> str | None:
    """Why a trial's return value is not a valid result, or None if it is."""
    if not isinstance(metrics, dict):
        return f"TrialError: trial returned {type(metrics).__name__}, not a dict of metrics"
    for key, value in metrics.items():
        if key in RESERVED:
            return f"TrialError: metric {key!r} is reserved (a column of every record); rename it"
        if key in params:
            return f"TrialError: metric {key!r} has the name of a param; rename it"
        if isinstance(value, (float, np.floating)) and math.isnan(value):
            return f"TrialError: metric {key!r} is NaN"
    return None


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise PointTimeout in the block after ``seconds``: by SIGALRM in a main thread, and in
    another (a dask worker's) as an exception set on the thread from a timer.

    A long call into C (one huge matrix product, a sleep) is interrupted only when it
    returns; SIGALRM interrupts a sleep, the timer's exception waits for its end.
    """
    if not seconds:
        yield
    elif threading.current_thread() is threading.main_thread():
        with alarm(seconds):
            yield
    else:
        with thread_timer(seconds):
            yield


@contextlib.contextmanager
def alarm(seconds: float):
    def expire(signum, frame):
        raise PointTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def thread_timer(seconds: float):
    thread, lock, state = threading.get_ident(), threading.Lock(), {"running": True}

    def expire():
        with lock:  # never after the block has ended
            if state["running"]:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(thread), ctypes.py_object(PointTimeout)
                )

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            state["running"] = False
        timer.cancel()


def provenance(backend: str) -> dict:
    """Backend name, git commit and dirty flag, and package versions, for every record."""
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {"backend": backend, "git": git_state(), "versions": versions}


def git_state() -> dict:
    """The code's git commit and whether tracked files differ from it."""

    def git(*args):
        return subprocess.run(
            ["git", "-C", str(paths.PROJECT), *args], capture_output=True, text=True, timeout=30
        )

    try:
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    if head.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
