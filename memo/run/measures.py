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


MODEL_NAMES = {"mlp": "MLP", "convnet": "ConvNet", "alexnet": "AlexNet", "inception": "Inception"}


def architecture(df: pd.DataFrame) -> pd.Series:
    """Each row's network by name and size, as a figure's rows read: "MLP 3×512 (0.56M)".

    >>> df = pd.DataFrame({"model": ["mlp", "inception", "wrn"], "hidden": ["512x512x512", "", ""]})
    >>> df = df.assign(depth=[28, 28, 16], width=[1, 1, 4], n_params=[563722, 1647674, 2748890])
    >>> architecture(df).tolist()
    ['MLP 3×512 (0.56M)', 'Inception (1.6M)', 'WRN-16-4 (2.7M)']
    """
    rows = df.to_dict("records")
    return pd.Series([f"{_model_name(r)} ({count(r['n_params'])})" for r in rows], index=df.index)


def _model_name(row: dict) -> str:
    model = str(row["model"])
    if model == "mlp" and isinstance(row.get("hidden"), str):
        widths = [w for w in row["hidden"].lower().replace(" ", "").split("x") if w]
        if not widths or widths == ["0"]:
            return "linear"
        shape = f"{len(widths)}×{widths[0]}" if len(set(widths)) == 1 else "×".join(widths)
        return f"MLP {shape}"
    if model == "wrn" and {"depth", "width"} <= set(row):
        return f"WRN-{row['depth']}-{row['width']}"
    return MODEL_NAMES.get(model, model)


def count(n) -> str:
    """A parameter count in two digits: 38k, 0.56M, 1.6M.

    >>> count(38410), count(563722), count(1647674), count(912)
    ('38k', '0.56M', '1.6M', '912')
    """
    n = float(n)
    if n >= 1e5:
        return f"{n / 1e6:.2g}M"
    return f"{n / 1e3:.2g}k" if n >= 1e3 else f"{n:g}"


DERIVED = {
    "interpolated": Measure(("score",), interpolated, "score == 1"),
    "n_samples": Measure(("dataset",), n_samples, "size of the row's dataset"),
    "architecture": Measure(
        ("model", "n_params"), architecture, "name and size: MLP 3×512 (0.56M)"
    ),
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
    "architecture": "model (parameters)",
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


CPU_SECONDS = ("cpu_time", "fit_time", "score_time")  # process time, as memo measured it


def is_wall_clock(column: str) -> bool:
    """Whether a column holds wall-clock seconds, which the machine and its load set.

    >>> is_wall_clock("interp_time"), is_wall_clock("align_seconds"), is_wall_clock("fit_time")
    (True, True, False)
    """
    return bool(re.search(r"(_time|seconds)$", column)) and column not in CPU_SECONDS


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
