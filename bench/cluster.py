"""Dask against array striping and joblib: makespan on a grid of skewed point costs, and the
cost per point on no-ops.

    python bench/cluster.py [--points 2000] [--noops 10000] [--workers 2]

Skewed grid: synthetic points that sleep a duration drawn log-uniform over 1-100 ms (seeded),
laid out as a grid whose costly param varies fastest (restart × 10 cost levels, as n_train
in experiments/kernel_size.json), so that with an even number of tasks each task's stripe
holds the same levels; striping is also run on the points shuffled. Striping is the array
backends' own code: a manifest and one ``python -m memo.backends.task MANIFEST i`` process per task,
started at once (no scheduler queue). Ideal = max(sum / workers, longest point).
No-ops: memo's dask and joblib backends against a bare ``joblib.Parallel``, in this run.
Goals (issue 13): dask within 10 % of the ideal; at most 5 ms per point over joblib.
"""

import argparse
import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import joblib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from memo.backends.dask_pool import DaskBackend  # noqa: E402
from memo.backends.local import JoblibBackend  # noqa: E402
from memo.backends.run_files import share, write_manifest  # noqa: E402
from memo.store.paths import PROJECT  # noqa: E402
from memo.run.spec import load_spec  # noqa: E402
from memo.run.worker import Job, provenance  # noqa: E402

LEVELS = 10  # cost levels of the skewed grid, its fastest axis
LOW, HIGH = 1e-3, 1e-1  # seconds: the range of the skewed durations


def noop(params):
    return {"value": params["x"]}


def write_spec(root: Path, name: str, columns: dict) -> list:
    """A spec of one zip group (the points in the order given); its points."""
    grid = {"points": {"type_": "zip", **{k: list(v) for k, v in columns.items()}}}
    spec = {"trial": "synthetic", "param_grid": grid}
    (root / "experiments" / f"{name}.json").write_text(json.dumps(spec))
    return load_spec(name).points()


def skewed(points: int, seed: int = 0) -> dict:
    """Durations drawn log-uniform, sorted into LEVELS cost levels, in grid order: restart
    (slow) × level (fast), each level's draws in random order."""
    rng = np.random.default_rng(seed)
    levels = np.sort(np.exp(rng.uniform(np.log(LOW), np.log(HIGH), points))).reshape(LEVELS, -1)
    for level in levels:
        rng.shuffle(level)
    restarts = points // LEVELS
    return {
        "x": [k for _ in range(restarts) for k in range(LEVELS)],
        "y": [r for r in range(restarts) for _ in range(LEVELS)],
        "duration": levels.T.ravel().tolist(),
    }


def job(root: Path, name: str, threads: int = 1) -> Job:
    """A fresh experiment name for each run, so no run finds another's records."""
    return Job(
        name,
        "synthetic",
        str(root / "results"),
        None,
        threads,
        provenance("bench"),
        since=time.time(),
        run=uuid.uuid4().hex,
    )


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def backend_run(backend, root: Path, name: str, points: list) -> float:
    """Seconds for ``backend`` to run ``points``; every point must come back ok."""
    backend.check()
    run = job(root, name, backend.threads())
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the dashboard's address
        statuses = [outcome.status for outcome in backend.run(run, points)]
    took = time.perf_counter() - start
    assert statuses.count("ok") == len(points), f"{name}: {set(statuses)}"
    return took


def stripes(root: Path, name: str, points: list, tasks: int) -> float:
    """Seconds until ``tasks`` array tasks (``python -m memo.backends.task``), started at once, exit."""
    manifest = root / "manifests" / f"{name}.json"
    write_manifest(manifest, job(root, name), points, tasks, "sge")
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "memo.backends.task", str(manifest), str(i)],
            cwd=PROJECT,
            stdout=subprocess.DEVNULL,
        )
        for i in range(1, tasks + 1)
    ]
    codes = [p.wait() for p in procs]
    took = time.perf_counter() - start
    assert codes == [0] * tasks, f"{name}: exit codes {codes}"
    return took


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--noops", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.points % LEVELS:
        parser.error(f"--points must be a multiple of {LEVELS}")
    with tempfile.TemporaryDirectory(prefix="memo-bench-") as root:
        os.environ["MEMO_ROOT"] = root
        (Path(root) / "experiments").mkdir()
        bench(Path(root), args, args.workers)


def bench(root: Path, args, n: int) -> None:
    importlib.import_module("distributed")  # once per process, as in run.py: not timed

    columns = skewed(args.points)
    grid = write_spec(root, "skew", columns)
    shuffled = [grid[i] for i in np.random.default_rng(1).permutation(len(grid))]
    durations = columns["duration"]
    ideal = max(sum(durations) / n, max(durations))
    runs = {
        "dask (DaskBackend)": lambda: backend_run(DaskBackend(n, []), root, "skew-dask", grid),
        "array striping, grid order": lambda: stripes(root, "skew-stripes", grid, n),
        "array striping, shuffled": lambda: stripes(root, "skew-shuffled", shuffled, n),
        "joblib (JoblibBackend)": lambda: backend_run(
            JoblibBackend(n, []), root, "skew-joblib", grid
        ),
    }
    spans = {label: run() for label, run in runs.items()}
    dask = spans["dask (DaskBackend)"]
    print(
        f"{args.points} points sleeping {LOW * 1e3:g}-{HIGH * 1e3:g} ms (log-uniform, sum "
        f"{sum(durations):.1f} s), {n} workers: ideal {ideal:.2f} s"
    )
    for label, span in spans.items():
        print(f"  {label:28} {span:7.2f} s  / ideal {span / ideal:5.2f}  / dask {span / dask:5.2f}")
    for label, points in [("grid order", grid), ("shuffled", shuffled)]:
        heavier = max(
            sum(p.params["duration"] for p in share(points, i, n)) for i in range(1, n + 1)
        )
        print(
            f"  striping, {label}: the busiest task sleeps {heavier:.2f} s ({heavier / ideal:.2f})"
        )
    one = write_spec(root, "one", {"x": [0]})
    start = backend_run(DaskBackend(n, []), root, "one-dask", one)
    task = stripes(root, "one-stripes", one, n)
    print(
        f"  a 1-point run: dask {start:.2f} s (LocalCluster up and down), array tasks {task:.2f} s"
    )

    noops = write_spec(root, "noop", {"x": range(args.noops)})
    params = [p.params for p in noops]
    bare = timed(lambda: joblib.Parallel(n_jobs=n)(joblib.delayed(noop)(p) for p in params))
    ours = {
        "dask": backend_run(DaskBackend(n, []), root, "noop-dask", noops),
        "joblib": backend_run(JoblibBackend(n, []), root, "noop-joblib", noops),  # pool warm
    }
    print(f"{args.noops} no-op points, {n} workers:")
    print(f"  bare joblib.Parallel  {bare:7.2f} s  {bare / args.noops * 1e3:6.3f} ms a point")
    for label, took in ours.items():
        extra = (took - bare) / args.noops * 1e3
        print(
            f"  memo {label:16} {took:7.2f} s  {took / args.noops * 1e3:6.3f} ms a point, "
            f"{extra:6.3f} ms over bare joblib" + (" (goal <= 5 ms)" if label == "dask" else "")
        )
    print(
        f"  memo dask less its 1-point run: {(ours['dask'] - start - bare) / args.noops * 1e3:.3f} ms"
        " a point over bare joblib"
    )


if __name__ == "__main__":
    main()
