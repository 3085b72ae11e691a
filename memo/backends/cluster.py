"""What the cluster backends (sge.py, slurm.py) share: submitting and waiting.

Files of a run (manifest, job script, logs) are in run_files.py, points that died with
their task in task_deaths.py, the check of scheduler options in scheduler_options.py.

A cluster run of ``run.py --backend sge|slurm --tasks N -- SCHEDULER ARGS`` goes:

1. Submit. Write ``results/NAME/_runs/RUN/manifest.json`` once: the Job and the points to
   run. Render the job script from ``sge.sh``/``slurm.sh`` (project root) into the same
   folder and submit it as an array of min(N, points) tasks (N = -1: one per point). The
   words after ``--`` go to qsub/sbatch verbatim, after memo's own, so they win.
2. Run. Array task i runs ``python -m memo.backends.task MANIFEST i`` (memo/backends/task.py): the points
   ``points[i-1::tasks]`` of the manifest. Nodes never recompute the grid, so a spec edited
   while jobs wait in the queue cannot shift work between tasks.
3. Wait. Look at the records folder every few seconds and ask the scheduler now and then;
   yield an Outcome per point as its record appears. Once the array has left the queue,
   points without a record stay pending: the next run submits them again, those that were
   running when their task died last in their task; one that killed its task twice gets
   an error record instead (task_deaths.py). A job whose tasks sit in an error state (SGE's
   Eqw; a Slurm task that ended FAILED/NODE_FAIL without a log: it never started) would
   not leave the queue, or not run at all: the waiting ends with one line, its points
   pending.

Ctrl-C while waiting stops the waiting only; the jobs run on. Waiting is tuned by
environment variables (tests make it quick): ``MEMO_POLL_RECORDS_S`` (default 2),
``MEMO_POLL_QUEUE_S`` (15) and ``MEMO_GRACE_S`` (60), see :class:`WaitOptions`.
"""

import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from memo.store import paths
from memo.backends.base import Backend, BackendError
from memo.backends.run_files import (
    RUNS,
    job_name,
    logs_dir,
    mark_ended,
    new_run_id,
    now_iso,
    render,
    submitted_runs,
    write_manifest,
)
from memo.backends.task_deaths import DEATHS_TO_RECORD, evidence, status_lines, task_deaths
from memo.store.records import Store, write_atomic
from memo.run.worker import Job, Outcome, record_lost

CALL_TIMEOUT_S = 120.0  # a scheduler command that takes longer is taken as failed
WAIT_ENV = {  # WaitOptions field -> environment variable
    "records_s": "MEMO_POLL_RECORDS_S",
    "queue_s": "MEMO_POLL_QUEUE_S",
    "grace_s": "MEMO_GRACE_S",
}


@dataclass(frozen=True)
class WaitOptions:
    """How run.py waits for a cluster run; each field is read from its environment variable."""

    records_s: float = 2.0  # MEMO_POLL_RECORDS_S: seconds between looks at the records folder
    queue_s: float = 15.0  # MEMO_POLL_QUEUE_S: seconds between qstat/squeue calls (be gentle)
    grace_s: float = 60.0  # MEMO_GRACE_S: after the array left the queue, wait this long for
    # records still unseen (NFS may list new files up to a minute late)

    @classmethod
    def from_env(cls) -> "WaitOptions":
        values = {}
        for name, var in WAIT_ENV.items():
            raw = os.environ.get(var)
            if raw is None:
                continue
            try:
                values[name] = float(raw)
            except ValueError:
                values[name] = float("nan")
            if not values[name] >= 0:  # also NaN
                raise BackendError(f"{var}={raw!r}: give a number of seconds >= 0")
        return cls(**values)


@dataclass(frozen=True)
class Submission:
    """One submitted array job and what it runs; ``job_id`` None: nothing was left to
    submit."""

    job_id: str | None
    run_dir: Path | None
    job: Job  # as the manifest has it (results_dir resolved)
    tasks: int
    points: list  # Points, in manifest order
    baseline: dict  # point id -> when its record was written before submission (None: none)
    lost: list  # Outcomes of the points recorded instead (they killed their task twice)


