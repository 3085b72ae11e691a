"""Many points, one kernel matrix: the solves of points that differ only in their labels, or in
how many of the same training examples they take (a prefix), share one K and one factor.

The leading n × n block of K is the kernel matrix of the first n examples, and the leading
block of its Cholesky factor is that block's factor; so one factor of the longest prefix
serves every point, each solving against its own leading block
(:func:`memo.kernels.solve.cholesky_many`), and one pass over the test-side kernel predicts
for all of them.
"""

import time
from collections.abc import Iterator

from memo.kernels.build import cross
from memo.kernels.solve import NotPositiveDefinite, cholesky_many, not_positive_definite
from memo.kernels.solve import check_arccos_scale, side_by_side, singular


def solve_group(X, X_test, Ys, kind, gamma, ridge, precision) -> Iterator[tuple]:
    """Solve (K + ridge·I) α = Ys[k] on the first len(Ys[k]) rows of X, for every k at once.

    Yields (k, (Solution, test scores or None, predict time)) or (k, error)
    once for each k, in any order; X, X_test, Ys numpy arrays or torch tensors on one device.
    Each point gets the error it would get alone: a K that repeated examples make singular
    (ridge 0), before any work; a factor that fails at row r fails the points of n >= r, and
    is made again, smaller, for the others (their leading blocks were never at fault).
    """
    sizes = {len(Y) for Y in Ys}
    errors = {n: _refused(X[:n], kind, gamma, ridge) for n in sizes}
    pending = []
    for k, Y in enumerate(Ys):
        if errors[len(Y)]:
            yield k, errors[len(Y)]
        else:
            pending.append(k)
    while pending:
        n = max(len(Ys[k]) for k in pending)
        try:
            solutions = cholesky_many(
                X[:n], [Ys[k] for k in pending], kind, gamma, ridge, precision
            )
        except NotPositiveDefinite as error:
            for k in pending:
                if len(Ys[k]) >= error.row:
                    yield k, not_positive_definite(X[: len(Ys[k])], error.row, precision, ridge)
            pending = [k for k in pending if len(Ys[k]) < error.row]
            continue
        start = time.perf_counter()
        scores = [None] * len(pending)
        if X_test is not None:  # α padded with zero rows: K(X_test, X[:n]) α = K(X_test, X[:nk]) αk
            alpha, parts = side_by_side([s.alpha for s in solutions], n)
            together = cross(X_test, X[:n], alpha, kind, gamma)
            scores = [together[:, cols] for _, cols in parts]
        predict_time = time.perf_counter() - start + solutions[0].fitted_time
        for k, solution, score in zip(pending, solutions, scores):
            yield k, (solution, score, predict_time)
        return


def _refused(X, kind, gamma, ridge) -> Exception | None:
    """The error a solve on X would raise before any work (as memo.kernels.fit), if any."""
    if kind == "arccos":
        try:
            check_arccos_scale(X, gamma)
        except ValueError as error:
            return error
    return singular(X, ridge)
