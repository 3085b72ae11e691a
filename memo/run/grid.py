"""A spec's points in bulk: the ids and seeds of a whole grid at once, a Point when asked.

``run.py --status`` needs the id of every point but the params of a handful, and which params
vary and how many points are of each kind follow from the grid's axes. So the params each
value of an axis sets are worked out once per value, with the fragments of canonical JSON it
adds to a point's identity (:func:`memo.run.point.make_point` hashes ``[trial, identity]``,
keys sorted, defaults left out): a point's canonical JSON is a join of its values' fragments,
hashed by hashlib, with no dict or Point made per point. A Point is built when asked for, by
the code that always built it (tests/test_grid.py compares the two on many grids).
"""

import bisect
import dataclasses
import collections.abc
import hashlib
import itertools
import math
import operator
from json.encoder import encode_basestring_ascii

import numpy as np

from memo.run.progress import COST_PARAMS, kind_levels
from memo.run.point import CANONICAL, UNIVERSAL, Point, check_point, given_twice, grid_product
from memo.run.point import spec_params
from memo.run.values import SpecError
from memo.store.rows import id_numbers
from memo.run.trial_lookup import trial_fields, trial_params_class

CHUNK = 8192  # points hashed at a time: their digests are a few hundred KB


class Axes:
    """One dict of param_grid, ready to expand: its keys sorted (ParameterGrid's order, the
    last varying fastest), the params each axis sets (``columns``: {param: its value at each
    of the axis's values}, _ABSENT where a value leaves it unset), those the spec's defaults
    set (``given``), those no axis sets (``fixed``: ``given`` over the trial's defaults) and
    the identity's JSON fragments of each value."""

    def __init__(self, grid: dict, defaults: dict, fields: dict, memo: bool):
        self.names = sorted(grid)
        self.shape = tuple(len(grid[name]) for name in self.names)
        self.size = math.prod(self.shape)
        self.columns = [_columns(name, grid[name], fields) for name in self.names]
        owner = {key: a for a, column in enumerate(self.columns) for key in column}
        given = {k: v for k, v in defaults.items() if k not in owner}
        spec_keys = set(given) | set(owner)
        if memo and "dataset" in owner:
            a = owner["dataset"]
            self.columns[a] = _table([_memo(s, spec_keys) for s in _rows(self.columns[a])])
        elif memo and "dataset" in given:
            given = _memo(given, spec_keys)
        self.given, self.fixed = given, {**fields, **given}
        self.owner = {key: a for a, column in enumerate(self.columns) for key in column}
        self.keys = set(self.fixed) | set(self.owner)
        self._fragments(fields)

    def _fragments(self, fields: dict) -> None:
        """The identity's fragments: ``slots``, in key order, a run of sorted keys that one
        axis sets (its number) or none does (None), with each of its values' text (bytes;
        one text where no axis sets them), and ``runs``: the slots of each axis."""
        self.slots = []
        for a, keys in itertools.groupby(sorted(self.keys), self.owner.get):
            keys = list(keys)
            if a is None:
                text = b"".join(_fragment(k, [self.fixed[k]], fields)[0] for k in keys)
                if text:
                    self.slots.append((None, [text]))
                continue
            texts = [_fragment(k, self.values_of(k, _ABSENT), fields) for k in keys]
            self.slots.append(
                (a, texts[0] if len(texts) == 1 else list(map(b"".join, zip(*texts))))
            )
        self.runs = [
            [s for s, (b, _) in enumerate(self.slots) if b == a] for a in range(len(self.shape))
        ]

    def digests(self, head: bytes) -> np.ndarray:
        """SHA-256 of each point's canonical JSON of ``[trial, identity]`` (``head``:
        ``["trial",{``), as 4 64-bit words a point, in grid order."""
        if any(len(run) > 1 for run in self.runs):  # an axis's keys with others' between
            return _hashed(self._each(head))
        pieces = [texts for _, texts in self.slots]
        words = _hashed(_joined(head, pieces)).reshape(*map(len, pieces), 4)
        axes = [run[0] for run in self.runs]  # the grid's axes, as the slots have them
        rest = [s for s in range(len(pieces)) if s not in axes]  # the spec's defaults: 1 each
        return words.transpose(*axes, *rest, len(pieces)).reshape(-1, 4)

    def _each(self, head: bytes):
        """Each point's canonical JSON in grid order, its fragments put in key order point by
        point: where an axis's keys are not together (a zip group's, memo's preprocess)."""
        columns = [list(zip(*(self.slots[s][1] for s in run))) for run in self.runs]
        constant = tuple(texts[0] for a, texts in self.slots if a is None)
        start = list(itertools.accumulate(map(len, self.runs), initial=len(constant)))
        place, taken = [], [0] * (len(self.runs) + 1)
        for a, _ in self.slots:  # where each slot's text is in constant + the axes' texts
            place.append(taken[-1] if a is None else start[a] + taken[a])
            taken[-1 if a is None else a] += 1
        order, chain = operator.itemgetter(*place), itertools.chain  # 2 slots or more here
        for combo in itertools.product(*columns):
            yield head + b"".join(order(tuple(chain(constant, *combo))))[1:] + b"}]"

    def values_of(self, key: str, lacking=None) -> list:
        """The values ``key`` takes in this grid's points, each value of its axis in turn
        (``lacking`` where a point has no such param)."""
        fallback = self.fixed.get(key, lacking)
        if key not in self.owner:
            return [fallback]
        column = self.columns[self.owner[key]][key]
        if _ABSENT in column:
            return [fallback if v is _ABSENT else v for v in column]
        return column


