"""Drawing helpers every plot type shares: axes, colours, group labels, legend, limits."""

import warnings

import numpy as np
from matplotlib.figure import Figure

from memo.run import measures
from memo.plots._core import PlotError


def new_axes(cfg: dict):
    """A new Figure of the entry's figsize with one Axes (no pyplot: nothing global to close)."""
    fig = Figure(figsize=cfg["figsize"])
    return fig, fig.subplots()


def colors(n: int, ordered: bool = True) -> list:
    """n colours that neighbours can be told apart by. Ordered groups (numbers: slices, a
    numeric hue) run along a sequential palette, light orange to dark purple for up to 4
    (memo's slices), the wider turbo beyond; unordered ones (names, several hue columns)
    take the categorical tab10 (tab20 past 10)."""
    from matplotlib import colormaps

    if not ordered:
        cmap = colormaps["tab10" if n <= 10 else "tab20"]
        return [cmap(i % cmap.N) for i in range(n)]
    if n <= 4:
        cmap, ends = colormaps["plasma_r"], (0.2, 0.85)
    else:
        cmap, ends = colormaps["turbo"], (0.05, 0.95)
    return [cmap(x) for x in (np.linspace(*ends, n) if n > 1 else [0.5])]


def ordered(df, hue: list) -> bool:
    """Whether hue groups have an order a sequential palette should show: one numeric column."""
    import pandas as pd

    return len(hue) == 1 and pd.api.types.is_numeric_dtype(df[hue[0]]) and df[hue[0]].dtype != bool


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


def group_key(key) -> str:
    """How ``legend.labels`` names a group: its values as ``fmt`` writes them, ", "-joined.

    >>> group_key((0.0, "none")), group_key(0.5)
    ('0.0, none', '0.5')
    """
    return ", ".join(fmt(k) for k in (key if isinstance(key, tuple) else (key,)))


def group_label(names: list, key) -> str:
    """Readable legend label of a hue group: its value for one column (the legend title
    names it); for several, "p = 0.0, shuffled pixels": numbers with the param's symbol
    (memo.run.measures.SYMBOLS), names with spaces, "none" left out.

    >>> group_label(["lr"], (0.1,)), group_label(["label_noise", "corruption"], (1.0, "none"))
    ('0.1', '$p$ = 1.0')
    >>> group_label(["label_noise", "corruption"], (0.0, "random_pixels"))
    '$p$ = 0.0, random pixels'
    """
    key = key if isinstance(key, tuple) else (key,)
    if len(names) == 1:
        return _words(key[0])
    parts = []
    for name, value in zip(names, key):
        if isinstance(value, str):
            if value != "none":
                parts.append(_words(value))
        else:
            parts.append(f"{measures.SYMBOLS.get(name, name)} = {fmt(value)}")
    return ", ".join(parts) or group_key(key)


def _words(value) -> str:
    return value.replace("_", " ") if isinstance(value, str) else fmt(value)


def legend_labels(cfg: dict, names: list, keys: list) -> list:
    """The legend label of each group: ``legend.labels`` (a list in group order, or an object
    {group: name} with groups as ``group_key`` writes them), else ``group_label``."""
    labels = [group_label(names, k) for k in keys]
    given = (cfg.get("legend") or {}).get("labels")
    if isinstance(given, dict):
        known = {group_key(k): i for i, k in enumerate(keys)}
        for group, name in given.items():
            if group not in known:
                raise PlotError(
                    "legend.labels",
                    f"no group {group!r}; the groups are {', '.join(map(repr, known))}",
                )
            labels[known[group]] = name
    return labels


def hue_title(cfg: dict, hue: list) -> str:
    """The default legend title of hue groups: the column's label (one column) or none."""
    return measures.label(hue[0]) if len(hue) == 1 else ""


