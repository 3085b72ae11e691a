"""Reference vs fast form of algorithm.fit, side by side in one run.

    python bench/algorithm.py [--quick] [--seeds 20] [--only NAME ...]

Timing: one fit (seed 0) per case and form, in this process, CPU seconds (process time)
and wall seconds, with BLAS held to one thread (set below, before numpy loads): the cost
of one point in a grid run with one point per core. Where the reference would take too
long here, both forms run the same prefix of the covering (the first ``max_tried``
candidates of each class; both forms draw the same candidates), the ratio is taken on
that prefix, and the fast form's full fit is timed too.

Outcomes: mean K and interpolation rate over ``--seeds`` seeds for both forms, with
standard errors, and how many seeds gave bit-identical networks (they should all). Where
the reference is too slow for many seeds, on a documented smaller version of the case.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import algorithm  # noqa: E402
from memo.datasets import load_dataset, preprocess  # noqa: E402


@dataclass
class Case:
    name: str
    load: object  # () -> (X, y) for timing
    n: int
    max_bias: float
    activation: str = "thres"
    prefix: int | None = None  # max_tried per class for the side-by-side timing
    small: object = None  # () -> (X, y, note) for the outcome check, if not the case itself
    check: bool = True  # run the outcome check


def mnist5k(limit=None):
    ds = load_dataset("mnist5k")
    X, _ = preprocess(ds.X.reshape(len(ds.X), -1), None, "maxnorm")  # radius 1, as memo
    return X[:limit], np.asarray(ds.y)[:limit]


def moons(size):
    ds = load_dataset(f"moons_size_{size}")
    return np.asarray(ds.X), np.asarray(ds.y)


def mnist5k_repeated(times=14, seed=0):
    """mnist5k's 4000 training images 14 times over, each copy jittered by Gaussian noise
    of 1% of the radius (56,000 points: MNIST's size, not its content)."""
    X, y = mnist5k()
    rng = np.random.default_rng(seed)
    X = np.concatenate([X + 0.01 * rng.standard_normal(X.shape, dtype=np.float32)] * times)
    return X, np.concatenate([y] * times)


def cifar_sized(N=60_000, d=3072, seed=0):
    """Gaussian points scaled to radius 1 with random labels 0..9 (nothing to exploit)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, d), dtype=np.float32)
    X /= np.linalg.norm(X, axis=1).max()
    return X, rng.integers(0, 10, N)


CASES = [
    Case(
        "moons 1M, n=1000",
        lambda: moons("1000k"),
        1000,
        1.0,
        small=lambda: (*moons("100k"), "moons 100k (first 100k of the 1M), n=1000"),
    ),
    Case("mnist5k, n=500", mnist5k, 500, 1.0),
    Case(
        "mnist5k, n=5000",
        mnist5k,
        5000,
        1.0,
        small=lambda: (*mnist5k(1000), "first 1000 mnist5k images, n=5000"),
    ),
    Case("mnist5k relu, n=500", mnist5k, 500, 1.0, activation="relu"),
    Case("mnist5k first 1000, n=80, λ=0", lambda: mnist5k(1000), 80, 0.0),  # interpolates half
    Case(
        "random 60000x3072, n=1000",
        cifar_sized,
        1000,
        1.0,
        prefix=60,
        small=lambda: (*cifar_sized(2000), "random 2000x3072, n=1000"),
    ),
    Case("mnist5k x14 jittered (56k), n=500", mnist5k_repeated, 500, 1.0, prefix=60, check=False),
]


def timed_fit(X, y, case, method, seed=0, max_tried=None):
    wall, cpu = time.perf_counter(), time.process_time()
    net = algorithm.fit(
        X, y, case.n, case.max_bias, case.activation, seed, method=method, max_tried=max_tried
    )
    return net, time.process_time() - cpu, time.perf_counter() - wall


def same(a, b):
    arrays = [*zip(a.U, b.U), *zip(a.m, b.m), *zip(a.centers, b.centers)]
    return all(np.array_equal(p, q) for p, q in arrays) and a.tried == b.tried


def outcomes(X, y, case, seeds):
    """Per form: K and interpolated per seed; and the number of identical networks."""
    stats = {"reference": ([], []), "fast": ([], [])}
    identical = 0
    for seed in range(seeds):
        nets = {}
        for method, (K, interp) in stats.items():
            nets[method] = algorithm.fit(
                X, y, case.n, case.max_bias, case.activation, seed, method=method
            )
            K.append(sum(nets[method].K))
            interp.append(nets[method].training_score(y) == 1.0)
        identical += same(nets["reference"], nets["fast"])
    return stats, identical


def mean_se(values):
    v = np.asarray(values, dtype=float)
    return v.mean(), v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds for the outcome check")
    parser.add_argument("--quick", action="store_true", help="3 seeds, smaller prefixes")
    parser.add_argument("--only", nargs="+", help="cases whose name starts with one of these")
    args = parser.parse_args(argv)
    seeds = 3 if args.quick else args.seeds
    cases = [c for c in CASES if not args.only or any(c.name.startswith(o) for o in args.only)]

    timing_rows, outcome_rows = [], []
    for case in cases:
        X, y = case.load()
        print(f"# {case.name}: N={len(X)}, d={X.shape[1]}", flush=True)
        prefix = case.prefix and (6 if args.quick else case.prefix)
        ref, ref_cpu, ref_wall = timed_fit(X, y, case, "reference", max_tried=prefix)
        fast, fast_cpu, fast_wall = timed_fit(X, y, case, "fast", max_tried=prefix)
        assert same(ref, fast), f"{case.name}: the forms built different networks"
        row = {
            "case": case.name,
            "what": f"first {prefix} candidates per class" if prefix else "whole fit",
            "tried": sum(ref.tried),
            "K": sum(ref.K),
            "ref": (ref_cpu, ref_wall),
            "fast": (fast_cpu, fast_wall),
        }
        if prefix:
            # The reference's cost a candidate, without the first layer: the difference
            # between two prefixes. Then the whole fit of the fast form.
            short, short_cpu, _ = timed_fit(X, y, case, "reference", max_tried=prefix // 6)
            per = (ref_cpu - short_cpu) / (sum(ref.tried) - sum(short.tried))
            full, full_cpu, full_wall = timed_fit(X, y, case, "fast")
            estimate = ref_cpu + per * (sum(full.tried) - sum(ref.tried))
            row["full"] = (full_cpu, full_wall, sum(full.tried), sum(full.K), per, estimate)
        timing_rows.append(row)
        print(row, flush=True)

        if case.check:
            Xs, ys, note = case.small() if case.small else (X, y, "the case itself")
            stats, identical = outcomes(Xs, ys, case, seeds)
            outcome_rows.append((case.name, note, stats, identical))
            print(note, {m: (mean_se(K), mean_se(i)) for m, (K, i) in stats.items()}, flush=True)

    print("\n| case | timed | tried | reference CPU s (wall) | fast CPU s (wall) | ratio (CPU) |")
    print("|---|---|---|---|---|---|")
    for r in timing_rows:
        ratio = r["ref"][0] / r["fast"][0]
        print(
            f"| {r['case']} | {r['what']} | {r['tried']} | {r['ref'][0]:.2f} ({r['ref'][1]:.2f})"
            f" | {r['fast'][0]:.2f} ({r['fast'][1]:.2f}) | {ratio:.1f}x |"
        )
    print("\nWhole fits where the reference ran on a prefix only (its time extrapolated):\n")
    print(
        "| case | tried | K | reference CPU s a candidate | reference CPU s (extrapolated) "
        "| fast CPU s (wall), measured | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in timing_rows:
        if "full" in r:
            cpu, wall, tried, K, per, estimate = r["full"]
            print(
                f"| {r['case']} | {tried} | {K} | {per:.4f} | {estimate:.0f} | {cpu:.1f} "
                f"({wall:.1f}) | {estimate / cpu:.0f}x (extrapolated) |"
            )
    print(
        "\n| case | outcome check on | seeds | mean K ref | mean K fast | interp. ref | "
        "interp. fast | identical networks |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, note, stats, identical in outcome_rows:
        (kr, kr_se), (ir, ir_se) = (mean_se(v) for v in stats["reference"])
        (kf, kf_se), (i_f, if_se) = (mean_se(v) for v in stats["fast"])
        print(
            f"| {name} | {note} | {seeds} | {kr:.1f} ± {kr_se:.1f} | {kf:.1f} ± {kf_se:.1f} | "
            f"{ir:.2f} ± {ir_se:.2f} | {i_f:.2f} ± {if_se:.2f} | {identical}/{seeds} |"
        )


if __name__ == "__main__":
    main()
