"""Derived columns: values computed from a results table, so that plots only read and aggregate.

Each measure is a function of the table, named by the column it adds and the columns it
reads. Plots ask for a column by name; ``add`` computes it on first use, so an expensive
measure (``n_samples`` loads datasets) costs nothing unless a plot needs it. A column the
runner already recorded is never recomputed.
"""

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
