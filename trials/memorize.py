"""Memorize a dataset with the constructive algorithm (algorithm.py) and measure the net.

Fits on the training split, then reports the training accuracy (1.0 means the net
interpolates), the layer sizes, the parameter count and how many candidates the
covering tried and rejected; ``test_score`` too when the dataset has a test split.
Column names follow patrickfinke/memo, so its plots and results read the same.
"""

import dataclasses
import time
from dataclasses import dataclass
from typing import Literal

import algorithm
from memo.datasets import load_dataset


@dataclass
class Params:
    dataset: str = "moons"  # name known to memo.datasets.load_dataset
    n_iter: int = 100  # width n of the random first layer
    max_bias: float = 1.0  # λ: first-layer biases are uniform in [-λ, λ]
    activation: Literal["thres", "relu"] = "thres"  # σ of both hidden layers

    def __post_init__(self):
        if self.n_iter < 1:
            raise ValueError(f"n_iter (the first layer's width) must be >= 1, got {self.n_iter}")
        if self.max_bias < 0:
            raise ValueError(f"max_bias must be >= 0, got {self.max_bias}")


def trial(params: dict) -> dict:
    names = [f.name for f in dataclasses.fields(Params)]
    p = Params(**{k: params[k] for k in names if k in params})
    ds = load_dataset(p.dataset)
    X = ds.X.reshape(len(ds.X), -1)

    start = time.perf_counter()
    net = algorithm.fit(X, ds.y, p.n_iter, p.max_bias, p.activation, seed=params["seed"])
    fit_time = time.perf_counter() - start
    start = time.perf_counter()
    score = net.score(X, ds.y)
    score_time = time.perf_counter() - start

    n, d = net.W.shape
    result = {
        "score": score,
        "fit_time": fit_time,
        "score_time": score_time,
        "first_dim_in": d,
        "first_dim_out": n,
        "second_dim_in": n * len(net.classes),
    }
    for label, k in zip(net.classes, net.K):
        result[f"second_dim_out_{label}"] = k
    result["second_dim_out"] = sum(net.K)
    result["n_params"] = net.n_params
    result["candidates_tried"] = sum(net.tried)
    result["candidates_rejected"] = sum(net.rejected)
    if ds.X_test is not None:
        result["test_score"] = net.score(ds.X_test.reshape(len(ds.X_test), -1), ds.y_test)
    return result
