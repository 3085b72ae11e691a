"""Memorize a dataset with the constructive algorithm (algorithm.py) and measure the net.

Fits on the training split, then reports the training accuracy (1.0 means the net
interpolates), the layer sizes, the parameter count and how many candidates the
covering tried and rejected; ``test_score`` too when the dataset has a test split.
Columns named as in patrickfinke/memo mean what they meant there (see METRICS); new
meanings have new names.

Also reported, for plotting K against the paper's bound: the data's radius R (largest
norm) and class separation δ (smallest distance between points of different labels),
computed once per dataset and process (see :func:`separation` for the cost). With
``prune`` the pruned network's sizes come as ``*_pruned`` columns beside the raw ones.
"""

import dataclasses
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

import algorithm
from memo.memorize import bitset
from memo.datasets import load_dataset, preprocess, preprocess_steps

KD_TREE_DIMS = 16  # δ by k-d tree up to this many features, else by blocked brute force
_PREPARED = {}  # (id(dataset), preprocess) -> (dataset, X, X_test, R, δ); see _prepared

# Every metric trial() may return. "<label>" stands for each label a class network covers;
# with two labels there is one network, and memo names its columns after the smaller label.
METRICS = {
    "score": "training accuracy, 0..1, as memo's (with 3+ labels a point no class network "
    "fires on counts as the largest label, as scikit-learn's OneVsRestClassifier before 1.8)",
    "score_strict": "training accuracy, 0..1, a point claimed by no or several class "
    "networks always wrong (= score with two labels)",
    "fit_time": "CPU seconds of the fit (time.process_time, all threads; as memo)",
    "fit_wall_time": "wall-clock seconds of the fit",
    "score_time": "CPU seconds to evaluate the net on the training set (as memo); "
    "only with verify (else the score comes from the fit, at no cost)",
    "first_dim_in": "d: input features of the first layer (flattened)",
    "first_dim_out": "n: width of the random first layer (= n_iter)",
    "second_dim_in_<label>": "n: inputs of each second-layer neuron of class network <label>",
    "second_dim_out_<label>": "K of class network <label>: its second-layer neurons; 0 if "
    "none was found (memo reports a placeholder 1 there, which never fires)",
    "second_dim_in": "n times the number of class networks",
    "second_dim_out": "K: second-layer neurons of all class networks (memo's placeholders "
    "make memo's >= 1 per network)",
    "n_params": "weights and biases of the net: n(d+1) + sum_c K_c(n+1) + sum_c (K_c+1)",
    "candidates_tried": "candidate points drawn by the covering, all class networks",
    "candidates_rejected": "candidates drawn that gave no neuron (m <= 0)",
    "radius": "R: largest Euclidean norm of a training point, after preprocess",
    "separation": "δ: smallest distance between training points of different labels",
    "test_score": "accuracy on the test split, 0..1, strict as score_strict (if it has one)",
    "prune_time": "wall-clock seconds of algorithm.prune (with prune)",
    "first_dim_out_pruned": "n after pruning (with prune)",
    "second_dim_out_pruned": "K after pruning (with prune)",
    "n_params_pruned": "n_params after pruning (with prune)",
    "test_score_pruned": "test_score of the pruned net (with prune and a test split)",
}


@dataclass
class Params:
    dataset: str = "moons"  # name known to memo.datasets.load_dataset
    n_iter: int = 100  # width n of the random first layer
    max_bias: float = 1.0  # λ: first-layer biases are uniform in [-λ, λ]
    activation: Literal["thres", "relu"] = "thres"  # σ of both hidden layers
    method: Literal["fast", "reference"] = "fast"  # same network either way; reference is slow
    device: Literal["auto", "cpu", "cuda"] = "auto"  # fast only: auto takes a CUDA GPU if any
    preprocess: str = ""  # memo.datasets.preprocess steps, e.g. "maxnorm" (radius 1, as memo)
    prune: bool = False  # also report the sizes of algorithm.prune's smaller network
    # also evaluate the net on the training set (as long as the fit): checks the score
    # against the fit's and reports memo's score_time
    verify: bool = False

    def __post_init__(self):
        if self.n_iter < 1:
            raise ValueError(f"n_iter (the first layer's width) must be >= 1, got {self.n_iter}")
        if self.max_bias < 0:
            raise ValueError(f"max_bias must be >= 0, got {self.max_bias}")
        preprocess_steps(self.preprocess)


