"""Plots of the results table: heatmap, slices, line, scatter and curves.

Each returns ``Drawn(fig, data)``; ``data`` holds exactly the numbers drawn (pivot
tables, means and bands), so tests and notebooks can check a figure without reading
pixels. Rows are pooled over every column the plot does not name (restarts, seeds and
any other parameter): select a subset with ``where``.
"""

import json

import numpy as np
import pandas as pd

from memo.plots._core import (
    AXES,
    LEGEND,
    REQUIRED,
    Drawn,
    PlotError,
    Sub,
    band,
    colors,
    contour,
    finish,
    fmt,
    group_label,
    hue_columns,
    isclose_any,
    need,
    new_axes,
    numeric,
    plot_type,
    select,
    smooth,
    snap,
    summarize,
)
from memo import measures

PIVOT = Sub({"idx": REQUIRED, "col": REQUIRED, "val": REQUIRED, "agg": "mean", "round": None})
CONTOURS = Sub(
    {"smoothing": 0.0, "vmin": None, "vmax": None, "levels": None}, default=None, flag=True
)
INTERPOLATION = Sub({"level": 0.99, "smoothing": 1.0}, default=None, flag=True)
LEGEND_ON = Sub(LEGEND.keys, default=True, flag=True)


def pivot_table(
    df: pd.DataFrame, pivot: dict, val: str | None = None, key: str = "pivot.val"
) -> pd.DataFrame:
    """``pivot["val"]`` aggregated by ``pivot["agg"]`` per (idx, col) cell; a ``val`` given
    here (such as "interpolated") is averaged instead, giving a probability per cell.

    idx and col values are snapped (see ``snap``) or rounded to ``pivot["round"]``
    decimals, so float grid values that differ in the last bits share a cell.
    """
    idx, col = pivot["idx"], pivot["col"]
    if idx == col:
        raise PlotError("pivot.col", f"must differ from pivot.idx (both {idx!r})")
    frame = pd.DataFrame(
        {
            "i": snap(need(df, idx, "pivot.idx"), pivot["round"]),
            "c": snap(need(df, col, "pivot.col"), pivot["round"]),
            "v": numeric(df, val or pivot["val"], key),
        }
    )
    table = frame.pivot_table(
        index="i", columns="c", values="v", aggfunc=pivot["agg"] if val is None else "mean"
    )
    table.index.name, table.columns.name = idx, col
    return table


