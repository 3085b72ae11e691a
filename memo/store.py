"""The results store: one JSON record per point, ``results/NAME/<id>.json``.

Records are written to a temp file in the same folder and renamed into place, so a
reader never sees half a record and many writers (array tasks on NFS) need no lock or
shared counter. The collected table ``results/NAME.csv`` and the row cache
``results/.cache/NAME.rows.pkl`` are both derived from the records and rebuilt at
will; the cache is checked against each record file's ctime, size and inode (ctime
changes with every change to a file, also one that keeps its mtime, as ``cp -p`` does).

A file ``<id>.json`` holds a record if it is a JSON object with the keys and types of
:data:`RECORD_TYPES`, a status in :data:`STATUSES` and that id; any other file there is
unreadable (its point is pending and runs again) or, if it holds a record of another id
(a copy), ignored.
"""

import contextlib
import json
import os
import pickle
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memo import paths

CACHE_VERSION = 2
STATUSES = ("ok", "error", "timeout")
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


class Store:
    """The records of one experiment."""

    def __init__(self, experiment: str, results_dir: Path | None = None):
        base = Path(results_dir) if results_dir else paths.results_dir()
        self.experiment = experiment
        self.dir = base / experiment
        self.table_path = base / f"{experiment}.csv"
        self.cache_path = base / ".cache" / f"{experiment}.rows.pkl"
        self.lock_path = base / ".cache" / f"{experiment}.lock"  # held by a running run.py

    def write(self, record: dict) -> None:
        """Write one record atomically (temp file + rename), replacing any older one."""
        self.dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(record, default=to_json)
        write_atomic(self.dir / f"{record['id']}.json", text.encode())

    def read(self, point_id: str) -> dict:
        """The point's record; OSError if it has none, BadRecord if it is not valid."""
        return read_record(self.dir / f"{point_id}.json")

    def rows(self, fresh: bool = False) -> "Rows":
        """The flat scalar rows of every record, from a cache kept up to date.

        The folder is listed and each record file stat'ed; a file whose stamp (ctime, size,
        inode) matches the cache is not read again, unless ``fresh`` (read every record).
        Files that are not valid records are named in ``Rows.corrupt`` and ``Rows.misnamed``.
        """
        files = self._list()
        if files is None:
            return Rows.build([])
        cached = None if fresh else self._load_cache()
        if cached is not None and cached.files == files:
            return cached
        old = cached.files if cached else {}
        known = {f"{id_}.json": i for i, id_ in enumerate(cached.columns["id"])} if cached else {}
        rows, corrupt, misnamed = [], [], []
        for name, stamp in files.items():
            if name in known and old[name] == stamp:
                rows.append(cached.row(known[name]))
                continue
            try:
                rows.append(flatten(read_record(self.dir / name)))
            except MisnamedRecord:
                misnamed.append(name)
            except (BadRecord, OSError):
                corrupt.append(name)
        fresh_rows = Rows.build(rows, files, corrupt, misnamed)
        try:  # reading works without writing, e.g. in a colleague's read-only results
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.cache_path, pickle.dumps((CACHE_VERSION, fresh_rows), protocol=5))
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

    def _list(self) -> dict | None:
        """{file name: stamp} of the record files (one stat each); None without a folder."""
        try:  # listed by descriptor, each stat is relative to it: no path lookups
            fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        files = {}
        try:
            with os.scandir(fd) as entries:
                found = [entry for entry in entries if is_record(entry.name)]
            for entry in found:
                try:
                    st = entry.stat()
                except FileNotFoundError:  # removed since the listing
                    continue
                files[entry.name] = (st.st_ctime_ns, st.st_size, st.st_ino)
        finally:
            os.close(fd)
        return files

    def write_table(self, points: list, rows: "Rows"):
        """Write results/NAME.csv: one row per grid point that has a record, in grid order."""
        frame = rows.frame()
        if len(frame):
            frame["_index"] = frame["id"].map({p.id: p.index for p in points})
            frame = frame.dropna(subset=["_index"]).astype({"_index": int})
            frame = frame.sort_values("_index").reset_index(drop=True)
        frame = order_columns(frame, points)
        write_atomic(self.table_path, frame.to_csv(index=False).encode())
        return frame

    def _load_cache(self):
        try:
            version, rows = pickle.loads(self.cache_path.read_bytes())
        except Exception:  # missing, truncated or unpicklable: rebuild
            return None
        return rows if version == CACHE_VERSION else None


@dataclass
class Rows:
    """The records' flat rows column by column: quick to cache, load and tabulate."""

    columns: dict  # column -> list, one value per record (None where a record lacks it)
    files: dict  # {file name: stamp} of every record file listed
    corrupt: list  # names of files that are not valid records (their points are pending)
    misnamed: list  # names of files holding a record of another id (ignored)

    @classmethod
    def build(cls, rows: list, files=None, corrupt=(), misnamed=()) -> "Rows":
        keys = list(dict.fromkeys(k for row in rows for k in row)) or ["id", "status"]
        columns = {k: [row.get(k) for row in rows] for k in keys}
        return cls(columns, files or {}, list(corrupt), list(misnamed))

    def __len__(self) -> int:
        return len(self.columns["id"])

    def row(self, i: int) -> dict:
        return {k: v[i] for k, v in self.columns.items() if v[i] is not None}

    def by_id(self, column: str) -> dict:
        """{point id: value of the column}."""
        return dict(zip(self.columns["id"], self.columns.get(column, [None] * len(self))))

    def status(self) -> dict:
        return self.by_id("status")

    def frame(self):
        """A pandas DataFrame; integer columns stay integer where some rows lack them."""
        import pandas as pd

        data = {}
        for key, values in self.columns.items():
            present = [v for v in values if v is not None]
            if len(present) < len(values) and all(type(v) is int for v in present):
                data[key] = pd.array(values, dtype="Int64")
            else:
                data[key] = values
        return pd.DataFrame(data)


def load_results(experiment: str, curves: bool = True, status: str | None = "ok"):
    """Load an experiment's records into a pandas DataFrame, one row per record.

    With ``curves=True`` list-valued metrics (per-epoch curves) are kept as list
    columns; otherwise only scalars are loaded (fast, from the cache). ``status``
    filters rows ("ok" by default; None keeps failed points too).
    """
    store = Store(experiment)
    if curves:
        frame = Rows.build([flatten(r, curves=True) for r in store.records()]).frame()
    else:
        frame = store.rows().frame()
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
        record = json.loads(path.read_bytes())
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


@contextlib.contextmanager
def atomic_file(path: Path):
    """A binary file handle whose contents appear at ``path`` whole, or not at all.

    It writes a hidden temp file beside ``path`` and renames it into place when the block
    ends; if the block raises, the temp file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes) -> None:
    with atomic_file(path) as handle:
        handle.write(data)
