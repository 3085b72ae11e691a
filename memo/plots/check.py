"""Check a spec's plot entries against the columns its trial will produce, before a run.

A plot naming a column the results will not have (a typo, a metric of another trial, a
per-epoch list where a number is needed) would otherwise fail only after the grid ran.
The columns are the trial's params, its ``METRICS`` (memo convention: every name
``trial()`` may return; ``<label>`` stands for any text), the derived columns of
memo.run.measures and the record's own (id, seed, status, wall_time, ...).
"""

import difflib
import re

from memo.run import measures
from memo.plots._core import PlotError, validate
from memo.store.records import RESERVED


def check_plots(spec) -> list:
    """One line per plot entry of ``spec`` (a memo.run.spec.Spec) that is bad or names a column
    its trial will not produce; empty when all are fine."""
    lines = []
    for number, error in plot_errors(spec).items():
        entry = spec.plots[number]
        name = entry.get("name") if isinstance(entry, dict) else None
        lines.append(f"{spec.path}: plots[{number}]{f' {name!r}' if name else ''}: {error}")
    return lines


def plot_errors(spec) -> dict:
    """{index in spec.plots: PlotError} of the entries that are bad or name a missing column."""
    from memo.run.spec import UNIVERSAL
    from memo.run.trial_lookup import trial_fields, trial_module

    metrics = getattr(trial_module(spec.trial), "METRICS", None)
    params = set(trial_fields(spec.trial)) | set(UNIVERSAL)
    errors = {}
    for number, entry in enumerate(spec.plots):
        try:
            cfg = validate(entry)
            for key, column, kind in referenced(cfg):
                problem = _column_problem(column, kind, params, metrics)
                if problem:
                    raise PlotError(key, f"{problem}; see python run.py --describe {spec.trial}")
        except PlotError as e:
            errors[number] = e
    return errors


def referenced(cfg: dict) -> list:
    """(key, column, kind) for each column a validated plot entry reads; kind is "curve"
    (a per-epoch list), "number" (averaged or compared) or "any"."""
    out = [(f"where.{c}", c, "any") for c in (cfg.get("where") or {})]
    pivot = cfg.get("pivot")
    if pivot:
        out += [("pivot.idx", pivot["idx"], "any"), ("pivot.col", pivot["col"], "any")]
        out.append(("pivot.val", pivot["val"], "number"))
    if cfg.get("row_names"):
        out.append(("row_names", cfg["row_names"], "any"))
    if cfg.get("interpolation") or cfg.get("marker_threshold") is not None:
        key = "interpolation" if cfg.get("interpolation") else "marker_threshold"
        out.append((key, "interpolated", "number"))
    if cfg["type"] == "curves":
        out.append(("metric", cfg["metric"], "curve"))
        if cfg["x"] == "step":
            out += [("x", "steps", "number"), ("x", "epochs_run", "number")]
    elif "x" in cfg and "y" in cfg:
        out += [("x", cfg["x"], "any"), ("y", cfg["y"], "number")]
    for key in ("hue", "index", "columns", "values"):
        names = cfg.get(key)
        names = [names] if isinstance(names, str) else names or []
        out += [(key, c, "number" if key == "values" else "any") for c in names]
    return out


def _column_problem(column: str, kind: str, params: set, metrics: dict | None):
    if metrics is None:  # the trial does not say what it returns: nothing to check against
        return None
    known = params | set(RESERVED) | {m for m in metrics if "<" not in m}
    families = [m for m in metrics if "<" in m]
    derived = {
        d for d, m in measures.DERIVED.items() if all(_has(r, known, families) for r in m.reads)
    }
    if not (_has(column, known, families) or column in derived):
        close = difflib.get_close_matches(column, sorted(known | derived | set(families)), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"the trial gives no column {column!r}{hint}"
    is_list = _is_list(column, metrics)
    if kind == "curve" and not is_list:
        return f"{column!r} is one number per run; curves need a per-epoch *_curve metric"
    if kind == "number" and is_list:
        return f"{column!r} is a per-epoch list; use the curves plot type, or a scalar metric"
    return None


def _has(column: str, known: set, families: list) -> bool:
    if column in known:
        return True
    return any(re.fullmatch(re.sub(r"<[^>]*>", ".+", re.escape(f)), column) for f in families)


def _is_list(column: str, metrics: dict) -> bool:
    """Whether metric ``column`` is list-valued: a *_curve name, or its meaning says "list"."""
    if column.endswith("_curve"):
        return True
    meaning = metrics.get(column)
    if meaning is None:  # a family member: the meaning of its most specific family
        families = [f for f in metrics if "<" in f and _has(column, set(), [f])]
        family = max(families, key=lambda f: len(re.sub(r"<[^>]*>", "", f)), default=None)
        meaning = metrics.get(family, "")
    return bool(re.search(r"\blist\b", meaning))
