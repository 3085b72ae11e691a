"""Grouped kernel points (trials/kernel.py trial_group) against one point at a time (trial()
per point, what ``run.py --group 1`` does), on the same points, in one run.

    python bench/kernel_group.py [--n 4000] [--baseline-points K] [--only GRID ...]

Grids: ``noise``: 11 label-noise levels x 3 seeds, Gaussian kernel (gamma 0.02), n training
points: mnist5k's first n up to 4,000, beyond that random images of MNIST's shape (pixels
uniform in 0..255, random labels; a 1,000-image test split); ``kernel_noise_small`` and
``kernel_size_small``: those experiments' grids as they are (66 points at n = 2,000; 20 points
of nested n up to 4,000). Each arm runs in a subprocess of its own, so its peak RSS
(ru_maxrss) is its own; one at a time that is one point's peak (every point of a grid is
alone in memory). Printed beside the times: the largest relative difference of any metric
but times and memory between the arms (``residual``, already relative to max |Y|, absolute).

``--baseline-points K``: time only the first K points one at a time and count the others at
their mean (the points of ``noise`` all cost the same); the output says so. At n = 15,000 a
point takes about 20 s on 2 quiet cores (bench/kernel.py) and 2 minutes on a loaded one, so
the whole baseline of 33 points takes 10 to 60 minutes.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
GB = 1e9
RANDOM = "bench_random_images"  # registered in each process when n > 4000
SHARED = {"build_time", "solve_time", "predict_time", "memory_needed", "peak_memory"}


def register_random(n: int) -> None:
    """A dataset of n random training images and 1,000 test images, MNIST's shape."""
    from memo.datasets import registry

    def build():
        rng = np.random.default_rng(0)
        images = lambda m: rng.integers(0, 256, size=(m, 28, 28, 1)).astype(np.float32)
        return images(n), rng.integers(10, size=n), images(1000), rng.integers(10, size=1000)

    shape = ((n, 28, 28, 1), (1000, 28, 28, 1))
    registry.REGISTRY[RANDOM] = registry.Entry("embedded", shape, build)


def grid(name: str, n: int) -> list:
    from memo.run.spec import load_spec

    if name != "noise":
        return [point.params for point in load_spec(name).points()]
    data = dict(dataset="mnist5k", n_train=n) if n <= 4000 else dict(dataset=RANDOM, holdout=0.0)
    levels = np.round(np.linspace(0, 1, 11), 1).tolist()
    base = dict(preprocess="div255", kernel="gaussian", gamma=0.02, ridge=0.0, **data)
    return [{**base, "label_noise": p, "seed": s} for p in levels for s in range(3)]


def arm(how: str, name: str, n: int, limit: int, out: str) -> None:
    """One arm, in this process: results, times and peak RSS into ``out`` (JSON)."""
    from trials.kernel import trial, trial_group

    if n > 4000:
        register_random(n)
    points = grid(name, n)
    trial(points[0] | {"n_train": 10})  # imports, the dataset built or loaded: untimed
    start = time.perf_counter()
    if how == "group":
        results = {i: r for i, r in trial_group(points)}
        timed = len(points)
    else:
        timed = min(limit or len(points), len(points))
        results = {i: trial(points[i]) for i in range(timed)}
    elapsed = time.perf_counter() - start
    bad = {i: repr(r) for i, r in results.items() if isinstance(r, BaseException)}
    results = {i: r for i, r in results.items() if i not in bad}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    numbers = dict(time=elapsed, timed=timed, points=len(points), peak=peak, errors=bad)
    Path(out).write_text(json.dumps(dict(numbers, results=results)))


def run_arm(how, name, n, limit, folder, env) -> dict:
    out = os.path.join(folder, f"{how}_{name}.json")
    cmd = [sys.executable, __file__, "--arm", how, "--only", name, "--n", str(n)]
    subprocess.run(cmd + ["--baseline-points", str(limit), "--out", out], check=True, env=env)
    numbers = json.loads(Path(out).read_text())
    numbers["results"] = {int(i): r for i, r in numbers["results"].items()}
    return numbers


def difference(a: dict, b: dict) -> float:
    """The largest relative difference of two points' metrics (times and memory aside)."""
    worst = 0.0
    for name, value in b.items():
        if name in SHARED or not isinstance(value, float):
            if name not in SHARED and a[name] != value:
                return float("inf")
            continue
        scale = 1.0 if name == "residual" else max(abs(value), 1e-300)
        worst = max(worst, abs(a[name] - value) / scale)
    return worst


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000, help="training points of the noise grid")
    parser.add_argument("--baseline-points", type=int, default=0, help="0: every point")
    parser.add_argument(
        "--only", nargs="+", default=["noise", "kernel_noise_small", "kernel_size_small"]
    )
    parser.add_argument("--arm", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.arm:
        arm(args.arm, args.only[0], args.n, args.baseline_points, args.out)
        return
    print(
        "| grid | points | one at a time s | grouped s | ratio | peak RSS one at a time GB "
        "| grouped GB | labels of all points GB | max rel. diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.only:
            env = dict(os.environ)
            if name == "noise" and args.n > 4000:  # the random images, cached apart
                env["MEMO_DATASETS"] = os.path.join(folder, "datasets")
            alone = run_arm("alone", name, args.n, args.baseline_points, folder, env)
            group = run_arm("group", name, args.n, 0, folder, env)
            if alone["errors"] or group["errors"]:
                print(f"errors: {alone['errors']} {group['errors']}")
            baseline = alone["time"] * alone["points"] / alone["timed"]
            sampled = (
                f" ({alone['timed']} timed, x {alone['points'] / alone['timed']:.1f})"
                if alone["timed"] < alone["points"]
                else ""
            )
            diff = max(difference(group["results"][i], r) for i, r in alone["results"].items())
            n = max(r["train_size"] for r in group["results"].values())
            labels = group["points"] * n * group["results"][0]["num_classes"] * 8  # padded to n
            label = f"{name} (n {args.n:,})" if name == "noise" else name
            print(
                f"| {label} | {group['points']} | {baseline:.1f}{sampled} | {group['time']:.1f} "
                f"| {baseline / group['time']:.1f}x | {alone['peak'] / GB:.2f} "
                f"| {group['peak'] / GB:.2f} | {labels / GB:.3f} | {diff:.1e} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
