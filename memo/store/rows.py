"""Every point's record as the table's rows: what --status, the table and load_results read."""

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from memo.store import columns as cols
from memo.store.view import view

HEX = re.compile("[0-9a-f]*")  # the digits of memo's ids


class Rows:
    """Every point's record as table columns: quick to count, look up and tabulate."""

    def __init__(self, columns: cols.Columns, corrupt=(), misnamed=(), notes=()):
        self.columns = columns
        self._ids = None
        self._values = {}  # table column -> its values, read once
        self.corrupt = list(corrupt)  # legacy files that are not valid records (pending)
        self.misnamed = list(misnamed)  # legacy files holding a record of another id
        self.notes = list(notes)

    def __len__(self) -> int:
        return len(self.columns)

    def ids(self) -> list:
        if self._ids is None:
            self._ids = self.columns.column("own:id").to_pylist()
        return self._ids

    def values(self, column: str) -> list:
        """The table column's value in each row, in the order of :meth:`ids`."""
        if column not in self._values:
            key = cols.flat_keys(self.columns.kinds).get(column)
            found = cols.flat_values(self.columns, key) if key else [None] * len(self)
            self._values[column] = found
        return self._values[column]

    def by_id(self, column: str) -> dict:
        """{point id: value of the table column}."""
        return dict(zip(self.ids(), self.values(column)))

    def status(self) -> dict:
        return self.by_id("status")

    def value(self, column: str, row: int):
        """The table column's value in one row (as :meth:`values` has it)."""
        if column in self._values:
            return self._values[column][row]
        key = cols.flat_keys(self.columns.kinds).get(column)
        if key is None or self.columns.kinds[key] not in cols.SCALARS:
            return self.values(column)[row]
        return self.columns.column(key)[row].as_py()

    def floats(self, column: str) -> tuple:
        """(a numeric table column as floats, NaN where a row has none; which rows have
        none), read at once, not row by row."""
        key = cols.flat_keys(self.columns.kinds).get(column)
        if key is None or self.columns.kinds[key] not in ("int", "float"):
            values = self.values(column)
            return np.array(values, dtype=float), np.array([v is None for v in values], bool)
        found = self.columns.column(key)
        missing = found.is_null().to_numpy(zero_copy_only=False)
        return found.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False), missing

    def id_numbers(self) -> tuple:
        """(each id of 16 hex digits, as memo's ids are, as a 64-bit number; which rows have
        such an id), read from the id column at once: what --status matches records by."""
        column = self.columns.column("own:id").combine_chunks()
        mine = pc.binary_length(column).to_numpy(zero_copy_only=False) == 16
        fixed = column.filter(pa.array(mine)).cast(pa.binary(16))
        data = fixed.buffers()[1] if len(fixed) else b""
        start = fixed.offset * 16
        numbers = hex_numbers(bytes(data[start : start + 16 * len(fixed)]))
        if numbers is None:  # some are not memo's: look at each
            return id_numbers(self.ids())
        return numbers, mine

    def states(self) -> tuple:
        """(each row's status as a number into the list of statuses found, that list): read
        from the column at once, not row by row."""
        column = self.columns.column("own:status").combine_chunks()
        found = column.dictionary_encode(null_encoding="encode")
        return found.indices.to_numpy(zero_copy_only=False), found.dictionary.to_pylist()

    def stamps(self) -> dict:
        """{point id: when its record was written}: a changed one is a new record."""
        return dict(zip(self.ids(), self.columns.column(cols.WRITTEN).to_pylist()))

    def frame(self, curves: bool = False):
        """A pandas DataFrame as the results table has it (curves only with ``curves``)."""
        return cols.frame(self.columns, curves)


def id_numbers(ids: list) -> tuple:
    """(each id of ``ids`` that is 16 hex digits, as memo's are, as a 64-bit number; which of
    ``ids`` are such)."""
    mine = np.array([len(i) == 16 and bool(HEX.fullmatch(i)) for i in ids], dtype=bool)
    numbers = hex_numbers("".join(i for i, m in zip(ids, mine) if m).encode())
    return numbers, mine


def hex_numbers(data: bytes) -> np.ndarray | None:
    """Ids of 16 hex digits one after another (``data``) as 64-bit numbers; None where some
    are not (bytes.fromhex would take capitals and blanks too).

    >>> hex_numbers(b"000000000000000aff00000000000000").tolist()
    [10, 18374686479671623680]
    >>> hex_numbers(b"000000000000000A") is None
    True
    """
    try:
        numbers = bytes.fromhex(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    if len(numbers) * 2 != len(data) or data.lower() != data:
        return None
    return np.frombuffer(numbers, dtype=">u8").astype(np.uint64)


def rows(folder: Path, fresh: bool = False, say: bool = True) -> Rows:
    """The Rows of a records folder; notes of damage printed once (``say``)."""
    seen = view(folder, fresh)
    with seen.lock:
        columns = seen.columns()
        legacy = list((seen.legacy or {}).items())
    bad = [n for n, (_, g) in legacy if g in ("corrupt", "odd")]
    recorded = set(columns.column("own:id").to_pylist()) if bad else set()
    corrupt = sorted(n for n in bad if n[: -len(".json")] not in recorded)
    misnamed = sorted(n for n, (_, g) in legacy if g == "misnamed")
    if say:
        seen.say()
    return Rows(columns, corrupt, misnamed, list(seen.notes))
