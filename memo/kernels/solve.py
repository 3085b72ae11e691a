"""Solve (K + ridge·I) α = Y for all classes at once: in-place Cholesky, mixed-precision
refinement, or Nyström-preconditioned conjugate gradients with K never stored.

numpy arrays run on the CPU (LAPACK through scipy, in place on the Fortran-ordered K);
torch tensors on their device (CUDA: torch.linalg, which factors out of place).
"""

import time
from dataclasses import dataclass

import numpy as np

from memo.kernels import blocked
from memo.kernels.build import build_full, build_lower, is_torch, kernel_block, matvec, sq_norms

MAX_REFINEMENTS = 30
# CG gives up when a column's residual grows this much past its best: in exact arithmetic it
# rises at most √κ-fold (κ the condition number), and √κ < 1e8 for any κ float64 can solve
DIVERGED = 1e8
# ... or when a column above tol has not reached a new best in this many iterations (slow
# solves that converged went up to 72 between bests: 1,143 in all, a rank-5 Nyström)
STALLED = 200
# the arccos kernel's diagonal γ‖x‖² must lie here: 8 orders inside float32's range
ARCCOS_SCALE = (1e-30, 1e30)


class NotPositiveDefinite(ValueError):
    """K + ridge·I has no Cholesky factor in the precision used; the message names the cause.
    ``row``: the 1-based row where the factor failed (its leading blocks above are fine)."""

    def __init__(self, message: str, row: int | None = None):
        super().__init__(message)
        self.row = row


class NotConverged(ArithmeticError):
    """The iterative solve did not reach tol; the message names the residual, tol and cause."""


@dataclass
class Solution:
    alpha: object  # (n, classes) float64 coefficients
    fitted: object  # K α (no ridge term): the training predictions, float64
    iterations: int  # refinement steps (mixed) or CG iterations (iterative); 0 otherwise
    build_time: float  # s: building K (cholesky) or the preconditioner (iterative)
    solve_time: float  # s: factor, triangular solves, refinement or CG
    fitted_time: float  # s: the float64 K α pass after a direct float64/float32 solve


def fit(X, Y, kind, gamma, ridge, solver, precision, tol=1e-6, max_iter=1000, rank=1000, seed=0):
    """Solve on X's kind of array; X, Y float64. ``solver`` cholesky or iterative,
    ``precision`` float64, float32 or mixed (cholesky only). With ridge 0 a repeated
    training point makes K singular: NotPositiveDefinite, before any work; so is an arccos
    γ that would overflow K (ValueError)."""
    if kind == "arccos":
        check_arccos_scale(X, gamma)
    error = singular(X, ridge)
    if error:
        raise error
    if solver == "iterative":
        return conjugate_gradient(X, Y, kind, gamma, ridge, tol, max_iter, rank, seed)
    return cholesky(X, Y, kind, gamma, ridge, precision)


def check_arccos_scale(X, gamma) -> None:
    """The arccos kernel's K(x, x) = γ‖x‖² within ARCCOS_SCALE: beyond it float32's K, and
    float64's sums, overflow to inf (or underflow to 0) and the solve returns NaN."""
    sq = _host(sq_norms(X))
    low, high = ARCCOS_SCALE
    top, bottom = gamma * float(sq.max()), gamma * float(sq[sq > 0].min(initial=np.inf))
    if not (low <= bottom and top <= high):
        raise ValueError(
            f"arccos kernel: gamma {gamma:g} puts K(x, x) = γ‖x‖² at {bottom:.2g} to {top:.2g}, "
            f"outside [{low:g}, {high:g}] where a solve stays finite; γ only scales this "
            "kernel (predictions ignore it): use gamma 1"
        )


def cholesky(X, Y, kind, gamma, ridge, precision) -> Solution:
    """Build K in the stored precision, factor it in place, two triangular solves; with
    ``mixed`` (K in float32) refine in float64 with K's blocks recomputed on the fly."""
    return cholesky_many(X, [Y], kind, gamma, ridge, precision)[0]


