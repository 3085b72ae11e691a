"""Points on this machine, each in a worker process (loky, the pool joblib uses)."""

import collections
import concurrent.futures
import os
import re
import threading
import time
from typing import Iterator

import joblib
from joblib.externals.loky import ProcessPoolExecutor
from joblib.externals.loky.process_executor import BrokenProcessPool

from memo.store import claims
from memo.backends.base import Backend, BackendError
from memo.store.records import Store
from memo.backends.task import THREAD_VARIABLES
from memo.run.groups import plan, run_unit
from memo.run.worker import Job, Outcome, record_lost, recorded_since

ENV = ("MEMO_ROOT", "MEMO_DATASETS")  # what a reused worker must see as run.py does
BARREN = 3  # pool deaths in a row with no point started or finished, then give up
CHUNK, CHUNK_S = 32, 0.05  # at most points per chunk; seconds of work aimed at per chunk
PER_POINT_S = 0.001  # a point's cost beyond its trial (claim, record)
# How often a worker looks whether run.py is gone: a rerun started at once (~0.15 s to
# its first look at the claims) must find the dead run's workers gone, not running.
WATCH_S = 0.05
# Most worker processes per core: more only share the cores thinner (and loky's semaphores
# overflow at 2**31).
MAX_PER_CORE = 16
_pool: dict = {}  # (workers, threads) -> the executor, reused by later runs in this process


class PoolDied(Exception):
    """A worker process died; the pool is gone with the points it had been given."""

    def __init__(self, points: list, why: str):
        super().__init__(why)
        self.points, self.why = points, why


