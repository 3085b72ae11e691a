"""One dict of a spec's param_grid, ready to expand in bulk (memo.run.grid): the params each
value of each axis sets, worked out once per value, and the fragments of canonical JSON it
adds to a point's identity (:func:`memo.run.point.make_point` hashes ``[trial, identity]``,
keys sorted, defaults left out), so that a point's canonical JSON is a join of its values'
fragments, hashed by hashlib, with no dict or Point made per point.
"""

import hashlib
import itertools
import math
import operator
from json.encoder import encode_basestring_ascii

import numpy as np

from memo.run.point import CANONICAL, UNIVERSAL

CHUNK = 8192  # points hashed at a time: their digests are a few hundred KB


class Axes:
    """One dict of param_grid, ready to expand: its keys sorted (ParameterGrid's order, the
    last varying fastest), the params each axis sets (``columns``: {param: its value at each
    of the axis's values}, ABSENT where a value leaves it unset), those the spec's defaults
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
            texts = [_fragment(k, self.values_of(k, ABSENT), fields) for k in keys]
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
        if ABSENT in column:
            return [fallback if v is ABSENT else v for v in column]
        return column


ABSENT = object()  # a param a value of an axis leaves unset


def _columns(name: str, values: list, fields: dict) -> dict:
    """{param: its value at each of ``values``} of axis ``name``: a zip group's values are
    dicts of params, any other axis sets the param it is named after."""
    if name in fields or name in UNIVERSAL:
        return {name: values}
    return _table(values)


def _table(sets: list) -> dict:
    """The dicts of params ``sets`` as {param: its value in each}, ABSENT where unset."""
    keys = dict.fromkeys(k for s in sets for k in s)
    return {k: [s.get(k, ABSENT) for s in sets] for k in keys}


def _rows(columns: dict) -> list:
    """The dicts of params of a table (:func:`_table`), one a value."""
    rows = zip(*columns.values())
    return [{k: v for k, v in zip(columns, row) if v is not ABSENT} for row in rows]


class ValueParams:
    """The params of each value of an axis, from its table (:func:`_table`), made as they are
    asked for: an axis of a million values makes no million dicts at once."""

    def __init__(self, column: dict):
        self.column = column

    def __len__(self) -> int:
        return len(next(iter(self.column.values()), [{}]))

    def __getitem__(self, j: int) -> dict:
        return {k: values[j] for k, values in self.column.items() if values[j] is not ABSENT}

    def __iter__(self):
        if len(self.column) != 1:
            return map(self.__getitem__, range(len(self)))
        ((key, values),) = self.column.items()  # quicker, for the usual axis of one param
        return ({key: v} if v is not ABSENT else {} for v in values)


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
        texts = ("" if v is ABSENT else name + CANONICAL.encode(v) for v in values)
    texts = list(map(str.encode, texts))
    if key in fields:  # at the default: left out (as make_point compares, with !=)
        differs = map(operator.ne, itertools.repeat(fields[key]), values)
        for j in np.flatnonzero(~np.fromiter(differs, dtype=bool, count=len(values))):
            texts[j] = b""
    return texts


_JSON = {float: float.__repr__, int: int.__repr__, str: encode_basestring_ascii}  # as json does