_ABSENT = object()  # a param a value of an axis leaves unset


def _columns(name: str, values: list, fields: dict) -> dict:
    """{param: its value at each of ``values``} of axis ``name``: a zip group's values are
    dicts of params, any other axis sets the param it is named after."""
    if name in fields or name in UNIVERSAL:
        return {name: values}
    return _table(values)


def _table(sets: list) -> dict:
    """The dicts of params ``sets`` as {param: its value in each}, _ABSENT where unset."""
    keys = dict.fromkeys(k for s in sets for k in s)
    return {k: [s.get(k, _ABSENT) for s in sets] for k in keys}


def _rows(columns: dict) -> list:
    """The dicts of params of a table (:func:`_table`), one a value."""
    rows = zip(*columns.values())
    return [{k: v for k, v in zip(columns, row) if v is not _ABSENT} for row in rows]


class _Params:
    """The params of each value of an axis, from its table (:func:`_table`), made as they are
    asked for: an axis of a million values makes no million dicts at once."""

    def __init__(self, column: dict):
        self.column = column

    def __len__(self) -> int:
        return len(next(iter(self.column.values()), [{}]))

    def __getitem__(self, j: int) -> dict:
        return {k: values[j] for k, values in self.column.items() if values[j] is not _ABSENT}

    def __iter__(self):
        if len(self.column) != 1:
            return map(self.__getitem__, range(len(self)))
        ((key, values),) = self.column.items()  # quicker, for the usual axis of one param
        return ({key: v} if v is not _ABSENT else {} for v in values)


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


def _memo(sets: dict, spec_keys: set) -> dict:
    """What memo_params makes of the params ``sets`` in a grid where the spec gives the params
    ``spec_keys``: memo_params reads the dataset and whether preprocess is given, no more."""
    from memo.datasets.memo_compat import memo_params  # only memo's files need datasets

    made = memo_params({**dict.fromkeys(spec_keys), **sets})
    return {k: v for k, v in made.items() if k in sets or k not in spec_keys}


def _joined(head: bytes, slots: list):
    """Canonical JSON of each combination of the texts of ``slots`` (the last varying
    fastest): ``head``, the texts without the first one's comma, ``}]``. Made by iterators
    in C, not a Python step a point."""
    if len(slots) == 1:
        bare = map(_AFTER_COMMA, slots[0])
        return map(b"".join, zip(itertools.repeat(head), bare, itertools.repeat(b"}]")))
    tails = [b"".join(texts) + b"}]" for texts in itertools.product(*slots[1:])]
    return itertools.chain.from_iterable(
        map((head + text[1:]).__add__, tails) if text else _joined(head, slots[1:])
        for text in slots[0]  # a text of b"": a value at its default, the next slot leads
    )


_AFTER_COMMA = operator.itemgetter(slice(1, None))


def _hashed(canonicals) -> np.ndarray:
    """SHA-256 of each of ``canonicals``, as 4 big-endian 64-bit words each."""
    sha, words = hashlib.sha256, [np.empty((0, 4), ">u8")]
    while chunk := list(itertools.islice(canonicals, CHUNK)):
        digests = b"".join([sha(canonical).digest() for canonical in chunk])
        words.append(np.frombuffer(digests, ">u8").reshape(-1, 4))
    return np.concatenate(words)


def _fragment(key: str, values: list, fields: dict) -> list:
    """``,"key":value`` for each of ``values`` as canonical JSON writes it in an identity
    (bytes: it is ASCII); b"" for a value at the trial's default or one a point lacks
    (make_point leaves both out)."""
    name, kinds = "," + encode_basestring_ascii(key) + ":", set(map(type, values))
    if len(kinds) == 1 and next(iter(kinds)) in _JSON:  # quick: the usual axis
        texts = map(name.__add__, map(_JSON[next(iter(kinds))], values))
    else:
        texts = ("" if v is _ABSENT else name + CANONICAL.encode(v) for v in values)
    texts = list(map(str.encode, texts))
    if key in fields:  # at the default: left out (as make_point compares, with !=)
        differs = map(operator.ne, itertools.repeat(fields[key]), values)
        for j in np.flatnonzero(~np.fromiter(differs, dtype=bool, count=len(values))):
            texts[j] = b""
    return texts


_JSON = {float: float.__repr__, int: int.__repr__, str: encode_basestring_ascii}  # as json does


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
        self.order = np.argsort(self.numbers)  # to look ids up
        ranked = self.numbers[self.order]
        if np.any(ranked[1:] == ranked[:-1]):
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
                    declared[a] = _Params(mine)
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
        *outer, inner = [declared[a] for a in chosen] or [_Params({})]
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
        ranked = self.numbers[self.order]
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