class JoblibBackend(Backend):
    """``--tasks N`` worker processes (-1: one per core); ``--tasks 1`` one worker, so that
    a point that kills its process is a record as with more. (``--backend inline`` runs
    points in run.py's own process, where a debugger sees the trial.)

    A worker that dies (killed, out of memory, a crash in C) takes the pool down with it.
    The points that were running (their claims, memo/store/claims.py, are left by the dead) then
    run again one at a time, each in a worker of its own: the one that dies again gets an
    error record (memo.run.worker.record_lost), the others their results; points not started
    yet go back to the queue, and the rest of the grid goes on in parallel. Workers watch
    run.py and exit when it dies (SIGKILL, the OOM killer), so none runs on unwatched.
    """

    name = "joblib"

    def check(self) -> None:
        self.check_workers_and_no_args()
        most = MAX_PER_CORE * joblib.cpu_count()
        if self.tasks > most:
            raise BackendError(
                f"--tasks {self.tasks}: at most {most} worker processes here "
                f"({MAX_PER_CORE} per core); give fewer, or -1 for one per core"
            )

    def workers(self) -> int:
        return joblib.effective_n_jobs(self.tasks)

    def threads(self) -> int:
        # Split the cores between the workers so parallel points do not oversubscribe.
        return max(1, joblib.cpu_count() // self.workers())

    def run(self, job: Job, points: list) -> Iterator[Outcome]:
        queue, barren = collections.deque(plan(job.trial, points, job.group, self.workers())), 0
        while queue:
            progress, suspects = False, []
            try:
                for outcome in in_pool(job, queue, self.workers()):
                    progress = True
                    yield outcome
                return
            except PoolDied as death:
                why, store = death.why, Store(job.experiment, job.results_dir)
                for point in death.points:  # in flight when the pool died
                    found = claims.holder(claims.claim_path(store.dir, point.id))
                    if found and not found[0].fresh():  # its worker died running it
                        suspects.append(point)
                    elif recorded_since(store, point.id, job.since):  # done, not reported
                        progress = True
                        yield recorded(store, point)
                    else:  # not started yet (or run by another process now)
                        queue.appendleft([point])
            for point in suspects:  # each alone now: the one that dies again is the cause
                try:
                    (outcome,) = in_pool(job, collections.deque([[point]]), 1)
                except PoolDied as again:
                    outcome = record_lost(job, point, again.why)
                yield outcome
            barren = 0 if progress or suspects else barren + 1
            if barren == BARREN:
                raise BackendError(f"worker processes keep dying before they run a point ({why})")


def in_pool(job: Job, queue: collections.deque, workers: int) -> Iterator[Outcome]:
    """Run the units of ``queue`` (lists of points, memo.run.groups.plan; taken from it) in
    ``workers`` processes, yielding each Outcome as it comes; PoolDied with the points in
    flight if a worker dies.

    Quick units go in chunks (up to :data:`CHUNK`, about :data:`CHUNK_S` of work each),
    so that sending them costs less than running them."""
    pool = executor(workers, job.threads)
    env = {k: os.environ[k] for k in ENV if k in os.environ}
    flying: dict = {}  # future -> its chunk of points
    took = CHUNK_S  # seconds per unit, as the last chunk took
    try:
        while queue or flying:
            while queue and len(flying) < 2 * workers:  # one more each, so none waits
                fair = -(-len(queue) // workers)  # the rest shared out
                size = max(1, min(CHUNK, fair, int(CHUNK_S / max(took, 1e-6))))
                chunk = [queue.popleft() for _ in range(size)]
                flying[pool.submit(work, job, chunk, env)] = chunk
            done, _ = concurrent.futures.wait(flying, return_when="FIRST_COMPLETED")
            died = None
            for future in done:
                try:
                    outcomes = future.result()
                except BrokenProcessPool as e:  # TerminatedWorkerError is one
                    died = e
                    continue
                flown = flying.pop(future)
                took = sum(o.wall_time for o in outcomes) / len(flown) + PER_POINT_S
                yield from outcomes
            if died is not None:
                drop(workers, job.threads)
                flown = [p for chunk in flying.values() for unit in chunk for p in unit]
                raise PoolDied(flown, exit_codes(died))
    except BaseException:  # Ctrl-C, a full disk: stop the workers, leave their points
        # Only workers still running a point are killed: a needless kill leaks the pool's
        # semaphores, and loky's resource tracker then warns about them on stderr at exit.
        if any(not future.done() for future in flying):
            drop(workers, job.threads)
        raise


def executor(workers: int, threads: int):
    """This process's pool of ``workers`` processes with ``threads`` BLAS threads each."""
    key = (workers, threads)
    pool = _pool.get(key)
    if pool is None or pool._flags.broken:
        for old in list(_pool):
            drop(*old)
        # loky's resource tracker (started with the first pool, inheriting this environment)
        # cleans up the semaphores of killed workers at exit and warns about each on stderr,
        # after memo's own one-line message: keep that noise out of users' terminals.
        os.environ.setdefault("PYTHONWARNINGS", "ignore:resource_tracker:UserWarning")
        pool = ProcessPoolExecutor(
            max_workers=workers,
            env={name: str(threads) for name in THREAD_VARIABLES},
            initializer=watch_parent,
            initargs=(os.getpid(),),
        )
        _pool[key] = pool
    return pool


def drop(workers: int, threads: int) -> None:
    """Shut the pool down, killing its workers, and wait until they are gone."""
    pool = _pool.pop((workers, threads), None)
    if pool is not None:
        pool.shutdown(wait=True, kill_workers=True)


def work(job: Job, units: list, env: dict) -> list:
    """run_unit on each unit in a worker, with run.py's locations (a reused worker may be
    older than this run); the points' claims share a file (claims.sharing)."""
    os.environ.update(env)
    with claims.sharing():
        return [outcome for unit in units for outcome in run_unit(job, unit)]


def watch_parent(parent: int) -> None:
    """In each worker: exit as soon as run.py (``parent``) is gone, even mid-point; its
    claim is then stale and the next run does the point."""

    def watch():
        while os.getppid() == parent:
            time.sleep(WATCH_S)
        os._exit(70)

    if os.getppid() != parent:
        os._exit(70)
    threading.Thread(target=watch, name="memo-parent", daemon=True).start()


def exit_codes(error: Exception) -> str:
    """What loky says of the dead process, e.g. 'SIGKILL(-9): killed, out of memory?'."""
    codes = re.search(r"exit codes of the workers are \{(.*)\}", str(error))
    return f"{codes.group(1) if codes else 'exit code unknown'}: killed, out of memory?"


def recorded(store: Store, point) -> Outcome:
    """The outcome of a point recorded in this run, read back from its record."""
    record = store.read(point.id)
    return Outcome(point.id, record["status"], record.get("wall_time") or 0.0)
