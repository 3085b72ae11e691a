"""How points travel to dask workers and their outcomes back (the dask backends' runner).

A task runs one unit (a point, or a group of points that share work: memo.run.groups), or
for quick units a chunk of a few (up to :data:`CHUNK_S` of work, sized as the joblib
backend sizes its chunks), so that dask's few milliseconds a
task (scheduler, network, worker) do not dominate a grid of 1 ms fits. About two tasks per
worker are in flight, the rest wait here: a worker that frees up takes the next one at
once. A chunk whose workers kept dying under it is split, each of its points then runs
alone; a point whose workers keep dying while it runs alone gets an error record
(WorkerDied). Waiting has a deadline: once no worker has been alive for ``no_worker_s``
seconds (they died and did not come back, or never started), the run says so in one line
and stops, its points not run left pending.
"""

import collections
import concurrent.futures
import dataclasses
import os
import sys
import time
import uuid
from typing import Iterator

from tqdm import tqdm

from memo.backends.base import BackendError
from memo.backends.local import CHUNK, PER_POINT_S, recorded
from memo.store.records import Store
from memo.backends.task import using_threads
from memo.run.groups import plan, run_unit
from memo.run.worker import Job, Outcome, record_lost, recorded_since

ENV = ("MEMO_ROOT", "MEMO_DATASETS")  # what a worker must see as run.py does
CHUNK_S = 0.2  # seconds of work aimed at per task: dask's ~3 ms a task is then ~1.5 %
POLL_S = 0.1  # seconds at most between looks at the cluster (a task that ends wakes it)
LOOK_S = 1.0  # seconds between asking the scheduler whether a worker is alive


def run_on(
    client, job: Job, points: list, workers: int, no_worker_s: float | None
) -> Iterator[Outcome]:
    """Run the points on ``client``'s cluster, which has (or will have, scaling up) about
    ``workers`` one-point workers, yielding each Outcome as it comes; what is still in
    flight on leaving early (Ctrl-C, an error, no worker for ``no_worker_s`` seconds; None:
    wait for workers as long as it takes) is cancelled."""
    from distributed import as_completed

    env = {k: os.environ[k] for k in ENV if k in os.environ}
    queue = collections.deque(plan(job.trial, points, job.group, workers))
    alone = collections.deque()  # points of chunks whose workers died, to run one by one
    flying: dict = {}  # future -> its chunk of units
    took = CHUNK_S  # seconds a unit takes, as the last chunk said: the first go alone
    finished = as_completed(loop=client.loop, with_results=True, raise_errors=False)

    def send():
        capacity = max(workers, threads_of(client), 1)  # points that can run at once
        for _ in range(2 * capacity - len(flying)):
            if alone:
                chunk = [[alone.popleft()]]
            elif queue:
                fair = -(-len(queue) // capacity)  # the rest shared out
                size = max(1, min(CHUNK, fair, int(CHUNK_S / max(took, 1e-6))))
                chunk = [queue.popleft() for _ in range(size)]
            else:
                return
            key = f"{job.experiment}-{uuid.uuid4().hex}"  # the dashboard groups by experiment
            future = client.submit(work, job, chunk, env, key=key, pure=False)
            flying[future] = chunk
            finished.add(future)

    try:
        send()
        alive = looked = time.monotonic()  # when a worker was last seen alive; last asked
        while flying:
            batch = finished.next_batch(block=False)
            for future, result in batch:
                chunk = flying.pop(future)
                outcomes = outcomes_of(result, job, chunk, alone)
                if outcomes:
                    took = sum(o.wall_time for o in outcomes) / len(chunk) + PER_POINT_S
                yield from outcomes
            if batch:  # news from the cluster: the deadline counts from here
                alive = time.monotonic()
                send()
                continue
            now = time.monotonic()
            if now - looked >= LOOK_S:
                looked = now
                if threads_of(client):
                    alive = now
                elif no_worker_s is not None and now - alive > no_worker_s:
                    tqdm.write(no_worker_line(no_worker_s), file=sys.stderr)
                    return
            with finished.thread_condition:  # as_completed's own: notified as a task ends
                if not finished.has_ready():
                    finished.thread_condition.wait(POLL_S)
    finally:
        if flying:
            client.cancel(list(flying), force=True)


def no_worker_line(waited: float) -> str:
    """What a run says when it stops for want of workers."""
    return (
        f"error: no dask worker has been alive for {waited:g} s (they died and did not come"
        " back, or never started): stopped; the points without a record stay pending"
        " (MEMO_NO_WORKER_S sets this wait)"
    )


def threads_of(client) -> int:
    """The dask threads of the cluster's workers now (each runs a point)."""
    workers = client.scheduler_info().get("workers", {})
    return sum(w.get("nthreads", 1) for w in workers.values())


def outcomes_of(result, job: Job, chunk: list, alone: collections.deque) -> list:
    """The Outcomes of a finished task (a chunk of units) from ``result``: its value (a list
    of Outcomes), its error as (type, error, traceback), or CancelledError. Told by the
    result, not by the future's status, which may have moved on (its worker died since). The
    points of a chunk whose workers all died are put in ``alone`` to run one by one (no
    Outcome yet); a point alone gets an error record."""
    from distributed import KilledWorker

    points = [point for unit in chunk for point in unit]
    if isinstance(result, list):
        by_id = {point.id: point for point in points}
        return [fetched(job, by_id[found.id], found) for found in result]
    error = result if isinstance(result, BaseException) else result[1]
    if isinstance(error, KilledWorker):  # the scheduler gave up after the allowed deaths
        if len(points) > 1:
            alone.extend(points)
            return []
        return [record_lost(job, points[0], f"{killed(error)}; killed, out of memory or walltime?")]
    if isinstance(error, ModuleNotFoundError):
        raise BackendError(
            f"a dask worker cannot import {error.name!r}: start the workers in the project"
            f" folder ({os.getcwd()}) or with it on PYTHONPATH, in an environment with memo's"
            " requirements"
        )
    if isinstance(error, concurrent.futures.CancelledError):
        raise BackendError(f"dask cancelled point {points[0].id} (the cluster restarted?)")
    raise error  # DatasetDamaged, RecordWriteError: run.py says what they mean


def fetched(job: Job, point, found: Outcome) -> Outcome:
    """A point's Outcome as run.py should count it."""
    store = Store(job.experiment, job.results_dir)
    if found.status == "skipped" and recorded_since(store, point.id, job.since):
        # Done in this run, on a worker that died before its result was fetched (dask
        # ran the task again, and run_point found the record), or by a chunk that died.
        return recorded(store, point)
    return found


def killed(error) -> str:
    """What a KilledWorker says, short: how many workers died, the last one's address."""
    tries = getattr(error, "allowed_failures", 0) + 1
    last = getattr(error, "last_worker", None)
    where = f", the last {getattr(last, 'address', last)}" if last else ""
    return f"{tries} dask workers in turn died running it{where}"


def work(job: Job, units: list, env: dict) -> list:
    """On a worker: run the units with run.py's locations and this worker's threads."""
    os.environ.update(env)
    threads = job.threads or worker_threads()
    job = dataclasses.replace(job, threads=threads)
    with using_threads(threads):
        return [outcome for unit in units for outcome in run_unit(job, unit)]


def worker_threads() -> int:
    """BLAS threads for a point on a worker of a cluster the user runs: its cores shared
    between its dask threads (each runs a point)."""
    import joblib
    from distributed import get_worker

    return max(1, joblib.cpu_count() // get_worker().state.nthreads)
