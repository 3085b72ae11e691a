"""Experiment specs: load experiments/NAME.json, validate it once, expand it into points.

A spec has the keys ``trial``, ``param_grid`` and optionally ``defaults``, ``plots`` and
``description``. ``param_grid`` is a dict or a list of dicts expanded as scikit-learn's
ParameterGrid does; each value is a list or a generator (see :func:`memo.run.values.expand_value`). Every
error raises :class:`SpecError` with one line naming the file, the key and the value.
"""

import difflib
import json
import math
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from memo.store import paths
from memo.run.grid import Grid
from memo.run.point import UNIVERSAL, iter_points
from memo.run.trial_lookup import _resolve_trial, trial_fields, trial_hints
from memo.run.values import SpecError, _count, _finite, _show, expand_value

TOP_KEYS = ("trial", "param_grid", "defaults", "plots", "description")
UNIVERSAL_LIMIT = 2**63  # both in [0, 2**63): numpy, torch and the CSV's int64 columns take them
MAX_POINTS = 10_000_000  # per spec
MAX_DEPTH = 100  # nesting of lists and objects; deeper would overflow Python's stack later


@dataclass
class Spec:
    name: str
    path: Path
    trial: str  # canonical trial module name under trials/
    grid: list  # expanded param grids: list of {key: [values]}, zip groups as {label: [dicts]}
    defaults: dict
    plots: list
    memo: bool = False  # trial "algorithm": params mean what memo's files meant (memo_params)

    def points(self) -> list:
        """All points in ParameterGrid order (deterministic); a point given twice is an error."""
        return list(Grid(self))

    @property
    def size(self) -> int:
        """How many points the grid has, from its axes (nothing expanded)."""
        return sum(math.prod(map(len, g.values())) for g in self.grid)

    def lazy_points(self) -> Grid:
        """The points as a :class:`memo.run.grid.Grid`: a sequence of them in the same order,
        with every id at once (from JSON fragments: quick) and each Point built when asked."""
        return Grid(self)

    def iter_points(self):
        """Yield the points one at a time, as :meth:`points` lists them; memory stays small
        for any grid (8 bytes a point, to find a point given twice: raised at the end)."""
        return iter_points(self)


def spec_path(name: str) -> Path:
    """The spec file ``name`` means, as run.py and plot.py read it: experiments/NAME.json, or
    NAME itself when it ends in .json (a path); its stem names the experiment (results/STEM).
    SpecError when there is no such file, the stem cannot name an experiment, or a different
    experiments/STEM.json already has that name."""
    path = Path(name) if name.endswith(".json") else paths.experiments_dir() / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in paths.experiments_dir().glob("*.json"))
        results = paths.results_dir() / path.stem
        hint = (
            f" ({results} exists: if a spec elsewhere made it, give that file's path)"
            if results.is_dir()
            else _did_you_mean(path.stem, known)
        )
        known = ", ".join(known) or "none"
        raise SpecError(f"{path}: no such experiment file{hint}; known experiments: {known}")
    problem = paths.experiment_name_problem(path.stem)
    if problem:
        raise SpecError(f"{path}: experiment name {problem}; rename the file")
    namesake = paths.experiments_dir() / f"{path.stem}.json"
    if namesake.is_file() and namesake.read_bytes() != path.read_bytes():
        raise SpecError(
            f"{path}: would share results/{path.stem} with {namesake}; rename one of the files"
        )
    return path


