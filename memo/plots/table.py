"""The ``table`` plot: metrics as a table (Zhang et al.'s Table 1), in Markdown and LaTeX."""

import math

import numpy as np
import pandas as pd

from memo.run import measures
from memo.plots._core import REQUIRED, Drawn, PlotError, plot_type
from memo.plots.axes import fmt
from memo.plots.frame import STATS, band, hue_columns, numeric, select, summarize

SPREADS = ("std", "sem", "ci95", "minmax", "none")


@plot_type(
    "table",
    needs="results",
    common=("type", "name", "title"),
    index=REQUIRED,
    values=REQUIRED,
    columns=None,
    where=None,
    spread="std",
    decimals=3,
)
def table(cfg: dict, df: pd.DataFrame) -> Drawn:
    """A table of metrics, mean ± spread over the runs of each cell, written as
    ``<name>.md`` (Markdown) and ``<name>.tex`` (LaTeX with booktabs rules) next to the
    figures; no image.

    Keys: index: the column or columns whose values make the rows (e.g. ["model",
    "n_params"]); values: the metric or metrics shown (e.g. ["train_acc", "test_acc"]);
    columns: columns whose values spread each metric over several table columns (e.g.
    "label_noise"; none by default); spread: std | sem | ci95 | minmax | none, written
    after ± (minmax: "mean (min-max)"; cells of one run show the mean alone); decimals
    (3); where; title: the caption (the spread and run counts are added); plus name.
    data: DataFrame with the index and columns columns, metric, mean, std, n, min, max,
    low, high, cell (the text shown).
    """
    if cfg["spread"] not in SPREADS:
        raise PlotError("spread", f"must be one of {', '.join(SPREADS)}; got {cfg['spread']!r}")
    df = select(df, cfg["where"])
    index = hue_columns(df, cfg["index"])
    columns = hue_columns(df, cfg["columns"])
    values = [cfg["values"]] if isinstance(cfg["values"], str) else list(cfg["values"])
    clash = sorted(set(index) & set(columns))
    if clash:
        raise PlotError("columns", f"{clash[0]!r} is in index too; name each column once")
    by = index + columns
    parts = []
    for metric in values:
        key = "index" if set(index) & set(STATS) else "columns"  # for a name summarize refuses
        stats = summarize(df, by, numeric(df, metric, "values"), key).assign(metric=metric)
        kind = "minmax" if cfg["spread"] == "none" else cfg["spread"]
        bounds = measures.value_range(metric)
        stats["low"], stats["high"] = band(
            stats["mean"], stats["std"], stats["n"], kind, stats["min"], stats["max"], bounds
        )
        parts.append(stats)
    stats = pd.concat(parts, ignore_index=True)
    stats["cell"] = [_cell(row, cfg["spread"], cfg["decimals"]) for row in stats.itertuples()]
    caption = _caption(cfg, stats)
    wide = _wide(stats, index, columns, values)
    short = [measures.SYMBOLS.get(c, measures.label(c)) for c in columns]
    texts = {"md": _markdown(wide, short, caption), "tex": _latex(wide, short, caption)}
    return Drawn(None, stats, texts)


def _cell(row, spread: str, decimals: int) -> str:
    """ "0.998 ± 0.002", "0.998 (0.996-1.000)" or "0.998" (one run, or spread none)."""
    mean = f"{row.mean:.{decimals}f}" if math.isfinite(row.mean) else "-"
    if row.n < 2 or spread == "none":
        return mean
    if spread == "minmax":
        return f"{mean} ({row.min:.{decimals}f}-{row.max:.{decimals}f})"
    return f"{mean} ± {max(row.high - row.mean, row.mean - row.low):.{decimals}f}"


def _caption(cfg: dict, stats: pd.DataFrame) -> str:
    n = stats["n"].astype(int)
    runs = f"{n.min()}-{n.max()}" if n.min() != n.max() else f"{n.min()}"
    if cfg["spread"] == "none" or n.max() < 2:
        what = "mean"
    elif cfg["spread"] == "minmax":
        what = "mean (min-max)"
    else:
        what = {"std": "mean ± 1 sd", "sem": "mean ± 1 sem", "ci95": "mean ± 95% CI"}
        what = what[cfg["spread"]]
    text = f"{what} over {runs} run{'s' if n.max() > 1 else ''} per cell"
    return f"{cfg['title']}: {text}" if cfg["title"] else text.capitalize()


