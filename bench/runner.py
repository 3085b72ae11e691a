"""The runner's cost: overhead per point against a bare joblib.Parallel, --status time, and
load_results on records without curves.

    python bench/runner.py [--points 10000] [--records 100000] [--tasks 2] [--scalars 20000]

Both are measured in this run on this machine, so the ratios hold on a noisy one.
Goals (issue 2): at most 2 ms per point over joblib; --status over 100,000 records < 2 s.
"""

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
import types
from pathlib import Path

import joblib

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import run  # noqa: E402
from memo.run import worker  # noqa: E402
from memo.run.spec import load_spec  # noqa: E402
from memo.store.records import load_results  # noqa: E402
from memo.run.worker import Job, provenance, run_point  # noqa: E402


def noop(params):
    return {"value": params["x"]}


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def quiet(fn):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return fn()


def write_spec(root: Path, name: str, points: int) -> None:
    spec = {"trial": "synthetic", "param_grid": {"x": {"type_": "range", "stop": points}}}
    (root / "experiments" / f"{name}.json").write_text(json.dumps(spec))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--scalars", type=int, default=20_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="memo-bench-"))
    (root / "experiments").mkdir()
    os.environ["MEMO_ROOT"] = str(root)

    write_spec(root, "overhead", args.points)
    params = [p.params for p in load_spec("overhead").points()]
    bare = timed(
        lambda: joblib.Parallel(n_jobs=args.tasks)(joblib.delayed(noop)(p) for p in params)
    )
    ours = timed(
        lambda: quiet(lambda: run.main(["--name", "overhead", "--tasks", str(args.tasks)]))
    )
    extra_ms = (ours - bare) / args.points * 1e3
    print(f"{args.points} no-op points, {args.tasks} tasks:")
    print(f"  bare joblib.Parallel   {bare:7.2f} s")
    print(f"  run.py (spec, records, table) {ours:7.2f} s  ratio {ours / bare:5.2f}")
    print(f"  overhead per point     {extra_ms:7.3f} ms  (goal <= 2 ms)")

    write_spec(root, "status", args.records)
    spec = load_spec("status")
    job = Job("status", spec.trial, str(root / "results"), None, 1, provenance("joblib"))
    fill = timed(lambda: [run_point(job, p) for p in spec.points()])
    cold = timed(lambda: quiet(lambda: run.main(["--name", "status", "--status"])))
    warm = timed(lambda: quiet(lambda: run.main(["--name", "status", "--status"])))
    print(f"--status over {args.records} records (written in {fill:.1f} s):")
    print(f"  first, reading every record  {cold:6.2f} s  (from the journal: not compacted)")
    print(f"  again, what changed only     {warm:6.2f} s  (goal < 2 s)")

    # Records with scalar metrics only, as memorize's are (synthetic's have a curve).
    write_spec(root, "scalars", args.scalars)
    job = Job("scalars", "synthetic", str(root / "results"), None, 1, provenance("joblib"))
    worker.trial_module = lambda name: types.SimpleNamespace(trial=noop)
    for point in load_spec("scalars").points():
        run_point(job, point)
    load_results("scalars", curves=False)  # read once, as after any run
    default = timed(lambda: load_results("scalars"))
    scalars = timed(lambda: load_results("scalars", curves=False))
    print(f"load_results over {args.scalars} records without curves:")
    print(f"  default (curves=True)  {default:6.2f} s  ratio {default / scalars:5.2f}")
    print(f"  curves=False           {scalars:6.2f} s")


if __name__ == "__main__":
    main()