def load_spec(name: str) -> Spec:
    """Load and validate experiments/NAME.json (or a path to a .json file: :func:`spec_path`)."""
    path = spec_path(name)
    where = str(path)
    raw = _read_json(where, path)
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: the top level must be an object with keys {', '.join(TOP_KEYS)}")
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise SpecError(f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(TOP_KEYS)}")
    for key in ("trial", "param_grid"):
        if key not in raw:
            raise SpecError(f"{where}: missing key {key!r}")
    trial = _resolve_trial(where, raw["trial"])
    fields = trial_fields(trial)
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict):
        raise SpecError(
            f"{where}: defaults must be an object of param: value, got {_show(defaults)}"
        )
    defaults = {k: _check_value(where, f"defaults.{k}", trial, k, v) for k, v in defaults.items()}
    grids = raw["param_grid"]
    if isinstance(grids, dict):
        grids = [grids]
    if not isinstance(grids, list) or not grids:
        raise SpecError(f"{where}: param_grid must be an object or a non-empty list of objects")
    grid = [
        _expand_grid(
            where, f"param_grid[{i}]" if len(grids) > 1 else "param_grid", trial, fields, g
        )
        for i, g in enumerate(grids)
    ]
    size = sum(math.prod(map(len, g.values())) for g in grid)
    if size > MAX_POINTS:
        shape = " + ".join(" * ".join(f"{len(v):,} {k}" for k, v in g.items()) for g in grid)
        raise SpecError(
            f"{where}: param_grid: {_count(size)} points ({shape}), more than {MAX_POINTS:,}; "
            "use fewer values or split the experiment"
        )
    plots = raw.get("plots", [])
    if not isinstance(plots, list):
        raise SpecError(f"{where}: plots must be a list of objects, got {type(plots).__name__}")
    memo = raw["trial"] == "algorithm"
    return Spec(path.stem, path, trial, grid, defaults, plots, memo)


