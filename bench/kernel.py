"""The kernel trial's solve against Zhang et al.'s recipe, same data, same γ, one run.

    python bench/kernel.py [--sizes 4000 15000] [--gamma 0.02] [--full] [--log FILE]

Zhang's recipe (pluskid/fitting-random-labels): ``K = exp(-γ squareform(pdist(X,
"sqeuclidean")))`` in float64, then ``scipy.linalg.solve(K, Y)`` (LU on a copy). Ours
(memo.kernels): K built in blocks straight into one Fortran-ordered array, Cholesky in place,
two triangular solves; in float64, in ``mixed`` (float32 factor, float64 refinement) and
in float32 alone.
Each method runs in a subprocess of its own, so its peak RSS (ru_maxrss) is its own; the
baseline (interpreter, numpy/scipy, the data) is measured there before the solve and
reported beside the peak. Timed: building K plus solving (``time``); predictions of the
test points apart. Data: mnist5k's 4,000 training images (pixels / 255) for n = 4000 and
random points in [0, 1]^784 (MNIST's shape and scale, random labels) for larger n.
Checks: equal test error on mnist5k; α within 1e-6 relative (max norm) in float64.

``--full``: one 60,000 × 784 solve (random data, mixed precision) with its time and peak
memory, logging each stage's time and peak RSS as it goes, and the factor's progress with
an estimate of its end (a float32 Cholesky of that size is 7.2e13 flops: about an hour on
2 quiet cores). Not run in CI.
"""

import argparse
import importlib
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


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def load(n: int, seed: int = 0):
    """(X, Y, X_test, y, y_test) float64: mnist5k up to n = 4000, else random points."""
    if n <= 4000:
        from memo.datasets import load_dataset, preprocess

        ds = load_dataset("mnist5k")
        X, X_test = preprocess(ds.X[:n], ds.X_test, "div255+flatten")
        y, y_test = np.asarray(ds.y[:n]), np.asarray(ds.y_test)
    else:
        rng = np.random.default_rng(seed)
        X, X_test = rng.random((n, 784)), rng.random((1000, 784))
        y, y_test = rng.integers(10, size=n), rng.integers(10, size=1000)
    X, X_test = X.astype(np.float64), X_test.astype(np.float64)
    return X, np.eye(10)[y], X_test, y, y_test


def zhang(X, Y, X_test, gamma):
    from scipy.linalg import solve
    from scipy.spatial.distance import cdist, pdist, squareform

    start = time.perf_counter()
    K = np.exp(-gamma * squareform(pdist(X, "sqeuclidean")))
    alpha = solve(K, Y)
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    scores = np.exp(-gamma * cdist(X_test, X, "sqeuclidean")) @ alpha
    return alpha, scores, elapsed, time.perf_counter() - start, 0


def ours(X, Y, X_test, gamma, precision):
    from memo.kernels import build, solve

    start = time.perf_counter()
    if precision == "mixed":
        sol = solve.cholesky(X, Y, "gaussian", gamma, 0.0, "mixed")
        elapsed, iterations = sol.build_time + sol.solve_time, sol.iterations
        alpha = sol.alpha
    else:  # build + factor + solve only: Zhang's recipe checks no residual either
        dtype = np.float32 if precision == "float32" else np.float64
        K = build.build_lower(X.astype(dtype, copy=False), "gaussian", gamma)
        L = solve._factor(K, X, precision, 0.0)
        alpha = solve._as64(solve._cho_solve(L, Y.astype(dtype)))
        elapsed, iterations = time.perf_counter() - start, 0
        del K, L
    start = time.perf_counter()
    scores = build.cross(X_test, X, alpha, "gaussian", gamma)
    return alpha, scores, elapsed, time.perf_counter() - start, iterations


def worker(method: str, n: int, gamma: float, out: str) -> None:
    """One method on one size, in this process; writes α and a JSON line of its numbers."""
    for module in ("scipy.linalg", "scipy.spatial.distance"):  # both methods' libraries
        importlib.import_module(module)  # count as baseline

    X, Y, X_test, y, y_test = load(n)
    base, cpu = peak_rss(), time.process_time()
    if method == "zhang":
        alpha, scores, elapsed, predict, its = zhang(X, Y, X_test, gamma)
    else:
        alpha, scores, elapsed, predict, its = ours(X, Y, X_test, gamma, method)
    np.save(out + ".npy", alpha)
    numbers = dict(time=elapsed, predict=predict, peak=peak_rss(), base=base, iterations=its)
    numbers["cpu"] = time.process_time() - cpu  # all threads, predictions included
    numbers["test_error"] = float(np.mean(scores.argmax(1) != y_test))
    Path(out + ".json").write_text(json.dumps(numbers))


