"""Kernel matrices in blocks: K(A, B) from norms and one GEMM, in place; K never held twice.

Every function takes numpy arrays (the CPU path) or torch tensors (the CUDA path) and
returns the same kind; the block math is shared, only a few in-place calls differ.
Kernels (γ = ``gamma``, θ the angle between x and x'):

- gaussian: exp(−γ‖x − x′‖²)
- laplacian: exp(−γ‖x − x′‖)
- arccos: γ‖x‖‖x′‖(sin θ + (π − θ) cos θ)/π, the arc-cosine kernel of order 1 (Cho & Saul
  2009): an infinitely wide ReLU layer; γ only scales it, so predictions do not depend on γ.
"""

import math

import numpy as np

KERNELS = ("gaussian", "laplacian", "arccos")
BLOCK_BYTES = 2**25  # a temporary block holds at most this many entries (256 MB in float64)


def is_torch(a) -> bool:
    return type(a).__module__.startswith("torch")


def block_rows(n: int) -> int:
    """Rows per block for an n-column kernel: a temporary of at most BLOCK_BYTES entries and
    1/32 of K, so blocks add little to the one n×n matrix at peak (GEMMs of 32 rows and more
    run as fast as whole ones here).

    >>> block_rows(4000), block_rows(60000)
    (125, 559)
    """
    return max(1, min(n, max(32, min(n // 32, BLOCK_BYTES // max(1, n)))))


def sq_norms(X):
    """Squared Euclidean norm of each row, in X's dtype (einsum: no temporary copy of X)."""
    return _xp(X).einsum("ij,ij->i", X, X)


def _clip(G, low, high):
    if is_torch(G):
        return G.clamp_(low, high)
    return np.clip(G, low, high, out=G)


def kernel_block(A, B, a_sq, b_sq, kind: str, gamma: float):
    """K(A, B) as a new (len(A), len(B)) array: one GEMM, then in-place elementwise steps.

    ``a_sq``, ``b_sq``: the rows' squared norms (:func:`sq_norms`). Distances come from
    ‖a‖² + ‖b‖² − 2a·b, clipped at 0 against rounding.
    """
    xp = _xp(A)
    G = A @ B.T
    if kind == "arccos":
        na, nb = xp.sqrt(a_sq), xp.sqrt(b_sq)
        tiny = 1e-30  # a zero row (float32 too): cos 0, and k = 0 from its norm
        G /= _clip(na * 1, tiny, None)[:, None]
        G /= _clip(nb * 1, tiny, None)[None, :]
        cos = _clip(G, -1.0, 1.0)
        theta = xp.arccos(cos)
        out = xp.sqrt(_clip(1.0 - cos * cos, 0.0, None))  # sin θ
        theta *= -1.0
        theta += math.pi
        theta *= cos  # (π − θ) cos θ
        out += theta
        out *= na[:, None] * (gamma / math.pi)
        out *= nb[None, :]
        return out
    G *= -2.0
    G += a_sq[:, None]
    G += b_sq[None, :]
    _clip(G, 0.0, None)
    if kind == "laplacian":
        xp.sqrt(G, out=G)
    elif kind != "gaussian":
        raise ValueError(f"unknown kernel {kind!r}; choose from {', '.join(KERNELS)}")
    with np.errstate(over="ignore"):  # a huge γ: −inf, and exp(−inf) = 0 is K's float value
        G *= -gamma
    xp.exp(G, out=G)
    return G


def diagonal(sq, kind: str, gamma: float):
    """K(x, x) exactly (rounding in the distance formula leaves laplacian's off 1)."""
    if kind == "arccos":
        return sq * gamma
    return sq * 0 + 1


def build_lower(X, kind: str, gamma: float, ridge: float = 0.0):
    """K + ridge·I of X's rows as one Fortran-ordered numpy array, lower triangle filled.

    Column block j holds K(X[j:], X[j block]): one GEMM of a row block against the rows
    from j on, written through a transposed view; the upper triangle stays zero (a lower
    Cholesky never reads it). Peak: K plus one block (:func:`block_rows`).
    """
    n = len(X)
    sq = sq_norms(X)
    diag = diagonal(sq, kind, gamma) + ridge
    K = np.zeros((n, n), dtype=X.dtype, order="F")  # calloc: pages cost only when touched
    step = block_rows(n)
    for j0 in range(0, n, step):
        j1 = min(n, j0 + step)
        block = kernel_block(X[j0:j1], X[j0:], sq[j0:j1], sq[j0:], kind, gamma)
        K[j0:, j0:j1] = block.T
        idx = np.arange(j0, j1)
        K[idx, idx] = diag[j0:j1]
    return K


def build_full(X, kind: str, gamma: float, ridge: float = 0.0):
    """K + ridge·I as one row-major torch tensor on X's device, built in row blocks."""
    import torch

    n = len(X)
    sq = sq_norms(X)
    diag = diagonal(sq, kind, gamma) + ridge
    K = torch.empty((n, n), dtype=X.dtype, device=X.device)
    step = block_rows(n)
    for i0 in range(0, n, step):
        i1 = min(n, i0 + step)
        K[i0:i1] = kernel_block(X[i0:i1], X, sq[i0:i1], sq, kind, gamma)
    K.diagonal().copy_(diag)
    return K


def matvec(X, V, kind: str, gamma: float, sq=None):
    """K V with K recomputed on the fly in X's dtype, never stored: the lower-triangle blocks
    only, each used twice (as K_ij and K_ijᵀ), so about n²·d multiply-adds."""
    n = len(X)
    sq = sq_norms(X) if sq is None else sq
    diag = diagonal(sq, kind, gamma)
    out = V * 0
    step = block_rows(n)
    for i0 in range(0, n, step):
        i1 = min(n, i0 + step)
        B = kernel_block(X[i0:i1], X[:i1], sq[i0:i1], sq[:i1], kind, gamma)
        _set_diagonal(B, i0, diag[i0:i1])
        out[i0:i1] += B @ V[:i1]
        if i0:
            out[:i0] += B[:, :i0].T @ V[i0:i1]
    return out


def cross(X_new, X, V, kind: str, gamma: float, sq=None):
    """K(X_new, X) V in row blocks of X_new: predictions for new points."""
    sq = sq_norms(X) if sq is None else sq
    out = []
    step = block_rows(len(X))
    for i0 in range(0, len(X_new), step):
        A = X_new[i0 : i0 + step]
        out.append(kernel_block(A, X, sq_norms(A), sq, kind, gamma) @ V)
    if is_torch(V):
        import torch

        return torch.cat(out) if out else V[:0]
    return np.concatenate(out) if out else V[:0]


def _set_diagonal(B, offset: int, values) -> None:
    """B[i, offset + i] = values[i]: the block's part of K's diagonal."""
    rows = _xp(B).arange(len(values), device=B.device) if is_torch(B) else np.arange(len(values))
    B[rows, rows + offset] = values


def _xp(a):
    if is_torch(a):
        import torch

        return torch
    return np
