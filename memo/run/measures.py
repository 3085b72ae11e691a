"""Derived columns: values computed from a results table, so that plots only read and aggregate.

Each measure is a function of the table, named by the column it adds and the columns it
reads. Plots ask for a column by name; ``add`` computes it on first use, so an expensive
measure (``n_samples`` loads datasets) costs nothing unless a plot needs it. A column the
runner already recorded is never recomputed.
"""

import math
import re
from functools import lru_cache
from typing import Callable, NamedTuple

import pandas as pd


class Measure(NamedTuple):
    reads: tuple  # the columns it is computed from
    compute: Callable  # DataFrame -> Series
    doc: str


def interpolated(df: pd.DataFrame) -> pd.Series:
    """Whether the trial memorized its training set: training ``score == 1``, exactly, as memo.

    >>> interpolated(pd.DataFrame({"score": [1.0, 0.99]})).tolist()
    [True, False]
    """
    return df["score"] == 1.0


def n_samples(df: pd.DataFrame) -> pd.Series:
    """Number of training points of each row's dataset (loads each dataset once)."""
    return df["dataset"].map(_dataset_size)


@lru_cache(maxsize=None)
def _dataset_size(name: str) -> int:
    from memo.datasets import load_dataset  # lazy: only plots of n_samples need datasets

    return len(load_dataset(name).y)


DERIVED = {
    "interpolated": Measure(("score",), interpolated, "score == 1"),
    "n_samples": Measure(("dataset",), n_samples, "size of the row's dataset"),
}


def derivable(df: pd.DataFrame, column: str) -> bool:
    """Whether ``column`` is in ``df`` or can be derived from its columns."""
    if column in df:
        return True
    measure = DERIVED.get(column)
    return measure is not None and all(c in df for c in measure.reads)


def add(df: pd.DataFrame, column: str) -> None:
    """Add the derived ``column`` to ``df`` in place unless it is there already.

    Raises KeyError naming what is missing when ``column`` is neither a column nor a
    derivable measure.

    >>> df = pd.DataFrame({"score": [1.0, 0.5]})
    >>> add(df, "interpolated"); df["interpolated"].tolist()
    [True, False]
    """
    if column in df:
        return
    measure = DERIVED.get(column)
    if measure is None:
        raise KeyError(f"no column {column!r}")
    missing = [c for c in measure.reads if c not in df]
    if missing:
        raise KeyError(
            f"{column!r} ({measure.doc}) needs column(s) {', '.join(map(repr, missing))}"
        )
    df[column] = measure.compute(df)


# --- how a column reads on a figure -------------------------------------------------

# Axis labels of the columns figures show most; others read as their name (see ``label``).
LABELS = {
    "score": "training accuracy",
    "test_score": "test accuracy",
    "interpolated": "interpolation probability",
    "second_dim_out": "width of second layer",
    "n_iter": "width of first layer $n$",
    "max_bias": r"maximal bias $\lambda$",
    "n_samples": "training points",
    "label_noise": "label noise $p$",
    "batch_loss": "training loss (running)",
    "batch_acc": "training accuracy (running)",
    "interp_epoch": "epochs to interpolation",
    "interp_step": "steps to interpolation",
    "interp_time": "seconds to interpolation",
    "interp_test_acc": "test accuracy at interpolation",
    "interp_test_error": "test error at interpolation",
    "test_true_acc": "test accuracy (true labels)",
    "n_params": "parameters",
    "epochs_run": "epochs run",
    "lr": "learning rate",
}
# Short names of params in legends: "p = 0.5" for label_noise 0.5.
SYMBOLS = {"label_noise": "$p$", "max_bias": r"$\lambda$", "n_iter": "$n$", "weight_decay": "wd"}
WORDS = {"acc": "accuracy", "interp": "interpolation", "lr": "learning rate", "n": "number of"}
# Value ranges by the last word of a metric's name (after dropping _curve and _final).
UNIT_INTERVAL = ("acc", "accuracy", "error", "interpolated", "score", "rate", "both", "either")
NON_NEGATIVE = ("loss", "epoch", "step", "steps", "time", "seconds", "norm", "params", "size")
NON_NEGATIVE += ("out", "samples", "run", "lr", "classes", "separation", "radius")


def label(column: str) -> str:
    """A column as an axis or legend title reads: LABELS, else its name in words.

    >>> label("train_acc_curve"), label("interp_epoch"), label("weight_norm")
    ('train accuracy', 'epochs to interpolation', 'weight norm')
    """
    name = re.sub(r"_(curve|final)$", "", column)
    if name in LABELS:
        return LABELS[name]
    return " ".join(WORDS.get(w, w) for w in name.split("_"))


def value_range(column: str) -> tuple:
    """(low, high) that values of ``column`` cannot leave, from its name: accuracies, errors,
    rates and probabilities in [0, 1]; losses, counts, times and norms >= 0; else unbounded.
    Bands around a mean are clipped to it.

    >>> value_range("test_acc_curve"), value_range("interp_time"), value_range("log_alpha")
    ((0.0, 1.0), (0.0, inf), (-inf, inf))
    """
    last = re.sub(r"_(curve|final)$", "", column).split("_")[-1]
    if last in UNIT_INTERVAL:
        return (0.0, 1.0)
    if last in NON_NEGATIVE or column.startswith("n_"):
        return (0.0, math.inf)
    return (-math.inf, math.inf)
