"""Records as typed columns (the Arrow table behind records.parquet) and back.

Every key of a record is a column: the record's own keys (``id``, ``status``, ``seed``,
``wall_time``, ``host``, ...) under their names, each param and metric under its own name
unless that is taken (then ``param.NAME`` or ``metric.NAME``), and ``_written``, when the
record was written (what orders two records of one point, see :func:`dedup`). Inside,
columns are keyed ``own:KEY``, ``param:KEY``, ``metric:KEY``.

A column's kind is bool, int, float, str, a list of one of them (a curve), or json: JSON
text, for values of mixed types, dicts, and params that are lists or dicts (as the CSV
shows them). Integers mixed with floats are floats; null means the record lacks the key
or holds null (a param or metric that is null reads back as missing).
"""

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from memo.store.checks import META_COLUMNS, RESERVED, error_line

WRITTEN = "_written"
SCALARS = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "str": pa.string()}
TYPES = {
    **SCALARS,
    **{f"list<{k}>": pa.list_(t) for k, t in SCALARS.items()},
    "json": pa.string(),
    "null": pa.null(),  # no record has a value there yet: takes the kind of the first that has
}
KIND_OF = {str(t): k for k, t in TYPES.items() if k != "json"}
EXACT = 2**53  # an int up to this size is exact as a float


@dataclass
class Columns:
    """Records column by column: ``table`` (columns keyed as above) and each one's kind.
    With a ``loader`` (records.parquet read lazily), a column not in ``table`` yet is
    decoded when first asked for: --status then decodes 5 columns, not every one."""

    table: pa.Table
    kinds: dict
    loader: object = None  # [keys] -> {key: column}, for the columns not decoded yet

    def __len__(self) -> int:
        return self.table.num_rows

    def column(self, key: str):
        if key not in self.table.column_names:
            self.load([key])
        return self.table[key]

    def load(self, keys) -> "Columns":
        """Decode the columns ``keys`` (those not decoded yet); returns self."""
        keys = [k for k in keys if k in self.kinds and k not in self.table.column_names]
        if keys and self.loader is not None:
            for key, column in self.loader(keys).items():
                self.table = self.table.append_column(key, column)
        return self

    def complete(self) -> "Columns":
        """Every column decoded, in the order of ``kinds``; returns self."""
        self.load(list(self.kinds))
        self.table = self.table.select(list(self.kinds))
        return self


def empty() -> Columns:
    """No records: the columns every table has."""
    kinds = {"own:id": "str", "own:status": "str", WRITTEN: "float"}
    return Columns(pa.table({k: pa.array([], TYPES[v]) for k, v in kinds.items()}), kinds)


def encode(records: list, written: list) -> Columns:
    """Columns of valid ``records``, written at times ``written``."""
    arrays, kinds = {WRITTEN: pa.array(written, pa.float64())}, {WRITTEN: "float"}
    own = dict.fromkeys(k for r in records for k in r if k not in ("params", "metrics"))
    values = {f"own:{k}": [r.get(k) for r in records] for k in own}
    for part in ("params", "metrics"):
        parts = [r[part] for r in records]
        for name in dict.fromkeys(k for p in parts for k in p):
            values[f"{part[:-1]}:{name}"] = [p.get(name) for p in parts]
    for key, items in values.items():
        kinds[key], arrays[key] = typed(key, items)
    return Columns(pa.table(arrays), kinds)


def typed(key: str, items: list) -> tuple:
    """(kind, Arrow array) of one column's values, as Arrow infers them where it can."""
    if not key.startswith("param:") or not any(isinstance(v, (list, dict)) for v in items):
        try:
            array = pa.array(items)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            array = None
        if array is not None and array.type == pa.list_(pa.null()):
            return "list<float>", array.cast(pa.list_(pa.float64()))
        kind = KIND_OF.get(str(array.type)) if array is not None else None
        if kind in ("float", "list<float>") and not exact(items):
            kind = None
        if kind is not None:
            return kind, array
    return "json", pa.array([None if v is None else json.dumps(v) for v in items], pa.string())


def exact(items: list) -> bool:
    """Whether the ints among (lists of) numbers turn into floats without loss."""
    for value in items:
        for v in value if isinstance(value, list) else (value,):
            if type(v) is int and abs(v) > EXACT:
                return False
    return True


def unify(parts: list) -> Columns:
    """One Columns of all ``parts`` (a column missing in a part is null there); a column
    whose kinds differ becomes float (ints and floats, if exact) or json."""
    parts = [p.complete() for p in parts if len(p)] or [empty()]
    kinds = {}
    for part in parts:
        for key, kind in part.kinds.items():
            kinds[key] = merged(kinds.get(key, kind), kind)
    for key, kind in kinds.items():  # ints turned floats must stay exact
        if kind in ("float", "list<float>") and not all(
            exact_ints(p.table[key], p.kinds[key]) for p in parts if key in p.kinds
        ):
            kinds[key] = "json"
    tables = []
    for part in parts:
        arrays = {}
        for key, kind in kinds.items():
            if key not in part.kinds:
                arrays[key] = pa.nulls(len(part), TYPES[kind])
            else:
                arrays[key] = convert(part.table[key].combine_chunks(), part.kinds[key], kind)
        tables.append(pa.table(arrays))
    return Columns(pa.concat_tables(tables), kinds)


def merged(a: str, b: str) -> str:
    if a == b or b == "null":
        return a
    if a == "null":
        return b
    if {a, b} == {"int", "float"}:
        return "float"
    if {a, b} == {"list<int>", "list<float>"}:
        return "list<float>"
    return "json"


