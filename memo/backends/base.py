"""The one interface every backend implements."""

import abc
from typing import Iterator

from memo.run.worker import Job, Outcome, RunError


class BackendError(RunError):
    """A backend cannot run here, or was given bad options; the message is one line."""


class Backend(abc.ABC):
    """Runs points with :func:`memo.run.worker.run_point` and reports each as it finishes.

    run_point claims each point while it runs (memo/store/claims.py), in whatever process: a
    backend that loses a worker finds the points that were running by their claims, left
    behind by a dead process, and tells them from those not started yet.

    ``tasks`` is how many points may run at once; ``args`` are the words after ``--``
    on the command line, passed to the scheduler by the cluster backends; ``scheduler``
    the address of a dask scheduler to use (``--scheduler``, dask only).
    """

    name: str
    detachable = False  # whether --no-wait may leave the points running without us

    def __init__(self, tasks: int, args: list, scheduler: str | None = None):
        self.tasks = tasks
        self.args = list(args)
        self.scheduler = scheduler

    @abc.abstractmethod
    def check(self) -> None:
        """Raise BackendError if this backend cannot run with these options here."""

    @abc.abstractmethod
    def threads(self) -> int:
        """BLAS/torch threads each running point may use."""

    @abc.abstractmethod
    def run(self, job: Job, points: list) -> Iterator[Outcome]:
        """Run the points, yielding one Outcome per point as it finishes."""

    def check_workers_and_no_args(self) -> None:
        """The check of a backend that starts ``--tasks`` workers itself (-1: one per core)
        and takes no words after ``--``."""
        if self.tasks == 0 or self.tasks < -1:
            raise BackendError(
                f"--tasks {self.tasks}: give a positive number, or -1 for one per core"
            )
        if self.args:
            raise BackendError(
                f"the {self.name} backend takes no scheduler arguments, got: {' '.join(self.args)}"
            )

    def interrupted_note(self, experiment: str, done: int) -> str:
        """What run.py prints when Ctrl-C or SIGTERM stops the run."""
        return (
            f"\ninterrupted: {done} points finished and recorded in this run; "
            f"rerun the same command to resume"
        )