def cholesky_many(X, Ys, kind, gamma, ridge, precision) -> list:
    """:func:`cholesky` for many right-hand sides at once: one K of X's rows, one factor, one
    Solution for each Ys[i] (float64, n_i <= len(X) rows), solved against K's leading
    n_i × n_i block (the leading block of a Cholesky factor is the factor of the leading
    block). The Ys are padded with zero rows and stacked, so every pass (the triangular solves,
    the float64 K·V, the mixed refinement) runs once for all of them; the times are shared."""
    start = time.perf_counter()
    low = precision in ("float32", "mixed")
    Xs = _stored(X, low)
    K = build_full(Xs, kind, gamma, ridge) if is_torch(X) else build_lower(Xs, kind, gamma, ridge)
    del Xs
    build_time = time.perf_counter() - start
    start = time.perf_counter()
    L = _factor(K, X, precision, ridge)
    del K  # on the CPU L is K's memory; on CUDA this frees the unfactored copy
    Y, parts = side_by_side(Ys, len(X))
    alpha = _as64(_cho_solve(L, _stored(Y, low), parts))
    solve_time = time.perf_counter() - start
    start = time.perf_counter()
    sq = sq_norms(X)
    fitted = _clear_below(matvec(X, alpha, kind, gamma, sq), parts)
    fitted_time = time.perf_counter() - start
    steps = [0] * len(parts)
    if precision == "mixed":  # the refinement's last pass gives fitted: it counts as solving
        alpha, fitted, steps = _refine(L, X, Y, alpha, fitted, kind, gamma, ridge, sq, parts)
        solve_time += time.perf_counter() - start
        fitted_time = 0.0
    return [
        Solution(alpha[:n, cols], fitted[:n, cols], its, build_time, solve_time, fitted_time)
        for (n, cols), its in zip(parts, steps)
    ]


def side_by_side(Ys, n: int):
    """(Y, parts): the Ys padded with zero rows to n and stacked by columns into one float64
    array; parts[i] = (rows, columns) of Ys[i] in it."""
    Y = _zeros_like(Ys[0], (n, sum(y.shape[1] for y in Ys)))
    parts, start = [], 0
    for y in Ys:
        cols = slice(start, start + y.shape[1])
        Y[: len(y), cols] = y
        parts.append((len(y), cols))
        start = cols.stop
    return Y, parts


def _refine(L, X, Y, alpha, fitted, kind, gamma, ridge, sq, parts):
    """Iterative refinement of each part (a point's columns), all in the same passes:
    α += L⁻ᵀL⁻¹(Y − (K + ridge·I)α), the residual in float64; a part stops when its residual
    stops falling by half (float64's level) or is exactly zero, and keeps its best α.
    Returns (alpha, fitted, steps of each part)."""
    R = _residual(Y, fitted, alpha, ridge)
    best = [_max_abs(R[:, cols]) for _, cols in parts]
    steps = [0] * len(parts)
    active = [i for i in range(len(parts)) if best[i] > 0]
    R = R[:, _pick(parts, active)[0]]  # the active parts' residuals, side by side
    while active and steps[active[0]] < MAX_REFINEMENTS:
        index, local = _pick(parts, active)
        trial = _as64(_cho_solve(L, _stored(R, True), local))
        trial += alpha[:, index]
        trial_fitted = _clear_below(matvec(X, trial, kind, gamma, sq), local)
        R = _residual(Y[:, index], trial_fitted, trial, ridge)
        going = []
        for k, (i, (_, cols)) in enumerate(zip(active, local)):
            steps[i] += 1
            residual = _max_abs(R[:, cols])
            if residual < best[i]:
                alpha[:, parts[i][1]] = trial[:, cols]
                fitted[:, parts[i][1]] = trial_fitted[:, cols]
            if 0 < residual <= 0.5 * best[i]:
                going.append(k)
            best[i] = residual
        R = R[:, _pick(local, going)[0]]
        active = [active[k] for k in going]
    return alpha, fitted, steps


