"""Kernel interpolation (ridge 0: the minimum-norm interpolant) or kernel ridge regression.

Zhang et al. 2017 §5: the minimum-norm solution of exp(−0.02‖x − x′‖²) on MNIST pixels / 255
fits every training label and reaches 1.22 % test error; Belkin, Ma & Mandal 2018 plot its
test error and RKHS norm against label noise and n. Reads top to bottom: the data (as the
train trial loads it: memo.datasets.tensordata.load_data, same label noise), one-hot targets, the
memory check (memo.kernels.memory: one error line before anything big is allocated), the
solve (memo.kernels.solve), the predictions, in blocks.

The solve: ``cholesky`` builds K + ridge·I in row blocks into one Fortran-ordered array,
factors it in place and solves for every class at once (one n×n matrix at peak); ``mixed``
stores and factors K in float32 and refines α in float64 with K's blocks recomputed on the
fly; ``iterative`` runs Nyström-preconditioned conjugate gradients and never stores K.
Threads: BLAS (and torch) use what the runner gives the worker. On CUDA (torch) the same
math runs on the GPU, where K is factored out of place (two n×n matrices).

Groups (:func:`group_key`, :func:`trial_group`): cholesky points that differ only in their
labels (label noise, targets, seed) or in a prefix ``n_train`` share one K, one factor, one
multi-column solve and one test-side pass (memo.kernels.group), with the metrics each gets
alone (within 1e-10 relative in float64); times and memory are then the group's.
"""

import dataclasses
import resource
import sys
import time
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from memo.datasets import DatasetError, entry, preprocess_steps
from memo.datasets.transforms import PER_EXAMPLE

METRICS = {
    "train_error": "share of training points whose argmax prediction misses its label (0: fits)",
    "test_error": "share of test points misclassified, against the (noisy) test labels",
    "test_true_error": "share of test points misclassified, against the labels before test noise",
    "residual": "max |(K + ridge·I)α − Y| / max |Y| over the training set, float64",
    "norm": "RKHS norm of the solution, sqrt(tr(αᵀKα))",
    "precision_used": "float64, float32 or mixed: the precision the solve ran in",
    "solver_used": "cholesky or iterative",
    "device_used": "cpu or cuda",
    "iterations": "float64 refinement steps (mixed) or CG iterations (iterative); 0 otherwise",
    "build_time": "s to build K (cholesky) or the Nyström preconditioner (iterative); "
    "grouped points: their group's, shared",
    "solve_time": "s to factor and solve, with refinement or CG (grouped: the group's)",
    "predict_time": "s for the training predictions (K α in float64) and the test predictions "
    "(grouped: the group's)",
    "memory_needed": "bytes the solve (of the point's group) was estimated to need beyond the "
    "data, before it ran",
    "peak_memory": "bytes: the process's peak RSS so far (CPU; earlier points of the worker "
    "count too) or the peak CUDA memory of this point",
    "train_size": "training points solved for (n)",
    "test_size": "test points predicted",
    "num_classes": "classes (columns of Y)",
    "label_noise_rate": "share of training labels the label noise changed",
    "label_noise_test_rate": "share of test labels the test label noise changed",
}


