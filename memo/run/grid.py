"""A spec's points in bulk: the ids and seeds of a whole grid at once, a Point when asked.

``run.py --status`` needs the id of every point but the params of a handful, and which params
vary and how many points are of each kind follow from the grid's axes (memo.run.axes: a
point's id from its values' JSON fragments, with no dict or Point made per point). A Point
is built when asked for, by the code that always built it (tests/test_grid.py compares the
two on many grids).
"""

import bisect
import collections.abc
import dataclasses
import itertools
import math

import numpy as np

from memo.run.axes import Axes, ValueParams
from memo.run.point import CANONICAL, UNIVERSAL, Point, check_point, given_twice, grid_product
from memo.run.point import spec_params
from memo.run.progress import COST_PARAMS, kind_levels
from memo.run.trial_lookup import trial_fields, trial_params_class
from memo.run.values import SpecError
from memo.store.rows import id_numbers


def _reading(params_cls: type) -> tuple:
    """(a subclass of the trial's Params that notes which fields its checks read, the set
    of their names it adds them to); reading all of ``__dict__`` reads every field."""
    fields = {f.name for f in dataclasses.fields(params_cls)}
    read = set()

    class Reading(params_cls):
        def __getattribute__(self, name):
            if name in fields:
                read.add(name)
            elif name == "__dict__":
                read.update(fields)
            return super().__getattribute__(name)

    return Reading, read


class Grid(collections.abc.Sequence):
    """The points of a spec in grid order, as ``spec.points()`` lists them: ``ids`` (hex, as
    Point.id) of all, each Point built when asked for. Every combination is checked by the
    trial's Params and a point given twice is an error, as when the points are listed."""

    def __init__(self, spec):
        self.spec = spec
        self.fields = trial_fields(spec.trial)
        self.axes = [Axes(g, spec.defaults, self.fields, spec.memo) for g in spec.grid]
        self.starts = [0, *itertools.accumulate(axes.size for axes in self.axes)]
        self._check()
        self.numbers, self.derived = self._hash()  # the id as a number; the seed from the hash
        self.order = np.argsort(self.numbers)  # to look ids up: in self.ranked
        self.ranked = self.numbers[self.order]
        if np.any(self.ranked[1:] == self.ranked[:-1]):
            raise SpecError(given_twice(spec, self.numbers))
        self._ids = None

    def __len__(self) -> int:
        return self.starts[-1]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self))[index]  # IndexError as a list's
        return self._point(index, self._combo(index))

    def __iter__(self):
        for index, combo in enumerate(grid_product(self.spec.grid)):
            yield self._point(index, combo)

    def _combo(self, index: int) -> dict:
        """The grid's values of point ``index`` (as grid_product gives them)."""
        k = bisect.bisect_right(self.starts, index) - 1
        axes, grid = self.axes[k], self.spec.grid[k]
        at = np.unravel_index(index - self.starts[k], axes.shape)
        return {name: grid[name][j] for name, j in zip(axes.names, at)}

    def _point(self, index: int, combo: dict) -> Point:
        full = {**self.fields, **spec_params(self.spec, self.fields, combo)}
        seed = full["seed"] if full.get("seed") is not None else int(self.derived[index])
        point_id = f"{int(self.numbers[index]):016x}"
        return Point(id=point_id, index=index, params={**full, "seed": seed}, seed=seed)

    @property
    def ids(self) -> list:
        """Every point's id, in grid order."""
        if self._ids is None:
            text = self.numbers.astype(">u8").tobytes().hex()
            self._ids = [text[i : i + 16] for i in range(0, len(text), 16)]
        return self._ids

    def _check(self) -> None:
        """Every combination of the params the trial declares passes its Params' checks, as
        listing the points checks them. A check is a function of the params it reads, so
        only the axes that set those (read as it runs) need their combinations checked, the
        first value of each other axis standing for all of its values; where some are
        refused, the points are checked in turn, to name the first refused as ever."""
        params_cls = trial_params_class(self.spec.trial)
        reading, read = _reading(params_cls)
        for k, axes in enumerate(self.axes):
            declared = {}  # axis -> the params of each of its values the trial declares
            for a, column in enumerate(axes.columns):
                mine = {key: v for key, v in column.items() if key not in UNIVERSAL}
                if mine:
                    declared[a] = ValueParams(mine)
            chosen = set()  # the axes whose values the checks read
            while True:
                read.clear()
                if not self._passes(reading, axes, declared, sorted(chosen)):
                    self._check_each(k, params_cls)
                    break
                reads = {axes.owner[key] for key in read if axes.owner.get(key) in declared}
                if reads <= chosen:
                    break
                chosen |= reads

    def _passes(self, reading: type, axes: Axes, declared: dict, chosen: list) -> bool:
        """Whether the checks pass for each combination of the ``chosen`` axes' values."""
        base = {key: v for key, v in axes.given.items() if key not in UNIVERSAL}
        for a, params in declared.items():
            if a not in chosen:
                base.update(params[0])
        *outer, inner = [declared[a] for a in chosen] or [ValueParams({})]
        for at in itertools.product(*(range(len(params)) for params in outer)):
            kwargs = base.copy()
            for params, j in zip(outer, at):
                kwargs.update(params[j])
            for params in inner:
                try:
                    reading(**kwargs, **params)
                except (ValueError, TypeError):
                    return False
        return True

    def _check_each(self, k: int, params_cls: type) -> None:
        """Check each point of ``self.axes[k]`` in turn: a SpecError for the first refused."""
        for index, combo in enumerate(grid_product([self.spec.grid[k]]), self.starts[k]):
            check_point(self.spec, params_cls, spec_params(self.spec, self.fields, combo), index)

    def _hash(self) -> tuple:
        """(id as a number, seed derived from the hash) of every point, from the fragments."""
        head = ("[" + CANONICAL.encode(self.spec.trial) + ",{").encode()
        words = np.concatenate([axes.digests(head) for axes in self.axes])
        return words[:, 0].astype(np.uint64), words[:, 1].astype(np.uint64) >> np.uint64(4)

    def positions(self, ids: list) -> np.ndarray:
        """The index of the point with each id of ``ids``; -1 for an id of no point."""
        return self.locate(*id_numbers(ids))

    def positions_of(self, rows) -> np.ndarray:
        """The index of the point of each record of ``rows`` (Store.rows); -1: of none."""
        return self.locate(*rows.id_numbers())

    def locate(self, numbers: np.ndarray, mine: np.ndarray) -> np.ndarray:
        """The index of the point with each id (a number where ``mine``); -1 for none."""
        asked = np.argsort(numbers)  # looked up in order: quicker
        ranked = self.ranked
        found = np.searchsorted(ranked, numbers[asked]).clip(max=len(ranked) - 1)
        hit = np.where(ranked[found] == numbers[asked], self.order[found], -1)
        at = np.full(len(mine), -1, dtype=np.int64)
        at[np.flatnonzero(mine)[asked]] = hit
        return at

    def varying(self) -> list:
        """As Listed.varying (report's params that vary), from the axes' values."""
        if not len(self):
            return []
        first = self[0].params
        keys = set().union(*(axes.keys for axes in self.axes)) | {"seed"}
        names = set()
        for k, axes in enumerate(self.axes):
            for key in keys - names:
                if key == "seed" and axes.values_of("seed") == [None]:  # derived from the hash
                    seeds = self.derived[self.starts[k] : self.starts[k + 1]]
                    differs = bool(np.any(seeds != np.uint64(first["seed"])))
                else:
                    differs = any(v != first.get(key) for v in axes.values_of(key))
                if differs:
                    names.add(key)
        names = sorted(names)
        return [k for k in names if k != "seed"] or names

    def kind_codes(self, indices: np.ndarray) -> tuple:
        """(a number for the kind of each point at ``indices``, {number: its kind levels}):
        a point's kind (memo.run.progress.kind_levels) follows from its values of the axes
        that set a param of COST_PARAMS, so points are numbered by those."""
        indices = np.asarray(indices, dtype=np.int64)
        codes = np.zeros(len(indices), dtype=np.int64)
        offset = 0
        for k, axes in enumerate(self.axes):
            costly = sorted({a for key, a in axes.owner.items() if key in COST_PARAMS})
            inside = (indices >= self.starts[k]) & (indices < self.starts[k + 1])
            at = np.unravel_index(indices[inside] - self.starts[k], axes.shape)
            shape = [axes.shape[a] for a in costly]
            local = np.ravel_multi_index([at[a] for a in costly], shape) if costly else 0
            codes[inside] = offset + local
            offset += math.prod(shape)
        found, where = np.unique(codes, return_index=True)
        levels = {int(c): kind_levels(self[int(indices[w])].params) for c, w in zip(found, where)}
        return codes, levels


