"""Heatmaps of the results table (a pivot, contours, the interpolation threshold) and
slices (a heatmap's rows as lines with bands).

Each returns ``Drawn(fig, data)``; ``data`` holds exactly the numbers drawn (pivot
tables, means and bands), so tests and notebooks can check a figure without reading
pixels. Rows are pooled over every column the plot does not name (restarts, seeds and
any other parameter): select a subset with ``where``.
"""

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from memo.run import measures
from memo.plots._core import AXES, LEGEND, REQUIRED, Drawn, PlotError, Sub, plot_type
from memo.plots.axes import (
    band_handle,
    colors,
    contour,
    finish,
    fmt,
    legend_labels,
    new_axes,
    smooth,
)
from memo.plots.frame import (
    add_band,
    isclose_any,
    need,
    numeric,
    select,
    snap,
    summarize,
)

PIVOT = Sub({"idx": REQUIRED, "col": REQUIRED, "val": REQUIRED, "agg": "mean", "round": None})
CONTOURS = Sub(
    {"smoothing": 0.0, "vmin": None, "vmax": None, "levels": None}, default=None, flag=True
)
INTERPOLATION = Sub({"level": 0.99, "smoothing": 1.0}, default=None, flag=True)


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
    clabel=None,
    row_names=None,
    annotate=None,
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
    results have ``score`` (a legend above the map names it); where: {column: value or
    [values]} selects rows; clabel: the colour bar's label (from pivot.val); row_names: a
    column naming each row (one name per pivot.idx value, e.g. "architecture": MLP 3×512
    (0.56M)), the rows kept in pivot.idx's order; annotate: write each cell's value in it
    (default: when the map has at most 64 cells); xticks, yticks: show tick labels (at
    round values of evenly spaced numbers); plus name, figsize, xlabel, ylabel, title.
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
    val, agg = cfg["pivot"]["val"], cfg["pivot"]["agg"]
    default = measures.label(val) if agg == "mean" else f"{measures.label(val)} ({agg})"
    fig.colorbar(image, ax=ax).set_label(cfg["clabel"] if cfg["clabel"] is not None else default)
    ax.grid(False)
    names = row_names(df, table, cfg["pivot"], cfg["row_names"])
    for axis, values, show in (
        ("x", table.columns, cfg["xticks"]),
        ("y", table.index, cfg["yticks"]),
    ):
        where, text = cell_ticks(values)
        if axis == "y" and names is not None:
            where, text = np.arange(len(names)), names
        getattr(ax, f"set_{axis}ticks")(where, text if show else [])
    annotate = cfg["annotate"] if cfg["annotate"] is not None else table.size <= 64
    if annotate:
        write_cells(ax, image, table, val)
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
        lines = contour(
            ax,
            drawn["interpolation"],
            levels=[interp["level"]],
            colors="blueviolet",
            linestyles="dashed",
            linewidths=1.5,
        )
        if any(len(s) for s in lines.allsegs[0]):  # a legend only for a line drawn
            line = Line2D([], [], color="blueviolet", linestyle="dashed", linewidth=1.5)
            ax.legend(
                [line],
                [f"interpolation probability {interp['level']:g}"],
                loc="lower right",
                bbox_to_anchor=(1.0, 1.0),
                frameon=False,
                borderaxespad=0.1,
                handlelength=2.5,
            )
    xlabel, ylabel = (measures.label(v) for v in (table.columns.name, table.index.name))
    finish(ax, cfg, xlabel=xlabel, ylabel=ylabel, value_limits=False)
    if ax.get_legend() and cfg["title"] is not None:
        ax.set_title(cfg["title"], pad=12)  # above the legend of the dashed line
    return Drawn(fig, drawn)


def row_names(df: pd.DataFrame, table: pd.DataFrame, pivot: dict, column: str | None):
    """The name of each row of ``table`` from ``column`` (None without it); a PlotError if
    some pivot.idx value has rows of two names."""
    if column is None:
        return None
    idx = pivot["idx"]
    frame = pd.DataFrame(
        {"i": snap(df[idx], pivot["round"]), "name": need(df, column, "row_names")}
    )
    names = frame.groupby("i")["name"].unique()
    mixed = names[names.map(len) > 1]
    if len(mixed):
        shown = ", ".join(map(str, mixed.iloc[0]))
        raise PlotError(
            "row_names", f"{idx} = {mixed.index[0]} has rows named {shown}: one name a row"
        )
    return [str(names[i][0]) for i in table.index]


