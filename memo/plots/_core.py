"""What every plot type shares: the registry, key checking, the house style and small helpers.

A plot type is a function ``fn(cfg, df) -> Drawn`` registered under its name with
``@plot_type(name, needs=..., **keys)``. ``keys`` maps each key the type accepts (besides
the common ones) to its default; ``REQUIRED`` marks a key without one and ``Sub`` a key
that holds a dict of its own keys. ``needs`` says what ``df`` is: None (the plot reads
no results), "results" (the scalar table results/NAME.csv, ok rows only) or "curves"
(the same with per-epoch list columns).
"""

import math
import warnings
from typing import Any, Callable, NamedTuple

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from memo import measures


class _Required:
    def __repr__(self):
        return "required"


REQUIRED = _Required()
BANDS = ("std", "sem", "ci95", "none")
AGGS = ("mean", "median", "min", "max", "sum", "std", "count")


class PlotError(ValueError):
    """A mistake in a plot entry or in what it asks of the data; ``key`` names the entry's key."""

    def __init__(self, key: str, message: str):
        super().__init__(f"key '{key}': {message}")
        self.key = key


class Drawn(NamedTuple):
    """A drawn plot: the figure and the numbers behind it (a DataFrame or dict per type)."""

    fig: Figure
    data: Any


class Sub(NamedTuple):
    """A key holding a dict of its own ``keys``; with ``flag`` also true (defaults) or false."""

    keys: dict
    default: Any = REQUIRED  # the value when the key is absent, read like a given value
    flag: bool = False


COMMON = {
    "type": REQUIRED,
    "name": REQUIRED,
    "figsize": None,
    "xlabel": None,
    "ylabel": None,
    "title": None,
}
LEGEND = Sub({"title": None, "labels": None}, default=False, flag=True)
AXES = {"xlim": None, "ylim": None, "xticks": True, "yticks": True}  # keys of plots with plain axes

PLOTS: dict = {}  # type name -> plot function; each has .keys (name -> default) and .needs


def plot_type(name: str, needs: str | None = None, **keys) -> Callable:
    """Register the decorated function as plot type ``name`` accepting ``keys`` besides COMMON."""

    def register(fn):
        fn.keys = {**COMMON, **keys}
        fn.needs = needs
        PLOTS[name] = fn
        return fn

    return register


def validate(entry) -> dict:
    """Check one entry of an experiment's "plots" list; return it with every default filled in.

    Raises PlotError naming the first bad key: a missing or unknown type, an unknown key
    (the message lists the valid ones), a missing required key or a value of the wrong kind.
    """
    if not isinstance(entry, dict):
        raise PlotError("type", f"a plot entry must be an object, got {entry!r}")
    if "type" not in entry:
        raise PlotError("type", f"missing; one of: {', '.join(PLOTS)}")
    if entry["type"] not in PLOTS:
        raise PlotError("type", f"unknown plot type {entry['type']!r}; one of: {', '.join(PLOTS)}")
    return _merge(entry, PLOTS[entry["type"]].keys, prefix="", what=entry["type"])


def _merge(given: dict, spec: dict, prefix: str, what: str) -> dict:
    unknown = [k for k in given if k not in spec]
    if unknown:
        valid = ", ".join(spec)
        raise PlotError(prefix + unknown[0], f"unknown key for {what}; valid keys: {valid}")
    cfg = {}
    for key, default in spec.items():
        path = prefix + key
        if isinstance(default, Sub):
            value = given.get(key, default.default)
            if value is REQUIRED:
                raise PlotError(path, f"missing; {what} needs it (keys: {', '.join(default.keys)})")
            if default.flag and isinstance(value, bool):
                value = _merge({}, default.keys, path + ".", path) if value else False
            elif isinstance(value, dict):
                value = _merge(value, default.keys, path + ".", path)
            elif value is not None:
                flag = "true, false or " if default.flag else ""
                raise PlotError(
                    path,
                    f"must be {flag}an object with keys {', '.join(default.keys)}; got {value!r}",
                )
        else:
            value = given.get(key, default)
            if value is REQUIRED:
                raise PlotError(path, f"missing; {what} needs it")
            if value is not None and key in CHECKS:
                CHECKS[key](path, value)
        cfg[key] = value
    return cfg


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check(ok: Callable, expect: str) -> Callable:
    def check(path, value):
        if not ok(value):
            raise PlotError(path, f"must be {expect}; got {value!r}")

    return check


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_name(v) -> bool:  # a plot name becomes a file name
    return isinstance(v, str) and v.strip() != "" and not any(c in v for c in "/\\") and v[0] != "."


def _text(path, value):
    """A label: a string whose $...$ math matplotlib can typeset (checked before drawing)."""
    if not isinstance(value, str):
        raise PlotError(path, f"must be a string; got {value!r}")
    from matplotlib import cbook
    from matplotlib.mathtext import MathTextParser

    if cbook.is_math_text(value):
        try:
            MathTextParser("path").parse(value)
        except ValueError as e:
            reason = str(e).strip().splitlines()[-1]
            raise PlotError(path, f"matplotlib cannot typeset {value!r}: {reason}") from None


