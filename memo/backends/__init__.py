"""Backends by name: each runs points somewhere and reports them as they finish; and what
a cluster run that has not ended still holds (cluster_holds)."""

import contextlib
from pathlib import Path

from memo.backends.base import Backend, BackendError
from memo.backends.dask_jobs import JOBQUEUE_BACKENDS
from memo.backends.dask_pool import DaskBackend
from memo.backends.inline import InlineBackend
from memo.backends.local import JoblibBackend
from memo.backends.run_files import mark_ended, submitted_runs
from memo.backends.sge import SGEBackend
from memo.backends.slurm import SlurmBackend

BACKENDS = {
    backend.name: backend
    for backend in (
        JoblibBackend,
        InlineBackend,
        SGEBackend,
        SlurmBackend,
        DaskBackend,
        *JOBQUEUE_BACKENDS,
    )
}


def make_backend(name: str, tasks: int, args: list, scheduler: str | None = None) -> Backend:
    """The backend called ``name``, checked to be usable; BackendError otherwise.
    ``scheduler``: a dask scheduler's address (--scheduler), for the dask backend only."""
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    if scheduler and name != DaskBackend.name:
        raise BackendError(f"--scheduler {scheduler}: it is for --backend dask, not {name}")
    backend = BACKENDS[name](tasks, args, scheduler)
    backend.check()
    return backend


def cluster_holds(records: Path, todo: list, status: dict) -> str | None:
    """Why points of ``todo`` must not run here: a cluster run of the experiment that has
    not ended may still run some of them (those without a record in ``status``). The
    scheduler is asked where it answers; a run it no longer knows is marked ended."""
    ids = {p.id for p in todo if p.id not in status}
    for run in submitted_runs(records):
        held = ids & set(run.point_ids)
        kind = BACKENDS.get(run.backend)
        if run.ended or not held or kind is None:
            continue
        try:
            queued = kind(1, []).in_queue(run.job_id)
        except BackendError:
            queued = None
        if queued is False:
            with contextlib.suppress(OSError):
                mark_ended(run, "a local run")
            continue
        state = "is still queued or running" if queued else "has not ended (no answer here)"
        return (
            f"{kind.name} job {run.job_id} {state} and may still run {len(held)} of these "
            f"points; follow it with --status, cancel it ({kind.cancel_command} {run.job_id}), "
            f"or run them here anyway with --force-local"
        )
    return None
