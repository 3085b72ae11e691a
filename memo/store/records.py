"""The results store: one JSON record per point, ``results/NAME/<id>.json``.

Records are written to a temp file in the same folder and renamed into place, so a
reader never sees half a record and many writers (array tasks on NFS) need no lock or
shared counter. The collected table ``results/NAME.csv`` and the row cache
``results/.cache/NAME.rows`` (memo/store/rowcache.py) are both derived from the records
and rebuilt at will; the cache is checked against each record file's ctime, size and
inode (ctime changes with every change to a file, also one that keeps its mtime, as
``cp -p`` does).

A file ``<id>.json`` holds a record if it is a regular file (not a link, folder or FIFO)
of at most :data:`RECORD_CAP` bytes, a JSON object with the keys and types of
:data:`RECORD_TYPES`, a status in :data:`STATUSES` and that id; any other file there is
unreadable (its point is pending and runs again) or, if it holds a record of another id
(a copy), ignored.
"""

import contextlib
import errno
import json
import os
import stat
import sys
from pathlib import Path

import numpy as np

from memo.store import paths
from memo.store import rowcache
from memo.store.files import atomic_file, own_dir, read_regular, write_atomic
from memo.store.rowcache import Rows

__all__ = ["Store", "Rows", "load_results", "read_record", "atomic_file", "write_atomic"]
STATUSES = ("ok", "error", "timeout")
RECORD_CAP = 64 << 20  # bytes; a larger file in a records folder is not read
# Columns every row has besides params and metrics, in table order.
LEAD_COLUMNS = ("_index", "id")
TAIL_COLUMNS = ("seed", "status")
META_COLUMNS = ("wall_time", "cpu_time", "finished", "error")
# A record's own columns: no param or metric of that name reaches the table.
RESERVED = frozenset((*LEAD_COLUMNS, *TAIL_COLUMNS, *META_COLUMNS))
NONE = type(None)
# The JSON types of a record's keys; the run info (META_COLUMNS) may be missing or null.
RECORD_TYPES = {
    "id": (str,),
    "_index": (int,),
    "seed": (int,),
    "params": (dict,),
    "metrics": (dict,),
    "wall_time": (int, float, NONE),
    "cpu_time": (int, float, NONE),
    "finished": (str, NONE),
    "error": (str, NONE),
}


class BadRecord(ValueError):
    """A record file that does not hold a valid record."""


class MisnamedRecord(BadRecord):
    """A record file holding a valid record of another id, as a copy ``<id>.orig.json`` does."""


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
        self.table_path = base / f"{experiment}.csv"
        self.cache_path = base / ".cache" / f"{experiment}.rows"
        self.lock_path = base / ".cache" / f"{experiment}.lock"  # held by a running run.py

    def write(self, record: dict) -> None:
        """Write one record atomically (temp file + rename), replacing any older one.
        TypeError/ValueError if it is not JSON-ready; RecordWriteError if the disk refuses."""
        text = json.dumps(record, default=to_json)
        path = self.dir / f"{record['id']}.json"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            write_atomic(path, text.encode())
        except OSError as e:
            raise RecordWriteError.of(f"record {path}", e) from None

    def read(self, point_id: str) -> dict:
        """The point's record; OSError if it has none, BadRecord if it is not valid."""
        return read_record(self.dir / f"{point_id}.json")

    def rows(self, fresh: bool = False) -> Rows:
        """The flat scalar rows of every record, from a cache kept up to date.

        The folder is listed and each record file stat'ed; a file whose stamp (ctime, size,
        inode) matches the cache is not read again, unless ``fresh`` (read every record).
        Files that are not valid records are named in ``Rows.corrupt`` and ``Rows.misnamed``.
        """
        listed = self._list()
        if listed is None:
            return Rows.build([])
        files, odd = listed
        cached = None if fresh else self._load_cache()
        if cached is not None and cached.files == files:
            return cached
        old = cached.files if cached else {}
        known = {f"{id_}.json": i for i, id_ in enumerate(cached.columns["id"])} if cached else {}
        was_curved = set(cached.curved) if cached else set()
        rows, corrupt, misnamed, curved = [], [], [], []
        for name, stamp in files.items():
            if name in odd:  # a link, folder or FIFO: never opened
                corrupt.append(name)
                continue
            if name in known and old[name] == stamp:
                rows.append(cached.row(known[name]))
                if name in was_curved:
                    curved.append(name)
                continue
            try:
                record = read_record(self.dir / name)
            except MisnamedRecord:
                misnamed.append(name)
                continue
            except (BadRecord, OSError):
                corrupt.append(name)
                continue
            rows.append(flatten(record))
            if any(isinstance(v, (list, dict)) for v in record["metrics"].values()):
                curved.append(name)
        fresh_rows = Rows.build(rows, files, corrupt, misnamed, curved)
        try:  # reading works without writing, e.g. in a colleague's read-only results
            own_dir(self.cache_path.parent)
            rowcache.save(self.cache_path, fresh_rows)
        except OSError:
            pass
        return fresh_rows

    def records(self) -> list:
        """Every valid record in full (with curves); other files are skipped."""
        records = []
        for path in sorted(self.dir.glob("*.json")):
            if is_record(path.name):
                with contextlib.suppress(BadRecord, OSError):
                    records.append(read_record(path))
        return records

    def _list(self) -> tuple | None:
        """({file name: stamp}, {names that are not regular files}) of the record files (one
        lstat each); None without a folder."""
        try:  # listed by descriptor, each stat is relative to it: no path lookups
            fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        files, odd = {}, set()
        try:
            with os.scandir(fd) as entries:
                found = [entry for entry in entries if is_record(entry.name)]
            for entry in found:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # removed since the listing
                    continue
                files[entry.name] = (st.st_ctime_ns, st.st_size, st.st_ino)
                if not stat.S_ISREG(st.st_mode):
                    odd.add(entry.name)
        finally:
            os.close(fd)
        return files, odd

    def write_table(self, points: list, fresh: bool = False, tries: int = 5):
        """Write results/NAME.csv from the records: one row per grid point that has a record,
        in grid order; returns (table, rows).

        Another process may add a record while the table is written (a run ending while
        ``--collect`` runs): the records are listed again after writing, and the table
        rewritten until no record came or changed in between, so the last table written
        holds every record there was when it was written.
        """
        for _ in range(tries):
            rows = self.rows(fresh=fresh)
            frame = rows.frame()
            if len(frame):
                frame["_index"] = frame["id"].map({p.id: p.index for p in points})
                frame = frame.dropna(subset=["_index"]).astype({"_index": int})
                frame = frame.sort_values("_index").reset_index(drop=True)
            frame = order_columns(frame, points)
            write_atomic(self.table_path, frame.to_csv(index=False).encode())
            listed = self._list()
            if listed is None or listed[0] == rows.files:
                break
            fresh = False
        return frame, rows

    def _load_cache(self) -> Rows | None:
        try:
            return rowcache.load(self.cache_path)
        except FileNotFoundError:
            return None
        except rowcache.DamagedCache as e:
            print(
                f"note: the row cache {self.cache_path} is damaged ({e}); "
                f"rebuilt from the records",
                file=sys.stderr,
            )
        except OSError as e:  # a link or a folder where the cache should be: not used
            print(
                f"note: the row cache {self.cache_path} is not used: {e.strerror or e}",
                file=sys.stderr,
            )
        return None