@dataclass
class Params:
    dataset: str = "mnist5k"  # a name memo.datasets knows (python data.py --list)
    preprocess: str = "div255"  # memo.datasets.preprocess steps ("div255": pixels / 255, as Zhang)
    holdout: float = 0.2  # share held out as test split when the dataset has none (fixed split)
    n_train: int | None = None  # keep the first n training examples (None: all)
    label_noise: float = 0.0  # p: each training label redrawn uniformly with prob. p (1: random)
    label_noise_test: float = 0.0  # the same for the test labels, drawn independently
    # gaussian exp(−γ‖x−x′‖²); laplacian exp(−γ‖x−x′‖); arccos: arc-cosine kernel of order 1
    # γ‖x‖‖x′‖(sin θ + (π−θ)cos θ)/π, θ the angle between x and x′ (a wide ReLU layer)
    kernel: Literal["gaussian", "laplacian", "arccos"] = "gaussian"
    gamma: float = 0.02  # γ above (Zhang's bw); arccos: a scale that predictions ignore
    ridge: float = 0.0  # 0: minimum-norm interpolation; > 0: kernel ridge regression (K + ridge·I)
    targets: Literal["onehot", "centered"] = "onehot"  # 1/0, or 0.9/−0.1 as CNTK's papers
    solver: Literal["auto", "cholesky", "iterative"] = "auto"  # auto: cholesky where it fits
    # float32: K stored and factored in float32; mixed: that plus float64 refinement;
    # auto: float64 where it fits in memory, else mixed (cholesky); iterative is float64
    precision: Literal["auto", "float64", "float32", "mixed"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when torch sees a GPU
    tol: float = 1e-6  # iterative: stop when ‖(K + ridge·I)α − y‖ <= tol‖y‖ for every class
    max_iter: int = 1000  # iterative: at most this many CG iterations (more: an error)
    rank: int = 1000  # iterative: points in the Nyström preconditioner
    memory_limit: float | None = None  # GB the solve may take (None: what the machine has free)

    def __post_init__(self):
        for name in ("label_noise", "label_noise_test"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability, in [0, 1]; got {getattr(self, name)}")
        if not 0 <= self.holdout < 1:
            raise ValueError(f"holdout is a share of the examples, in [0, 1); got {self.holdout}")
        if self.gamma <= 0:
            raise ValueError(f"gamma (the kernel's γ) must be > 0, got {self.gamma}")
        if self.ridge < 0:
            raise ValueError(f"ridge must be >= 0 (0: interpolation), got {self.ridge}")
        if not 0 < self.tol < 1:
            raise ValueError(f"tol is a relative residual, in (0, 1); got {self.tol}")
        for name in ("max_iter", "rank", "memory_limit", "n_train"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if self.solver == "iterative" and self.precision not in ("auto", "float64"):
            raise ValueError(
                f"solver 'iterative' runs in float64; drop precision {self.precision!r}"
            )
        preprocess_steps(self.preprocess)
        size = train_size(self.dataset, self.holdout)
        if self.n_train is not None and size is not None and self.n_train > size:
            raise ValueError(
                f"n_train {self.n_train}: {self.dataset!r} has only {size} training examples"
            )


FIELDS = [f.name for f in dataclasses.fields(Params)]


def train_size(dataset: str, holdout: float) -> int | None:
    """The training split's declared size (after the holdout); None for an unknown name,
    which the runner's dataset check reports."""
    try:
        train, test = entry(dataset).shape
    except DatasetError:
        return None
    n = train[0]
    return n - int(round(holdout * n)) if test is None and holdout > 0 else n


def trial(params: dict) -> dict:
    from memo import kernels
    from memo.datasets import tensordata

    p = _params(params)
    seed = params.get("seed", 0)
    device = tensordata.pick_device(p.device)
    data = _load(p, seed)
    X, X_test, Y = _vectors(data.X), _vectors(data.X_test), _targets(data, p)
    n, d = X.shape
    n_test = 0 if X_test is None else len(X_test)

    # Memory: decided before K exists; MemoryError is the point's one-line error record.
    solver, precision = kernels.choose(
        n, d, Y.shape[1], n_test, p.solver, p.precision, device.type, _available(p, device), p.rank
    )
    needed = kernels.needed_bytes(n, d, Y.shape[1], n_test, solver, precision, device.type, p.rank)

    X, Y, X_test = _on(device, X, Y, X_test)
    solution = kernels.fit(
        X, Y, p.kernel, p.gamma, p.ridge, solver, precision, p.tol, p.max_iter, p.rank, seed
    )
    start = time.perf_counter()
    test_scores = (
        None if X_test is None else kernels.cross(X_test, X, solution.alpha, p.kernel, p.gamma)
    )
    used = dict(solver_used=solver, precision_used=precision, memory_needed=needed)
    used["predict_time"] = time.perf_counter() - start + solution.fitted_time
    return _metrics(data, Y, solution, test_scores, p.ridge, device, used)


def group_key(params: dict) -> Hashable | None:
    """Points whose keys are equal (and not None) share one K, one factor and one solve
    (:func:`trial_group`); None: the point runs alone (the iterative solver, bad params).

    The key is every Params field but those that change only the labels: ``label_noise``,
    ``label_noise_test``, ``targets`` (and ``seed``, no field: it seeds the label noise, and
    the iterative solver's Nyström points, which never group); and ``n_train`` where every
    preprocess step maps each example on its own, so that a smaller n_train's examples are
    the first rows of a larger one's and its factor the leading block of theirs.
    """
    try:
        p = _params(params)
    except (TypeError, ValueError):
        return None  # the point's own run reports it
    if p.solver == "iterative":
        return None
    fields = dataclasses.asdict(p)
    for name in LABELS_ONLY:
        del fields[name]
    if set(preprocess_steps(p.preprocess)) <= PER_EXAMPLE:
        del fields["n_train"]
    return ("kernel", *fields.items())


def trial_group(points: list[dict]) -> Iterator[tuple[int, dict | BaseException]]:
    """Run points together where they share a :func:`group_key`: one K of the longest
    training prefix, one factor, all their label matrices solved at once
    (memo.kernels.solve_group), one test-side kernel pass; yields (index, metrics or
    exception) once for each point, the metrics :func:`trial` gives it alone (times and
    memory are the group's, shared). Points of other keys, or of none, run apart.

    A point's own error (its params, its labels, its metrics) is its alone; an error of the
    shared work goes to every point of the group still waiting. Each point resolves ``auto``
    solver and precision as alone; points that run iterative run alone, by :func:`trial`.
    Points that do not fit in memory together are solved in several groups.
    """
    groups = {}
    for index, params in enumerate(points):
        groups.setdefault(group_key(params) or ("alone", index), []).append(index)
    for indices in groups.values():
        yield from _group([(index, points[index]) for index in indices])


def _group(points: list) -> Iterator[tuple]:
    members, X, X_test = [], None, None
    for index, params in points:
        try:
            p = _params(params)
            data = _load(p, params.get("seed", 0))
            member = _Member(index, params, p, _targets(data, p), _labels_only(data))
        except Exception as error:  # noqa: BLE001 - this point's own error record
            yield index, error
            continue
        if X is None or len(data.X) > len(X):  # the longest prefix serves every point
            X, X_test = _vectors(data.X), _vectors(data.X_test)
        members.append(member)
    answered = set()
    try:
        for index, result in _together(members, X, X_test):
            answered.add(index)
            yield index, result
    except Exception as error:  # noqa: BLE001 - the shared work failed: every point waiting
        for member in members:
            if member.index not in answered:
                yield member.index, error


LABELS_ONLY = ("label_noise", "label_noise_test", "targets")
# A group's extra cost is a label matrix per point (n x classes): trial_group splits one
# that does not fit in memory itself, so the runner may give it many points.
GROUP_MAX = 1000


@dataclass
class _Member:
    """A point of a group: its labels, without the examples (the group holds those once)."""

    index: int
    params: dict
    p: Params
    Y: np.ndarray  # (n, classes) float64 targets
    data: object  # memo.datasets.tensordata.Data with X and X_test dropped


def _together(members, X, X_test):
    from memo import kernels
    from memo.datasets import tensordata

    if not members:
        return
    p = members[0].p  # every field the key holds is the same for all
    device = tensordata.pick_device(p.device)
    d, classes, n_test = X.shape[1], members[0].Y.shape[1], 0 if X_test is None else len(X_test)
    available = _available(p, device)
    alone, groups = [], {}
    for m in members:  # auto solver and precision as each point alone resolves them
        try:
            solver, precision = kernels.choose(
                len(m.Y), d, classes, n_test, p.solver, p.precision, device.type, available, p.rank
            )
        except MemoryError as error:
            yield m.index, error
            continue
        (alone if solver == "iterative" else groups.setdefault(precision, [])).append(m)

    def needed(chunk, precision):
        n = max(len(m.Y) for m in chunk)
        args = (n, d, classes, n_test, "cholesky", precision, device.type)
        return kernels.needed_bytes(*args, points=len(chunk))

    for precision, group in groups.items():
        group.sort(key=lambda m: -len(m.Y))  # the largest n first: it sets the chunk's K
        while group:  # as many as fit together (one always does: choose said so)
            size = 1
            while size < len(group) and needed(group[: size + 1], precision) <= available:
                size += 1
            chunk, group = group[:size], group[size:]
            yield from _solve_chunk(chunk, X, X_test, precision, device, needed(chunk, precision))
    for m in alone:
        try:
            yield m.index, trial(m.params)
        except Exception as error:  # noqa: BLE001 - this point's own error record
            yield m.index, error


def _solve_chunk(chunk, X, X_test, precision, device, needed):
    from memo import kernels

    p = chunk[0].p
    n = max(len(m.Y) for m in chunk)
    Xn, Xt, *Ys = _on(device, X[:n], X_test, *(m.Y for m in chunk))
    for k, result in kernels.solve_group(Xn, Xt, Ys, p.kernel, p.gamma, p.ridge, precision):
        m = chunk[k]
        if isinstance(result, Exception):
            yield m.index, result
            continue
        solution, scores, predict_time = result
        try:
            used = dict(solver_used="cholesky", precision_used=precision, memory_needed=needed)
            used["predict_time"] = predict_time
            yield m.index, _metrics(m.data, Ys[k], solution, scores, p.ridge, device, used)
        except Exception as error:  # noqa: BLE001 - this point's own error record
            yield m.index, error


def _params(params: dict) -> Params:
    return Params(**{k: params[k] for k in FIELDS if k in params})


def _load(p: Params, seed: int):
    """The data as the train trial loads it (same label noise for the same seed)."""
    from memo.datasets import tensordata

    return tensordata.load_data(
        p.dataset, p.preprocess, p.n_train, p.holdout, p.label_noise, p.label_noise_test, seed=seed
    )


def _vectors(A):
    return None if A is None else A.reshape(len(A), -1).astype(np.float64)


def _targets(data, p: Params) -> np.ndarray:
    """One-hot float64 targets, or 0.9/−0.1 (centered)."""
    Y = np.eye(data.num_classes)[data.y]
    return 0.9 * Y - 0.1 * (1 - Y) if p.targets == "centered" else Y


def _labels_only(data):
    return dataclasses.replace(data, X=None, X_test=None)


def _available(p: Params, device) -> int:
    from memo import kernels

    cuda = device.type == "cuda"
    available = kernels.device_bytes(device) if cuda else kernels.memory.available_bytes()
    if p.memory_limit is not None:
        available = min(available, int(p.memory_limit * kernels.memory.GB))
    return available


def _on(device, *arrays):
    """The arrays as torch tensors on a CUDA device (peak memory counted from here), or as
    they are on the CPU; None stays None."""
    if device.type != "cuda":
        return arrays
    import torch

    torch.cuda.reset_peak_memory_stats(device)
    return tuple(None if a is None else torch.as_tensor(a, device=device) for a in arrays)


def _metrics(data, Y, solution, test_scores, ridge, device, used: dict) -> dict:
    """The point's METRICS from its solution and its test scores (None: no test split);
    ``used``: the solver, precision, memory estimate and predict time, by metric name."""
    cuda = device.type == "cuda"
    alpha, fitted = solution.alpha, solution.fitted
    residual = float(abs(fitted + ridge * alpha - Y).max() / abs(Y).max())
    norm = float((alpha * fitted).sum()) ** 0.5  # αᵀKα >= 0 up to rounding
    predicted = lambda scores: np.asarray(scores.argmax(1).cpu() if cuda else scores.argmax(1))
    train_pred = predicted(fitted)
    test_pred = None if test_scores is None else predicted(test_scores)
    error = lambda pred, y: float(np.mean(pred != y)) if len(y) else 0.0
    if cuda:
        import torch

        peak = int(torch.cuda.max_memory_allocated(device))
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak *= 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    has_test = test_scores is not None
    return {
        "train_error": error(train_pred, data.y),
        "test_error": error(test_pred, data.y_test) if has_test else None,
        "test_true_error": error(test_pred, data.y_test_true) if has_test else None,
        "residual": residual,
        "norm": norm,
        "device_used": device.type,
        "iterations": solution.iterations,
        "build_time": solution.build_time,
        "solve_time": solution.solve_time,
        "peak_memory": peak,
        "train_size": len(Y),
        "test_size": 0 if test_scores is None else len(test_scores),
        "num_classes": data.num_classes,
        "label_noise_rate": data.rates.get("labels", 0.0),
        "label_noise_test_rate": data.rates.get("test_labels", 0.0),
        **used,
    }