def _read_json(where: str, path: Path):
    """The parsed file; not UTF-8, invalid JSON or a key given twice is a SpecError."""

    def unique_keys(pairs: list) -> dict:
        obj = {}
        for key, value in pairs:
            if key in obj:
                raise SpecError(
                    f"{where}: key {key!r} appears twice in one object (values "
                    f"{_show(obj[key])} and {_show(value)}); keep one"
                )
            obj[key] = value
        return obj

    try:
        raw = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=unique_keys)
    except RecursionError:
        raise SpecError(
            f"{where}: lists and objects nested more than {MAX_DEPTH} levels deep; flatten them"
        ) from None
    except OSError as e:
        raise SpecError(f"{where}: cannot read it: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        line = e.object.count(b"\n", 0, e.start) + 1
        raise SpecError(
            f"{where}: not UTF-8 text (byte {e.object[e.start]:#04x} on line {line}); "
            "save the file as UTF-8"
        ) from None
    except json.JSONDecodeError as e:
        raise SpecError(
            f"{where}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from None
    if depth(raw) > MAX_DEPTH:
        raise SpecError(
            f"{where}: lists and objects nested more than {MAX_DEPTH} levels deep; flatten them"
        )
    return raw


def depth(value) -> int:
    """How deeply lists and objects nest in a JSON value; without recursion.

    >>> depth(1), depth([]), depth({"a": [[1], 2]})
    (0, 1, 3)
    """
    deepest, stack = 0, [(value, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, (list, dict)):
            deepest = max(deepest, level)
            stack.extend(
                (v, level + 1) for v in (value.values() if isinstance(value, dict) else value)
            )
    return deepest


def _expand_grid(where: str, key: str, trial: str, fields: dict, grid) -> dict:
    if not isinstance(grid, dict) or not grid:
        raise SpecError(
            f"{where}: {key} must be a non-empty object of param: values, got {_show(grid)}"
        )
    expanded, set_at = {}, {}  # set_at: param -> the key path that sets it
    for name, value in grid.items():
        at = f"{key}.{name}"
        zipped = isinstance(value, dict) and value.get("type_") == "zip"
        if zipped and (name in fields or name in UNIVERSAL):
            raise SpecError(
                f"{where}: {at}: a zip group's key is a label, not a param; rename it (e.g. 'zip1')"
            )
        setters = [(p, f"{at}.{p}") for p in value if p != "type_"] if zipped else [(name, at)]
        for param, path in setters:
            if param in set_at:
                raise SpecError(
                    f"{where}: {path}: {param!r} is also set by {set_at[param]}; "
                    "set each param in one place"
                )
            set_at[param] = path
        if zipped:
            expanded[name] = _expand_zip(where, at, trial, value)
        else:
            values = expand_value(where, at, value)
            expanded[name] = _check_values(where, at, trial, name, values)
    return expanded


def _expand_zip(where: str, at: str, trial: str, group: dict) -> list:
    members = {k: v for k, v in group.items() if k != "type_"}
    if not members:
        raise SpecError(f"{where}: {at}: a zip group needs at least one param list")
    columns = {}
    for name, value in members.items():
        values = expand_value(where, f"{at}.{name}", value)
        columns[name] = _check_values(where, f"{at}.{name}", trial, name, values)
    lengths = {name: len(v) for name, v in columns.items()}
    if len(set(lengths.values())) > 1:
        raise SpecError(f"{where}: {at}: zipped lists differ in length: {_show(lengths)}")
    return [dict(zip(columns, row)) for row in zip(*columns.values())]


def _check_value(where: str, at: str, trial: str, name: str, value):
    """Check one value against the trial's declared type; return it normalized."""
    hints = trial_hints(trial)
    if name in UNIVERSAL:
        expected = UNIVERSAL[name]
    elif name in hints:
        expected = hints[name]
    else:
        accepted = sorted(set(hints) | set(UNIVERSAL))
        raise SpecError(
            f"{where}: {at}: trial {trial!r} has no param {name!r}{_did_you_mean(name, accepted)};"
            f" it accepts {', '.join(accepted)}"
        )
    if not _finite(value):
        raise SpecError(
            f"{where}: {at}: {_show(value)} is not finite; write finite numbers (NaN, Infinity and "
            "numbers beyond 1.8e308 in size are not)"
        )
    ok, value = _conform(expected, value)
    if not ok:
        raise SpecError(f"{where}: {at}: {_show(value)} is not {type_text(expected)}")
    if name in UNIVERSAL and not 0 <= value < UNIVERSAL_LIMIT:
        raise SpecError(f"{where}: {at}: {name} must be from 0 to 2**63 - 1, got {value}")
    return value


def _check_values(where: str, at: str, trial: str, name: str, values: list) -> list:
    """:func:`_check_value` of each of ``values`` in turn; numbers of one type (a range of a
    million, say) at once where their type decides, as it does but for a Literal."""
    kind = type(values[0])
    if kind in (int, float) and set(map(type, values)) == {kind}:
        first = _check_value(where, at, trial, name, values[0])  # the type's error, if any
        low, high = min(values), max(values)
        if kind is int:
            finite = -sys.float_info.max <= low and high <= sys.float_info.max
        else:
            finite = all(map(math.isfinite, values))
        bounded = name not in UNIVERSAL or (0 <= low and high < UNIVERSAL_LIMIT)
        expected = UNIVERSAL.get(name) or trial_hints(trial)[name]
        if finite and bounded and not _names_values(expected):
            return list(map(float, values) if type(first) is not kind else values)
    return [_check_value(where, at, trial, name, v) for v in values]


def _names_values(expected) -> bool:
    """Whether a type annotation has a Literal in it (its values, not their type, decide)."""
    if typing.get_origin(expected) is typing.Literal:
        return True
    return any(_names_values(arg) for arg in typing.get_args(expected))


def _did_you_mean(name: str, known: list) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _conform(expected, value):
    """(matches, normalized value) for the annotations trials use."""
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin is typing.Literal:
        return value in args and type(value) in {type(a) for a in args}, value
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            ok, normalized = _conform(arg, value)
            if ok:
                return True, normalized
        return False, value
    if expected is type(None):
        return value is None, value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return True, float(value)
    if expected in (int, float) and isinstance(value, bool):
        return False, value
    if origin is list:
        return isinstance(value, list), value
    return isinstance(value, expected), value


def type_text(expected) -> str:
    """A param's type in words, for errors and ``--describe``.

    >>> type_text(typing.Literal["a", "b"]), type_text(int | None), type_text(float)
    ('one of "a", "b"', 'an integer or null', 'a number')
    """
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin is typing.Literal:
        return "one of " + ", ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_text(a) for a in args)
    if expected is type(None):
        return "null"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return names.get(expected, getattr(expected, "__name__", str(expected)))