# Checks by key name: a key means the same wherever it appears (pivot.round, model.seed, ...).
_bool = _check(lambda v: isinstance(v, bool), "true or false")
_num = _check(_is_num, "a number")
_count = _check(lambda v: _is_int(v) and v >= 1, "a positive integer")
_str = _check(lambda v: isinstance(v, str), "a string")
_pair = _check(lambda v: isinstance(v, list) and len(v) == 2 and all(map(_is_num, v)), "[min, max]")
_list = _check(lambda v: isinstance(v, list) and len(v) > 0, "a non-empty list")
CHECKS = {
    **dict.fromkeys("xticks yticks logx logy outline samples_on_top".split(), _bool),
    **dict.fromkeys("vmin vmax marker_threshold markersize max_bias smoothing level".split(), _num),
    **dict.fromkeys(
        "mark_every rows cols img_width img_height img_channels resolution".split(), _count
    ),
    **dict.fromkeys("dataset x y metric idx col val activation".split(), _str),
    **dict.fromkeys("xlabel ylabel title".split(), _text),
    **dict.fromkeys(["xlim", "ylim"], _pair),
    **dict.fromkeys(["slices", "classes", "labels"], _list),
    "n_iter": _count,
    "hue": _check(
        lambda v: isinstance(v, str)
        or (isinstance(v, list) and all(isinstance(s, str) for s in v)),
        "a column name or a list of them",
    ),
    "seed": _check(_is_int, "an integer"),
    "round": _check(_is_int, "an integer (decimals)"),
    "name": _check(_is_name, "a file name (no '/', not starting with '.')"),
    "figsize": _check(
        lambda v: isinstance(v, list) and len(v) == 2 and all(_is_num(x) and x > 0 for x in v),
        "[width, height] in inches",
    ),
    "band": _check(lambda v: v in BANDS, f"one of {', '.join(BANDS)}"),
    "agg": _check(lambda v: v in AGGS, f"one of {', '.join(AGGS)}"),
    "where": _check(lambda v: isinstance(v, dict), "an object {column: value or [values]}"),
    "levels": _check(
        lambda v: (_is_int(v) and v >= 1) or (isinstance(v, list) and v and all(map(_is_num, v))),
        "a positive integer or a list of numbers",
    ),
}


def style() -> dict:
    """The house style as rcParams for ``matplotlib.rc_context``: paper-sized text, light grid."""
    small, medium = 6, 8
    return {
        "figure.figsize": [3.2, 2.2],  # paper-sized; a plot's figsize key overrides it
        "font.size": small,
        "axes.titlesize": small,
        "axes.labelsize": medium,
        "xtick.labelsize": small,
        "ytick.labelsize": small,
        "legend.fontsize": small,
        "legend.title_fontsize": small,
        "xtick.major.pad": 1.5,
        "ytick.major.pad": 1.5,
        "text.usetex": False,  # LaTeX-style labels through mathtext: no TeX install needed
        "mathtext.fontset": "cm",
        "axes.grid": True,
        "axes.axisbelow": True,
        "axes.edgecolor": "#bbbbbb",
        "grid.color": "#e4e4e4",
        "grid.linewidth": 0.6,
        "lines.linewidth": 1.0,
        "savefig.dpi": 300,
        "savefig.bbox": "tight",
    }


# --- reading the results ---------------------------------------------------------


def need(df: pd.DataFrame, column: str, key: str) -> pd.Series:
    """Column ``column`` of df, derived via memo.measures if needed; a PlotError names ``key``."""
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


