"""Points on this machine, in parallel processes through joblib (loky)."""

from typing import Iterator

import joblib

from memo.backends.base import Backend, BackendError
from memo.worker import Job, Outcome, run_point


class JoblibBackend(Backend):
    """``--tasks N`` processes (-1: one per core); ``--tasks 1`` runs in this process,
    so a debugger or profiler sees the trial."""

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
        parallel = joblib.Parallel(
            n_jobs=max(1, min(self.workers(), len(points))),  # no idle processes for few points
            return_as="generator_unordered",
            batch_size="auto",
        )
        with joblib.parallel_config(backend="loky", inner_max_num_threads=job.threads):
            yield from parallel(joblib.delayed(run_point)(job, p) for p in points)