def scheduler(*command: str, timeout: float = CALL_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run one scheduler command (qsub, qstat, sbatch, ...): every call goes through here.

    Returns the CompletedProcess; a command that is missing or hangs comes back with
    returncode 127 or 124 and the reason in stderr, so callers handle one kind of failure.
    """
    try:
        return subprocess.run(
            list(command), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        return subprocess.CompletedProcess(command, 127, "", f"{command[0]}: not found on PATH")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(
            command, 124, "", f"{command[0]}: no answer within {timeout:g} s"
        )


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


class ClusterBackend(Backend):
    """Submits the points as one array job and waits for their records (see module doc)."""

    submit_command: str  # qsub / sbatch
    submit_flags: tuple  # memo's own flags, before the user's
    cancel_command: str  # qdel / scancel
    detachable = True
    template: str  # job script template in the project root
    forbidden: dict  # option -> why memo sets it itself; refused in the user's args

    def __init__(self, tasks: int, args: list, scheduler: str | None = None):
        super().__init__(tasks, args, scheduler)
        self.submission: Submission | None = None
        self.options = WaitOptions()

    # -- the Backend interface ------------------------------------------------------------

    def check(self) -> None:
        if self.tasks == 0 or self.tasks < -1:
            raise BackendError(
                f"--tasks {self.tasks}: give the number of array tasks, or -1 for one per point"
            )
        for arg in self.args:
            option = self.sets_option(arg)
            if option:
                spelled = "" if arg.startswith(option) else f" (that is {option})"
                raise BackendError(f"scheduler option {arg}{spelled}: {self.forbidden[option]}")
        self.options = WaitOptions.from_env()
        if shutil.which(self.submit_command) is None:
            raise BackendError(
                f"the {self.name} backend needs {self.submit_command} on PATH; "
                f"run on the cluster's login node"
            )

    def sets_option(self, word: str) -> str | None:
        """The option of ``forbidden`` that ``word`` sets, in any spelling the scheduler takes."""
        raise NotImplementedError

    def threads(self) -> int:
        """1 here; each array task sets and records the threads its allocation gives it."""
        return 1

    def run(self, job: Job, points: list) -> Iterator[Outcome]:
        submission = self.submit(job, points)
        yield from submission.lost
        if submission.job_id is not None:
            yield from self.wait(submission)

    # -- submitting -----------------------------------------------------------------------

    def submit(self, job: Job, points: list) -> Submission:
        """Write the manifest and job script, submit the array; BackendError if refused.
        A point that killed its task twice gets an error record instead (Submission.lost),
        with or without waiting (--no-wait)."""
        records = Path(job.results_dir).resolve() / job.experiment
        job = dataclasses.replace(job, results_dir=str(records.parent))
        refuse_overlap(self, records, points)  # marks the runs gone from the queue ended
        suspects = died_in_tasks(records)
        lost = []
        for point in points:
            ended = [death for death in suspects.get(point.id, []) if death.ended]
            if len(ended) >= DEATHS_TO_RECORD:
                lost.append(record_lost(job, point, evidence(ended)))
        recorded = {o.id for o in lost}
        points = [p for p in points if p.id not in recorded]
        if not points:
            self.submission = Submission(None, None, job, 0, [], {}, lost)
            return self.submission
        # A point that died with a task before runs last in its task: if it dies again, the
        # rest of the task's share is done by then.
        points = sorted(points, key=lambda p: p.id in suspects)
        tasks = len(points) if self.tasks == -1 else min(self.tasks, len(points))
        run_dir = records / RUNS / new_run_id()
        manifest = run_dir / "manifest.json"
        logs = logs_dir(job.experiment)
        text = render(
            self.template,
            name=job_name(job.experiment),
            tasks=str(tasks),
            logs=str(logs),
            project=shlex.quote(str(paths.PROJECT)),
            python=shlex.quote(sys.executable),
            manifest=shlex.quote(str(manifest)),
        )
        write_manifest(manifest, job, points, tasks, self.name)
        (run_dir / "job.sh").write_text(text)
        logs.mkdir(parents=True, exist_ok=True)  # the scheduler does not create it
        baseline = record_stamps(records)
        command = [self.submit_command, *self.submit_flags, *self.args, str(run_dir / "job.sh")]
        result = scheduler(*command)
        job_id = self.parse_job_id(result.stdout) if result.returncode == 0 else None
        if not job_id:
            why = (
                last_line(result.stderr) or last_line(result.stdout) or f"exit {result.returncode}"
            )
            raise BackendError(f"{self.submit_command} refused the job: {why}")
        self.submission = Submission(
            job_id, run_dir, job, tasks, points, {p.id: baseline.get(p.id) for p in points}, lost
        )
        stamp = {"job_id": job_id, "command": command, "submitted": now_iso()}
        write_atomic(run_dir / "submitted.json", json.dumps(stamp, indent=1).encode())
        print(
            f"submitted {self.name} job {job_id}: {tasks} array tasks; "
            f"run folder {run_dir}; logs {logs}/{job_id}.TASK.out|err",
            flush=True,
        )
        return self.submission

    def parse_job_id(self, stdout: str) -> str | None:
        """The job id in the submit command's output, or None."""
        raise NotImplementedError

    # -- waiting --------------------------------------------------------------------------

    def wait(self, submission: Submission) -> Iterator[Outcome]:
        """Yield an Outcome per point as its record appears, until all have one or the array
        has left the queue (then the rest stay pending and a note says where to look)."""
        records = submission.run_dir.parent.parent
        logs = logs_dir(records.name)
        pending = {p.id for p in submission.points}
        next_ask, gone_at, unanswered, stuck_at = 0.0, None, 0, None
        while pending:
            for outcome in new_outcomes(records, pending, submission.baseline):
                pending.discard(outcome.id)
                yield outcome
            now = time.monotonic()
            if not pending or (gone_at is not None and now - gone_at >= self.options.grace_s):
                break
            if gone_at is None and now >= next_ask:
                next_ask = now + self.options.queue_s
                queued = self.in_queue(submission.job_id)
                if queued is False:
                    gone_at = now
                why = self.stuck(submission.job_id, logs) if queued else None
                stuck_at = (stuck_at or now) if why else None  # NFS may show a log late
                if why and now - stuck_at >= self.options.grace_s:
                    print(
                        f"{self.name} job {submission.job_id} {why}; stopped waiting, "
                        f"{len(pending)} points pending",
                        file=sys.stderr,
                    )
                    return  # not ended: the job may still run once it is fixed
                unanswered = unanswered + 1 if queued is None else 0
                if unanswered == 10:  # keep waiting: the records tell what finished anyway
                    print(
                        f"warning: {self.name} has not answered 10 times; still waiting",
                        file=sys.stderr,
                    )
            time.sleep(self.options.records_s)
        finished = {"ended": now_iso(), "unrecorded": sorted(pending)}
        write_atomic(submission.run_dir / "ended.json", json.dumps(finished).encode())
        if not pending:
            return
        deaths = died_in_tasks(records, ended=True)
        for point in submission.points:
            found = deaths.get(point.id, [])
            if point.id in pending and len(found) >= DEATHS_TO_RECORD:
                pending.discard(point.id)
                yield record_lost(submission.job, point, evidence(found))
        if pending:
            died = status_lines({i: d for i, d in deaths.items() if i in pending})
            print(self.lost_note(submission, len(pending), died), file=sys.stderr)

    def in_queue(self, job_id: str) -> bool | None:
        """True while any task of the array is queued or running, False once it has left the
        queue, None if the scheduler did not answer."""
        raise NotImplementedError

    def stuck(self, job_id: str, logs: Path) -> str | None:
        """Why the job, in the queue as the last in_queue call found, will not run on by
        itself (tasks in an error state), and what to do; None if nothing is wrong.
        ``logs``: the folder of its task logs."""
        return None

    def task_failures(self, job_id: str) -> list:
        """Lines naming array tasks that failed, from accounting if it has them (best effort)."""
        return []

    def lost_note(self, submission: Submission, missing: int, died: list = ()) -> str:
        logs = logs_dir(submission.run_dir.parent.parent.name)
        lines = [
            f"{self.name} job {submission.job_id} has left the queue, but {missing} of its "
            f"points have no record: their tasks died or never started (time or memory limit, "
            f"node failure, Python not found on the nodes?).",
            f"  logs: {logs}/{submission.job_id}.*.err",
        ]
        lines += [f"  {line}" for line in self.task_failures(submission.job_id)[:10]]
        lines += [f"  {line}" for line in died[:10]]
        lines.append("  they stay pending; rerun the same command to submit only them")
        return "\n".join(lines)

    def interrupted_note(self, experiment: str, done: int) -> str:
        """Ctrl-C stops only the waiting: the job runs on."""
        if self.submission is None or self.submission.job_id is None:
            return (
                f"\ninterrupted before the job was submitted; nothing runs on the cluster "
                f"(if {self.submit_command} was already answering, check your queue)"
            )
        job_id = self.submission.job_id
        return (
            f"\nstopped waiting; {self.name} job {job_id} keeps running on the cluster\n"
            f"  follow it:  python run.py --name {experiment} --status\n"
            f"  cancel it:  {self.cancel_command} {job_id}"
        )


# -- what --status shows -------------------------------------------------------------------


def died_in_tasks(records: Path, status: dict | None = None, ended: bool = False) -> dict:
    """{point id: [Death]} of the points without a record (``status``: {id: status} of the
    records, read if not given) that were running when an array task of theirs died; with
    ``ended``, only tasks of arrays known to have left the queue."""
    if status is None:
        status = Store(records.name, records.parent).index()
    deaths = task_deaths(submitted_runs(records), logs_dir(records.name), set(status))
    if ended:
        deaths = {i: [d for d in found if d.ended] for i, found in deaths.items()}
    return {i: found for i, found in deaths.items() if found}


def unfinished_runs(records: Path, rows) -> list:
    """A line per submitted run not followed to its end (--no-wait, Ctrl-C) that still has
    points without a record, and per point without a record that was running when its task
    died; ``rows``: the records' Rows (Store.rows), looked into only if a run was submitted."""
    runs = submitted_runs(records)
    if not runs:
        return []
    status = rows.status()
    lines = status_lines(died_in_tasks(records, status))
    for run in runs:
        missing = sum(i not in status for i in run.point_ids)
        if missing and not run.ended:
            lines.append(
                f"{run.backend} job {run.job_id} (submitted {run.submitted}): {missing} of its"
                f" {len(run.point_ids)} points have no record yet; run folder {run.folder}"
            )
    return lines


# -- the records ----------------------------------------------------------------------------


def record_stamps(records: Path) -> dict:
    """{point id: when its record was written} of the points with a record in the records
    folder ``records``: a changed one is a new record."""
    return Store(records.name, records.parent).rows().stamps()


def new_outcomes(records: Path, pending: set, baseline: dict) -> list:
    """Outcomes of the pending points whose record is new since the baseline."""
    rows = Store(records.name, records.parent).rows()
    new = [i for i, written in rows.stamps().items() if i in pending and written != baseline.get(i)]
    if not new:
        return []
    status, walls, errors = rows.by_id("status"), rows.by_id("wall_time"), rows.by_id("error")
    return [Outcome(i, status[i], walls[i] or 0.0, errors[i] or "") for i in new]


def refuse_overlap(backend: ClusterBackend, records: Path, points: list) -> None:
    """BackendError if an earlier run that may still run any of these points is in the queue.

    Runs that run.py saw to the end carry ended.json; others (--no-wait, Ctrl-C) are asked
    about once and marked ended when gone. Two arrays running the same points would waste
    the cluster's time and race on the records.
    """
    ids = {p.id for p in points}
    for run in submitted_runs(records):
        theirs = ids & set(run.point_ids)
        if run.ended or run.backend != backend.name or not theirs:
            continue  # another scheduler's job id means nothing to this one
        queued = backend.in_queue(run.job_id)
        if queued is False:
            mark_ended(run, "a later submission")
            continue
        state = "is still in the queue" if queued else "may still be in the queue (no answer)"
        raise BackendError(
            f"{backend.name} job {run.job_id} {state} with {len(theirs)} of these points; "
            f"follow it with --status or cancel it ({backend.cancel_command} {run.job_id}),"
            f" then rerun"
        )
