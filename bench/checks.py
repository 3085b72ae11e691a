"""What the hardening checks cost: dataset checksums, and a dry-run of a big grid.

    python bench/checks.py [--points 1000000]

1. The first read of moons, moons_size_100k and mnist5k in a fresh process state, verified
   against the digests of a fresh build (memo/datasets/verify.py), against an unchecked
   memory map (np.load mmap_mode="r" of each file); the same where this machine's build
   writes other bytes (rebuilt in memory and compared); mnist5k memory-mapped, as files
   over 64 MiB are, and the stat check made before each point.
2. ``run.py --dry-run`` over a synthetic grid of --points points, streaming, against holding
   every point (``Spec.points()``, what the dry-run did before): seconds and peak memory,
   each in its own process.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def median_ms(call, repeat=15) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1000


def datasets_bench() -> None:
    import numpy as np

    from memo import datasets
    from memo.datasets import cache, digests, registry

    for name in ("moons", "moons_size_100k", "mnist5k"):
        stored = registry.entry(name).needs if registry.entry(name).prefix else name
        datasets.prepare(name)
        where = cache.folder(stored)

        def verified():
            registry.forget()  # as a new process: nothing loaded, nothing checked yet
            cache._accepted.clear()
            return datasets.load_dataset(name)

        def unchecked():
            return [np.load(p, mmap_mode="r") for p in sorted(where.glob("*.npy"))]

        base = median_ms(unchecked)
        read = median_ms(verified)
        size = sum(p.stat().st_size for p in where.glob("*.npy")) / 1e6
        print(f"{name} ({size:.0f} MB): unchecked memory map {base:.2f} ms (the anchor)")
        print(f"{name}: verified first read {read:.1f} ms ({read / base:.0f}x), once per process")
        pinned = digests.PINNED[stored]
        digests.PINNED[stored] = {f: (size, "0" * 64) for f, (size, _) in pinned.items()}
        rebuilt = median_ms(verified, repeat=3)
        digests.PINNED[stored] = pinned
        print(
            f"{name}: the same where a build writes other bytes (rebuilt, compared) {rebuilt:.0f} ms"
        )
    cache.IN_MEMORY_BYTES = 0  # mapped, as files over 64 MiB are
    mapped = median_ms(verified)
    ds = verified()
    recheck = median_ms(lambda: datasets.load_dataset(name), repeat=200)
    print(f"{name}: verified, then memory-mapped {mapped:.1f} ms")
    print(f"{name}: stat check before a point (load_dataset again) {recheck:.3f} ms")
    assert isinstance(ds.X, np.memmap)


def dry_run_bench(points: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        (Path(root) / "experiments").mkdir()
        side = int(points**0.5)
        grid = {
            "x": {"type_": "range", "stop": points // side},
            "y": {"type_": "range", "stop": side},
        }
        spec = {"trial": "synthetic", "param_grid": grid}
        (Path(root) / "experiments" / "big.json").write_text(json.dumps(spec))
        env = {**os.environ, "MEMO_ROOT": root, "PYTHONPATH": str(ROOT)}
        code = {
            "held (Spec.points)": "from memo.run.spec import load_spec; len(load_spec('big').points())",
            "streamed (--dry-run)": "import run; run.main(['--name', 'big', '--dry-run'])",
        }
        for label, body in code.items():
            script = (
                "import resource, time; t = time.perf_counter()\n"
                f"{body}\n"
                "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
            )
            out = subprocess.run(
                [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
            ).stdout.split()
            seconds, kib = float(out[-2]), int(out[-1])
            print(f"{points:,} points {label}: {seconds:.1f} s, peak {kib / 1024:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    args = parser.parse_args()
    datasets_bench()
    dry_run_bench(args.points)


if __name__ == "__main__":
    main()
