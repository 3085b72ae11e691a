"""memo's own algorithm.py against the fast form of algorithm.fit, side by side in one run.

    python bench/memorize.py [--memo PATH] [--quick] [--only NAME ...]
    python bench/memorize.py --cifar [--threads 2]

Baseline: memo's ``algorithm.py`` (patrickfinke/memo, the code the paper's results were
made with) from ``--memo PATH``, any memo checkout; by default ../shared/anchors/memo beside
the project (or beside a folder above it). Both fit the same float32 arrays with the same params (n_iter, max_bias,
activation), seeds 0, 1, ... each; their random streams differ, so the networks differ but
come from one distribution: K (second_dim_out, neurons over all class networks) and the
interpolation rate (training score 1) are reported for both.

Timing: CPU seconds (time.process_time) of the fit alone, BLAS held to one thread, in
this process, memo and fast taking turns per seed: the cost of one point when a grid runs
one point per core. The fast form's compiled kernels are loaded before timing; what they
cost once per process (compiling after an install, loading the cache later) is measured
in fresh processes and printed first.

Correctness oracle: this project's ``method="reference"`` (readable, slow). For every case
the fast and reference forms must build bit-identical networks (same masks, thresholds,
centres, counts); on the MNIST-sized cases they are compared on the first 60 candidates
of each class (``max_tried``: both forms draw the same candidates).

``--cifar``: the fast form's whole fit on CIFAR-10's size (60,000 x 3,072 Gaussian points
of radius 1 with random labels 0..9, n = 10,000, λ = 1), CPU and wall time and peak
resident memory, with ``--threads`` BLAS threads; no memo run (its published fit of this
size took about 6.4 hours).
"""

import os
import sys

THREADS = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, THREADS)

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
import algorithm  # noqa: E402
from memo.memorize import bitset  # noqa: E402
from memo.datasets import load_dataset, preprocess  # noqa: E402

# ../shared/anchors/memo beside the project (or beside a folder above it, for worktrees).
DEFAULT_MEMO = next(
    (p / "shared/anchors/memo" for p in PROJECT.parents if (p / "shared/anchors/memo").is_dir()),
    None,
)


