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
import textwrap
import time
import uuid

from memo.backends import BACKENDS, BackendError, cluster_holds, make_backend
from memo.backends.cluster import unfinished_runs
from memo.run import report, steps
from memo.run.spec import SpecError, load_spec
from memo.run.worker import Job, provenance
from memo.store import Store, claims, paths


def parse_args(argv):
    """run.py's arguments: the experiment as NAME or --name NAME; words after ``--`` are the
    scheduler's (backend_args)."""
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
        "--group",
        type=int,
        metavar="N",
        help="run at most N points that share work as one (default: the trial's own cap);"
        " 1 runs every point alone",
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
    mode.add_argument(
        "--compact",
        action="store_true",
        help="fold the journal into results/NAME/records.parquet now (every run does at its end)",
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
    if args.group is not None and args.group < 1:
        parser.error(f"--group {args.group}: give a positive number of points (1: no groups)")
    if args.timeout is not None and not (0 < args.timeout < math.inf):
        parser.error(
            f"--timeout {args.timeout:g}: give a positive number of seconds (none: no limit)"
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
    """--describe: the trial's reference (memo/run/describe.py); 2 for an unknown trial."""
    from memo.run import describe
    from memo.run.trial_lookup import known_trials

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
        if spec.path != paths.experiments_dir() / f"{spec.name}.json":  # given by its path
            results = paths.results_dir() / spec.name
            print(
                f"note: {args.name} is experiment {spec.name!r}: its records go to {results}/,"
                f" its table to {results}.csv (python plot.py {args.name} draws it)"
            )
        if args.dry_run or args.compact:  # a dry-run streams the points
            points = []
        else:  # --status needs every id, the params of a few: a Grid of them has both
            points = spec.lazy_points() if args.status else spec.points()
        if spec.plots and not (args.status or args.collect or args.compact):
            check_plots(spec)
        backend = (
            None
            if (args.dry_run or args.status or args.collect or args.compact)
            else make_backend(args.backend, args.tasks, args.backend_args, args.scheduler)
        )
        if args.no_wait and backend is not None and not backend.detachable:
            raise BackendError(f"--no-wait is for the cluster backends, not {backend.name}")
    except (SpecError, BackendError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    store = Store(spec.name)
    if args.collect:  # reads every record again
        return steps.finish(spec.name, store, points, fresh=True)
    if args.compact:
        with contextlib.ExitStack() as held:
            other, _ = claims.lock(store, held)
            if other:
                print(f"error: {other}", file=sys.stderr)
                return 2
            return steps.compact_only(store)
    since = time.time()  # records written after this are another run's (Job.since)
    rows = store.rows()
    busy, _ = claims.running(store.dir)  # points other processes run now
    if args.status:
        standing = report.Standing(points, rows)
        print(standing.text(spec.name, busy, store.dir))
        if standing.tally["pending"]:
            print(standing.running_line(busy))
        for line in unfinished_runs(store.dir, rows):
            print(line)
        return 0 if standing.tally["ok"] == len(points) else 1

    done = rows.status()

    rerun = {"error", "timeout"} if args.retry_failed else set()
    if args.dry_run:
        return steps.dry_run(spec, rows, done, rerun, busy, args.tasks, args.group)
    todo = [p for p in points if p.id not in done or done[p.id] in rerun]
    elsewhere = [p for p in todo if p.id in busy]
    todo = [p for p in todo if p.id not in busy]
    problem = steps.missing_data(todo)
    if problem:
        print(f"error: {spec.path}: {problem}", file=sys.stderr)
        return 2
    problem = steps.unwritable(store.dir) if todo else None
    if not problem and todo and not backend.detachable and not args.force_local:
        problem = cluster_holds(store.dir, todo, done)
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
        group=args.group,
    )
    with contextlib.ExitStack() as held:
        other, note = claims.lock(store, held)
        if other and todo:
            print(f"error: {other}", file=sys.stderr)
            return 2
        if note and todo:
            print(note, file=sys.stderr)
        if todo:
            steps.clean_up(store)
            steps.compact(store)  # what killed runs and memo before the journal left
        print(
            f"{spec.name}: running {len(todo)} of {len(points)} points with {backend.name},"
            f" tasks={args.tasks}"
        )
        if elsewhere:
            print(steps.elsewhere_line(elsewhere, busy))
        if args.no_wait and todo:
            return steps.submit_only(spec.name, backend, job, todo)
        return steps.run_points(spec.name, backend, job, todo, store, points, rows, fold=not other)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `run.py --dry-run | head` ends quietly
    sys.exit(main())
