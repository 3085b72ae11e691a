"""Points that died with their array task, read from the tasks' logs.

A point that kills its process (out of memory, a crash in C, a time limit) takes its whole
array task with it: no record is written and the rest of the task's share never runs. Each
task therefore prints ``memo: running ID #INDEX`` before each point and ``memo: done ID
#INDEX: ...`` after it to its ``.out`` log (memo/backends/task.py); a ``running`` line without its
``done`` in a task that has ended names the point that died. ``--status`` names such
points, a rerun runs them last in their task, and a point that died with its task twice
gets an error record (``WorkerDied``, with the logs as evidence) instead of a third try.
"""

import re
from dataclasses import dataclass
from pathlib import Path

RUNNING, DONE = "memo: running", "memo: done"  # the lines memo/backends/task.py prints
LINE = re.compile(rf"^({RUNNING}|{DONE}|task) (\S+)(?: #(\d+))?", re.M)
DEATHS_TO_RECORD = 2  # a point that died with its task this often gets an error record


@dataclass(frozen=True)
class Death:
    """A point that was running when its array task ended without finishing it."""

    point_id: str
    index: int | None  # its grid position, as the log line gives it
    backend: str  # sge, slurm
    job_id: str
    task: int
    log: Path  # the task's .out log
    ended: bool  # whether the array is known to have left the queue (else: running, or died)

    def describe(self) -> str:
        return f"{self.backend} job {self.job_id} task {self.task} (log {self.log})"


def unfinished_points(text: str) -> list:
    """(id, index) of each point that a task log shows started but not done: a point running
    when the task was restarted (a requeue appends a new start), and the last one if any.

    >>> log = "task 1/2 on n1\\nmemo: running a #0\\nmemo: done a #0: ok\\nmemo: running b #2\\n"
    >>> unfinished_points(log)
    [('b', 2)]
    >>> unfinished_points(log + "task 1/2 on n2\\nmemo: running b #2\\nmemo: done b #2: ok\\n")
    [('b', 2)]
    """
    unfinished, current = [], None
    for match in LINE.finditer(text):
        kind, point = match.group(1), match.group(2)
        index = int(match.group(3)) if match.group(3) else None
        if kind == DONE:
            current = None if current and current[0] == point else current
            continue
        if current is not None:  # a new start or point while one was running: that one died
            unfinished.append(current)
        current = (point, index) if kind == RUNNING else None
    return unfinished + ([current] if current else [])


def task_deaths(runs: list, logs: Path, recorded: set) -> dict:
    """{point id: [Death, ...]} over the submitted runs (run_files.SubmittedRun) whose task
    logs lie in ``logs``; points in ``recorded`` (they have a record) left out."""
    deaths = {}
    for run in runs:
        for task in range(1, run.tasks + 1):
            log = logs / f"{run.job_id}.{task}.out"
            try:
                text = log.read_text(errors="replace")
            except OSError:
                continue
            unfinished = unfinished_points(text)
            for n, (point, index) in enumerate(unfinished):
                if point not in recorded:
                    # Only the last one may still be running, and only while the array is queued.
                    done = run.ended or n < len(unfinished) - 1
                    death = Death(point, index, run.backend, run.job_id, task, log, done)
                    deaths.setdefault(point, []).append(death)
    return deaths


def evidence(deaths: list) -> str:
    """Why a point gets an error record: the tasks it died with."""
    tasks = "; ".join(d.describe() for d in deaths)
    return (
        f"it killed its array task {len(deaths)} times, each time before its record was "
        f"written (out of memory, a time limit, a crash in C?): {tasks}"
    )


def status_lines(deaths: dict) -> list:
    """What --status says of points without a record that were running in a task that died."""
    lines = []
    for point, found in sorted(deaths.items(), key=lambda kv: (kv[1][-1].job_id, kv[1][-1].task)):
        last = found[-1]
        at = f" #{last.index}" if last.index is not None else ""
        state = "died with" if last.ended else "is running in, or died with,"
        times = f" ({len(found)} times)" if len(found) > 1 else ""
        lines.append(f"point {point}{at} {state} {last.describe()}{times}; it has no record")
    return lines
