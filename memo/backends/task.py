"""One array task of a cluster run: ``python -m memo.backends.task MANIFEST TASK_INDEX``.

Task i of N (1-based, as SGE_TASK_ID and SLURM_ARRAY_TASK_ID count) runs the points
``points[i-1::N]`` of the manifest one after the other, in groups where the trial shares
work between points (:func:`memo.run.groups.run_unit`), skipping points whose record is already ok (a task the
scheduler reran after a node failure). A failing point is a record and the task goes on.
Threads come from the scheduler's allocation (NSLOTS on Grid Engine, SLURM_CPUS_PER_TASK
on Slurm, else 1): they are set before numpy loads and recorded with every point.

Exit codes: 0 every point of the share has a record, 2 bad arguments or manifest, or a
damaged dataset (memo.datasets.DatasetDamaged; the rest stays pending), 130 interrupted
(SIGTERM from the scheduler, Ctrl-C): the current point stays pending.
"""

import contextlib
import dataclasses
import os
import signal
import socket
import sys

# Read by OpenBLAS/MKL/OpenMP (and so torch) when they load, i.e. only if set before.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
ALLOCATION_VARIABLES = ("NSLOTS", "SLURM_CPUS_PER_TASK")  # Grid Engine, Slurm


def allocated_threads(env=os.environ) -> int:
    """The cores the scheduler gave this task; 1 if it says nothing.

    >>> allocated_threads({"NSLOTS": "4"}), allocated_threads({"SLURM_CPUS_PER_TASK": "2"})
    (4, 2)
    >>> allocated_threads({})
    1
    """
    for variable in ALLOCATION_VARIABLES:
        value = env.get(variable, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m memo.backends.task MANIFEST TASK_INDEX", file=sys.stderr)
        return 2
    threads = allocated_threads()
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    # Imported only now: these load numpy, which reads the variables above.
    from memo.backends.run_files import read_manifest, share
    from memo.datasets import DatasetDamaged
    from memo.store.records import Store
    from memo.run.groups import plan, run_unit

    path, index = argv
    try:
        manifest = read_manifest(path)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"memo.backends.task: cannot use manifest {path}: {e}", file=sys.stderr)
        return 2
    tasks = manifest["tasks"]
    if not index.isdigit() or not 1 <= int(index) <= tasks:
        print(f"memo.backends.task: task index {index!r} is outside 1..{tasks}", file=sys.stderr)
        return 2
    os.environ.update(manifest["env"])  # the submitter's MEMO_ROOT and MEMO_DATASETS
    job = dataclasses.replace(manifest["job"], threads=threads)
    store = Store(job.experiment, job.results_dir)
    mine = share(manifest["points"], int(index), tasks)
    ok = store.index()
    todo = [p for p in mine if not ok.get(p.id)]
    print(
        f"task {index}/{tasks} on {socket.gethostname()}: {len(mine)} points, "
        f"{len(mine) - len(todo)} already ok, {threads} threads",
        flush=True,
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)
    done = 0
    try:
        for unit in plan(job.trial, todo, job.group):
            with using_threads(threads):
                # A unit that kills this task leaves only its "running" lines (task_deaths).
                for point in unit:
                    print(f"memo: running {point.id} #{point.index}", flush=True)
                outcomes = run_unit(job, unit)
            done += len(unit)
            index = {point.id: point.index for point in unit}
            for outcome in outcomes:
                took = f"{outcome.status} in {outcome.wall_time:.1f} s"
                tail = f": {outcome.message}" if outcome.message else ""
                print(f"memo: done {outcome.id} #{index[outcome.id]}: {took}{tail}", flush=True)
    except KeyboardInterrupt:
        print(f"interrupted: {len(todo) - done} points left pending", file=sys.stderr, flush=True)
        return 130
    except DatasetDamaged as e:  # the user's data: no point's result, so no record
        print(f"error: {e}; {len(todo) - done} points left pending", file=sys.stderr, flush=True)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


@contextlib.contextmanager
def using_threads(threads: int):
    """Let the point run inside use ``threads`` BLAS/OpenMP/torch threads: the environment
    tells libraries loaded later; threadpoolctl (if installed) and torch limit those loaded
    already."""
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    if "torch" in sys.modules:  # a trial imported it; its pool is sized already
        sys.modules["torch"].set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=threads):
        yield


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