def _pick(parts, chosen):
    """(index, local): the columns of parts[k] for k in chosen as one index list, and each
    chosen part as (rows, columns) within the arrays that index picks."""
    index, local = [], []
    for k in chosen:
        rows, cols = parts[k]
        local.append((rows, slice(len(index), len(index) + cols.stop - cols.start)))
        index.extend(range(cols.start, cols.stop))
    if index and index == list(range(index[0], index[-1] + 1)):
        index = slice(index[0], index[-1] + 1)  # side by side already: views, no copies
    return index, local


def _residual(Y, fitted, alpha, ridge):
    """Y − (K + ridge·I)α from fitted = Kα, as a new array."""
    R = Y - fitted
    if ridge:
        R -= ridge * alpha
    return R


def _clear_below(A, parts):
    """A with each part's rows past its own set to zero (in place)."""
    for rows, cols in parts:
        if rows < len(A):
            A[rows:, cols] = 0
    return A


def _factor(K, X, precision, ridge, progress=None):
    """Lower Cholesky factor, in place on the CPU; NotPositiveDefinite naming the cause.
    Past blocked.LAPACK_MAX rows by :func:`memo.kernels.blocked.cholesky` (``progress``)."""
    if is_torch(K):
        import torch

        L, info = torch.linalg.cholesky_ex(K)
        pivot = int(info.item())
    elif len(K) > blocked.LAPACK_MAX:
        L, pivot = K, blocked.cholesky(K, progress=progress)
    else:
        from scipy.linalg import lapack

        potrf = lapack.dpotrf if K.dtype == np.float64 else lapack.spotrf
        L, pivot = potrf(K, lower=1, overwrite_a=1, clean=0)
        if not np.shares_memory(L, K):  # LAPACK copied: the memory estimate was wrong
            raise RuntimeError("the Cholesky factor was not computed in place")
    if pivot > 0:
        raise not_positive_definite(X, pivot, precision, ridge)
    if pivot < 0:
        raise RuntimeError(f"Cholesky: argument {-pivot} was illegal")
    return L


def duplicates(X) -> int:
    """How many rows of X repeat an earlier row exactly (hashing rows: O(n·d)).

    >>> duplicates(np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0]]))
    1
    """
    Xn = np.ascontiguousarray(X.cpu().numpy() if is_torch(X) else X)
    return len(Xn) - len(set(map(bytes, Xn)))


def singular(X, ridge) -> NotPositiveDefinite | None:
    """The error of a K that repeated rows of X make singular (ridge 0), else None."""
    repeats = duplicates(X) if ridge == 0 else 0
    if not repeats:
        return None
    return NotPositiveDefinite(
        f"kernel matrix is singular: {repeats} training points repeat an earlier one; "
        "set ridge > 0 (e.g. 1e-6) or drop the repeats"
    )


def not_positive_definite(X, row, precision, ridge) -> NotPositiveDefinite:
    """The error of a factor of X's kernel matrix that failed at ``row``, naming the cause."""
    repeats = duplicates(X)
    cause = (
        f"{repeats} training points repeat an earlier one"
        if repeats
        else "no point repeats, so gamma is too small (or ridge too small) for this precision"
    )
    stored = "float32" if precision == "mixed" else precision
    if repeats:
        fix = "set ridge > 0 (e.g. 1e-6)"
    elif stored == "float64":
        fix = "raise gamma or set ridge > 0"
    else:
        fix = "use precision 'float64' or ridge > 0"
    return NotPositiveDefinite(
        f"kernel matrix (ridge {ridge:g}) is not positive definite in {stored}: the Cholesky "
        f"factor fails at row {row} of {len(X)}; {cause}; {fix}",
        row,
    )