class Listed(list):
    """Points in a list, with a Grid's answers, worked out point by point."""

    @property
    def ids(self) -> list:
        return [p.id for p in self]

    def positions(self, ids: list) -> np.ndarray:
        """The index of the point with each id of ``ids``; -1 for an id of no point."""
        index = dict(zip(self.ids, range(len(self))))
        return np.array([index.get(i, -1) for i in ids], dtype=np.int64)

    def positions_of(self, rows) -> np.ndarray:
        """The index of the point of each record of ``rows`` (Store.rows); -1: of none."""
        return self.positions(rows.ids())

    def varying(self) -> list:
        """Param names whose value is not the same for every point; ``seed`` (derived from
        the rest unless given) only for a grid of seeds alone.

        >>> a, b = Point("a", 0, {"x": 1, "seed": 5}, 5), Point("b", 1, {"x": 2, "seed": 6}, 6)
        >>> Listed([a, b]).varying()
        ['x']
        >>> Listed([Point("a", 0, {"seed": 1}, 1), Point("b", 1, {"seed": 2}, 2)]).varying()
        ['seed']
        """
        first = self[0].params if self else {}
        keys = {k for p in self for k in p.params}
        names = sorted(k for k in keys if any(p.params.get(k) != first.get(k) for p in self))
        return [k for k in names if k != "seed"] or names

    def kind_codes(self, indices) -> tuple:
        """(a number for the kind of each point at ``indices``, {number: its kind levels})."""
        number = {}
        codes = [number.setdefault(kind_levels(self[i].params), len(number)) for i in indices]
        return np.array(codes, dtype=np.int64), {code: levels for levels, code in number.items()}


def bulk(points):
    """``points`` as a Grid or a Listed: a sequence of Points with the same answers."""
    return points if isinstance(points, (Grid, Listed)) else Listed(points)