def write_cells(ax, image, table: pd.DataFrame, val: str) -> None:
    """Each cell's value written in it, dark on light colours and light on dark."""
    decimals = 2 if measures.value_range(val) == (0.0, 1.0) else None
    for (row, col), value in np.ndenumerate(table.to_numpy(dtype=float)):
        if not np.isfinite(value):
            continue
        r, g, b, _ = image.cmap(image.norm(value))
        light = 0.299 * r + 0.587 * g + 0.114 * b > 0.5
        text = f"{value:.{decimals}f}" if decimals is not None else f"{value:.3g}"
        ax.text(
            col,
            row,
            text,
            ha="center",
            va="center",
            fontsize=5,
            color="black" if light else "white",
        )


def cell_ticks(values, most: int = 8):
    """Tick positions (cell indices, fractional) and labels for a heatmap axis: each cell's
    value when there are at most ``most`` cells; else round values (0, 0.5, 1, ...) when
    the cells' values are evenly spaced numbers, or every k-th cell's value.

    >>> cell_ticks(pd.Index(np.arange(51) * 0.05))
    (array([ 0., 10., 20., 30., 40., 50.]), ['0', '0.5', '1', '1.5', '2', '2.5'])
    """
    from matplotlib.ticker import MaxNLocator

    v = np.asarray(values)
    if len(v) <= most:
        return np.arange(len(v)), [_tick(x, fmt) for x in v]
    if v.dtype.kind in "iuf":
        step = np.diff(v.astype(float))
        if np.allclose(step, step[0], rtol=1e-6) and step[0] > 0:
            nice = MaxNLocator(most, steps=[1, 2, 2.5, 5, 10]).tick_values(v[0], v[-1])
            nice = nice[(nice >= v[0] - 1e-9 * step[0]) & (nice <= v[-1] + 1e-9 * step[0])]
            return (nice - v[0]) / step[0], [_tick(t, "{:.10g}".format) for t in nice]
    where = np.arange(0, len(v), max(1, -(-len(v) // most)))
    return where, [_tick(v[i], fmt) for i in where]


def _tick(value, plain) -> str:
    """A tick label: large whole numbers with thousands separators, others as ``plain``.

    >>> _tick(200000.0, fmt), _tick(np.int64(38410), fmt), _tick(0.0, fmt), _tick("a", fmt)
    ('200,000', '38,410', '0.0', 'a')
    """
    if isinstance(value, (int, float, np.number)) and float(value).is_integer():
        if abs(value) >= 10000:
            return f"{int(value):,}"
    return plain(value)


@plot_type(
    "slices",
    needs="results",
    pivot=PIVOT,
    slices=REQUIRED,
    band="auto",
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
    slices: values of pivot.col to draw (matched with float tolerance); band: auto |
    minmax | std | sem | ci95 | none, the shaded band around each mean, kept in the
    metric's range (see frame.band; auto: min-max below 5 runs per point, else ci95; the
    legend says which); marker_threshold: mark points whose interpolation probability
    exceeds it (the legend explains the markers); mark_every:
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
        part = summarize(pd.DataFrame({p["idx"]: x[mask]}), [p["idx"]], values[mask])
        part.insert(0, "slice", value)
        if marked is not None:
            rows = pd.DataFrame({p["idx"]: x[mask], "m": marked[mask]})
            part["interpolation"] = rows.groupby(p["idx"], sort=True)["m"].mean().to_numpy()
            every = np.arange(len(part)) % cfg["mark_every"] == 0
            part["marker"] = every & (part["interpolation"] > cfg["marker_threshold"]).to_numpy()
        parts.append(part)
    stats = pd.concat(parts, ignore_index=True)
    band_note = add_band(stats, cfg["band"], p["val"])
    fig, ax = new_axes(cfg)
    labels = legend_labels(cfg, [p["col"]], cfg["slices"])
    for color, value, label in zip(colors(len(parts)), cfg["slices"], labels):
        part = stats[stats["slice"] == value]
        xs, mean = part[p["idx"]].to_numpy(), part["mean"].to_numpy()
        ax.plot(xs, mean, color=color, label=label)
        if band_note:  # empty when no band is drawn (band none, one run per point)
            ax.fill_between(xs, part["low"], part["high"], color=color, alpha=0.25, linewidth=0)
        if "marker" in part:
            m = part["marker"].to_numpy(dtype=bool)
            ax.plot(xs[m], mean[m], "o", color=color, markersize=3, zorder=100)
    extra = [band_handle(band_note)] if band_note else []
    if cfg["marker_threshold"] is not None:
        dot = Line2D([], [], marker="o", color="0.4", linestyle="none", markersize=3)
        extra.append((dot, f"interpolation\nprobability > {cfg['marker_threshold']:g}"))
    finish(
        ax,
        cfg,
        xlabel=measures.label(p["idx"]),
        ylabel=measures.label(p["val"]),
        legend_title=measures.label(p["col"]),
        extra=extra,
    )
    return Drawn(fig, stats)
