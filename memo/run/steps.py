"""The steps of run.py after the spec is read: what it checks before a run, how it runs the
points with a backend (or only submits them) and what it prints after.

Each takes what run.py already has (the spec, the store, the backend object) and returns
run.py's exit code or a line to print; none imports a backend (run.py chooses it).
"""

import signal
import sys
import tempfile
import time

import joblib

from memo.datasets import DatasetDamaged
from memo.run import report
from memo.run.groups import Tally
from memo.run.progress import Costs, Progress
from memo.run.spec import SpecError
from memo.run.worker import Job, RunError
from memo.store import claims
from memo.store.files import clean_temps
from memo.store.records import RecordWriteError, Store


def unwritable(folder) -> str | None:
    """Why records cannot be written into ``folder``, if they can't (checked before running)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as e:
        return f"cannot write records into {folder}: {e.strerror or e}"


def missing_data(points: list) -> str | None:
    """Why the datasets the points name (param ``dataset``) cannot be loaded, if they can't;
    a note on stderr for each one that cannot be verified."""
    from memo.datasets import DatasetError, check_available

    try:
        notes = check_available(
            *dict.fromkeys(p.params["dataset"] for p in points if "dataset" in p.params)
        )
    except DatasetError as e:
        return str(e)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return None


def dry_run(spec, rows, done: dict, rerun: set, busy: dict, tasks: int, group=None) -> int:
    """--dry-run: counts, the first points to run, the groups they form and an estimate of
    their time, streaming the grid (any size fits); ``busy``: the claims of points other
    processes run now (claims.running); ``group``: --group."""
    preview = report.DryRun(done, rerun, busy, rows.by_id("wall_time"))
    groups = Tally(spec.trial, group, joblib.effective_n_jobs(tasks) if tasks else 1)
    start = time.monotonic()
    try:
        for point in spec.iter_points():
            preview.add(point)
            state = done.get(point.id, "pending")
            if (state == "pending" or state in rerun) and point.id not in busy:
                groups.add(point.params)
            if point.index == 9_999 and spec.size > 100_000:  # say how long the rest takes
                left = (time.monotonic() - start) * (spec.size / 10_000 - 1)
                print(f"checking {spec.size:,} points, about {left:.0f} s more", file=sys.stderr)
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(preview.text(spec.name, tasks))
    if groups.line():
        print(groups.line())
    if preview.elsewhere:
        print(elsewhere_line(preview.elsewhere, busy))
    problem = missing_data(list(preview.by_dataset.values()))
    if problem:
        print(f"note: {problem}")
    return 0


def run_points(name, backend, job: Job, todo: list, store: Store, points, rows, fold) -> int:
    """Run the points with the backend, showing progress; at the end compact the journal
    (if ``fold``: this run holds the lock) and write the table. ``rows``: the records
    before the run (Store.rows)."""
    before = rows.stamps()
    costs = Costs.of(points, rows.status(), rows.by_id("wall_time"))
    progress = Progress(todo, costs, store.dir)
    start = time.monotonic()
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for outcome in backend.run(job, todo):
            progress.update(outcome)
    except KeyboardInterrupt:
        progress.close()
        # Counted from the records: workers may have finished points not yet reported.
        after = store.rows().stamps()
        done = sum(1 for p in todo if after.get(p.id) not in (None, before.get(p.id)))
        print(backend.interrupted_note(name, done), file=sys.stderr)
        return 130
    except (RunError, DatasetDamaged) as e:  # e.g. the scheduler refused the job
        progress.close()
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RecordWriteError as e:  # disk full: what is recorded stays, the rest is pending
        progress.close()
        print(
            f"error: {e}; the {progress.done - progress.counts['skipped']}"
            f" points recorded in this run are kept; {'make room' if e.full else 'fix that'}"
            " and rerun",
            file=sys.stderr,
        )
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    progress.close()
    print(f"ran {progress.done} points in {time.monotonic() - start:.1f} s")
    if fold:
        compact(store)
    return finish(name, store, points)


def submit_only(name: str, backend, job: Job, todo: list) -> int:
    """--no-wait: submit the array and return; the records arrive while nobody waits."""
    try:
        submission = backend.submit(job, todo)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(backend.interrupted_note(name, 0), file=sys.stderr)
        return 130
    for outcome in submission.lost:  # killed their task twice: recorded, not submitted
        print(f"error: point {outcome.id}: {outcome.message}", file=sys.stderr)
    if submission.job_id is None:
        print(f"nothing submitted; --status shows why {len(submission.lost)} points failed")
        return 1
    print(f"not waiting; follow it with: python run.py --name {name} --status")
    print(f"cancel it with: {backend.cancel_command} {submission.job_id}")
    return 0


def clean_up(store: Store) -> None:
    """Remove the temp files and point claims left by killed processes, in one note."""
    temps = sum(clean_temps(folder) for folder in (store.dir, store.lock_path.parent))
    temps += clean_temps(store.dir / claims.CLAIMS)
    _, stale = claims.running(store.dir, clean=True)
    if temps or stale:
        print(
            f"note: removed {temps} temp files and {stale} point claims"
            f" left by killed processes in {store.dir}",
            file=sys.stderr,
        )


def compact(store: Store) -> None:
    """Fold the journal into records.parquet (memo/store/compact.py); a disk that refuses
    is a note: the records stay in the journal, read as well."""
    try:
        store.compact()
    except OSError as e:
        print(
            f"note: cannot compact the records of {store.experiment} ({e.strerror or e});"
            " they stay in the journal, where they count as well",
            file=sys.stderr,
        )


def compact_only(store: Store) -> int:
    """--compact: fold the journal and legacy record files into records.parquet now."""
    try:
        done = store.compact()
    except OSError as e:
        print(f"error: cannot compact {store.dir}: {e.strerror or e}", file=sys.stderr)
        return 2
    if done is None:
        print(f"another process compacts {store.dir} now; nothing done", file=sys.stderr)
        return 1
    print(
        f"{store.experiment}: {done.records} records in {store.parquet_path}"
        f" ({done.merged} journal segments and record files merged)"
    )
    return 0


def elsewhere_line(elsewhere: list, busy: dict) -> str:
    """The points to run that another process runs now (claimed), left to it."""
    return f"{len(elsewhere)} more are running in another process ({busy[elsewhere[0].id]}, ...)"


def finish(name: str, store: Store, points: list, fresh: bool = False) -> int:
    """Write the table, print the summary line; 0 if every point is ok, else 1."""
    try:
        frame, rows = store.write_table(points, fresh)
    except OSError as e:  # say, a colleague's read-only results
        print(f"error: cannot write {store.table_path}: {e.strerror or e}", file=sys.stderr)
        return 2
    tally = report.counts(points, rows.status())
    print(report.table_summary(frame, points))
    print(report.summary_line(name, tally))
    print(f"table: {store.table_path}")
    if tally["error"] or tally["timeout"]:
        print(
            "rerun with --retry-failed to run failed points again; --status shows why they failed"
        )
    return 0 if tally["ok"] == len(points) else 1


def _interrupt(signum, frame):
    raise KeyboardInterrupt