def _cho_solve(L, B, parts=()):
    """Solve L Lᵀ X = B. A part (rows, columns) of B with fewer rows than L is solved against
    L's leading rows × rows block: the forward solve's rows past it are cleared, so the
    backward solve leaves them zero and never mixes them into the rows above."""
    Z = _clear_below(_triangular(L, B, transpose=False), parts)
    return _triangular(L, Z, transpose=True)


def _triangular(L, B, transpose: bool):
    """L⁻¹B, or L⁻ᵀB if ``transpose``, as a new array (L lower triangular)."""
    if is_torch(L):
        import torch

        return torch.linalg.solve_triangular(L.mT if transpose else L, B, upper=transpose)
    if len(L) > blocked.LAPACK_MAX:
        return blocked.backward(L, B.astype(L.dtype)) if transpose else blocked.forward(L, B)
    from scipy.linalg import lapack

    trtrs = lapack.dtrtrs if L.dtype == np.float64 else lapack.strtrs
    X, info = trtrs(L, B, lower=1, trans=int(transpose))
    if info:
        raise RuntimeError(f"triangular solve: LAPACK info {info}")
    return X


def conjugate_gradient(X, Y, kind, gamma, ridge, tol, max_iter, rank, seed) -> Solution:
    """Preconditioned CG on each class's column at once (each with its own step sizes), K
    applied on the fly by :func:`memo.kernels.build.matvec`, until every column's residual
    ‖(K + ridge·I)α − y‖ ≤ tol‖y‖. NotConverged when it cannot get there: a column's
    residual grew DIVERGED-fold past its best (a singular K: within a few iterations), had
    no new best for STALLED iterations, or max_iter iterations ran."""
    start = time.perf_counter()
    precondition = nystrom_preconditioner(X, kind, gamma, ridge, rank, seed)
    build_time = time.perf_counter() - start
    start = time.perf_counter()
    sq = sq_norms(X)
    alpha, R = Y * 0, Y * 1
    y_norms = _host(_nonzero(_column_norms(Y)))  # a class without training points: R stays 0
    Z = precondition(R)
    P, rz = Z, (R * Z).sum(0)
    relative = _host(_column_norms(R)) / y_norms
    best, best_at = relative, np.zeros(len(relative), dtype=int)
    iterations = 0
    while not (relative <= tol).all():
        why = _stop_reason(relative, best, best_at, iterations, tol, max_iter)
        if why:
            raise NotConverged(_not_converged(why, relative, best, iterations, tol, ridge))
        Q = matvec(X, P, kind, gamma, sq) + ridge * P
        step = rz / _nonzero((P * Q).sum(0))
        alpha = alpha + P * step
        R = R - Q * step
        iterations += 1
        relative = _host(_column_norms(R)) / y_norms
        improved = relative < best
        best, best_at = np.where(improved, relative, best), np.where(improved, iterations, best_at)
        Z = precondition(R)
        rz_new = (R * Z).sum(0)
        P = Z + P * (rz_new / _nonzero(rz))
        rz = rz_new
    solve_time = time.perf_counter() - start
    start = time.perf_counter()
    fitted = matvec(X, alpha, kind, gamma, sq)
    fitted_time = time.perf_counter() - start
    return Solution(alpha, fitted, iterations, build_time, solve_time, fitted_time)


def _stop_reason(relative, best, best_at, iterations, tol, max_iter) -> str | None:
    """Why CG should give up now (the columns above tol decide), or None to go on."""
    open_ = ~(relative <= tol)  # NaN included: it counts as diverged
    if not (relative[open_] <= DIVERGED * best[open_]).all():
        return "diverged"
    if (iterations - best_at[open_] >= STALLED).any():
        return "stalled"
    return "ran out of max_iter" if iterations == max_iter else None


