"""Reading a results table for a plot: columns (derived on demand), rows, groups, and the
band drawn around a mean over runs."""

import math

import numpy as np
import pandas as pd

from memo.run import measures
from memo.plots._core import PlotError, _is_num

FEW = 5  # below this many runs per point, band "auto" is min-max (see resolve_band)
STATS = ("mean", "std", "n", "min", "max", "low", "high")  # the columns summarize adds
BAND_TEXT = {"minmax": "min-max", "std": "mean ± 1 sd", "sem": "mean ± 1 sem", "ci95": "95% CI"}


def need(df: pd.DataFrame, column: str, key: str) -> pd.Series:
    """Column ``column`` of df, derived via memo.run.measures if needed; a PlotError names ``key``."""
    try:
        measures.add(df, column)
    except KeyError as e:
        have = ", ".join(c for c in df.columns if not c.startswith("_"))
        derived = ", ".join(measures.DERIVED)
        raise PlotError(
            key, f"{e.args[0]} in the results (columns: {have}; derivable: {derived})"
        ) from None
    return df[column]


def numeric(df: pd.DataFrame, column: str, key: str) -> pd.Series:
    """``need`` for values that are averaged: booleans become 0/1 floats."""
    values = need(df, column, key)
    if values.dtype == bool or pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    raise PlotError(key, f"column {column!r} is not numeric (e.g. {values.iloc[0]!r})")


def snap(values: pd.Series, decimals: int | None = None) -> pd.Series:
    """Float values rounded to 12 significant digits (or ``decimals``), so that grid values like
    0.15 and 0.15000000000000002 fall into one group; other values unchanged.

    >>> snap(pd.Series([0.15, 0.15000000000000002, 1e-3])).tolist()
    [0.15, 0.15, 0.001]
    """
    if not pd.api.types.is_float_dtype(values):
        return values
    if decimals is not None:
        return values.round(decimals)
    v = values.to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.floor(np.log10(np.abs(v)))
    scale = 10.0 ** (11 - np.where(np.isfinite(mag), mag, 0))
    return pd.Series(np.round(v * scale) / scale, index=values.index, name=values.name)


def isclose_any(values: pd.Series, wanted: list) -> np.ndarray:
    """Mask of values equal to one of ``wanted``, floats compared with a relative tolerance."""
    if pd.api.types.is_numeric_dtype(values) and values.dtype != bool and all(map(_is_num, wanted)):
        v = values.to_numpy(dtype=float)[:, None]
        return np.isclose(v, np.asarray(wanted, dtype=float)[None, :], rtol=1e-9, atol=1e-12).any(
            axis=1
        )
    return values.isin(wanted).to_numpy()


def select(df: pd.DataFrame, where: dict | None) -> pd.DataFrame:
    """The rows matching ``where`` {column: value or [values]} (float-tolerant); error if none."""
    if df is None or len(df) == 0:
        raise PlotError("results", "no rows with status 'ok' in the results")
    mask = np.ones(len(df), dtype=bool)
    for column, wanted in (where or {}).items():
        wanted = wanted if isinstance(wanted, list) else [wanted]
        mask &= isclose_any(need(df, column, f"where.{column}"), wanted)
    if not mask.any():
        raise PlotError("where", f"no ok rows match {where}")
    return df[mask].copy()


def hue_columns(df: pd.DataFrame, hue) -> list:
    """The grouping columns named by a ``hue`` key (None, a name or a list of names).

    Their float values are snapped in place (``df`` is a plot's own copy, see ``select``)
    so that 0.15 and 0.15000000000000002 form one group.
    """
    names = [] if hue is None else [hue] if isinstance(hue, str) else list(hue)
    for name in names:
        df[name] = snap(need(df, name, "hue"))
    return names


def resolve_band(kind: str, n) -> str:
    """The band drawn for key ``band`` when points have ``n`` runs each: "auto" is min-max
    below FEW runs (a Student-t 95% CI of 2 runs is ±12.7 sem, far outside the data), else
    ci95; any other kind as given.

    >>> resolve_band("auto", [2, 2]), resolve_band("auto", [20]), resolve_band("std", [2])
    ('minmax', 'ci95', 'std')
    """
    if kind != "auto":
        return kind
    n = np.asarray(n, dtype=float)
    return "minmax" if n.size == 0 or np.nanmax(n) < FEW else "ci95"


