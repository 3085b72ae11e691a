"""The ``curves`` plot: a per-epoch metric of training runs, mean and band over the runs."""

import json

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from memo.run import measures
from memo.plots._core import AXES, LEGEND_ON, REQUIRED, Drawn, PlotError, plot_type
from memo.plots.axes import band_handle, colors, finish, hue_title, legend_labels, new_axes, ordered
from memo.plots.frame import add_band, hue_columns, need, select

X_AXES = ("epoch", "step")
LOG_SPAN = 10  # logx "auto": log x when the longest run is this many times the shortest


@plot_type(
    "curves",
    needs="curves",
    metric=REQUIRED,
    x="epoch",
    hue=None,
    where=None,
    band="auto",
    logx=None,
    logy=False,
    legend=LEGEND_ON,
    vmin=None,
    vmax=None,
    **AXES,
)
def curves(cfg: dict, df: pd.DataFrame) -> Drawn:
    """A per-epoch metric of training runs: mean over the runs of each hue group and a band.

    Keys: metric: a list-valued column, one value per epoch (e.g. train_acc_curve); x:
    epoch (1, 2, ...) or step (the optimizer steps after each epoch: epoch × the group's
    steps / epochs_run); hue: a column or list of columns, one line per combination;
    band: auto | minmax | std | sem | ci95 | none, per epoch over the runs that reached it
    (as for slices); logx: true, false or null (default: log x when the longest run is
    10 times the shortest); logy; where; legend (as for line); vmin, vmax (or ylim),
    xlim; xticks, yticks; plus name, figsize, xlabel, ylabel, title.
    Where a group's runs end at different epochs (stop_at_interpolation), its mean goes
    on dotted over the runs still going and a circle marks each run's last epoch.
    data: DataFrame with the hue columns, epoch, x, mean, std, n, min, max, low, high,
    runs (the group's run count), alive (its runs this long).
    """
    if cfg["x"] not in X_AXES:
        raise PlotError("x", f"must be one of {', '.join(X_AXES)}; got {cfg['x']!r}")
    df = select(df, cfg["where"])
    hue = hue_columns(df, cfg["hue"])
    runs = need(df, cfg["metric"], "metric").map(lambda v: _curve(cfg["metric"], v))
    parts, ends = [], []
    for key, part in df.groupby(hue, sort=True, dropna=False) if hue else [((), df)]:
        key = key if isinstance(key, tuple) else (key,)
        arrays = [a for a in runs[part.index] if len(a)]
        if not arrays:
            continue
        scale = _steps_per_epoch(part) if cfg["x"] == "step" else 1.0
        parts.append(_group_stats(arrays, scale).assign(**dict(zip(hue, key))))
        ends.append([(len(a) * scale, a[-1]) for a in arrays])
    if not parts:
        raise PlotError("metric", f"every {cfg['metric']!r} curve is empty")
    stats = pd.concat(parts, ignore_index=True)
    stats = stats[hue + [c for c in stats.columns if c not in hue]]
    band_note = add_band(stats, cfg["band"], cfg["metric"])
    lengths = [len(a) for a in runs if len(a)]
    fig, ax = new_axes(cfg)
    if cfg["logx"] or (cfg["logx"] is None and max(lengths) >= LOG_SPAN * min(lengths)):
        ax.set_xscale("log")
    if cfg["logy"]:
        ax.set_yscale("log")
    keys = [tuple(p[h].iloc[0] for h in hue) for p in parts]
    labels = legend_labels(cfg, hue, keys) if hue else [None] * len(parts)
    uneven = False
    groups = stats.groupby(hue, sort=True, dropna=False) if hue else [((), stats)]
    palette = colors(len(parts), ordered(stats, hue))
    for color, label, (_, part), end in zip(palette, labels, groups, ends):
        shortest = int(part["alive"].eq(part["runs"]).sum())  # epochs every run reached
        ax.plot(part["x"][:shortest], part["mean"][:shortest], color=color, label=label)
        if shortest < len(part):  # runs ended early: the mean of those still going, dotted
            uneven = True
            tail = slice(max(shortest - 1, 0), None)
            ax.plot(part["x"][tail], part["mean"][tail], color=color, linestyle=":", linewidth=0.8)
            ex, ey = zip(*[(x, y) for x, y in end if np.isfinite(y)] or [(np.nan, np.nan)])
            ax.plot(ex, ey, "o", color=color, markerfacecolor="white", markersize=2.5, mew=0.7)
        if band_note:  # empty when no band is drawn (band none, one run per point)
            ax.fill_between(part["x"], part["low"], part["high"], color=color, alpha=0.2, lw=0)
    extra = [band_handle(band_note)] if band_note else []
    if uneven:
        dots = Line2D([], [], color="0.4", linestyle=":", marker="o", markerfacecolor="white")
        extra.append((dots, "runs ended: circles;\nmean of the rest dotted"))
    xlabel = "epoch" if cfg["x"] == "epoch" else "step"
    finish(
        ax,
        cfg,
        xlabel=xlabel,
        ylabel=measures.label(cfg["metric"]),
        legend_title=hue_title(cfg, hue),
        extra=extra,
    )
    return Drawn(fig, stats)


def _group_stats(arrays: list, scale: float) -> pd.DataFrame:
    """Per epoch: mean, std, n, min and max over the runs that reached it (inf/NaN left out)."""
    M = np.full((len(arrays), max(map(len, arrays))), np.nan)
    for i, a in enumerate(arrays):
        M[i, : len(a)] = a
    M[~np.isfinite(M)] = np.nan  # an inf or NaN epoch leaves the mean, as it leaves n
    n = np.isfinite(M).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(M, axis=0) / n
        std = np.sqrt(np.nansum((M - mean) ** 2, axis=0) / (n - 1))
    std = np.where(n >= 2, std, np.nan)
    epoch = np.arange(1, M.shape[1] + 1)
    lows = np.where(n > 0, np.nanmin(np.where(np.isnan(M), np.inf, M), axis=0), np.nan)
    highs = np.where(n > 0, np.nanmax(np.where(np.isnan(M), -np.inf, M), axis=0), np.nan)
    return pd.DataFrame(
        {
            "epoch": epoch,
            "x": epoch * scale,
            "mean": mean,
            "std": std,
            "n": n,
            "min": lows,
            "max": highs,
            "runs": len(arrays),
            "alive": (np.array([len(a) for a in arrays])[:, None] >= epoch).sum(axis=0),
        }
    )


def _steps_per_epoch(part: pd.DataFrame) -> float:
    steps = need(part, "steps", "x").astype(float)
    epochs = need(part, "epochs_run", "x").astype(float)
    return float(np.median(steps / epochs))


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