def load_results(experiment: str, curves: bool = True, status: str | None = "ok"):
    """Load an experiment's records into a pandas DataFrame, one row per record.

    With ``curves=True`` list-valued metrics (per-epoch curves) are kept as list
    columns; otherwise only scalars are loaded (fast, from the cache; as fast with
    ``curves=True`` when no record has a list-valued metric). ``status``
    filters rows ("ok" by default; None keeps failed points too).
    """
    store = Store(experiment)
    rows = store.rows()
    if curves and rows.curved:
        frame = Rows.build([flatten(r, curves=True) for r in store.records()]).frame()
    else:  # no record has a curve: the cached rows are the whole story
        frame = rows.frame()
        if curves and len(frame):  # in the order of the path above: by file name
            frame = frame.sort_values("id", kind="stable").reset_index(drop=True)
    if status is not None and len(frame):
        frame = frame[frame["status"] == status].reset_index(drop=True)
    return frame


def flatten(record: dict, curves: bool = False) -> dict:
    """One table row from a valid record: params and scalar metrics as columns.

    A param or metric named like one of the record's own columns (:data:`RESERVED`) is
    left out, so that it cannot overwrite them.

    >>> rec = {"id": "a", "_index": 0, "seed": 1, "status": "ok", "params": {"n": 2},
    ...        "metrics": {"score": 1.0, "curve": [1, 2], "error": 0.5}, "wall_time": 0.5}
    >>> flatten(rec)
    {'_index': 0, 'id': 'a', 'n': 2, 'seed': 1, 'status': 'ok', 'score': 1.0, 'wall_time': 0.5}
    """
    row = {"_index": record["_index"], "id": record["id"]}
    for key, value in record["params"].items():
        if key not in RESERVED:
            row[key] = json.dumps(value) if isinstance(value, (list, dict)) else value
    row["seed"] = record["seed"]
    row["status"] = record["status"]
    for key, value in record["metrics"].items():
        if key not in RESERVED and (curves or not isinstance(value, (list, dict))):
            row[key] = value
    for key in META_COLUMNS:
        if record.get(key) is not None:
            value = record[key]
            row[key] = error_line(value) if key == "error" else value
    return row


def order_columns(frame, points: list):
    """Order table columns: index and id, params, seed and status, metrics, run info."""
    if frame.empty:
        return frame
    param_keys = list(dict.fromkeys(k for p in points for k in p.params if k != "seed"))
    front = [c for c in (*LEAD_COLUMNS, *param_keys, *TAIL_COLUMNS) if c in frame]
    back = [c for c in META_COLUMNS if c in frame]
    middle = [c for c in frame.columns if c not in front and c not in back]
    return frame[front + middle + back]


def to_json(value):
    """``json.dumps`` default hook for numpy scalars and arrays."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def read_record(path: Path) -> dict:
    """The record in file ``path``; BadRecord if it holds none, MisnamedRecord if it holds
    one whose id is not the file's name. OSError if it cannot be read."""
    path = Path(path)
    try:
        record = json.loads(read_regular(path, RECORD_CAP))
    except ValueError:
        raise BadRecord(f"{path}: not JSON") from None
    if not (
        isinstance(record, dict)
        and record.get("status") in STATUSES
        and all(type(record.get(key)) in types for key, types in RECORD_TYPES.items())
    ):
        raise BadRecord(f"{path}: not a record")
    if f"{record['id']}.json" != path.name:
        raise MisnamedRecord(f"{path}: holds the record of {record['id']}")
    return record


def is_record(name: str) -> bool:
    """Whether a file name in a records folder is a record (not a temp file or cache)."""
    return name.endswith(".json") and not name.startswith((".", "_"))


def error_line(error: str | None) -> str:
    """The last line of a traceback (the exception and its message); "" for none.

    >>> error_line("Traceback (most recent call last):\\n  ...\\nValueError: bad\\n")
    'ValueError: bad'
    """
    lines = (error or "").strip().splitlines()
    return lines[-1] if lines else ""