def band(mean, std, n, kind: str, low=None, high=None, bounds=(-math.inf, math.inf)):
    """(low, high) of a band around ``mean``: ``minmax`` (the runs' ``low`` and ``high``),
    ``std`` (sample std, ddof=1), ``sem`` = std/√n, ``ci95`` = Student-t 97.5% quantile with
    n-1 degrees of freedom × sem, or ``none``; clipped to ``bounds`` (the metric's range,
    see memo.run.measures.value_range). Where n < 2 the band is NaN (not drawn).

    >>> band(1.0, 2.0, 4, "sem")
    (0.0, 2.0)
    >>> band(0.9, 0.1, 2, "ci95", bounds=(0.0, 1.0))[1]
    1.0
    """
    from scipy import stats

    mean, std, n = (np.asarray(a, dtype=float) for a in (mean, std, n))
    if kind == "minmax":
        lo, hi = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            half = {
                "std": std,
                "sem": std / np.sqrt(n),
                "ci95": stats.t.ppf(0.975, n - 1) * std / np.sqrt(n),
                "none": np.full_like(mean, np.nan),
            }[kind]
        lo, hi = mean - half, mean + half
    lo = np.where(n >= 2, np.clip(lo, *bounds), np.nan)
    hi = np.where(n >= 2, np.clip(hi, *bounds), np.nan)
    return (lo.item(), hi.item()) if lo.ndim == 0 else (lo, hi)


def band_text(kind: str, n, bounds=(-math.inf, math.inf), clipped: bool = False) -> str:
    """What the band of a figure is, for its legend: "band: min-max of 2 runs".

    >>> band_text("ci95", [20, 20]), band_text("std", [3, 5], (0.0, 1.0), clipped=True)
    ('band: 95% CI of 20 runs', 'band: mean ± 1 sd of 3-5 runs,\\ncut at 0 and 1')
    """
    n = [int(v) for v in np.asarray(n).ravel() if v >= 2]
    runs = f"{min(n)}-{max(n)}" if n and min(n) != max(n) else str(n[0]) if n else "< 2"
    text = f"band: {BAND_TEXT[kind]} of {runs} runs"
    if clipped:
        ends = [f"{b:g}" for b in bounds if math.isfinite(b)]
        text += f",\ncut at {' and '.join(ends)}"
    return text


def summarize(df: pd.DataFrame, by: list, values: pd.Series, key: str = "") -> pd.DataFrame:
    """Mean, std, n, min and max of ``values`` per group of the ``by`` columns; ``key``: the
    plot key naming them, for the error (default: by is the hue columns, then x)."""
    clash = [c for c in by if c in STATS]
    if clash:
        key = key or ("x" if clash[0] == by[-1] else "hue")
        raise PlotError(
            key, f"a column named {clash[0]!r} cannot be grouped by (a statistic's name)"
        )
    frame = df[by].copy()
    frame["_v"] = values
    groups = frame.groupby(by, sort=True, dropna=False)  # a null param value is a group too
    return groups["_v"].agg(mean="mean", std="std", n="count", min="min", max="max").reset_index()


def add_band(stats: pd.DataFrame, kind: str, column: str) -> str:
    """Add the band (low, high) to ``stats`` (``summarize``'s columns), kept within the range
    of metric ``column``; returns the legend text saying what it is ("" for no band)."""
    kind = resolve_band(kind, stats["n"])
    bounds = measures.value_range(column)
    stats["low"], stats["high"] = band(
        stats["mean"], stats["std"], stats["n"], kind, stats["min"], stats["max"], bounds
    )
    if kind == "none" or not (stats["n"] >= 2).any():  # one run per point: no band drawn
        return ""
    return band_text(kind, stats["n"], bounds, clipped(stats, kind, bounds))


def clipped(stats: pd.DataFrame, kind: str, bounds) -> bool:
    """Whether ``bounds`` cut the band of ``stats`` (so that the legend says so)."""
    if kind in ("none", "minmax") or bounds is None:
        return False
    lo, hi = band(stats["mean"], stats["std"], stats["n"], kind)  # not clipped
    with np.errstate(invalid="ignore"):
        return bool(np.any(lo < bounds[0]) or np.any(hi > bounds[1]))
