"""Cholesky factor and solves of matrices too large for scipy's LAPACK, in place, by blocks.

scipy's LAPACK is built with 32-bit integers: past n = 46,340 (n² > 2³¹) ``potrf``
computes element offsets that overflow, and it crashed (segfault) on a 60,000 × 60,000
float32 K here. The blocked forms below do the O(n³) work in numpy's matrix products
(its OpenBLAS takes 64-bit sizes) and call LAPACK only on one diagonal block at a time.
"""

import numpy as np

LAPACK_MAX = 46_340  # largest n with n² < 2³¹: scipy's 32-bit LAPACK is safe up to here
BLOCK = 512  # columns per step; GEMMs this wide run at full speed


def cholesky(K, block: int | None = None, progress=None) -> int:
    """Overwrite the lower triangle of the Fortran-ordered K with its Cholesky factor L.

    Left-looking by column blocks: block j gets K[j:, j] −= L[j:, :j] L[j, :j]ᵀ (one GEMM),
    the diagonal block is factored by LAPACK and the panel below solved against it. Returns
    0, or the 1-based row whose pivot is not positive (LAPACK's ``info``). ``progress(share)``
    is called after each block with the share of the flops done.
    """
    from scipy.linalg import lapack, solve_triangular

    n, block = len(K), block or BLOCK
    potrf = lapack.dpotrf if K.dtype == np.float64 else lapack.spotrf
    for j0 in range(0, n, block):
        j1 = min(n, j0 + block)
        if j0:
            K[j0:, j0:j1] -= K[j0:, :j0] @ K[j0:j1, :j0].T
        D, info = potrf(np.array(K[j0:j1, j0:j1]), lower=1, clean=1)
        if info:
            return j0 + info
        K[j0:j1, j0:j1] = D
        if j1 < n:  # L[j1:, j] = K[j1:, j] D⁻ᵀ, i.e. D Lᵀ = Kᵀ
            K[j1:, j0:j1] = solve_triangular(D, K[j1:, j0:j1].T, lower=True, check_finite=False).T
        if progress:  # block j's GEMM is (n − j)·j·block: done ∫(1 − t)t dt = 3x² − 2x³
            progress(3 * (j1 / n) ** 2 - 2 * (j1 / n) ** 3)
    return 0


def forward(L, B, block: int | None = None):
    """Z with L Z = B, a new array in L's dtype; L the lower triangle :func:`cholesky` made."""
    from scipy.linalg import solve_triangular

    n, block = len(L), block or BLOCK
    Z = np.array(B, dtype=L.dtype)
    for j0 in range(0, n, block):
        j1 = min(n, j0 + block)
        if j0:
            Z[j0:j1] -= L[j0:j1, :j0] @ Z[:j0]
        Z[j0:j1] = solve_triangular(L[j0:j1, j0:j1], Z[j0:j1], lower=True, check_finite=False)
    return Z


def backward(L, Z, block: int | None = None):
    """X with Lᵀ X = Z, written over Z (an array in L's dtype) and returned."""
    from scipy.linalg import solve_triangular

    n, block = len(L), block or BLOCK
    for j1 in range(n, 0, -block):
        j0 = max(0, j1 - block)
        if j1 < n:
            Z[j0:j1] -= L[j1:, j0:j1].T @ Z[j1:]
        Z[j0:j1] = solve_triangular(
            L[j0:j1, j0:j1], Z[j0:j1], lower=True, trans="T", check_finite=False
        )
    return Z
