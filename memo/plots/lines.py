"""Line and scatter plots of the results table: a metric over a param, one line (or
colour) per group of the ``hue`` columns, mean and band over the rest.

Each returns ``Drawn(fig, data)``; ``data`` holds exactly the numbers drawn, so tests and
notebooks can check a figure without reading pixels.
"""

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from memo.run import measures
from memo.plots._core import AXES, LEGEND_ON, REQUIRED, Drawn, PlotError, plot_type
from memo.plots.axes import (
    band_handle,
    colors,
    finish,
    grid_ticks,
    hue_title,
    legend_labels,
    new_axes,
    ordered,
)
from memo.plots.frame import (
    add_band,
    hue_columns,
    need,
    numeric,
    select,
    snap,
    summarize,
)

XY_KEYS = dict(
    x=REQUIRED, y=REQUIRED, hue=None, where=None, logx=False, logy=False, legend=LEGEND_ON
)


@plot_type("line", needs="results", **XY_KEYS, band="auto", vmin=None, vmax=None, **AXES)
def line(cfg: dict, df: pd.DataFrame) -> Drawn:
    """Mean of metric ``y`` against column ``x``, one line (with band) per ``hue`` group.

    Keys: x: a column (e.g. a parameter); y: a numeric column (e.g. a metric); hue: a
    column or list of columns, one line per combination; band: auto | minmax | std | sem |
    ci95 | none (as for slices); logx, logy: log axes; where; legend: true/false or
    {title, labels: a list in group order or {group: label}, groups written as their
    values joined by ", ", e.g. "1.0, none"}; vmin, vmax (or ylim), xlim; xticks, yticks;
    plus name, figsize, xlabel, ylabel, title.
    data: DataFrame with the hue columns, x, mean, std, n, min, max, low, high.
    """
    df, hue = _xy_frame(cfg, df)
    stats = summarize(df, hue + [cfg["x"]], numeric(df, cfg["y"], "y"))
    band_note = add_band(stats, cfg["band"], cfg["y"])
    fig, ax = _xy_axes(cfg)
    groups = list(stats.groupby(hue, sort=True, dropna=False)) if hue else [((), stats)]
    labels = legend_labels(cfg, hue, [k for k, _ in groups]) if hue else [None]
    palette = colors(len(groups), ordered(stats, hue))
    extra, drawn = [], []  # drawn: (x, mean, name) of each line so far
    for i, (color, label, (_, part)) in enumerate(zip(palette, labels, groups)):
        xs, mean = part[cfg["x"]].to_numpy(), part["mean"].to_numpy(dtype=float)
        name = _shown_label(cfg, labels, i)
        under = next((other for x0, y0, other in drawn if _same_line(xs, mean, x0, y0)), None)
        ax.plot(
            xs,
            mean,
            color=color,
            label=label,
            marker=MARKERS[i % len(MARKERS)],  # shapes apart, hollow: lines that meet stay seen
            markersize=3.5,
            markerfacecolor="none",
            linestyle="--" if under is not None else "-",  # the line under it shows between
        )
        if under is not None:
            extra.append((Line2D([], [], linestyle="none"), f"{under} and {name} coincide"))
        drawn.append((xs, mean, name))
        if band_note:  # empty when no band is drawn (band none, one run per point)
            ax.fill_between(
                part[cfg["x"]], part["low"], part["high"], color=color, alpha=0.25, linewidth=0
            )
    extra = ([band_handle(band_note)] if band_note else []) + extra
    _finish_xy(ax, cfg, hue, extra, stats[cfg["x"]])
    return Drawn(fig, stats)


MARKERS = "osD^vPX*"


def _shown_label(cfg: dict, labels: list, i: int) -> str:
    """The legend's name for group ``i``: legend.labels' (a list) or the group's label."""
    given = (cfg.get("legend") or {}).get("labels")
    if isinstance(given, list) and len(given) == len(labels):
        return given[i]
    return labels[i] if labels[i] is not None else "the line"


def _same_line(xs, ys, x0, y0) -> bool:
    """Whether two lines are drawn over each other: the same x and the same means."""
    return (
        len(xs) == len(x0)
        and np.array_equal(xs, x0)
        and np.allclose(ys, y0, rtol=1e-9, atol=1e-12, equal_nan=True)
    )


@plot_type("scatter", needs="results", **XY_KEYS, markersize=4.0, vmin=None, vmax=None, **AXES)
def scatter(cfg: dict, df: pd.DataFrame) -> Drawn:
    """Every ok row as a point (``x``, ``y``), coloured by ``hue`` group.

    Keys: x, y: columns; hue: a column or list of columns; markersize: marker area in
    points² (4); logx, logy; where; legend (as for line); vmin, vmax (or ylim), xlim;
    xticks, yticks; plus name, figsize, xlabel, ylabel, title.
    data: DataFrame with the hue columns, x and y of every point drawn.
    """
    df, hue = _xy_frame(cfg, df)
    points = df[hue + [cfg["x"]]].copy()
    points[cfg["y"]] = numeric(df, cfg["y"], "y")
    fig, ax = _xy_axes(cfg)
    groups = list(points.groupby(hue, sort=True, dropna=False)) if hue else [((), points)]
    labels = legend_labels(cfg, hue, [k for k, _ in groups]) if hue else [None]
    for color, label, (_, part) in zip(colors(len(groups), ordered(points, hue)), labels, groups):
        ax.scatter(
            part[cfg["x"]],
            part[cfg["y"]],
            s=cfg["markersize"],
            color=color,
            label=label,
            linewidths=0,
        )
    _finish_xy(ax, cfg, hue, (), points[cfg["x"]])
    return Drawn(fig, points.reset_index(drop=True))


def _finish_xy(ax, cfg: dict, hue: list, extra, xs) -> None:
    """Labels, legend and limits; a few numeric x values (a grid's) label the x axis
    themselves, both ends included; a wall-clock axis says what it measured."""
    x, y = (measures.label(cfg[k]) for k in ("x", "y"))
    if any(measures.is_wall_clock(cfg[k]) for k in ("x", "y")):
        extra = [*extra, (Line2D([], [], linestyle="none"), WALL_CLOCK)]
    finish(ax, cfg, xlabel=x, ylabel=y, legend_title=hue_title(cfg, hue), extra=extra)
    grid_ticks(ax.xaxis, xs, cfg["xticks"])


WALL_CLOCK = "wall-clock time: set by the machine and\nits load, which the results do not record"


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
