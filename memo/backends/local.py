"""Points on this machine, in parallel processes through joblib (loky)."""

import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

import joblib
from joblib.externals.loky.process_executor import TerminatedWorkerError

from memo.backends.base import Backend, BackendError
from memo.store import Store
from memo.worker import Job, Outcome, record_lost, run_point


class JoblibBackend(Backend):
    """``--tasks N`` processes (-1: one per core); ``--tasks 1`` runs in this process,
    so a debugger or profiler sees the trial.

    A worker process that dies (killed, out of memory, a crash in C) takes the pool down
    with it. The points that were running then run again one at a time, each in a process
    of its own: the one that dies again gets an error record (memo.worker.record_lost),
    the others their results, and the rest of the grid goes on in parallel.
    """

    name = "joblib"

    def check(self) -> None:
        if self.tasks == 0 or self.tasks < -1:
            raise BackendError(
                f"--tasks {self.tasks}: give a positive number, or -1 for one per core"
            )
        if self.args:
            raise BackendError(
                f"the joblib backend takes no scheduler arguments, got: {' '.join(self.args)}"
            )

    def workers(self) -> int:
        return joblib.effective_n_jobs(self.tasks)

    def threads(self) -> int:
        # Split the cores between the workers so parallel points do not oversubscribe.
        return max(1, joblib.cpu_count() // self.workers())

    def run(self, job: Job, points: list) -> Iterator[Outcome]:
        if self.workers() == 1:
            for point in points:
                yield run_point(job, point)
            return
        pending = {p.id: p for p in points}
        while pending:
            with tempfile.TemporaryDirectory(prefix="memo-running-") as running:
                try:
                    for outcome in self._in_workers(job, list(pending.values()), running):
                        del pending[outcome.id]
                        yield outcome
                    return
                except TerminatedWorkerError as e:
                    died = exit_codes(e)
                    marks = os.listdir(running)
            done = [i.removesuffix(".done") for i in marks if i.endswith(".done")]
            yield from recorded(job, [pending.pop(i) for i in done if i in pending])
            suspects = [pending.pop(i) for i in marks if i in pending]
            if not suspects:
                raise BackendError(f"a worker process died between points ({died})")
            for point in suspects:  # each alone now: the one that dies again is the cause
                try:
                    (outcome,) = self._in_workers(job, [point], running=None)
                except TerminatedWorkerError as e:
                    outcome = record_lost(job, point, exit_codes(e))
                yield outcome

    def _in_workers(self, job: Job, points: list, running: str | None):
        """Run points in loky worker processes (a lone point too), as many at once as there
        are workers; with ``running`` (a folder) see :func:`run_marked`."""
        parallel = joblib.Parallel(
            n_jobs=max(2, min(self.workers(), len(points))),
            return_as="generator_unordered",
            batch_size="auto",
        )
        with joblib.parallel_config(backend="loky", inner_max_num_threads=job.threads):
            yield from parallel(joblib.delayed(run_marked)(job, p, running) for p in points)


def run_marked(job: Job, point, running: str | None) -> Outcome:
    """run_point, leaving in folder ``running`` a file ``<id>`` while the point runs and
    ``<id>.done`` once it is recorded: after a dead pool, which points were running
    and which were done but not yet reported."""
    if running is None:
        return run_point(job, point)
    marker = Path(running) / point.id
    marker.touch()
    outcome = run_point(job, point)
    marker.rename(marker.with_name(f"{point.id}.done"))
    return outcome


def exit_codes(error: TerminatedWorkerError) -> str:
    """What loky says of the dead process, e.g. 'SIGKILL(-9): killed, out of memory?'."""
    codes = re.search(r"exit codes of the workers are \{(.*)\}", str(error))
    return f"{codes.group(1) if codes else 'exit code unknown'}: killed, out of memory?"


def recorded(job: Job, points: list) -> Iterator[Outcome]:
    """The outcomes of points recorded in this run, read back from their records."""
    store = Store(job.experiment, job.results_dir)
    for point in points:
        record = store.read(point.id)
        yield Outcome(point.id, record["status"], record.get("wall_time") or 0.0)
