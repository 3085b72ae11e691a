"""How many bytes a kernel solve needs, how many the machine has, and the check between them.

The estimate is made before anything large is allocated, so a grid point too big for the
machine ends as one error line (needed, available, and what would fit) instead of being
OOM-killed halfway through.
"""

import math
from pathlib import Path

from memo.kernels.build import BLOCK_BYTES

GB = 1e9
ITEMSIZE = {"float64": 8, "float32": 4, "mixed": 4}  # bytes per entry of the stored K
# float64 n×classes arrays a point's labels may take at once: the labels, padded, α, K α, the
# triangular solves' outputs, the refinement's residual, correction and trial α and K α
# (3-5 measured for each point added to a group: tests/test_kernel_group.py)
RHS_COPIES = 10
CGROUP_FILES = (  # (limit, usage): cgroup v2, then v1
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
)


def available_bytes() -> int:
    """Memory this process may still take: MemAvailable of /proc/meminfo, lowered to the
    cgroup's limit minus its usage where a container or batch job sets one."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in CGROUP_FILES:
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:  # "max" or a huge v1 number: no limit
            found.append(int(limit) - usage)
        break
    if not found:
        import psutil  # not on Linux: ask psutil (a joblib/loky dependency)

        return int(psutil.virtual_memory().available)
    return max(0, min(found))


def device_bytes(device) -> int:
    """Free memory of a CUDA device."""
    import torch

    return int(torch.cuda.mem_get_info(device)[0])


def needed_bytes(n, d, classes, n_test, solver, precision, device="cpu", rank=0, points=1) -> int:
    """Bytes the solve needs at peak beyond what is already allocated (the data).

    cholesky: K (n² entries; twice on CUDA, where torch factors out of place) + float64 and
    stored-precision copies of X + one kernel block + :data:`RHS_COPIES` n×classes arrays and
    two n_test×classes ones for each of ``points`` points solved at once (one factor, their
    labels side by side: memo.kernels.solve.cholesky_many); iterative (one point): X, the
    n×rank Nyström factors (three at once while they are made), blocks and the
    conjugate-gradient vectors.
    """
    if solver == "iterative":
        vectors = 8 * n * classes * 8
        return int(n * d * 8 + 3 * n * min(rank, n) * 8 + _blocks(d, n_test) + vectors)
    quadratic, linear, constant = _cholesky_terms(d, classes * points, n_test, precision, device)
    return int(quadratic * n * n + linear * n + constant)


def largest_n(available, d, classes, n_test, precision, device="cpu") -> int:
    """The largest n whose cholesky solve fits in ``available`` bytes (0 if none).

    >>> largest_n(24e9, 784, 10, 10000, "float64") // 1000
    53
    """
    quadratic, linear, constant = _cholesky_terms(d, classes, n_test, precision, device)
    spare = available - constant
    if spare <= 0:
        return 0
    return int((-linear + math.sqrt(linear**2 + 4 * quadratic * spare)) / (2 * quadratic))


def _cholesky_terms(d, classes, n_test, precision, device) -> tuple:
    """(a, b, c): the cholesky solve's bytes are a n² + b n + c (see :func:`needed_bytes`)."""
    size = ITEMSIZE[precision]
    copies = 2 if str(device).startswith("cuda") else 1
    rhs = RHS_COPIES * classes * 8
    return copies * size, d * (8 + size) + rhs, _blocks(d, n_test) + 2 * n_test * classes * 8


def _blocks(d, n_test) -> int:
    """Bytes of the kernel blocks in flight: two of the build's and one of the test set's."""
    return 2 * BLOCK_BYTES * 8 + n_test * d * 8


def choose(n, d, classes, n_test, solver, precision, device, available, rank) -> tuple:
    """(solver, precision) to run: ``auto`` resolved from the estimate against ``available``
    bytes. Raises MemoryError, one line naming needed/available bytes and what would fit."""

    def need(s, p):
        return needed_bytes(n, d, classes, n_test, s, p, device, rank)

    if solver != "iterative":
        tried = ("float64", "mixed") if precision == "auto" else (precision,)
        for p in tried:
            if need("cholesky", p) <= available:
                return "cholesky", p
        if solver == "auto" and need("iterative", "float64") <= available:
            return "iterative", "float64"
        p = tried[-1]
        needed, iterative = need("cholesky", p), need("iterative", "float64")
        fits = [f"n_train <= {largest_n(available, d, classes, n_test, p, device):,} in {p}"]
        if p == "float64" and need("cholesky", "mixed") <= available:
            fits.insert(0, "precision 'mixed' or 'float32'")
        raise MemoryError(
            f"kernel: the cholesky solve of n_train {n:,} in {p} needs {needed / GB:.1f} GB, "
            f"and {available / GB:.1f} GB are available here; what fits: {', or '.join(fits)}, "
            f"or solver 'iterative' ({iterative / GB:.1f} GB)"
        )
    if need("iterative", "float64") > available:
        raise MemoryError(
            f"kernel: the iterative solve of n_train {n:,} with rank {rank} needs "
            f"{need('iterative', 'float64') / GB:.1f} GB, and {available / GB:.1f} GB are "
            "available here; lower rank or n_train"
        )
    return "iterative", "float64"