def trial(params: dict) -> dict:
    names = [f.name for f in dataclasses.fields(Params)]
    p = Params(**{k: params[k] for k in names if k in params})
    ds = load_dataset(p.dataset)
    X, X_test, R, delta = _prepared(ds, p.preprocess)
    if algorithm.uses_bitset(p.method, p.activation, p.device):
        bitset.load()  # once per process (~0.5 CPU s): not part of any fit's time

    cpu, wall = time.process_time(), time.perf_counter()
    net = algorithm.fit(
        X,
        ds.y,
        p.n_iter,
        p.max_bias,
        p.activation,
        seed=params["seed"],
        method=p.method,
        device=p.device,
    )
    fit_time, fit_wall_time = time.process_time() - cpu, time.perf_counter() - wall
    # The covering knows which training points it covered, and no class network fires
    # on another class's points, so this is exactly net.score(X, y) (tested).
    strict = net.training_score(ds.y)
    memo = net.training_score(ds.y, largest_wins=True)  # memo's rule; see training_score
    result = {"score": memo, "score_strict": strict, "fit_time": fit_time}
    result["fit_wall_time"] = fit_wall_time
    if p.verify:
        cpu = time.process_time()
        evaluated = net.score(X, ds.y)
        result["score_time"] = time.process_time() - cpu
        if evaluated != strict:
            raise RuntimeError(f"evaluated training score {evaluated} != covering's {strict}")

    n, d = net.W.shape
    result["first_dim_in"] = d
    result["first_dim_out"] = n
    # With two labels memo's one network is named after the smaller label (its
    # OneVsRestClassifier's first class), though it covers the larger one, as here.
    names = net.labels[:1].tolist() if len(net.labels) == 2 else net.classes
    for label, k in zip(names, net.K):
        result[f"second_dim_in_{label}"] = n
        result[f"second_dim_out_{label}"] = k
    result["second_dim_in"] = n * len(net.classes)
    result["second_dim_out"] = sum(net.K)
    result["n_params"] = net.n_params
    result["candidates_tried"] = sum(net.tried)
    result["candidates_rejected"] = sum(net.rejected)
    result["radius"] = R
    result["separation"] = delta
    if X_test is not None:
        result["test_score"] = net.score(X_test, ds.y_test)
    if p.prune:
        start = time.perf_counter()
        small = algorithm.prune(net, X, ds.y)
        result["prune_time"] = time.perf_counter() - start
        result["first_dim_out_pruned"] = int(small.W.shape[0])
        result["second_dim_out_pruned"] = sum(small.K)
        result["n_params_pruned"] = small.n_params
        if X_test is not None:
            result["test_score_pruned"] = small.score(X_test, ds.y_test)
    return result


def _prepared(ds, how: str):
    """(X, X_test, R, δ) of a dataset after preprocessing, flattened to (N, D).

    Kept for the last two (dataset, preprocess) pairs of this process: a worker runs
    many points on one dataset, and preprocessing copies it. load_dataset returns one
    object per name and process, so its id is a key (the entry holds the object).
    """
    key = (id(ds), how)
    if key not in _PREPARED:
        X = ds.X.reshape(len(ds.X), -1)
        X_test = None if ds.X_test is None else ds.X_test.reshape(len(ds.X_test), -1)
        if how:
            X, X_test = preprocess(X, X_test, how)
        if len(_PREPARED) >= 2:
            del _PREPARED[next(iter(_PREPARED))]
        _PREPARED[key] = (ds, X, X_test, radius(X), separation(X, ds.y))
    return _PREPARED[key][1:]


def radius(X) -> float:
    """R: the largest Euclidean norm of a row of X, in float64.

    >>> radius(np.array([[3.0, 4.0], [1.0, 0.0]]))
    5.0
    """
    step = max(1, 2**20 // max(1, X.shape[1]))
    return max(
        float(np.linalg.norm(np.asarray(X[i : i + step], dtype=np.float64), axis=1).max())
        for i in range(0, len(X), step)
    )


def separation(X, y) -> float:
    """δ: the smallest Euclidean distance between two points with different labels.

    Each label against the later ones, never all pairs at once: with at most
    KD_TREE_DIMS features by a k-d tree (scipy; O(N log N), 1M two-moons points in a
    few seconds); with more by sklearn's blocked nearest-neighbour search (O(N² D) flops
    in bounded memory: for 70k MNIST images about a minute of one core). Distances are
    float64; by brute force a pair of near-duplicates may come out ~1e-8 |x| off.

    >>> separation(np.array([[0.0, 0.0], [0.0, 1.0], [3.0, 0.0]]), np.array([0, 0, 1]))
    3.0
    """
    labels, codes = np.unique(np.asarray(y), return_inverse=True)
    best = np.inf
    for k in range(len(labels) - 1):
        A, B = np.asarray(X[codes == k]), np.asarray(X[codes > k])
        if len(A) > len(B):
            A, B = B, A  # query the smaller set against the larger
        if X.shape[1] <= KD_TREE_DIMS:
            from scipy.spatial import cKDTree

            dist, _ = cKDTree(np.asarray(B, dtype=np.float64)).query(A.astype(np.float64))
        else:
            from sklearn.metrics import pairwise_distances_argmin_min

            _, dist = pairwise_distances_argmin_min(A, B)
        best = min(best, float(dist.min()))
    return best