def _not_converged(why, relative, best, iterations, tol, ridge) -> str:
    worst = int(np.nan_to_num(relative, nan=np.inf).argmax())
    state = (
        f"residual ‖(K + ridge·I)α − y‖/‖y‖ {relative[worst]:.2g} after {iterations} "
        f"iterations (best {best[worst]:.2g}, tol {tol:g})"
    )
    fix = {
        "diverged": f"K + ridge·I (ridge {ridge:g}) is numerically singular: set ridge > 0 "
        "(e.g. 1e-6) or raise gamma",
        "stalled": f"K + ridge·I (ridge {ridge:g}) is too ill-conditioned: set ridge > 0 "
        "(e.g. 1e-6), raise gamma or rank (a better preconditioner)",
        "ran out of max_iter": "raise max_iter or rank (a better preconditioner), or use "
        "solver 'cholesky'",
    }[why]
    return f"conjugate gradients {why}: {state}; {fix}"


def nystrom_preconditioner(X, kind, gamma, ridge, rank, seed):
    """r ↦ P⁻¹r for P ≈ K + μI from a rank-m Nyström approximation UΛUᵀ on m seeded random
    points: P⁻¹ = (λ_m + μ)U(Λ + μI)⁻¹Uᵀ + (I − UUᵀ) (Frangella, Tropp & Udell 2023),
    μ = ridge. The top of K's spectrum is divided out; the rest is left as it is."""
    n = len(X)
    m = min(rank, n)
    pick = np.sort(np.random.default_rng(seed).choice(n, m, replace=False))
    sq = sq_norms(X)
    if is_torch(X):
        import torch

        pick = torch.as_tensor(pick, device=X.device)
        la = torch.linalg
    else:
        import scipy.linalg as la
    C = kernel_block(X, X[pick], sq, sq[pick], kind, gamma)  # (n, m)
    W = C[pick]
    shift = float(np.finfo(np.float64).eps) * float(_trace(W)) * 10
    W = W + shift * _eye_like(W)
    if is_torch(X):
        Lw = la.cholesky(W)
        F = la.solve_triangular(Lw, C.T, upper=False).T  # C Lw⁻ᵀ
        U, s, _ = la.svd(F, full_matrices=False)
    else:
        Lw = la.cholesky(W, lower=True)
        F = la.solve_triangular(Lw, C.T, lower=True).T
        U, s, _ = la.svd(F, full_matrices=False, overwrite_a=True, check_finite=False)
    del C, F
    lam = s * s - shift
    lam = lam * (lam > 0)
    mu = ridge if ridge > 0 else max(float(lam[-1]), shift)  # > 0: P stays invertible
    scale = (float(lam[-1]) + mu) / (lam + mu)

    def apply(R):
        UR = U.T @ R
        return U @ (UR * scale[:, None]) + (R - U @ UR)

    return apply


def _stored(a, low: bool):
    """a in the precision K is stored in: float32 if low, else float64."""
    if is_torch(a):
        return a.float() if low else a.double()
    return a.astype(np.float32 if low else np.float64, copy=False)


def _host(a):
    """a small array (one value per class) as numpy on the CPU."""
    return a.cpu().numpy() if is_torch(a) else a


def _as64(a):
    return a.double() if is_torch(a) else np.asarray(a, dtype=np.float64)


def _max_abs(a) -> float:
    return float(abs(a).max())


def _column_norms(a):
    return (a * a).sum(0) ** 0.5


def _nonzero(a):
    """a with exact zeros replaced by 1, so a finished column divides harmlessly."""
    return a + (a == 0)


def _trace(W):
    return W.diagonal().sum()


def _zeros_like(a, shape):
    """Float64 zeros of ``shape`` on a's kind of array (and device)."""
    if is_torch(a):
        import torch

        return torch.zeros(shape, dtype=torch.float64, device=a.device)
    return np.zeros(shape)


def _eye_like(W):
    if is_torch(W):
        import torch

        return torch.eye(len(W), dtype=W.dtype, device=W.device)
    return np.eye(len(W), dtype=W.dtype)