def band(mean, std, n, kind: str):
    """(low, high) of a band around ``mean``: ``std`` (sample std, ddof=1), ``sem`` = std/√n,
    ``ci95`` = Student-t 97.5% quantile with n-1 degrees of freedom × sem, or ``none``.
    Where n < 2 the band is NaN (not drawn).

    >>> band(1.0, 2.0, 4, "sem")
    (0.0, 2.0)
    """
    from scipy import stats

    mean, std, n = (np.asarray(a, dtype=float) for a in (mean, std, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        half = {
            "std": std,
            "sem": std / np.sqrt(n),
            "ci95": stats.t.ppf(0.975, n - 1) * std / np.sqrt(n),
            "none": np.full_like(mean, np.nan),
        }[kind]
    half = np.where(n >= 2, half, np.nan)
    lo, hi = mean - half, mean + half
    return (lo.item(), hi.item()) if lo.ndim == 0 else (lo, hi)


def summarize(df: pd.DataFrame, by: list, values: pd.Series, kind: str) -> pd.DataFrame:
    """Mean, std, n and band (low, high) of ``values`` per group of the ``by`` columns."""
    frame = df[by].copy()
    frame["_v"] = values
    groups = frame.groupby(by, sort=True, dropna=False)  # a null param value is a group too
    out = groups["_v"].agg(mean="mean", std="std", n="count").reset_index()
    out["low"], out["high"] = band(out["mean"], out["std"], out["n"], kind)
    return out


# --- drawing ---------------------------------------------------------------------


def new_axes(cfg: dict):
    """A new Figure of the entry's figsize with one Axes (no pyplot: nothing global to close)."""
    fig = Figure(figsize=cfg["figsize"])
    return fig, fig.subplots()


def colors(n: int) -> list:
    """n colours along a sequential palette (light orange to dark purple), for ordered groups."""
    from matplotlib import colormaps

    cmap = colormaps["plasma_r"]
    return [cmap(x) for x in (np.linspace(0.2, 0.85, n) if n > 1 else [0.5])]


def fmt(value) -> str:
    """A grid value as a short label that keeps its kind.

    >>> fmt(0.15000000000000002), fmt(2.0), fmt(50), fmt("thres"), fmt(float("nan"))
    ('0.15', '2.0', '50', 'thres', 'None')
    """
    if isinstance(value, (float, np.floating)) and np.isnan(value):
        return "None"  # a param left at its null default, as the spec wrote it
    if isinstance(value, (float, np.floating)):
        text = f"{float(value):.6g}"
        return text if any(c in text for c in ".enai") else f"{text}.0"
    return str(value)


def group_label(names: list, key) -> str:
    """Legend label of a hue group: its value, or "a=1, b=x" for several hue columns.

    >>> group_label(["lr"], (0.1,)), group_label(["lr", "act"], (0.1, "relu"))
    ('0.1', 'lr=0.1, act=relu')
    """
    key = key if isinstance(key, tuple) else (key,)
    if len(names) == 1:
        return fmt(key[0])
    return ", ".join(f"{n}={fmt(k)}" for n, k in zip(names, key))


def finish(ax, cfg: dict, xlabel=None, ylabel=None, legend_title=None, value_limits=True) -> None:
    """Apply the common axis keys: labels (defaults given), title, limits, ticks and legend.

    ``value_limits``: vmin/vmax limit the y-axis (as in memo's line plots); heatmaps use
    them for the colour scale instead.
    """
    ax.set_xlabel(cfg["xlabel"] if cfg["xlabel"] is not None else xlabel or "")
    ax.set_ylabel(cfg["ylabel"] if cfg["ylabel"] is not None else ylabel or "")
    if cfg["title"] is not None:
        ax.set_title(cfg["title"])
    for axis, lim in (("x", cfg.get("xlim")), ("y", cfg.get("ylim"))):
        low, high = lim or (None, None)
        if axis == "y" and value_limits:
            low = cfg["vmin"] if cfg.get("vmin") is not None else low
            high = cfg["vmax"] if cfg.get("vmax") is not None else high
        if low is not None or high is not None:
            data = ax.dataLim.intervalx if axis == "x" else ax.dataLim.intervaly
            _limits(ax, axis, data[0] if low is None else low, data[1] if high is None else high)
    for axis in (ax.xaxis, ax.yaxis):
        _short_log_ticks(axis)
    if cfg.get("xticks") is False:
        ax.set_xticklabels([])
    if cfg.get("yticks") is False:
        ax.set_yticklabels([])
    legend = cfg.get("legend")
    handles, labels = ax.get_legend_handles_labels()
    if legend and (handles or legend["labels"]):
        if legend["labels"] is not None:
            if len(legend["labels"]) != len(handles):
                raise PlotError(
                    "legend.labels",
                    f"{len(legend['labels'])} labels for {len(handles)} entries"
                    f" ({', '.join(labels)})",
                )
            labels = legend["labels"]
        title = legend["title"] if legend["title"] is not None else legend_title
        ax.legend(
            handles,
            labels,
            title=title,
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            frameon=False,
        )


def _short_log_ticks(axis) -> None:
    """A log axis spanning less than a decade gets a few plain ticks (0.12, 0.13, 0.14):
    matplotlib would label every minor tick in scientific notation, overlapping."""
    from matplotlib import ticker

    low, high = sorted(axis.get_view_interval())
    if axis.get_scale() == "log" and low > 0 and high / low < 10:
        axis.set_major_locator(ticker.MaxNLocator(4))
        axis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        axis.set_minor_formatter(ticker.NullFormatter())


def _limits(ax, axis: str, low: float, high: float) -> None:
    """Set data limits plus matplotlib's usual margin (as memo did), exact on log axes."""
    if getattr(ax, f"get_{axis}scale")() == "log":
        getattr(ax, f"set_{axis}lim")(low, high)
        return
    pad = (high - low) * ax.margins()[0 if axis == "x" else 1]
    getattr(ax, f"set_{axis}lim")(low - pad, high + pad)


def contour(ax, *args, filled=False, **kwargs):
    """``ax.contour`` (``contourf`` if filled), quiet when no line crosses the levels."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return (ax.contourf if filled else ax.contour)(*args, **kwargs)


def smooth(grid: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing that ignores NaN cells (missing grid points) instead of spreading them."""
    from scipy.ndimage import gaussian_filter

    grid = np.asarray(grid, dtype=float)
    if not sigma:
        return grid
    known = np.isfinite(grid)
    num = gaussian_filter(np.where(known, grid, 0.0), sigma, mode="nearest")
    den = gaussian_filter(known.astype(float), sigma, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(known, num / den, np.nan)
