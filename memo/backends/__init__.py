"""Backends by name: each runs points somewhere and reports them as they finish."""

from memo.backends.base import Backend, BackendError
from memo.backends.inline import InlineBackend
from memo.backends.local import JoblibBackend
from memo.backends.sge import SGEBackend
from memo.backends.slurm import SlurmBackend

BACKENDS = {
    backend.name: backend for backend in (JoblibBackend, InlineBackend, SGEBackend, SlurmBackend)
}


def make_backend(name: str, tasks: int, args: list) -> Backend:
    """The backend called ``name``, checked to be usable; BackendError otherwise."""
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    backend = BACKENDS[name](tasks, args)
    backend.check()
    return backend
