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
point gets an error record (WorkerDied) and the rest of the grid goes on. Once no worker
has been alive for ``MEMO_NO_WORKER_S`` seconds (:data:`NO_WORKER_S`), the run says so and
stops, the points not run left pending (dask_points.py).
Ctrl-C cancels the points not started and shuts down the workers memo started, not those
of a cluster the user brought (whose running points finish and are recorded); memo's
workers here leave the Ctrl-C of the terminal to run.py (:func:`sigint_blocked`).
An address at ``--scheduler`` must answer as a dask scheduler within :data:`PROBE_S`
seconds (:func:`probe`), or the run ends there in one line.
"""

import asyncio
import contextlib
import importlib
import logging
import multiprocessing.resource_tracker
import os
import signal
import threading
from typing import Iterator

import joblib

from memo.backends.base import Backend, BackendError
from memo.backends.dask_points import run_on
from memo.run.worker import Job, Outcome

RETRIES = 2  # more tries for a point whose worker died under it (tries = RETRIES + 1)
NO_WORKER_S = 120.0  # MEMO_NO_WORKER_S: stop once no worker has been alive this long
PROBE_S = 5.0  # seconds an address at --scheduler has to answer as a dask scheduler
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
    no_worker_s: float | None = NO_WORKER_S  # None: wait for workers as long as it takes

    def check(self) -> None:
        self.check_workers_and_no_args()
        needs("distributed")
        self.no_worker_s = no_worker_wait()
        if not self.scheduler:  # dask's own convention: DASK_SCHEDULER_ADDRESS, or its config
            import dask

            self.scheduler = dask.config.get("scheduler-address", None)
        if self.scheduler:
            from distributed.comm import parse_address, parse_host_port, registry

            try:
                scheme, where = parse_address(self.scheduler)
                registry.get_backend(scheme)
                parse_host_port(where)
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
                yield from run_on(client, job, points, workers, self.no_worker_s)

    @contextlib.contextmanager
    def connect(self, job: Job, points: int):
        """A dask Client of the user's cluster, or of one started for ``points`` points
        (shut down on leaving, whatever the reason)."""
        import dask
        from distributed import Client

        quiet()
        if self.scheduler:
            probe(self.scheduler)
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
        with contextlib.ExitStack() as stack:
            cluster = self.start(job, points, stack)
            client = stack.enter_context(Client(cluster, set_as_default=False))
            print(f"dask: dashboard {client.dashboard_link}")
            yield client
            self.settle(client, cluster)

    def settle(self, client, cluster) -> None:
        """Before memo's workers here shut down: let any worker restarting after a death
        finish starting (shut down midway, it prints a traceback in this terminal)."""
        with contextlib.suppress(TimeoutError, OSError):
            client.wait_for_workers(len(cluster.workers), timeout=10)

    def start(self, job: Job, points: int, stack: contextlib.ExitStack):
        """Start the cluster of memo's own workers for ``points`` points, shut down with
        ``stack``."""
        import dask
        from distributed import LocalCluster

        workers = self.workers(points)
        # A worker restarting after a death can take long on a busy machine: the cluster
        # must keep its place, not close it after dask's 15 s and start none in its stead
        # (the run then waited with no worker left, for good). run_on's deadline ends a
        # wait for workers that do not come back.
        keep = {"distributed.deploy.lost-worker-timeout": "3650 days"}
        stack.enter_context(dask.config.set(keep))
        with sigint_blocked(), dask.config.set(SCHEDULER):
            try:
                cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",  # a free port: two runs at once may each show one
                    # No share of the memory each: as with joblib, a point may use what the
                    # machine has, and the system's OOM killer, not dask, ends one that
                    # wants more.
                    memory_limit=0,
                )
            except (OSError, RuntimeError, TimeoutError) as e:
                raise BackendError(f"cannot start dask workers here: {e}".splitlines()[0])
            stack.enter_context(cluster)
        stack.callback(stop_starting, cluster)  # first thing on leaving
        threads = f"{job.threads} BLAS thread{'s' if job.threads > 1 else ''}"
        print(f"dask: {workers} workers here, {threads} each")
        return cluster


def stop_starting(cluster) -> None:
    """Kill memo's worker processes still starting (say, restarting after a death), their
    nannies told not to start them again: dask's shutdown waits for a worker to be up
    before it stops it, for good if its start hangs."""
    from distributed.core import Status

    for nanny in list(cluster.workers.values()):
        process = getattr(nanny, "process", None)
        if process is not None and process.status == Status.starting:
            nanny.close_gracefully(reason="memo-shutdown")
            pid = process.pid  # None once it has exited
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def no_worker_wait() -> float:
    """MEMO_NO_WORKER_S, in seconds (default :data:`NO_WORKER_S`); BackendError if it is
    not a number > 0."""
    raw = os.environ.get("MEMO_NO_WORKER_S")
    if raw is None:
        return NO_WORKER_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):  # also NaN
        raise BackendError(f"MEMO_NO_WORKER_S={raw!r}: give a number of seconds > 0")
    return value


@contextlib.contextmanager
def sigint_blocked():
    """SIGINT blocked in this thread meanwhile. The threads started meanwhile (dask's event
    loop) keep it blocked, and so do the worker processes they start, then or later (a
    mask outlives fork and exec): Ctrl-C in the terminal reaches run.py alone, which shuts
    them down, rather than each worker printing its KeyboardInterrupt. A Ctrl-C meanwhile
    is held until leaving (a cluster stopped midway through its start cannot shut down)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # Started later by the event loop's thread, the tracker would unblock SIGINT there.
    multiprocessing.resource_tracker.ensure_running()
    heard = []
    handler = signal.signal(signal.SIGINT, lambda signum, frame: heard.append(signum))
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
        signal.signal(signal.SIGINT, handler)
    if heard:
        raise KeyboardInterrupt


def probe(address: str) -> None:
    """BackendError, in one line and within :data:`PROBE_S` seconds, unless a dask
    scheduler answers at ``address`` (dask's own connect waits without end for the answer
    of, say, a web server, or reads it as a frame of exabytes)."""
    from distributed.comm import connect
    from distributed.security import Security

    async def identity():
        args = Security().get_connection_args("client")
        comm = await connect(address, timeout=PROBE_S, **args)
        try:
            await comm.write({"op": "identity", "n_workers": 0, "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    try:
        answer = asyncio.run(asyncio.wait_for(identity(), PROBE_S))
    except (asyncio.TimeoutError, TimeoutError):
        raise BackendError(
            f"no dask scheduler answered at {address} within {PROBE_S:g} s"
        ) from None
    except Exception as e:  # whatever dask makes of a stranger's bytes
        why = str(e).splitlines()[0] if str(e).strip() else type(e).__name__
        raise BackendError(f"cannot reach a dask scheduler at {address}: {why}") from None
    kind = answer.get("type") if isinstance(answer, dict) else type(answer).__name__
    if kind != "Scheduler":
        raise BackendError(f"{address} is not a dask scheduler (it answered as {kind})")


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
