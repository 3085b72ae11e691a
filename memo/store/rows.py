"""Every point's record as the table's rows: what --status, the table and load_results read."""

from pathlib import Path

from memo.store import columns as cols
from memo.store.view import view


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