def _wide(stats: pd.DataFrame, index: list, columns: list, values: list) -> pd.DataFrame:
    """Rows by the index columns, a column per metric (and per value of ``columns``)."""
    frame = stats.copy()
    for col in index + columns:
        frame[col] = [_value(col, v) for v in frame[col]]
    frame["metric"] = pd.Categorical(
        [measures.label(m) for m in frame["metric"]], [measures.label(m) for m in values]
    )
    wide = frame.pivot_table(
        index=index, columns=["metric", *columns], values="cell", aggfunc="first", sort=False
    )
    wide.index.names = [measures.label(c) for c in index]
    wide.columns.names = [None] + [measures.label(c) for c in columns]
    return wide


def _value(column: str, value) -> str:
    if isinstance(value, str):
        return value.replace("_", " ")
    if isinstance(value, (int, np.integer)) or (
        isinstance(value, float) and value.is_integer() and abs(value) >= 1000
    ):
        return f"{int(value):,}"  # parameter counts: 1,647,674
    return fmt(value)


def _markdown(wide: pd.DataFrame, names: list, caption: str) -> str:
    """One header row: "train accuracy, $p$ = 0.0" (``names``: short names of ``columns``)."""
    flat = wide.copy()
    flat.columns = [
        (
            ", ".join([c[0], *(f"{n} = {v}" for n, v in zip(names, c[1:]))])
            if isinstance(c, tuple)
            else c
        )
        for c in wide.columns
    ]
    body = flat.reset_index().to_markdown(index=False, stralign="right", disable_numparse=True)
    return f"{body}\n\n{caption}\n"


def _latex(wide: pd.DataFrame, names: list, caption: str) -> str:
    """A booktabs table whose every header sits over its own column: the metrics over their
    columns (a rule under each), then one header row with the index names over the index
    columns and "$p$ = 0.0" (``names``: short names of ``columns``) over each value column.
    Repeated index values are left blank below their first row."""
    n_index, columns = wide.index.nlevels, list(wide.columns)
    spread = isinstance(columns[0], tuple) and len(columns[0]) > 1
    lines = [r"\begin{table}", r"\centering", rf"\caption{{{_tex(caption)}}}"]
    lines += [rf"\begin{{tabular}}{{{'l' * n_index}{'r' * len(columns)}}}", r"\toprule"]
    heads = [_tex(", ".join(f"{n} = {v}" for n, v in zip(names, c[1:]))) for c in columns]
    if spread:
        groups, rules, start = [""] * n_index, [], n_index + 1  # columns count from 1
        for metric, span in _runs([c[0] for c in columns]):
            groups.append(rf"\multicolumn{{{span}}}{{c}}{{{_tex(metric)}}}")
            rules.append(rf"\cmidrule(lr){{{start}-{start + span - 1}}}")
            start += span
        lines += [" & ".join(groups) + r" \\", " ".join(rules)]
    else:
        heads = [_tex(c[0] if isinstance(c, tuple) else c) for c in columns]
    index_names = [_tex(n or "") for n in wide.index.names]
    lines += [" & ".join(index_names + heads) + r" \\", r"\midrule"]
    previous = None
    for key, row in zip(wide.index, wide.itertuples(index=False)):
        key = key if isinstance(key, tuple) else (key,)
        shown = [
            "" if previous and key[: i + 1] == previous[: i + 1] and i < n_index - 1 else _tex(k)
            for i, k in enumerate(key)
        ]
        cells = ["" if pd.isna(v) else _tex(v) for v in row]
        lines.append(" & ".join(shown + cells) + r" \\")
        previous = key
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _runs(values: list) -> list:
    """(value, count) of each run of equal neighbours: ["a", "a", "b"] -> [("a", 2), ("b", 1)]."""
    out = []
    for v in values:
        if out and out[-1][0] == v:
            out[-1] = (v, out[-1][1] + 1)
        else:
            out.append((v, 1))
    return out


TEX_SPECIALS = {c: "\\" + c for c in "&%#_{}"} | {"\\": r"\textbackslash{}", "~": r"\~{}"}
TEX_SPECIALS |= {"^": r"\^{}", "±": r"$\pm$", "×": r"$\times$", "−": "-"}


def _tex(text) -> str:
    r"""Text for LaTeX: its specials escaped, its $math$ kept as it is.

    >>> print(_tex("MLP 3×512 (0.56M)"), _tex("label noise $p$ = 0.5"), _tex("50% & more"))
    MLP 3$\times$512 (0.56M) label noise $p$ = 0.5 50\% \& more
    """
    parts = str(text).split("$")
    for i in range(0, len(parts), 2):  # outside math
        parts[i] = "".join(TEX_SPECIALS.get(c, c) for c in parts[i])
    return "$".join(parts)
