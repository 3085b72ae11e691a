"""The results store: one record per point, in the journal and in ``records.parquet``.

``results/NAME/`` holds ``records.parquet`` (the records merged so far: typed columns,
checksummed, memo/store/parquet.py) and ``_journal/`` (one segment per writing process,
a JSON line per record, memo/store/journal.py); compaction (memo/store/compact.py) folds
the journal into the Parquet file at the start and end of every run and on
``run.py --compact``. Readers see both (memo/store/view.py). A point with several records
(two hosts ran it, a requeued task, --retry-failed) keeps one: an ok record wins over a
failed one, the first ok record over later ones, the last failed record over earlier ones.

``results/NAME/<id>.json`` files, one per point, are memo's store before the journal: they
are read as records too, and folded in by the next compaction. The collected table
``results/NAME.csv`` is derived from the records and rewritten at will.
"""

import errno
import os
from pathlib import Path

from memo.store import compact as compaction
from memo.store import journal, paths
from memo.store import view as views
from memo.store import columns as cols
from memo.store.checks import (
    META_COLUMNS,
    RESERVED,
    STATUSES,
    BadRecord,
    LEAD_COLUMNS,
    TAIL_COLUMNS,
    error_line,
    is_record,
    read_record,
)
from memo.store.files import atomic_file, write_atomic
from memo.store import rows as rowset
from memo.store.rows import Rows

__all__ = [
    "Store",
    "Rows",
    "load_results",
    "read_record",
    "atomic_file",
    "write_atomic",
    "RESERVED",
    "STATUSES",
    "BadRecord",
    "RecordWriteError",
    "error_line",
    "is_record",
]


class RecordWriteError(Exception):
    """A record could not be written (disk full, a folder in its place): one line, and
    whether the disk is full (or the file size limit reached)."""

    def __init__(self, message: str, full: bool = False):
        super().__init__(message, full)  # both in args: it crosses from worker processes

    def __str__(self) -> str:
        return self.args[0]

    @property
    def full(self) -> bool:
        return self.args[1]

    @classmethod
    def of(cls, what: str, error: OSError) -> "RecordWriteError":
        full = error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        return cls(f"cannot write {what}: {error.strerror or error}", full)


class Store:
    """The records of one experiment."""

    def __init__(self, experiment: str, results_dir: Path | None = None):
        base = Path(results_dir) if results_dir else paths.results_dir()
        self.experiment = experiment
        self.dir = base / experiment
        self.parquet_path = self.dir / "records.parquet"
        self.table_path = base / f"{experiment}.csv"
        self.lock_path = base / ".cache" / f"{experiment}.lock"  # held by a running run.py

    def write(self, record: dict) -> None:
        """Append one record to this process's journal segment. TypeError/ValueError if it
        is not JSON-ready or not a valid record; RecordWriteError if the disk refuses."""
        text = journal.encode_record(record)
        try:
            journal.append(self.dir, text)
        except OSError as e:
            where = e.filename or self.dir / journal.JOURNAL
            raise RecordWriteError.of(f"record {record['id']} into {where}", e) from None

    def read(self, point_id: str) -> dict:
        """The point's record; FileNotFoundError if it has none, BadRecord if all it has
        is a legacy file that is not a valid record."""
        seen = views.view(self.dir)
        seen.refresh(legacy=False)
        record = seen.record(point_id)
        if record is not None:
            return record
        if os.path.lexists(self.dir / f"{point_id}.json"):
            read_record(self.dir / f"{point_id}.json")  # raises what is wrong with it
        raise FileNotFoundError(f"no record of point {point_id} in {self.dir}")

    def recorded(self, point_id: str) -> tuple | None:
        """(whether ok, time written) of the point's record, or None. A worker calls it
        before each point: other processes' new records are looked for at most
        view.LOOK_SHARE of the time."""
        seen = views.view(self.dir)
        seen.look()
        found = seen.best(point_id)
        return None if found is None else found[:2]

    def index(self) -> dict:
        """{point id: whether its record is ok} of every point with a record."""
        seen = views.view(self.dir)
        with seen.lock:
            seen.refresh()
            found = {}
            if seen.table is not None:
                ids, status = (seen.table.column(k).to_pylist() for k in ("own:id", "own:status"))
                found = {i: s == "ok" for i, s in zip(ids, status)}
            for point_id in seen.extra():
                found[point_id] = seen.best(point_id)[0]
        return found

    def rows(self, fresh: bool = False) -> Rows:
        """Every point's record as flat rows (the best record of each point). ``fresh``
        reads everything again instead of what changed since this process last looked.
        Legacy files that are not valid records are named in ``Rows.corrupt`` (their points
        are pending) and ``Rows.misnamed``; damage in the journal or records.parquet is
        one note on stderr, once."""
        return rowset.rows(self.dir, fresh)

    def records(self) -> list:
        """Every point's record in full (with curves)."""
        return cols.to_records(views.view(self.dir).columns())

    def compact(self, force: bool = False):
        """Fold the journal into records.parquet (memo/store/compact.py)."""
        return compaction.compact(self.dir, force)

    def write_table(self, points: list, fresh: bool = False, tries: int = 5):
        """Write results/NAME.csv from the records: one row per grid point that has a record,
        in grid order; returns (table, rows).

        Another process may add a record while the table is written (a run ending while
        ``--collect`` runs): the records are looked at again after writing, and the table
        rewritten until nothing changed in between, so the last table written holds every
        record there was when it was written.
        """
        for _ in range(tries):
            rows = self.rows(fresh=fresh)
            seen = views.view(self.dir)
            before = seen.version()
            frame = rows.frame()
            if len(frame):
                frame["_index"] = frame["id"].map({p.id: p.index for p in points})
                frame = frame.dropna(subset=["_index"]).astype({"_index": int})
                frame = frame.sort_values("_index").reset_index(drop=True)
            frame = order_columns(frame, points)
            self.table_path.parent.mkdir(parents=True, exist_ok=True)  # before any run made it
            write_atomic(self.table_path, frame.to_csv(index=False).encode())
            seen.refresh()
            if seen.version() == before:
                break
            fresh = False
        return frame, rows


def load_results(experiment: str, curves: bool = True, status: str | None = "ok"):
    """Load an experiment's records into a pandas DataFrame, one row per point, in grid
    order (``_index``).

    With ``curves=True`` list-valued metrics (per-epoch curves) are list columns; otherwise
    only scalars are loaded. ``status`` filters rows ("ok" by default; None keeps failed
    points too). The same records, every column, are in ``results/NAME/records.parquet``
    for ``pandas.read_parquet`` once the run that made them has ended.
    """
    frame = Store(experiment).rows().frame(curves=curves)
    if status is not None and len(frame):
        frame = frame[frame["status"] == status].reset_index(drop=True)
    return frame


def order_columns(frame, points: list):
    """Order table columns: index and id, params, seed and status, metrics, run info."""
    if frame.empty:
        return frame
    param_keys = list(dict.fromkeys(k for p in points for k in p.params if k != "seed"))
    front = [c for c in (*LEAD_COLUMNS, *param_keys, *TAIL_COLUMNS) if c in frame]
    back = [c for c in META_COLUMNS if c in frame]
    middle = [c for c in frame.columns if c not in front and c not in back]
    return frame[front + middle + back]
