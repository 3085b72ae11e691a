"""Points as tasks of a dask cluster, whose workers pull the next point as they free up.

``--backend dask`` starts a ``LocalCluster`` of ``--tasks`` worker processes here, or,
given ``--scheduler ADDRESS`` (or dask's ``DASK_SCHEDULER_ADDRESS``), uses the cluster a
user runs; dask_jobs.py starts the workers as scheduler jobs. A task runs
:func:`memo.run.worker.run_point` on a point (quick points go a few to a task,
dask_points.py) on a worker, which writes its record into the shared results folder as
the other backends do; run.py hears the outcome for its progress bar.

A worker that dies under a point (killed, out of memory, past its walltime) costs the
point one try: the scheduler gives it to another worker, up to :data:`RETRIES` times more
(dask's ``distributed.scheduler.allowed-failures``; a cluster the user runs keeps its
own: set its ``worker-saturation`` to 1.0 there too, see :data:`SCHEDULER`), then the
point gets an error record (WorkerDied) and the rest of the grid goes on.
Ctrl-C cancels the points not started and shuts down the workers memo started, not those
of a cluster the user brought (whose running points finish and are recorded).
"""

import contextlib
import importlib
import logging
import os
import signal
from typing import Iterator

import joblib

from memo.backends.base import Backend, BackendError
from memo.backends.dask_points import run_on
from memo.run.worker import Job, Outcome

RETRIES = 2  # more tries for a point whose worker died under it (tries = RETRIES + 1)
SCHEDULER = {  # the scheduler memo starts (here or for dask-jobqueue)
    "distributed.scheduler.allowed-failures": RETRIES,
    # One point per worker thread at a time, the rest queued at the scheduler: a worker
    # pulls its next point when it frees up, and its death then counts against the point
    # it ran only (with dask's default 1.1, a second point waits on each worker and
    # shares the blame).
    "distributed.scheduler.worker-saturation": 1.0,
}


class DaskBackend(Backend):
    """``--tasks N`` workers of one thread each here (-1: one per core), or the workers of
    the cluster at ``--scheduler`` (then they, not --tasks, say how many points run)."""

    name = "dask"

    def check(self) -> None:
        self.check_workers_and_no_args()
        needs("distributed")
        if not self.scheduler:  # dask's own convention: DASK_SCHEDULER_ADDRESS, or its config
            import dask

            self.scheduler = dask.config.get("scheduler-address", None)
        if self.scheduler:
            from distributed.comm import parse_address, parse_host_port

            try:
                parse_host_port(parse_address(self.scheduler)[1])
            except ValueError as e:
                raise BackendError(
                    f"scheduler address {self.scheduler!r}: {e}; give it as tcp://HOST:PORT"
                ) from None

    def workers(self, points: int) -> int:
        """How many workers to start for ``points`` points."""
        return max(1, min(joblib.effective_n_jobs(self.tasks), points))

    def threads(self) -> int:
        if self.scheduler:  # each worker decides, from its cores (worker_threads)
            return 0
        return max(1, joblib.cpu_count() // joblib.effective_n_jobs(self.tasks))

    def interrupted_note(self, experiment: str, done: int) -> str:
        note = super().interrupted_note(experiment, done)
        if self.scheduler:  # dask cannot stop a task that has started
            note += f"; points already running at {self.scheduler} finish and are recorded"
        return note

    def run(self, job: Job, points: list) -> Iterator[Outcome]:
        if points:
            with self.connect(job, len(points)) as client:
                # A user's cluster: its workers now, as run_on looks them up.
                workers = 0 if self.scheduler else self.workers(len(points))
                yield from run_on(client, job, points, workers)

    @contextlib.contextmanager
    def connect(self, job: Job, points: int):
        """A dask Client of the user's cluster, or of one started for ``points`` points
        (shut down on leaving, whatever the reason)."""
        import dask
        from distributed import Client

        quiet()
        if self.scheduler:
            wait = dask.config.get("distributed.comm.timeouts.connect")
            try:
                client = Client(self.scheduler, timeout=wait, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as e:
                why = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise BackendError(f"cannot reach the dask scheduler {self.scheduler}: {why}")
            with client:
                print(f"dask: the cluster at {self.scheduler}; dashboard {client.dashboard_link}")
                if self.tasks != 1:
                    print(f"note: its workers, not --tasks {self.tasks}, say how many points run")
                yield client
            return
        cluster = self.start(job, points)
        with cluster, Client(cluster, set_as_default=False) as client:
            print(f"dask: dashboard {client.dashboard_link}")
            yield client
            self.settle(client, cluster)

    def settle(self, client, cluster) -> None:
        """Before memo's workers here shut down: let any worker restarting after a death
        finish starting (shut down midway, it prints a traceback in this terminal)."""
        with contextlib.suppress(TimeoutError, OSError):
            client.wait_for_workers(len(cluster.workers), timeout=10)

    def start(self, job: Job, points: int):
        """Start the cluster of memo's own workers for ``points`` points."""
        import dask
        from distributed import LocalCluster

        workers = self.workers(points)
        with dask.config.set(SCHEDULER):
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # a free port: two runs at once may each show one
                # No share of the memory each: as with joblib, a point may use what the
                # machine has, and the system's OOM killer, not dask, ends one that wants more.
                memory_limit=0,
            )
        threads = f"{job.threads} BLAS thread{'s' if job.threads > 1 else ''}"
        print(f"dask: {workers} workers here, {threads} each")
        return cluster


def quiet() -> None:
    """Keep dask's log lines (a worker restarted, a result computed again) out of the
    terminal: memo says what they mean (an error record, the progress bar). Errors of
    adaptive scaling (say, a job the scheduler refused) still show."""
    os.environ["DASK_LOGGING__DISTRIBUTED"] = "critical"  # for workers started from here
    names = [n for n in logging.root.manager.loggerDict if n.startswith("distributed")]
    for name in ["distributed", *names]:
        deploy = name.startswith("distributed.deploy")
        logging.getLogger(name).setLevel(logging.ERROR if deploy else logging.CRITICAL)


def needs(module: str) -> None:
    """Import ``module`` (dask's); BackendError, in one line, if it is not installed."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        importlib.import_module(module)
    except ImportError:
        raise BackendError(
            f"the dask backends need {module}: pip install -r requirements.txt"
        ) from None
    finally:  # dask_jobqueue, on import, makes Ctrl-C a silent exit with status 0
        if signal.getsignal(signal.SIGINT) is not handler:
            signal.signal(signal.SIGINT, handler)