def exact_ints(array, kind: str) -> bool:
    """Whether a column of ints (or lists of ints) turns into floats without loss."""
    if kind not in ("int", "list<int>"):
        return True
    values = pc.list_flatten(array) if kind == "list<int>" else array
    big = pc.max(pc.abs(values)).as_py() if len(values) else None
    return big is None or big <= EXACT


def convert(array: pa.Array, kind: str, to: str) -> pa.Array:
    """A column of kind ``kind`` as kind ``to`` (the same, float or json)."""
    if kind == to:
        return array
    if kind == "null":
        return pa.nulls(len(array), TYPES[to])
    if to != "json":
        return array.cast(TYPES[to])
    return pa.array([None if v is None else json.dumps(v) for v in array.to_pylist()], pa.string())


def dedup(columns: Columns) -> Columns:
    """One row per point id: an ok record wins over failed ones (error, timeout); among ok
    records the first written, among failed ones the last written (a rerun's error
    replaces the one before). Rows come out in grid order (``_index``, then id)."""
    table = columns.table
    if not len(table):
        return columns
    codes, _ = pd.factorize(np.asarray(table["own:id"].to_numpy(zero_copy_only=False)))
    ok = np.asarray(pc.fill_null(pc.equal(table["own:status"], "ok"), False))
    written = table[WRITTEN].to_numpy()
    order = np.lexsort((np.where(ok, written, -written), ~ok, codes))
    first = order[np.r_[True, codes[order][1:] != codes[order][:-1]]]
    kept = table.take(first)
    keys = [("own:id", "ascending")]
    if "own:_index" in columns.kinds:
        keys.insert(0, ("own:_index", "ascending"))
    return Columns(kept.take(pc.sort_indices(kept, sort_keys=keys)), columns.kinds)


def file_order(kinds: dict) -> list:
    """The keys in the order records.parquet holds them: as the results table, then the
    rest of the record's own keys (provenance), then _written."""
    first = list(flat_keys(kinds).values())
    rest = [k for k in kinds if k not in first and k != WRITTEN]
    return (
        first
        + sorted(rest, key=lambda k: ("own", "param", "metric").index(role(k)))
        + [k for k in (WRITTEN,) if k in kinds]
    )


def to_records(columns: Columns) -> list:
    """The records of the rows (own keys null there read back as None)."""
    records = []
    for row in columns.complete().table.to_pylist():
        record, params, metrics = {}, {}, {}
        for key, value in row.items():
            if key == WRITTEN:
                continue
            if value is not None and columns.kinds[key] == "json":
                value = json.loads(value)
            role, _, name = key.partition(":")
            if role == "own":
                record[name] = value
            elif value is not None:
                (params if role == "param" else metrics)[name] = value
        record["params"], record["metrics"] = params, metrics
        records.append(record)
    return records


def names(kinds: dict) -> dict:
    """{column key: its name in records.parquet}: own keys and _written first, then params,
    then metrics, each under its own name unless taken."""
    order = sorted(kinds, key=lambda k: (k != WRITTEN, ("own", "param", "metric").index(role(k))))
    found, taken = {}, set()
    for key in order:
        name = key.partition(":")[2] or key
        if name in taken:
            name = f"{role(key)}.{name}"
        while name in taken:
            name += "_"
        found[key] = name
        taken.add(name)
    return found


def role(key: str) -> str:
    return key.partition(":")[0] if ":" in key else "own"


def flat_keys(kinds: dict) -> dict:
    """{table column: key} as the results table has them: _index, id, the params, seed,
    status, the metrics, then wall_time, cpu_time, finished, error; a param or metric named
    like one of these (RESERVED) is left out, so it cannot overwrite them."""
    own = [k for k in ("_index", "id") if f"own:{k}" in kinds]
    flat = {k: f"own:{k}" for k in own}
    for key in kinds:
        name = key.partition(":")[2]
        if role(key) == "param" and name not in RESERVED:
            flat.setdefault(name, key)
    flat |= {k: f"own:{k}" for k in ("seed", "status") if f"own:{k}" in kinds}
    for key in kinds:
        name = key.partition(":")[2]
        if role(key) == "metric" and name not in RESERVED:
            flat.setdefault(name, key)
    flat |= {k: f"own:{k}" for k in META_COLUMNS if f"own:{k}" in kinds}
    return flat


def flat_values(columns: Columns, key: str, curves: bool = False) -> list:
    """One column's values as the results table has them: JSON decoded (list and dict
    params as JSON text), the error's last line, lists and dicts of metrics only with
    ``curves``."""
    kind, values = columns.kinds[key], columns.column(key).to_pylist()
    if key == "own:error":
        return [error_line(v) if v is not None else None for v in values]
    if kind == "json":
        values = [json.loads(v) if v is not None else None for v in values]
        if role(key) == "param":
            return [json.dumps(v) if isinstance(v, (list, dict)) else v for v in values]
    if role(key) == "metric" and not curves:
        return [None if isinstance(v, (list, dict)) else v for v in values]
    return values


def frame(columns: Columns, curves: bool = False) -> pd.DataFrame:
    """The rows as the results table shows them (see :func:`flat_keys`); an integer column
    stays integer where some rows lack it, a list column holds lists."""
    data, flat = {}, flat_keys(columns.kinds)
    wanted = {
        name: key
        for name, key in flat.items()
        if curves or not (columns.kinds[key].startswith("list<") and role(key) == "metric")
    }
    columns.load(wanted.values())  # decoded together: one pass over the file
    for name, key in wanted.items():
        kind = columns.kinds[key]
        if kind in SCALARS and key != "own:error":
            array = columns.column(key)
            if kind == "int" and array.null_count:
                data[name] = array.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
            else:
                data[name] = array.to_pandas()
            continue
        values = flat_values(columns, key, curves)
        if any(v is not None for v in values):
            data[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(data)