@plot_type(
    "heatmap",
    needs="results",
    pivot=PIVOT,
    vmin=None,
    vmax=None,
    contours=CONTOURS,
    interpolation=INTERPOLATION,
    where=None,
    xticks=True,
    yticks=True,
)
def heatmap(cfg: dict, df: pd.DataFrame) -> Drawn:
    """A heatmap of ``pivot.val`` over (``pivot.col`` on x, ``pivot.idx`` on y).

    Keys: pivot {idx, col, val, agg: mean|median|min|max|sum|std|count (mean), round:
    decimals for idx/col values (12 significant digits)}; vmin, vmax: colour scale;
    contours: true or {smoothing: Gaussian σ in cells (0), vmin, vmax, levels: number or
    list}; interpolation: the dashed line where the mean of ``interpolated`` reaches
    ``level``, true/false or {level (0.99), smoothing (1.0)}, drawn by default when the
    results have ``score``; where: {column: value or [values]} selects rows; xticks,
    yticks: show tick labels; plus name, figsize, xlabel, ylabel, title.
    data: {"pivot": the table drawn, "contours": its smoothed grid or None,
    "interpolation": the smoothed interpolation grid or None}.
    """
    df = select(df, cfg["where"])
    table = pivot_table(df, cfg["pivot"])
    interp = cfg["interpolation"]
    if interp is None:  # default: draw it when the results allow
        interp = INTERPOLATION.keys if measures.derivable(df, "interpolated") else False
    fig, ax = new_axes(cfg)
    image = ax.imshow(
        np.ma.masked_invalid(table.to_numpy(dtype=float)),
        origin="lower",
        aspect="auto",
        interpolation="nearest",
        cmap="magma",
        vmin=cfg["vmin"],
        vmax=cfg["vmax"],
    )
    fig.colorbar(image, ax=ax)
    ax.grid(False)
    for axis, values, show in (
        ("x", table.columns, cfg["xticks"]),
        ("y", table.index, cfg["yticks"]),
    ):
        where = np.arange(0, len(values), max(1, -(-len(values) // 10)))  # at most 10 labels
        getattr(ax, f"set_{axis}ticks")(where, [fmt(values[i]) for i in where] if show else [])
    ax.tick_params(axis="x", rotation=90)
    drawn = {"pivot": table, "contours": None, "interpolation": None}
    grid_ok = min(table.shape) >= 2  # contour lines need a 2x2 grid
    if cfg["contours"] and grid_ok:
        c = cfg["contours"]
        drawn["contours"] = smooth(table.to_numpy(dtype=float), c["smoothing"])
        contour(
            ax,
            drawn["contours"],
            levels=c["levels"],  # None: matplotlib picks them
            vmin=c["vmin"],
            vmax=c["vmax"],
            cmap="viridis",
            linewidths=0.75,
        )
    if interp and grid_ok:
        probability = pivot_table(df, cfg["pivot"], val="interpolated", key="interpolation")
        probability = probability.reindex(index=table.index, columns=table.columns)
        drawn["interpolation"] = smooth(probability.to_numpy(dtype=float), interp["smoothing"])
        contour(
            ax,
            drawn["interpolation"],
            levels=[interp["level"]],
            colors="blueviolet",
            linestyles="dashed",
            linewidths=1.5,
        )
    finish(ax, cfg, xlabel=table.columns.name, ylabel=table.index.name, value_limits=False)
    return Drawn(fig, drawn)


@plot_type(
    "slices",
    needs="results",
    pivot=PIVOT,
    slices=REQUIRED,
    band="ci95",
    marker_threshold=None,
    mark_every=1,
    legend=LEGEND,
    vmin=None,
    vmax=None,
    where=None,
    **AXES,
)
def slices(cfg: dict, df: pd.DataFrame) -> Drawn:
    """Rows of a heatmap as lines: mean of ``pivot.val`` over ``pivot.idx``, one line per slice.

    Keys: pivot {idx: x-axis, col: the column sliced, val, agg: must be mean, round};
    slices: values of pivot.col to draw (matched with float tolerance); band: std | sem |
    ci95 | none, the shaded band around each mean (see ``band``; ci95 by default);
    marker_threshold: mark points whose interpolation probability exceeds it; mark_every:
    consider every k-th point for a marker (1); legend: true/false or {title, labels};
    vmin, vmax (or ylim): y-axis limits; xlim; xticks, yticks; where; plus name,
    figsize, xlabel, ylabel, title.
    data: DataFrame with columns slice, <idx>, mean, std, n, low, high (and
    interpolation, marker with marker_threshold), one row per point drawn.
    """
    p = cfg["pivot"]
    if p["agg"] != "mean":
        raise PlotError(
            "pivot.agg", f"slices draw the mean with a band; use 'mean', not {p['agg']!r}"
        )
    df = select(df, cfg["where"])
    x = snap(need(df, p["idx"], "pivot.idx"), p["round"])
    sliced = need(df, p["col"], "pivot.col")
    values = numeric(df, p["val"], "pivot.val")
    marked = (
        None if cfg["marker_threshold"] is None else numeric(df, "interpolated", "marker_threshold")
    )
    parts = []
    for value in cfg["slices"]:
        mask = isclose_any(sliced, [value])
        if not mask.any():
            present = ", ".join(fmt(v) for v in sorted(snap(sliced).unique()))
            raise PlotError("slices", f"no ok rows with {p['col']} = {value!r} (values: {present})")
        part = summarize(pd.DataFrame({p["idx"]: x[mask]}), [p["idx"]], values[mask], cfg["band"])
        part.insert(0, "slice", value)
        if marked is not None:
            rows = pd.DataFrame({p["idx"]: x[mask], "m": marked[mask]})
            part["interpolation"] = rows.groupby(p["idx"], sort=True)["m"].mean().to_numpy()
            every = np.arange(len(part)) % cfg["mark_every"] == 0
            part["marker"] = every & (part["interpolation"] > cfg["marker_threshold"]).to_numpy()
        parts.append(part)
    fig, ax = new_axes(cfg)
    for color, value, part in zip(colors(len(parts)), cfg["slices"], parts):
        xs, mean = part[p["idx"]].to_numpy(), part["mean"].to_numpy()
        ax.plot(xs, mean, color=color, label=fmt(value))
        if cfg["band"] != "none":
            ax.fill_between(xs, part["low"], part["high"], color=color, alpha=0.25, linewidth=0)
        if "marker" in part:
            m = part["marker"].to_numpy()
            ax.plot(xs[m], mean[m], "o", color=color, markersize=3, zorder=100)
    finish(ax, cfg, xlabel=p["idx"], ylabel=p["val"], legend_title=p["col"])
    return Drawn(fig, pd.concat(parts, ignore_index=True))


XY_KEYS = dict(
    x=REQUIRED, y=REQUIRED, hue=None, where=None, logx=False, logy=False, legend=LEGEND_ON
)


@plot_type("line", needs="results", **XY_KEYS, band="ci95", vmin=None, vmax=None, **AXES)
def line(cfg: dict, df: pd.DataFrame) -> Drawn:
    """Mean of metric ``y`` against column ``x``, one line (with band) per ``hue`` group.

    Keys: x: a column (e.g. a parameter); y: a numeric column (e.g. a metric); hue: a
    column or list of columns, one line per combination; band: std | sem | ci95 | none;
    logx, logy: log axes; where; legend: true/false or {title, labels}; vmin, vmax (or
    ylim), xlim; xticks, yticks; plus name, figsize, xlabel, ylabel, title.
    data: DataFrame with the hue columns, x, mean, std, n, low, high.
    """
    df, hue = _xy_frame(cfg, df)
    stats = summarize(df, hue + [cfg["x"]], numeric(df, cfg["y"], "y"), cfg["band"])
    fig, ax = _xy_axes(cfg)
    groups = list(stats.groupby(hue, sort=True, dropna=False)) if hue else [((), stats)]
    for color, (key, part) in zip(colors(len(groups)), groups):
        label = group_label(hue, key) if hue else None
        ax.plot(part[cfg["x"]], part["mean"], color=color, label=label, marker="o", markersize=2)
        if cfg["band"] != "none":
            ax.fill_between(
                part[cfg["x"]], part["low"], part["high"], color=color, alpha=0.25, linewidth=0
            )
    finish(ax, cfg, xlabel=cfg["x"], ylabel=cfg["y"], legend_title=", ".join(hue))
    return Drawn(fig, stats)


@plot_type("scatter", needs="results", **XY_KEYS, markersize=4.0, vmin=None, vmax=None, **AXES)
def scatter(cfg: dict, df: pd.DataFrame) -> Drawn:
    """Every ok row as a point (``x``, ``y``), coloured by ``hue`` group.

    Keys: x, y: columns; hue: a column or list of columns; markersize: marker area in
    points² (4); logx, logy; where; legend; vmin, vmax (or ylim), xlim; xticks, yticks;
    plus name, figsize, xlabel, ylabel, title.
    data: DataFrame with the hue columns, x and y of every point drawn.
    """
    df, hue = _xy_frame(cfg, df)
    points = df[hue + [cfg["x"]]].copy()
    points[cfg["y"]] = numeric(df, cfg["y"], "y")
    fig, ax = _xy_axes(cfg)
    groups = list(points.groupby(hue, sort=True, dropna=False)) if hue else [((), points)]
    for color, (key, part) in zip(colors(len(groups)), groups):
        label = group_label(hue, key) if hue else None
        ax.scatter(
            part[cfg["x"]],
            part[cfg["y"]],
            s=cfg["markersize"],
            color=color,
            label=label,
            linewidths=0,
        )
    finish(ax, cfg, xlabel=cfg["x"], ylabel=cfg["y"], legend_title=", ".join(hue))
    return Drawn(fig, points.reset_index(drop=True))


def _xy_frame(cfg: dict, df: pd.DataFrame):
    df = select(df, cfg["where"])
    hue = hue_columns(df, cfg["hue"])
    if cfg["x"] in hue:
        raise PlotError("hue", f"must not include the x column {cfg['x']!r}")
    df[cfg["x"]] = snap(need(df, cfg["x"], "x"))
    return df, hue


def _xy_axes(cfg: dict):
    fig, ax = new_axes(cfg)
    if cfg["logx"]:
        ax.set_xscale("log")
    if cfg["logy"]:
        ax.set_yscale("log")
    return fig, ax


@plot_type(
    "curves",
    needs="curves",
    metric=REQUIRED,
    hue=None,
    where=None,
    band="ci95",
    logx=False,
    logy=False,
    legend=LEGEND_ON,
    vmin=None,
    vmax=None,
    **AXES,
)
def curves(cfg: dict, df: pd.DataFrame) -> Drawn:
    """A per-epoch metric against epoch 1, 2, ...: mean over runs and a band, a line per hue group.

    Keys: metric: a list-valued column (one value per epoch, e.g. train_acc); hue: a
    column or list of columns, one line per combination; band: std | sem | ci95 | none
    (per epoch, over the runs that reached it); logx, logy; where; legend; vmin, vmax
    (or ylim), xlim; xticks, yticks; plus name, figsize, xlabel, ylabel, title.
    data: DataFrame with the hue columns, epoch, mean, std, n, low, high.
    """
    df = select(df, cfg["where"])
    hue = hue_columns(df, cfg["hue"])
    runs = need(df, cfg["metric"], "metric").map(lambda v: _curve(cfg["metric"], v))
    parts = []
    for key, part in df.groupby(hue, sort=True, dropna=False) if hue else [((), df)]:
        key = key if isinstance(key, tuple) else (key,)
        arrays = list(runs[part.index])
        M = np.full((len(arrays), max(map(len, arrays))), np.nan)
        for i, a in enumerate(arrays):
            M[i, : len(a)] = a
        M[~np.isfinite(M)] = np.nan  # an inf or NaN epoch leaves the mean, as it leaves n
        n = np.isfinite(M).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.nansum(M, axis=0) / n
            std = np.sqrt(np.nansum((M - mean) ** 2, axis=0) / (n - 1))
        low, high = band(mean, std, n, cfg["band"])
        stats = {
            "epoch": np.arange(1, M.shape[1] + 1),
            "mean": mean,
            "std": std,
            "n": n,
            "low": low,
            "high": high,
        }
        parts.append(pd.DataFrame({**dict(zip(hue, key)), **stats}))
    if not any(len(p) for p in parts):
        raise PlotError("metric", f"every {cfg['metric']!r} curve is empty")
    fig, ax = _xy_axes(cfg)
    for color, part in zip(colors(len(parts)), parts):
        label = group_label(hue, tuple(part[h].iloc[0] for h in hue)) if hue and len(part) else None
        ax.plot(part["epoch"], part["mean"], color=color, label=label)
        if cfg["band"] != "none":
            ax.fill_between(
                part["epoch"], part["low"], part["high"], color=color, alpha=0.25, linewidth=0
            )
    finish(ax, cfg, xlabel="epoch", ylabel=cfg["metric"], legend_title=", ".join(hue))
    return Drawn(fig, pd.concat(parts, ignore_index=True))


def _curve(metric: str, value) -> np.ndarray:
    if isinstance(value, str) and value.startswith("["):
        value = json.loads(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        return np.asarray(value, dtype=float).ravel()
    raise PlotError(
        "metric",
        f"column {metric!r} holds {value!r}, not a per-epoch list;"
        " curves need a list-valued metric",
    )
