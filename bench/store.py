"""The results store at scale (issue 20): no-op points through ``run.py --tasks 2``, then disk
bytes and files a point, ``--status`` and ``load_results()`` times and the runner's cost a
point over a bare ``joblib.Parallel``; the journal + records.parquet against memo's one
JSON file a point (the code of 10e9a17, from a ``git worktree``), side by side.

    python bench/store.py [--points 100000] [--old PATH] [--tasks 2] [--skip-old]

``--old``: a checkout of memo before the journal (default: ``git worktree add`` of
10e9a17 into a temp folder, removed at the end). Every number is measured in this run, on
this machine; the ratios hold on a loaded one.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))
from trials.synthetic import trial  # noqa: E402

BEFORE = "10e9a17"  # main's first commit: one record file a point
LOAD = "import time, sys; from memo.store import load_results; t = time.perf_counter(); "
LOAD += "n = len(load_results(sys.argv[1])); print(n, time.perf_counter() - t)"
GRID = "import time, sys; from memo.run.spec import load_spec; t = time.perf_counter(); "
GRID += "s = load_spec(sys.argv[1]); n = len(getattr(s, 'lazy_points', s.points)()); "
GRID += "print(n, time.perf_counter() - t)"  # what --status expands: every id (before: Points)


def run_py(code: Path, root: Path, *args) -> float:
    """Seconds ``python run.py ARGS`` of checkout ``code`` takes with MEMO_ROOT=root."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(code / "run.py"), *args],
        cwd=code,
        env={**os.environ, "MEMO_ROOT": str(root)},
        capture_output=True,
        text=True,
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"run.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def load_seconds(code: Path, root: Path, name: str, script: str = LOAD) -> float:
    """load_results(name) (or another ``script``) in a fresh process: nothing cached."""
    done = subprocess.run(
        [sys.executable, "-c", script, name],
        cwd=code,
        env={**os.environ, "MEMO_ROOT": str(root), "PYTHONPATH": str(code)},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.split()[1])


def disk(folder: Path) -> tuple:
    """(bytes allocated, files) under ``folder``."""
    used, files = 0, 0
    for path in folder.rglob("*"):
        info = path.lstat()
        if path.is_file():
            used += info.st_blocks * 512
            files += 1
    return used, files


def measure(code: Path, root: Path, points: int, tasks: int) -> dict:
    name = f"noop{points}"
    (root / "experiments").mkdir(parents=True, exist_ok=True)
    spec = {"trial": "synthetic", "param_grid": {"x": {"type_": "range", "stop": points}}}
    (root / "experiments" / f"{name}.json").write_text(json.dumps(spec))
    found = {"run": run_py(code, root, "--name", name, "--tasks", str(tasks))}
    found["bytes"], found["files"] = disk(root / "results" / name)
    found["status"] = min(run_py(code, root, "--name", name, "--status") for _ in range(2))
    found["load"] = min(load_seconds(code, root, name) for _ in range(2))
    found["grid"] = load_seconds(code, root, name, GRID)  # --status's share outside the store
    return found


def bare_seconds(points: int, tasks: int) -> float:
    """A bare joblib.Parallel over as many no-op synthetic calls."""
    params = [{"x": float(x), "y": 1.0, "duration": 0, "fail": False, "nan": False,
               "die": False, "seed": x} for x in range(points)]  # fmt: skip
    start = time.perf_counter()
    joblib.Parallel(n_jobs=tasks)(joblib.delayed(trial)(p) for p in params)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--old", type=Path, help="a checkout of memo before the journal")
    parser.add_argument("--skip-old", action="store_true", help="measure the journal only")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="memo-bench-store-"))
    old = args.old
    if old is None and not args.skip_old:
        old = work / "old"
        subprocess.run(["git", "-C", str(HERE), "worktree", "add", "-q", "--detach", str(old),
                        BEFORE], check=True)  # fmt: skip
    bare = bare_seconds(args.points, args.tasks)
    print(f"{args.points:,} no-op synthetic points, --tasks {args.tasks}, bare joblib {bare:.2f} s")
    stores = {"journal + records.parquet": HERE}
    if not args.skip_old:
        stores[f"one file a point ({BEFORE})"] = old
    header = "| measure | " + " | ".join(stores) + " | goal |"
    rows = {}
    for label, code in stores.items():
        rows[label] = measure(code, work / label.split()[0], args.points, args.tasks)
    print(header)
    print("|---" * (len(stores) + 2) + "|")
    lines = [
        ("disk a point (KB allocated)", lambda f: f"{f['bytes'] / args.points / 1e3:.3f}", "≤ 0.2"),
        ("files a 10,000 points", lambda f: f"{f['files'] / args.points * 1e4:.2f}", "≤ 1"),
        ("`--status` (s, best of 2)", lambda f: f"{f['status']:.2f}", "≤ 2"),
        ("of which the grid's ids (s)", lambda f: f"{f['grid']:.2f}", ""),
        ("`load_results()` cold (s, best of 2)", lambda f: f"{f['load']:.2f}", "≤ 3"),
        ("run.py (s)", lambda f: f"{f['run']:.1f}", ""),
        ("runner cost a point over bare joblib (ms)",
         lambda f: f"{(f['run'] - bare) / args.points * 1e3:.3f}", "≤ 0.3"),
    ]  # fmt: skip
    for what, show, goal in lines:
        print(f"| {what} | " + " | ".join(show(rows[s]) for s in stores) + f" | {goal} |")
    if old is not None and args.old is None:
        subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(old)])
    subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