def finish(
    ax, cfg: dict, xlabel=None, ylabel=None, legend_title=None, value_limits=True, extra=()
) -> None:
    """Apply the common axis keys: labels (defaults given), title, limits, ticks and legend.

    ``value_limits``: vmin/vmax limit the y-axis (as in memo's line plots); heatmaps use
    them for the colour scale instead. ``extra``: (handle, text) pairs explaining marks
    (the band, markers) added below the groups; without a legend, or groups, they are noted
    above the axes.
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
        _plain_large_ticks(axis)
    if cfg.get("xticks") is False:
        ax.set_xticklabels([])
    if cfg.get("yticks") is False:
        ax.set_yticklabels([])
    legend = cfg.get("legend")
    handles, labels = ax.get_legend_handles_labels()
    if legend and isinstance(legend["labels"], list):
        if len(legend["labels"]) != len(handles):
            raise PlotError(
                "legend.labels",
                f"{len(legend['labels'])} labels for {len(handles)} entries ({', '.join(labels)})",
            )
        labels = legend["labels"]
    if legend and isinstance(legend["labels"], dict):  # its order is the legend's
        names = list(legend["labels"].values())
        rank = {n: i for i, n in reversed(list(enumerate(names)))}
        order = sorted(range(len(labels)), key=lambda i: rank.get(labels[i], len(names)))
        handles, labels = [handles[i] for i in order], [labels[i] for i in order]
    extra = [(h, t) for h, t in extra if t]
    if legend and handles:
        title = legend["title"] if legend["title"] is not None else legend_title
        ax.legend(
            handles + [h for h, _ in extra],
            labels + [t for _, t in extra],
            title=title or None,
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            frameon=False,
        )
    elif extra:
        note = "; ".join(t for _, t in extra)
        ax.annotate(
            note,
            (1, 1),
            xycoords="axes fraction",
            xytext=(0, 2),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=5,
            color="0.35",
        )


def band_handle(text: str):
    """A grey patch for the legend entry that says what the band is."""
    from matplotlib.patches import Patch

    return (Patch(color="0.5", alpha=0.25, linewidth=0), text)


def _short_log_ticks(axis) -> None:
    """A log axis spanning less than a decade gets a few plain ticks (0.12, 0.13, 0.14), one
    spanning up to two decades ticks at 1, 2 and 5 of each decade (0.005, 0.01, 0.02, 0.05):
    matplotlib would label minor ticks in scientific notation there, overlapping."""
    from matplotlib import ticker

    low, high = sorted(axis.get_view_interval())
    if axis.get_scale() != "log" or low <= 0 or high / low > 100:
        return
    if high / low < 10:
        axis.set_major_locator(ticker.MaxNLocator(4))
    else:
        axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    axis.set_minor_formatter(ticker.NullFormatter())


def _plain_large_ticks(axis) -> None:
    """Large numbers on a linear axis read 200k and 1M rather than 0.2 with a "1e6" offset."""
    from matplotlib import ticker

    low, high = axis.get_view_interval()
    if axis.get_scale() == "linear" and max(abs(low), abs(high)) >= 1e4:
        axis.set_major_formatter(ticker.FuncFormatter(lambda x, _: short_number(x)))


def short_number(x: float) -> str:
    """A tick value in few characters.

    >>> short_number(200000), short_number(1e6), short_number(2500), short_number(0.5)
    ('200k', '1M', '2.5k', '0.5')
    """
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= size:
            return f"{x / size:g}{unit}"
    return f"{x:g}"


def grid_ticks(axis, values, show: bool = True, most: int = 8) -> None:
    """Ticks at the values themselves, labelled, when they are at most ``most`` numbers
    (a grid's 250, 500, ..., 4000: a log axis would label neither end)."""
    import pandas as pd
    from matplotlib import ticker

    values = pd.to_numeric(pd.Series(values), errors="coerce").dropna().unique()
    values = np.sort(values[np.isfinite(values)])
    if not 1 < len(values) <= most or (axis.get_scale() == "log" and values[0] <= 0):
        return
    axis.set_major_locator(ticker.FixedLocator(values))
    axis.set_major_formatter(ticker.FixedFormatter([short_tick(v) if show else "" for v in values]))
    axis.set_minor_formatter(ticker.NullFormatter())


def short_tick(value: float) -> str:
    """A grid value as a tick label.

    >>> short_tick(4000.0), short_tick(0.005), short_tick(200000)
    ('4000', '0.005', '200k')
    """
    return short_number(value) if abs(value) >= 1e4 else f"{value:g}"


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