def run(method: str, n: int, gamma: float, folder: str) -> dict:
    out = os.path.join(folder, f"{method}_{n}")
    cmd = [sys.executable, __file__, "--worker", method, "--sizes", str(n), "--gamma", str(gamma)]
    subprocess.run(cmd + ["--out", out], check=True)
    numbers = json.loads(Path(out + ".json").read_text())
    numbers["alpha"] = np.load(out + ".npy")
    return numbers


def compare(sizes: list, gamma: float) -> None:
    print(
        "| n | data | method | time s | ratio | CPU s | peak GB (above base) | ratio | "
        "test error | α rel. diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for n in sizes:
            base = run("zhang", n, gamma, folder)
            data = "mnist5k" if n <= 4000 else "random 784-d"
            for method in ("zhang", "float64", "mixed", "float32"):
                r = base if method == "zhang" else run(method, n, gamma, folder)
                diff = np.abs(r["alpha"] - base["alpha"]).max() / np.abs(base["alpha"]).max()
                above, base_above = r["peak"] - r["base"], base["peak"] - base["base"]
                print(
                    f"| {n:,} | {data} | {method} | {r['time']:.1f} | "
                    f"{base['time'] / r['time']:.1f}x | {r['cpu']:.0f} | "
                    f"{r['peak'] / GB:.2f} ({above / GB:.2f}) | "
                    f"{above / base_above:.2f} | {r['test_error']:.3f} | {diff:.1e} |",
                    flush=True,
                )


def full(gamma: float, log_path: str | None) -> None:
    """The 60,000-point solve in mixed precision, logging stages as they finish."""
    from memo.kernels import build, memory, solve

    def log(message):
        line = f"{time.strftime('%H:%M:%S')} {message}"
        print(line, flush=True)
        if log_path:
            with open(log_path, "a") as f:
                f.write(line + "\n")

    n = 60_000
    X, Y, X_test, y, y_test = load(n)
    need = memory.needed_bytes(n, 784, 10, 1000, "cholesky", "mixed")
    log(f"n {n}: estimate {need / GB:.1f} GB, available {memory.available_bytes() / GB:.1f} GB")
    start = time.perf_counter()
    K = build.build_lower(X.astype(np.float32), "gaussian", gamma)
    log(
        f"built K (float32): {time.perf_counter() - start:.0f} s, peak RSS {peak_rss() / GB:.2f} GB"
    )
    factor_start, shown = time.perf_counter(), [0.0]

    def progress(share):  # blocked factor (n > 46,340): log each further 2 % with an ETA
        if share - shown[0] >= 0.02 or share == 1.0:
            shown[0] = share
            spent = time.perf_counter() - factor_start
            log(f"factor {100 * share:.0f} % of flops in {spent:.0f} s; all ~{spent / share:.0f} s")

    L = solve._factor(K, X, "mixed", 0.0, progress)
    log(f"factored: {time.perf_counter() - start:.0f} s, peak RSS {peak_rss() / GB:.2f} GB")
    alpha = solve._as64(solve._cho_solve(L, Y.astype(np.float32)))
    fitted = build.matvec(X, alpha, "gaussian", gamma)
    residual = np.abs(fitted - Y).max()
    log(f"residual pass: {time.perf_counter() - start:.0f} s, residual {residual:.1e}")
    whole = [(n, slice(0, Y.shape[1]))]
    alpha, fitted, (steps,) = solve._refine(
        L, X, Y, alpha, fitted, "gaussian", gamma, 0.0, None, whole
    )
    log(
        f"done: {time.perf_counter() - start:.0f} s, {steps} refinement steps, residual "
        f"{np.abs(fitted - Y).max():.1e}, peak RSS {peak_rss() / GB:.2f} GB"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000, 15000])
    parser.add_argument("--gamma", type=float, default=0.02)
    parser.add_argument("--full", action="store_true", help="the 60,000-point solve only")
    parser.add_argument("--log", help="--full: also append the stages to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.sizes[0], args.gamma, args.out)
    elif args.full:
        full(args.gamma, args.log)
    else:
        compare(args.sizes, args.gamma)


if __name__ == "__main__":
    main()
