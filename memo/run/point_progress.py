"""A running point's own progress, written by its trial beside its claim.

``results/NAME/_running/<id>.progress`` holds how many of its steps (the train trial: epochs)
are done and how long they took, so run.py can say how long the point still needs
(memo.run.progress.Costs); :func:`report` writes it at most every :data:`REPORT_EVERY_S`.
"""

import contextlib
import contextvars
import json
import os
import time
from pathlib import Path

from memo.store import claims
from memo.store.files import read_regular, write_atomic

REPORT = ".progress"  # suffix of a running point's progress file, beside its claim
REPORT_EVERY_S = 5.0

_current = contextvars.ContextVar("memo_progress", default=None)


@contextlib.contextmanager
def reporting(records, point_id: str):
    """While the point runs in this thread, :func:`report` writes its progress beside its
    claim (results/NAME/_running/<id>.progress); removed when it ends."""
    path = os.path.join(records, claims.CLAIMS, point_id + REPORT)  # no Path: a point's cost
    with contextlib.suppress(OSError):
        os.unlink(path)  # a killed run's, of the same point
    state = {"path": path, "start": time.monotonic(), "last": None}
    token = _current.set(state)
    try:
        yield
    finally:
        _current.reset(token)
        if state["last"] is not None:  # report wrote it; nothing else makes it
            with contextlib.suppress(OSError):
                os.unlink(path)


def report(done: int, total: int, since: int = 0) -> None:
    """A trial says it has done ``done`` of at most ``total`` units of work (epochs),
    ``since`` of them before this process started (a resumed checkpoint); written at most
    every few seconds, for the time estimates. Does nothing outside run.py's points."""
    state = _current.get()
    now = time.monotonic()
    if state is None or done <= since or not 0 < done <= total:
        return
    if state["last"] is not None and now - state["last"] < REPORT_EVERY_S:
        return
    state["last"] = now
    each = (now - state["start"]) / (done - since)
    with contextlib.suppress(OSError):
        report = json.dumps({"done": done, "total": total, "each": each}).encode()
        write_atomic(Path(state["path"]), report)


def reported_left(records, point_id: str) -> float | None:
    """The seconds a running point needs at most by what it last reported; None if nothing."""
    path = Path(records) / claims.CLAIMS / f"{point_id}{REPORT}"
    try:
        written = os.lstat(path).st_mtime
        data = json.loads(read_regular(path, 4096))
        done, total, each = int(data["done"]), int(data["total"]), float(data["each"])
    except (OSError, ValueError, KeyError, TypeError, OverflowError):
        return None
    if not (0 < done <= total and 0 <= each < 1e9):
        return None
    return max(each * (total - done) - max(time.time() - written, 0.0), 0.0)
