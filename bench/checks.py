"""What the hardening checks cost: dataset checksums, and a dry-run of a big grid.

    python bench/checks.py [--points 1000000]

1. Reading mnist5k (16 MB) in a fresh process state: memo's checked read (parsed from the
   checksummed bytes; and checked, then memory-mapped, as files over 64 MiB are), against
   the unchecked memory map it replaced (np.load mmap_mode="r" of each file), and the
   stat check made before each point.
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
    from memo.datasets import cache

    datasets.prepare("mnist5k")
    where = cache.folder("mnist5k")

    def checked(in_memory):
        cache.IN_MEMORY_BYTES = in_memory
        cache._verified.clear()  # as a new process: nothing checked yet
        return cache.read("mnist5k")

    def unchecked():
        return [np.load(p, mmap_mode="r") for p in sorted(where.glob("*.npy"))]

    base = median_ms(unchecked)
    read = median_ms(lambda: checked(64 * 2**20))
    mapped = median_ms(lambda: checked(0))
    ds = checked(0)
    recheck = median_ms(lambda: cache.recheck(ds), repeat=200)
    print(f"mnist5k: unchecked memory map {base:.2f} ms (the anchor)")
    print(f"mnist5k: checked read {read:.1f} ms ({read / base:.0f}x), once per process")
    print(f"mnist5k: checked, then memory-mapped {mapped:.1f} ms ({mapped / base:.0f}x)")
    print(f"mnist5k: stat check before a point {recheck:.3f} ms")


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
