"""Run an experiment grid: ``python run.py --name NAME [--backend joblib] [--tasks N]``.

Each point of experiments/NAME.json becomes one record in results/NAME/; rerunning
skips points that already have a record, so an interrupted run resumes where it
stopped. At the end results/NAME.csv holds one row per point. Exit codes (of a run,
--status and --collect alike): 0 every point ok, 1 some point failed or is pending, 2 bad
input, 130 interrupted.

On a cluster (``--backend sge|slurm``) the points run as one array job of --tasks tasks;
words after ``--`` go to qsub/sbatch. run.py waits for the records (Ctrl-C stops only the
waiting) unless given --no-wait; see memo/backends/cluster.py. ``--backend dask`` and
``dask-sge|slurm|pbs|lsf`` run them on a pool of dask workers that pull points as they free
up; see memo/backends/dask_pool.py and dask_jobs.py.
"""

import argparse
import contextlib
import math
import signal
import sys
import tempfile
import time
import uuid

from memo import claims, report
from memo.backends import BACKENDS, BackendError, make_backend
from memo.backends.base import Backend
from memo.backends.cluster import unfinished_runs
from memo.datasets import DatasetDamaged
from memo.progress import Progress
from memo.spec import SpecError, load_spec
from memo.files import clean_temps
from memo.store import RecordWriteError, Store
from memo.worker import Job, provenance


def parse_args(argv):
    """run.py's arguments: the experiment as NAME or --name NAME; words after ``--`` are the
    scheduler's (backend_args). A spec given by its path gets a line saying where its
    results go."""
    import textwrap
    from pathlib import Path

    from memo import paths

    argv = sys.argv[1:] if argv is None else list(argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    argv, backend_args = argv[:cut], argv[cut + 1 :]
    known = sorted(p.stem for p in paths.experiments_dir().glob("*.json"))
    listed = textwrap.fill(
        ", ".join(known) or "none", 78, initial_indent="  ", subsequent_indent="  "
    )
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"experiments ({paths.experiments_dir()}):\n{listed}\n"
        "(run.py --describe TRIAL: a trial's params, metrics and experiments)\n\n"
        "after --: arguments for the scheduler (cluster backends), e.g.\n"
        "  python run.py --name mnist --backend sge --tasks 20 -- -q all.q",
    )
    parser.add_argument(
        "experiment", nargs="?", metavar="NAME", help="the experiment, as --name NAME"
    )
    parser.add_argument(
        "--name", help="experiment: experiments/NAME.json, or a path to a .json file"
    )
    parser.add_argument(
        "--describe", metavar="TRIAL", help="print a trial's params and metrics, and exit"
    )
    parser.add_argument(
        "--backend",
        default="joblib",
        choices=sorted(BACKENDS),
        help="where points run (default joblib)",
    )
    parser.add_argument(
        "--tasks",
        type=int,
        default=1,
        help="points at once; -1 for one per core (default 1); "
        "sge/slurm: array tasks, -1 for one per point; dask-*: the most workers",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="dask: the scheduler of a running cluster, e.g. tcp://host:8786"
        " (default: $DASK_SCHEDULER_ADDRESS, else a cluster of --tasks workers here)",
    )
    parser.add_argument(
        "--timeout", type=float, help="seconds per point; a slower point is recorded as timeout"
    )
    parser.add_argument(
        "--retry-failed", action="store_true", help="also rerun points recorded as error or timeout"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run", action="store_true", help="show the points and what would run; run nothing"
    )
    mode.add_argument(
        "--status", action="store_true", help="counts by status, last failures, slowest points"
    )
    mode.add_argument(
        "--collect", action="store_true", help="only rewrite results/NAME.csv from the records"
    )
    parser.add_argument(
        "--no-wait", action="store_true", help="cluster backends: submit, print the job id, exit"
    )
    parser.add_argument(
        "--force-local",
        action="store_true",
        help="run points here even if an unfinished cluster job of this experiment has them",
    )
    args = parser.parse_args(argv)
    args.backend_args = backend_args
    if args.experiment and args.name and args.experiment != args.name:
        parser.error(f"the experiment given twice: {args.experiment} and --name {args.name}")
    args.name = args.name or args.experiment
    if not args.name and not args.describe:
        parser.error("the following arguments are required: NAME or --name NAME (or --describe)")
    if args.timeout is not None and not (0 < args.timeout < math.inf):
        parser.error(
            f"--timeout {args.timeout:g}: give a positive number of seconds (none: no limit)"
        )
    if args.name and args.name.endswith(".json") and Path(args.name).is_file():
        stem, results = Path(args.name).stem, paths.results_dir()
        print(
            f"note: {args.name} is experiment {stem!r}: its records go to {results / stem}/,"
            f" its table to {results / stem}.csv (python plot.py {args.name} draws it)"
        )
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.describe:
        return describe(args.describe)
    try:
        return run(args)
    except KeyboardInterrupt:  # before or after the points ran (those have their own note)
        print("\ninterrupted", file=sys.stderr)
        return 130


