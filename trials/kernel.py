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
"""

import dataclasses
import resource
import sys
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from memo.datasets import DatasetError, entry, preprocess_steps

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
    "build_time": "s to build K (cholesky) or the Nyström preconditioner (iterative)",
    "solve_time": "s to factor and solve, with refinement or CG",
    "predict_time": "s for the training predictions (K α in float64) and the test predictions",
    "memory_needed": "bytes the solve was estimated to need beyond the data, before it ran",
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

    p = Params(**{k: params[k] for k in FIELDS if k in params})
    seed = params.get("seed", 0)
    device = tensordata.pick_device(p.device)

    # Data: as the train trial loads it (same label noise for the same seed), as vectors.
    data = tensordata.load_data(
        p.dataset, p.preprocess, p.n_train, p.holdout, p.label_noise, p.label_noise_test, seed=seed
    )
    X = data.X.reshape(len(data.X), -1).astype(np.float64)
    has_test = data.X_test is not None
    X_test = data.X_test.reshape(len(data.X_test), -1).astype(np.float64) if has_test else None
    n, d = X.shape
    classes = data.num_classes
    Y = np.eye(classes)[data.y]
    if p.targets == "centered":
        Y = 0.9 * Y - 0.1 * (1 - Y)

    # Memory: decided before K exists; MemoryError is the point's one-line error record.
    n_test = len(X_test) if has_test else 0
    cuda = device.type == "cuda"
    available = kernels.device_bytes(device) if cuda else kernels.memory.available_bytes()
    if p.memory_limit is not None:
        available = min(available, int(p.memory_limit * kernels.memory.GB))
    solver, precision = kernels.choose(
        n, d, classes, n_test, p.solver, p.precision, device.type, available, p.rank
    )
    needed = kernels.needed_bytes(n, d, classes, n_test, solver, precision, device.type, p.rank)

    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats(device)
        to = lambda a: torch.as_tensor(a, device=device)
        X, Y = to(X), to(Y)
        X_test = to(X_test) if has_test else None
    solution = kernels.fit(
        X, Y, p.kernel, p.gamma, p.ridge, solver, precision, p.tol, p.max_iter, p.rank, seed
    )

    start = time.perf_counter()
    alpha, fitted = solution.alpha, solution.fitted
    residual = float(abs(fitted + p.ridge * alpha - Y).max() / abs(Y).max())
    norm = float((alpha * fitted).sum()) ** 0.5  # αᵀKα >= 0 up to rounding
    predicted = lambda scores: np.asarray(scores.argmax(1).cpu() if cuda else scores.argmax(1))
    train_pred = predicted(fitted)
    test_pred = predicted(kernels.cross(X_test, X, alpha, p.kernel, p.gamma)) if has_test else None
    predict_time = time.perf_counter() - start + solution.fitted_time

    error = lambda pred, y: float(np.mean(pred != y)) if len(y) else 0.0
    if cuda:
        peak = int(torch.cuda.max_memory_allocated(device))
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak *= 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return {
        "train_error": error(train_pred, data.y),
        "test_error": error(test_pred, data.y_test) if has_test else None,
        "test_true_error": error(test_pred, data.y_test_true) if has_test else None,
        "residual": residual,
        "norm": norm,
        "precision_used": precision,
        "solver_used": solver,
        "device_used": device.type,
        "iterations": solution.iterations,
        "build_time": solution.build_time,
        "solve_time": solution.solve_time,
        "predict_time": predict_time,
        "memory_needed": needed,
        "peak_memory": peak,
        "train_size": n,
        "test_size": n_test,
        "num_classes": classes,
        "label_noise_rate": data.rates.get("labels", 0.0),
        "label_noise_test_rate": data.rates.get("test_labels", 0.0),
    }
