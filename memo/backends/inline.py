"""Points one after another in run.py's own process: for a debugger or a profiler."""

from typing import Iterator

import joblib

from memo.backends.base import BackendError
from memo.backends.local import JoblibBackend
from memo.run.groups import plan, run_unit
from memo.run.worker import Job, Outcome


class InlineBackend(JoblibBackend):
    """``--backend inline``: each point runs in run.py itself, so ``pdb``, ``breakpoint()``
    or a profiler sees the trial. What it trades: a point that kills its process (out of
    memory, a crash in C, ``die``) ends the run instead of becoming a record, and every
    rerun stops at that point; the joblib backend runs points in worker processes for that.
    """

    name = "inline"

    def check(self) -> None:
        super().check()
        if self.tasks != 1:
            raise BackendError(f"--tasks {self.tasks}: the inline backend runs one point at a time")

    def threads(self) -> int:
        return joblib.cpu_count()

    def run(self, job: Job, points: list) -> Iterator[Outcome]:
        for unit in plan(job.trial, points, job.group):
            yield from run_unit(job, unit)
