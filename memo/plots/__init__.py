"""memo's plot types: one function per type, registered by name in ``PLOTS``.

An experiment's "plots" list holds entries like
``{"type": "heatmap", "name": "width", "pivot": {...}}``. For each entry::

    cfg = validate(entry)                # defaults filled in; PlotError names a bad key
    drawn = draw(cfg, load_table(name))  # Drawn(fig, data, texts): figure, numbers, files
    save(drawn, plots_dir / name / cfg["name"], ["png", "pdf"])  # a table: .md and .tex

``PLOTS[type].needs`` says which table a type reads: None (dataset_2d, dataset_images,
boundary_2d read datasets), "results" (``load_table``) or "curves" (``load_curves``).
Each function's docstring lists its keys; one module per kind of plot holds them:
heatmap.py (heatmap, slices), lines.py (line, scatter), curves.py (per-epoch curves),
table.py (table), dataset.py (dataset_2d, dataset_images), boundary.py (boundary_2d);
check.py checks entries against a trial's columns before a run; frame.py and axes.py are
shared helpers.
"""

import io
import os
from pathlib import Path

import pandas as pd

from memo.store import paths
from memo.store.records import Store, atomic_file, order_columns
from memo.plots._core import BANDS, PLOTS, Drawn, PlotError, style, validate
from memo.plots import boundary, curves, dataset, heatmap, lines, table  # noqa: F401 (types)

__all__ = [
    "BANDS",
    "PLOTS",
    "Drawn",
    "PlotError",
    "MissingResults",
    "BadResults",
    "draw",
    "load_curves",
    "load_table",
    "save",
]
__all__ += ["style", "validate"]


class MissingResults(FileNotFoundError):
    """The experiment has no results yet (run.py has not written them)."""


class BadResults(ValueError):
    """results/NAME.csv is there but cannot be read; the message says how to rewrite it."""


def draw(cfg: dict, df: pd.DataFrame | None = None) -> Drawn:
    """Draw a validated plot entry in the house style; ``df`` is the table its type needs."""
    import matplotlib

    with matplotlib.rc_context(style()):
        return PLOTS[cfg["type"]](cfg, df)


def save(drawn, stem: Path, formats=("png", "pdf")) -> list:
    """Write a figure to ``stem.<fmt>`` for each format, and a Drawn's texts to
    ``stem.<suffix>`` (a table's .md and .tex), each via a temp file renamed into place."""
    import matplotlib

    fig, texts = (drawn.fig, drawn.texts or {}) if isinstance(drawn, Drawn) else (drawn, {})
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    with matplotlib.rc_context(style()):
        for fmt in formats if fig is not None else ():
            path = stem.with_name(f"{stem.name}.{fmt}")
            with atomic_file(path) as handle:
                # No creation date in PDFs: the same results give the same bytes.
                fig.savefig(
                    handle,
                    format=fmt,
                    metadata={"CreationDate": None} if fmt == "pdf" else None,
                )
            written.append(path)
    for suffix, text in texts.items():
        path = stem.with_name(f"{stem.name}.{suffix}")
        with atomic_file(path) as handle:
            handle.write(text.encode())
        written.append(path)
    return written


def load_table(name: str, **read_csv) -> pd.DataFrame:
    """results/NAME.csv (the grid's points as run.py last collected them), status == "ok"
    rows only; MissingResults if there is none, BadResults if it cannot be read.

    Where the table is missing or older than the newest record (a run stopped by Ctrl-C
    writes none; a run still going), the records are read instead, as ``--collect`` would
    (the points of the grid, in grid order) without writing the table; ``df.attrs["note"]``
    then says so.
    """
    path = paths.results_dir() / f"{name}.csv"
    rows = Store(name).rows()
    newest = max(rows.stamps().values(), default=None)  # when the last record was written, s
    try:
        written = os.stat(path).st_mtime if path.is_file() else None
    except OSError:
        written = None
    if newest is not None and (written is None or written < newest) and len(rows):
        text = io.StringIO(_grid_frame(name, rows).to_csv(index=False))
        df = _read_csv(name, text, read_csv, f"the records in {paths.results_dir() / name}")
        why = "is missing" if written is None else "is older than the records"
        df.attrs["note"] = (
            f"note: {path} {why}; the figures show the records as they are now"
            f" (python run.py --name {name} --collect writes the table)"
        )
        return df
    if written is None:
        raise MissingResults(path)
    return _read_csv(name, path, read_csv, path)


def _read_csv(name: str, source, read_csv: dict, what) -> pd.DataFrame:
    try:
        df = pd.read_csv(source, **read_csv)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame()
    except (ValueError, UnicodeDecodeError) as e:  # pandas' ParserError is a ValueError
        reason = str(e).strip().splitlines()[-1]
        raise BadResults(
            f"cannot read {what} ({reason}); rewrite it with:"
            f" python run.py --name {name} --collect"
        ) from None
    if "status" in df:
        df = df[df["status"] == "ok"]
    return df.reset_index(drop=True)


def _grid_frame(name: str, rows) -> pd.DataFrame:
    """The records' rows as run.py's table holds them: of the points of the experiment's
    grid, in grid order (all of them, in file order, where the spec cannot be read)."""
    from memo.run.spec import SpecError, load_spec

    frame = rows.frame()
    try:
        points = load_spec(name).points()
    except SpecError:
        return frame
    frame["_index"] = frame["id"].map({p.id: p.index for p in points})
    frame = frame.dropna(subset=["_index"]).astype({"_index": int})
    return order_columns(frame.sort_values("_index").reset_index(drop=True), points)


def load_curves(name: str) -> pd.DataFrame:
    """The ok records with their per-epoch list columns, of the points in results/NAME.csv.

    The CSV decides which points, as for the other plots: records of points no longer in
    the grid (kept by run.py when a spec changes) are left out.
    """
    from memo.store.records import load_results

    listed = load_table(name, usecols=["id", "status"], dtype={"id": str})
    df = load_results(name, curves=True)
    if len(df):
        df = df[df["id"].isin(set(listed["id"]))]
    df = df.reset_index(drop=True)
    df.attrs.update(listed.attrs)
    return df
