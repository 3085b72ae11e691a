"""Backends by name: each runs points somewhere and reports them as they finish."""

from memo.backends.base import Backend, BackendError
from memo.backends.dask_jobs import JOBQUEUE_BACKENDS
from memo.backends.dask_pool import DaskBackend
from memo.backends.inline import InlineBackend
from memo.backends.local import JoblibBackend
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
