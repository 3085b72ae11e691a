"""One point of a spec's grid: Point, its id and seed (make_point), its params, the checks
the trial makes of them, and the points listed one by one (:func:`iter_points`).

A point's id hashes its trial and params as canonical JSON, leaving out params at their
default: users' results folders are named by these ids, so they never change.
:mod:`memo.run.grid` makes the same ids for a whole grid at once.
"""

import array
import bisect
import hashlib
import itertools
import json
import math
from dataclasses import dataclass

import numpy as np

from memo.run.trial_lookup import trial_fields, trial_params_class
from memo.run.values import SpecError, _show

UNIVERSAL = {"seed": int, "restart": int}  # accepted by every trial


@dataclass(frozen=True)
class Point:
    """One grid point: its stable id, grid position, params and seed."""

    id: str
    index: int
    params: dict
    seed: int


def iter_points(spec):
    """Yield the points of ``spec`` one at a time, as Spec.points lists them; memory stays
    small for any grid (8 bytes a point, to find a point given twice: raised at the end)."""
    fields = trial_fields(spec.trial)
    params_cls = trial_params_class(spec.trial)
    ids = array.array("Q")  # each id is 16 hex digits: 64 bits
    for index, combo in enumerate(grid_product(spec.grid)):
        params = spec_params(spec, fields, combo)
        check_point(spec, params_cls, params, index)
        point = make_point(spec.trial, fields, params, index)
        ids.append(int(point.id, 16))
        yield point
    twice = given_twice(spec, np.frombuffer(ids, dtype=np.uint64))
    if twice:
        raise SpecError(twice)


def given_twice(spec, ids: np.ndarray) -> str | None:
    """What is wrong if some point of ``spec`` has the id (a number) of an earlier one, else
    None."""
    twice = _given_twice(ids)
    if not twice:
        return None
    first, index = twice
    return (
        f"{spec.path}: {_origin(spec, index)} gives the same point as "
        f"{_origin(spec, first)} (a param equal to its default counts as unset); remove one"
    )


def _origin(spec, index: int) -> str:
    """Where point INDEX comes from, e.g. 'param_grid[1] {"x": 2} (point 3)'."""
    combo = next(itertools.islice(grid_product(spec.grid), index, None))
    ends = list(itertools.accumulate(math.prod(map(len, g.values())) for g in spec.grid))
    key = f"param_grid[{bisect.bisect_right(ends, index)}]" if len(ends) > 1 else "param_grid"
    return f"{key} {_show(combo)} (point {index})"


def spec_params(spec, fields: dict, combo: dict) -> dict:
    """The params a spec gives a point: its defaults, then the grid's values ``combo`` (a zip
    group's params under its label), then, for memo's files, memo's data (memo_params)."""
    params = dict(spec.defaults)
    for key, value in combo.items():
        if key not in fields and key not in UNIVERSAL:  # a zip group's label
            params.update(value)
        else:
            params[key] = value
    if spec.memo:
        from memo.datasets.memo_compat import memo_params  # only memo's files need datasets

        params = memo_params(params)
    return params


def _given_twice(ids: np.ndarray) -> tuple | None:
    """(first, index) of the earliest point whose id an earlier point has, or None.

    >>> _given_twice(np.array([5, 7, 9, 7, 5], dtype=np.uint64))
    (1, 3)
    """
    order = np.argsort(ids, kind="stable")  # equal ids: in grid order
    ordered = ids[order]
    repeats = np.flatnonzero(ordered[1:] == ordered[:-1])
    if not repeats.size:
        return None
    later = order[repeats + 1]
    k = int(np.argmin(later))
    first = order[np.searchsorted(ordered, ordered[repeats[k]])]
    return int(first), int(later[k])


def grid_product(grids: list):
    """Yield each combination of a list of {key: values} grids, as ParameterGrid does.

    The same order as ``sklearn.model_selection.ParameterGrid`` (keys sorted, the last
    key varying fastest; tests pin the equality) without importing scikit-learn, which
    would add a second to every ``run.py`` call, ``--status`` and array task included.

    >>> list(grid_product([{"b": [1, 2], "a": [0]}, {"c": [3]}]))
    [{'a': 0, 'b': 1}, {'a': 0, 'b': 2}, {'c': 3}]
    """
    for grid in grids:
        keys = sorted(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            yield dict(zip(keys, values))


CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))  # made once, not per point


def make_point(trial: str, fields: dict, params: dict, index: int) -> Point:
    """Build a point whose id hashes (trial, params), leaving out params equal to defaults.

    Leaving out defaults means a trial may gain a new param (off by default) without
    changing the id of any finished point. The seed is the ``seed`` param if given, else
    derived from the same hash (so it depends on ``restart`` and every other param).

    >>> fields = {"n": 10}
    >>> a = make_point("t", fields, {"n": 10, "restart": 0}, 0)
    >>> b = make_point("t", fields, {"restart": 0}, 5)
    >>> a.id == b.id and a.seed == b.seed
    True
    >>> make_point("t", fields, {"seed": 7}, 0).seed
    7
    """
    full = {**fields, **params}
    identity = {k: v for k, v in full.items() if k not in fields or fields[k] != v}
    canonical = CANONICAL.encode([trial, identity])
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    seed = full["seed"] if full.get("seed") is not None else int(digest[16:31], 16)
    return Point(id=digest[:16], index=index, params={**full, "seed": seed}, seed=seed)


def check_point(spec, params_cls: type, params: dict, index: int) -> None:
    """Let the trial's Params reject a combination (its __post_init__ raises ValueError)."""
    declared = {k: v for k, v in params.items() if k not in UNIVERSAL}
    try:
        params_cls(**declared)
    except (ValueError, TypeError) as e:
        shown = json.dumps(params, sort_keys=True)
        raise SpecError(f"{spec.path}: point {index} {shown}: {e}") from None