def load_memo(path: Path):
    """memo's algorithm.py as a module named memo_algorithm (ours is also 'algorithm')."""
    if path is None:
        sys.exit("no memo checkout at ../shared/anchors/memo: give one with --memo PATH")
    source = path / "algorithm.py"
    if not source.is_file():
        sys.exit(f"--memo {path}: no algorithm.py there (give a checkout of patrickfinke/memo)")
    sys.path.insert(0, str(path))  # for its `import utils`
    spec = importlib.util.spec_from_file_location("memo_algorithm", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.path.remove(str(path))
    return module


def mnist5k():
    ds = load_dataset("mnist5k")
    X, _ = preprocess(ds.X.reshape(len(ds.X), -1), None, "maxnorm")  # radius 1, as memo
    return np.asarray(X, dtype=np.float32), np.asarray(ds.y)


def moons():
    ds = load_dataset("moons")  # memo's: 1000 points, radius 1
    return np.asarray(ds.X, dtype=np.float32), np.asarray(ds.y)


def mnist5k_repeated(jitter, times=14, seed=0):
    """mnist5k's 4000 images 14 times over, each copy with Gaussian noise of ``jitter`` times
    the radius per pixel: 56,000 points, MNIST's size (not its content). The jitter sets K."""
    X, y = mnist5k()
    rng = np.random.default_rng(seed)
    copies = [X + jitter * rng.standard_normal(X.shape, dtype=np.float32) for _ in range(times)]
    return np.concatenate(copies), np.concatenate([y] * times)


def cifar_sized(N=60_000, d=3072, seed=0):
    """Gaussian points scaled to radius 1 with random labels 0..9 (nothing to exploit)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, d), dtype=np.float32)
    X /= np.linalg.norm(X, axis=1).max()
    return X, rng.integers(0, 10, N)


@dataclass
class Case:
    name: str
    load: object  # () -> (X, y)
    n: int
    biases: tuple  # λ values; each seed runs each
    seeds: int  # seeds per λ (--quick: fewer)
    goal: float  # the goal for the ratio
    activation: str = "thres"
    prefix: int | None = None  # oracle on the first `prefix` candidates per class only


MOONS = [
    Case(f"moons, n={n}", moons, n, (0.25, 1.0, 2.5), 10, 5.0) for n in (10, 50, 100, 250, 500)
]
CASES = MOONS + [
    Case("mnist5k, n=500", mnist5k, 500, (1.0,), 10, 10.0),
    Case("mnist5k relu, n=500", mnist5k, 500, (1.0,), 3, 0.0, activation="relu"),
    Case(
        "MNIST-sized K~2k, n=500", lambda: mnist5k_repeated(0.001), 500, (1.0,), 1, 20.0, prefix=60
    ),
    Case(
        "MNIST-sized K~10k, n=500", lambda: mnist5k_repeated(0.01), 500, (1.0,), 1, 20.0, prefix=60
    ),
]


def cpu_time(fn):
    start = time.process_time()
    out = fn()
    return time.process_time() - start, out


def run_memo(memo, X, y, case, lam, seed):
    params = {"n_iter": case.n, "max_bias": lam, "activation": case.activation}
    model = memo.get_model(params, seed)
    t, _ = cpu_time(lambda: model.fit(X, y))
    K = memo.get_model_metrics(model)["second_dim_out"]
    return t, K, model.score(X, y) == 1.0


def run_fast(X, y, case, lam, seed):
    t, net = cpu_time(lambda: algorithm.fit(X, y, case.n, lam, case.activation, seed))
    return t, sum(net.K), net.training_score(y) == 1.0


def same(a, b):
    arrays = [*zip(a.U, b.U), *zip(a.m, b.m), *zip(a.centers, b.centers)]
    return all(np.array_equal(p, q) for p, q in arrays) and (a.tried, a.rejected) == (
        b.tried,
        b.rejected,
    )


def oracle(X, y, case, seeds):
    """How many of ``seeds`` seeds give bit-identical fast and reference networks."""
    kw = dict(activation=case.activation, max_tried=case.prefix)
    lam = case.biases[0]
    return sum(
        same(
            algorithm.fit(X, y, case.n, lam, seed=s, method="reference", **kw),
            algorithm.fit(X, y, case.n, lam, seed=s, **kw),
        )
        for s in range(seeds)
    )


def once_per_process():
    """CPU seconds of the first tiny fit in a fresh process: compiling, then from the cache."""
    code = (
        "import time, numpy as np, algorithm; c = time.process_time(); "
        "algorithm.fit(np.eye(4), np.arange(4) % 2, 8, 1.0); print(time.process_time() - c)"
    )
    env = dict(os.environ, PYTHONPATH=str(PROJECT))

    def first_fit(**extra):
        out = subprocess.run(
            [sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True
        )
        return float(out.stdout.strip() or "nan")

    with tempfile.TemporaryDirectory() as empty:
        compiling = first_fit(NUMBA_CACHE_DIR=empty)
    first_fit()  # make sure the cache is written
    return compiling, first_fit()


def mean_se(values):
    v = np.asarray(values, dtype=float)
    return v.mean(), (v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0)


def fmt(values, digits=2):
    mean, se = mean_se(values)
    return f"{mean:.{digits}f} ± {se:.{digits}f}" if len(values) > 1 else f"{mean:.{digits}f}"


def compare(memo, args):
    compiling, loading = once_per_process()
    print(
        f"# once per process: compile {compiling:.2f} CPU s (first fit after an install), "
        f"load from cache {loading:.2f} CPU s (first fit of every later process)\n",
        flush=True,
    )
    bitset.load()  # the kernels, before timing
    cases = [c for c in CASES if not args.only or any(c.name.startswith(o) for o in args.only)]
    rows = []
    for case in cases:
        X, y = case.load()
        seeds = min(case.seeds, 2) if args.quick else case.seeds
        res = {"memo": ([], [], []), "fast": ([], [], [])}
        for seed in range(seeds):
            for lam in case.biases:
                # Turns alternate, so that a load spike does not hit one side only.
                runs = [("memo", lambda: run_memo(memo, X, y, case, lam, seed))]
                runs.append(("fast", lambda: run_fast(X, y, case, lam, seed)))
                for side, fn in runs[:: 1 if seed % 2 else -1]:
                    for store, value in zip(res[side], fn()):
                        store.append(value)
        identical = oracle(X, y, case, 1 if case.prefix or args.quick else 3)
        oracle_seeds = 1 if case.prefix or args.quick else 3
        rows.append((case, len(X), X.shape[1], res, identical, oracle_seeds))
        (tm, Km, im), (tf, Kf, i_f) = res["memo"], res["fast"]
        print(
            f"{case.name}: memo {np.mean(tm):.4f} s, fast {np.mean(tf):.4f} s, "
            f"{np.mean(tm) / np.mean(tf):.1f}x; K {np.mean(Km):.0f} / {np.mean(Kf):.0f}; "
            f"identical to the reference {identical}/{oracle_seeds}",
            flush=True,
        )

    print(
        "\n| case | N x d | λ | fits | memo CPU s a fit | fast CPU s a fit | ratio | goal "
        "| K memo | K fast | interp. memo | interp. fast | fast = reference |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for case, N, d, res, identical, oracle_seeds in rows:
        (tm, Km, im), (tf, Kf, i_f) = res["memo"], res["fast"]
        ratio = np.mean(tm) / np.mean(tf)
        goal = f"≥ {case.goal:.0f}x" if case.goal else "-"
        check = f"{identical}/{oracle_seeds}" + (
            f" (first {case.prefix}/class)" if case.prefix else ""
        )
        print(
            f"| {case.name} | {N} x {d} | {', '.join(map(str, case.biases))} | {len(tm)} "
            f"| {fmt(tm, 4)} | {fmt(tf, 4)} | {ratio:.1f}x | {goal} | {fmt(Km, 1)} "
            f"| {fmt(Kf, 1)} | {fmt(im)} | {fmt(i_f)} | {check} |"
        )


def cifar():
    X, y = cifar_sized()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    bitset.load()
    wall, cpu = time.perf_counter(), time.process_time()
    net = algorithm.fit(X, y, 10_000, 1.0, "thres", 0)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"| random 60000 x 3072, n=10000, λ=1 | {THREADS} | {cpu:.0f} | {wall:.0f} | "
        f"{sum(net.K)} | {net.training_score(y)} | {peak:.2f} GiB ({base:.2f} GiB before the "
        f"fit: the data) |"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memo", type=Path, default=DEFAULT_MEMO, help="a memo checkout")
    parser.add_argument("--quick", action="store_true", help="2 seeds a case, 1 for the oracle")
    parser.add_argument("--only", nargs="+", help="cases whose name starts with one of these")
    parser.add_argument("--cifar", action="store_true", help="only the CIFAR-sized fast fit")
    parser.add_argument("--threads", default="1", help="BLAS threads (read before numpy loads)")
    args = parser.parse_args()
    with threadpool_limits(int(THREADS)):
        if args.cifar:
            cifar()
        else:
            compare(load_memo(args.memo), args)


if __name__ == "__main__":
    main()
