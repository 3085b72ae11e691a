"""memo's plot types: one function per type, registered by name in ``PLOTS``.

An experiment's "plots" list holds entries like
``{"type": "heatmap", "name": "width", "pivot": {...}}``. For each entry::

    cfg = validate(entry)                # defaults filled in; PlotError names a bad key
    drawn = draw(cfg, load_table(name))  # Drawn(fig, data, texts): figure, numbers, files
    save(drawn, plots_dir / name / cfg["name"], ["png", "pdf"])  # a table: .md and .tex

``PLOTS[type].needs`` says which table a type reads: None (dataset_2d, dataset_images,
boundary_2d read datasets), "results" (``load_table``) or "curves" (``load_curves``).
Each function's docstring lists its keys: tables.py (heatmap, slices, line, scatter),
curves.py, tabular.py (table) and data.py (the dataset plots) hold them; check.py checks
entries against a trial's columns before a run; frame.py and axes.py are shared helpers.
"""

from pathlib import Path

import pandas as pd

from memo.store import paths
from memo.store.records import atomic_file
from memo.plots._core import BANDS, PLOTS, Drawn, PlotError, style, validate
from memo.plots import (
    curves,
    data,
    tables,
    tabular,
)  # noqa: F401 (importing them registers their types)

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
    rows only; MissingResults if there is none, BadResults if it cannot be read."""
    path = paths.results_dir() / f"{name}.csv"
    if not path.is_file():
        raise MissingResults(path)
    try:
        df = pd.read_csv(path, **read_csv)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame()
    except (ValueError, UnicodeDecodeError) as e:  # pandas' ParserError is a ValueError
        reason = str(e).strip().splitlines()[-1]
        raise BadResults(
            f"cannot read {path} ({reason}); rewrite it with: python run.py --name {name} --collect"
        ) from None
    if "status" in df:
        df = df[df["status"] == "ok"]
    return df.reset_index(drop=True)


def load_curves(name: str) -> pd.DataFrame:
    """The ok records with their per-epoch list columns, of the points in results/NAME.csv.

    The CSV decides which points, as for the other plots: records of points no longer in
    the grid (kept by run.py when a spec changes) are left out.
    """
    from memo.store.records import load_results

    ids = load_table(name, usecols=["id", "status"], dtype={"id": str})["id"]
    df = load_results(name, curves=True)
    if len(df):
        df = df[df["id"].isin(set(ids))]
    return df.reset_index(drop=True)