def describe(trial: str) -> int:
    """--describe: the trial's reference (memo/describe.py); 2 for an unknown trial."""
    from memo import describe
    from memo.trial_lookup import known_trials

    if trial not in known_trials():
        print(f"error: {describe.unknown_trial(trial)}", file=sys.stderr)
        return 2
    print(describe.describe(trial))
    return 0


def check_plots(spec) -> None:
    """A plot entry naming a column the trial will not produce fails now, not after the run."""
    from memo.plots.check import check_plots

    problems = check_plots(spec)
    if problems:
        more = f" (and {len(problems) - 1} more plot problems)" if len(problems) > 1 else ""
        raise SpecError(problems[0] + more)


def run(args) -> int:
    """run.py's work for parsed ``args``; returns the exit code."""
    try:
        spec = load_spec(args.name)
        points = [] if args.dry_run else spec.points()  # a dry-run streams them
        if spec.plots and not (args.status or args.collect):
            check_plots(spec)
        backend = (
            None
            if (args.dry_run or args.status or args.collect)
            else make_backend(args.backend, args.tasks, args.backend_args, args.scheduler)
        )
        if args.no_wait and backend is not None and not backend.detachable:
            raise BackendError(f"--no-wait is for the cluster backends, not {backend.name}")
    except (SpecError, BackendError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    store = Store(spec.name)
    if args.collect:  # reads every record again
        return finish(spec.name, store, points, fresh=True)
    since = time.time()  # records written after this are another run's (Job.since)
    rows = store.rows()
    done = rows.status()
    busy, _ = claims.running(store.dir)  # points other processes run now
    if args.status:
        print(report.status(spec.name, points, rows))
        if any(p.id not in done for p in points):
            print(running_line(points, done, busy))
        for line in unfinished_runs(store.dir, done):
            print(line)
        return 0 if all(done.get(p.id) == "ok" for p in points) else 1

    rerun = {"error", "timeout"} if args.retry_failed else set()
    if args.dry_run:
        return dry_run(spec, rows, done, rerun, busy, args.tasks)
    todo = [p for p in points if p.id not in done or done[p.id] in rerun]
    elsewhere = [p for p in todo if p.id in busy]
    todo = [p for p in todo if p.id not in busy]
    problem = missing_data(todo)
    if problem:
        print(f"error: {spec.path}: {problem}", file=sys.stderr)
        return 2
    problem = unwritable(store.dir) if todo else None
    if not problem and todo and not backend.detachable and not args.force_local:
        problem = claims.cluster_holds(store.dir, todo, done)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    job = Job(
        experiment=spec.name,
        trial=spec.trial,
        results_dir=str(store.dir.parent),
        timeout=args.timeout,
        threads=backend.threads(),
        provenance=provenance(backend.name),
        since=since,
        run=uuid.uuid4().hex,
    )
    with contextlib.ExitStack() as held:
        other, note = claims.lock(store, held) if todo else (None, None)
        if other:
            print(f"error: {other}", file=sys.stderr)
            return 2
        if note:
            print(note, file=sys.stderr)
        if todo:
            clean_up(store)
        print(
            f"{spec.name}: running {len(todo)} of {len(points)} points with {backend.name},"
            f" tasks={args.tasks}"
        )
        if elsewhere:
            print(elsewhere_line(elsewhere, busy))
        if args.no_wait and todo:
            return submit_only(spec.name, backend, job, todo)
        return run_points(spec.name, backend, job, todo, store, points, rows.files)


def dry_run(spec, rows, done: dict, rerun: set, busy: dict, tasks: int) -> int:
    """--dry-run: counts, the first points to run and an estimate of their time, streaming
    the grid (any size fits); ``busy``: the claims of points other processes run now
    (claims.running)."""
    preview = report.DryRun(done, rerun, busy)
    start = time.monotonic()
    try:
        for point in spec.iter_points():
            preview.add(point)
            if point.index == 9_999 and spec.size > 100_000:  # say how long the rest takes
                left = (time.monotonic() - start) * (spec.size / 10_000 - 1)
                print(f"checking {spec.size:,} points, about {left:.0f} s more", file=sys.stderr)
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    walls = [w for i, w in rows.by_id("wall_time").items() if done.get(i) == "ok"]
    print(preview.text(spec.name, walls, tasks))
    if preview.elsewhere:
        print(elsewhere_line(preview.elsewhere, busy))
    problem = missing_data(list(preview.by_dataset.values()))
    if problem:
        print(f"note: {problem}")
    return 0


def run_points(name, backend: Backend, job: Job, todo: list, store: Store, points, before) -> int:
    """Run the points with the backend, showing progress; the table at the end. ``before``:
    the record files' stamps before the run (Rows.files)."""
    progress = Progress(len(todo))
    start = time.monotonic()
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for outcome in backend.run(job, todo):
            progress.update(outcome)
    except KeyboardInterrupt:
        progress.close()
        # Counted from the record files: workers may have finished points not yet reported.
        after = store.rows().files
        names = [f"{p.id}.json" for p in todo]
        done = sum(1 for n in names if after.get(n) not in (None, before.get(n)))
        print(backend.interrupted_note(name, done), file=sys.stderr)
        return 130
    except (BackendError, DatasetDamaged) as e:  # e.g. the scheduler refused the job
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
    return finish(name, store, points)


def submit_only(name: str, backend: Backend, job: Job, todo: list) -> int:
    """--no-wait: submit the array and return; the records arrive while nobody waits."""
    try:
        submission = backend.submit(job, todo)
    except BackendError as e:
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
    temps = sum(clean_temps(folder) for folder in (store.dir, store.cache_path.parent))
    temps += clean_temps(store.dir / claims.CLAIMS)
    _, stale = claims.running(store.dir, clean=True)
    if temps or stale:
        print(
            f"note: removed {temps} temp files and {stale} point claims"
            f" left by killed processes in {store.dir}",
            file=sys.stderr,
        )


def elsewhere_line(elsewhere: list, busy: dict) -> str:
    """The points to run that another process runs now (claimed), left to it."""
    return f"{len(elsewhere)} more are running in another process ({busy[elsewhere[0].id]}, ...)"


def running_line(points: list, done: dict, busy: dict) -> str:
    """--status: the pending points that some process runs now, apart from the rest."""
    now = [p for p in points if p.id not in done and p.id in busy]
    waiting = sum(1 for p in points if p.id not in done) - len(now)
    where = sorted({f"{busy[p.id].host} pid {busy[p.id].pid}" for p in now})
    shown = f" ({', '.join(where[:5])}{', ...' if len(where) > 5 else ''})" if where else ""
    return f"pending: {len(now)} running now{shown}, {waiting} not started"


def unwritable(folder) -> str | None:
    """Why records cannot be written into ``folder``, if they can't (checked before running)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as e:
        return f"cannot write records into {folder}: {e.strerror or e}"


def missing_data(points: list) -> str | None:
    """Why the datasets the points name (param ``dataset``) cannot be loaded, if they can't."""
    from memo.datasets import DatasetError, check_available

    try:
        check_available(
            *dict.fromkeys(p.params["dataset"] for p in points if "dataset" in p.params)
        )
    except DatasetError as e:
        return str(e)
    return None


def finish(name: str, store: Store, points: list, fresh: bool = False) -> int:
    """Write the table, print the summary line; 0 if every point is ok, else 1."""
    try:
        frame, rows = store.write_table(points, fresh)
    except OSError as e:  # say, a colleague's read-only results
        print(f"error: cannot write {store.table_path}: {e.strerror or e}", file=sys.stderr)
        return 2
    status = rows.status()
    print(report.table_summary(frame, points))
    print(report.summary_line(name, points, status))
    print(f"table: {store.table_path}")
    tally = report.counts(points, status)
    if tally["error"] or tally["timeout"]:
        print(
            "rerun with --retry-failed to run failed points again; --status shows why they failed"
        )
    return 0 if tally["ok"] == len(points) else 1


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `run.py --dry-run | head` ends quietly
    sys.exit(main())
