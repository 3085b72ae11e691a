"""What every plot type shares: the registry, key checking and the house style.

A plot type is a function ``fn(cfg, df) -> Drawn`` registered under its name with
``@plot_type(name, needs=..., **keys)``. ``keys`` maps each key the type accepts (besides
the common ones) to its default; ``REQUIRED`` marks a key without one and ``Sub`` a key
that holds a dict of its own keys. ``needs`` says what ``df`` is: None (the plot reads
no results), "results" (the scalar table results/NAME.csv, ok rows only) or "curves"
(the same with per-epoch list columns). Reading the table is in frame.py, drawing in axes.py.
"""

import math
from typing import Any, Callable, NamedTuple


class _Required:
    def __repr__(self):
        return "required"


REQUIRED = _Required()
BANDS = ("auto", "minmax", "std", "sem", "ci95", "none")
AGGS = ("mean", "median", "min", "max", "sum", "std", "count")


class PlotError(ValueError):
    """A mistake in a plot entry or in what it asks of the data; ``key`` names the entry's key."""

    def __init__(self, key: str, message: str):
        super().__init__(f"key '{key}': {message}")
        self.key = key


class Drawn(NamedTuple):
    """A drawn plot: the figure (a matplotlib Figure, or None for a table), the numbers behind
    it (a DataFrame or dict per type) and text files to write beside it ({suffix: text})."""

    fig: Any
    data: Any
    texts: dict | None = None


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
LEGEND_ON = Sub(LEGEND.keys, default=True, flag=True)  # a legend unless told false
AXES = {"xlim": None, "ylim": None, "xticks": True, "yticks": True}  # keys of plots with plain axes

PLOTS: dict = {}  # type name -> plot function; each has .keys (name -> default) and .needs


def plot_type(name: str, needs: str | None = None, common: tuple = tuple(COMMON), **keys):
    """Register the decorated function as plot type ``name`` accepting ``keys`` besides
    the ``common`` ones of COMMON (all by default)."""

    def register(fn):
        fn.keys = {**{k: COMMON[k] for k in common}, **keys}
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
_names = _check(
    lambda v: isinstance(v, str)
    or (isinstance(v, list) and v and all(isinstance(s, str) for s in v)),
    "a column name or a list of them",
)
CHECKS = {
    **dict.fromkeys("xticks yticks logx logy outline samples_on_top annotate".split(), _bool),
    **dict.fromkeys("vmin vmax marker_threshold markersize max_bias smoothing level".split(), _num),
    **dict.fromkeys(
        "mark_every rows cols img_width img_height img_channels resolution".split(), _count
    ),
    **dict.fromkeys("dataset x y metric idx col val activation row_names".split(), _str),
    **dict.fromkeys("xlabel ylabel title clabel".split(), _text),
    **dict.fromkeys(["xlim", "ylim"], _pair),
    **dict.fromkeys(["slices", "classes"], _list),
    **dict.fromkeys(["hue", "index", "columns", "values"], _names),
    "labels": _check(
        lambda v: (isinstance(v, list) and len(v) > 0)
        or (isinstance(v, dict) and all(isinstance(t, str) for t in v.values())),
        "a list of labels in group order or an object {group: label}",
    ),
    "n_iter": _count,
    "seed": _check(_is_int, "an integer"),
    "round": _check(_is_int, "an integer (decimals)"),
    "decimals": _check(lambda v: _is_int(v) and 0 <= v <= 12, "an integer from 0 to 12"),
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
        "mathtext.fontset": "dejavusans",  # the sans text's family: one font per figure
        "axes.grid": True,
        "axes.axisbelow": True,
        "axes.edgecolor": "#bbbbbb",
        "grid.color": "#e4e4e4",
        "grid.linewidth": 0.6,
        "lines.linewidth": 1.0,
        "savefig.dpi": 300,
        "savefig.bbox": "tight",
    }
