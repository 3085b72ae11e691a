"""The results store: one JSON record per point, ``results/NAME/<id>.json``.

Records are written to a temp file in the same folder and renamed into place, so a
reader never sees half a record and many writers (array tasks on NFS) need no lock or
shared counter. The collected table ``results/NAME.csv`` and the row cache
``results/.cache/NAME.rows.pkl`` are both derived from the records and rebuilt at
will; the cache is checked against each record's size, mtime and inode.
"""

import contextlib
import json
import os
import pickle
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memo import paths

CACHE_VERSION = 1
SETTLE_S = 2.0  # a folder unchanged this long is taken as settled (coarse mtimes on NFS)
# Columns every row has besides params and metrics, in table order.
LEAD_COLUMNS = ("_index", "id")
TAIL_COLUMNS = ("seed", "status")
META_COLUMNS = ("wall_time", "cpu_time", "finished", "error")


class Store:
    """The records of one experiment."""

    def __init__(self, experiment: str, results_dir: Path | None = None):
        base = Path(results_dir) if results_dir else paths.results_dir()
        self.experiment = experiment
        self.dir = base / experiment
        self.table_path = base / f"{experiment}.csv"
        self.cache_path = base / ".cache" / f"{experiment}.rows.pkl"

    def write(self, record: dict) -> None:
        """Write one record atomically (temp file + rename), replacing any older one."""
        self.dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(record, default=to_json)
        write_atomic(self.dir / f"{record['id']}.json", text.encode())

    def read(self, point_id: str) -> dict:
        return json.loads((self.dir / f"{point_id}.json").read_bytes())

    def rows(self) -> "Rows":
        """The flat scalar rows of every record, from a cache kept up to date.

        Records whose (mtime, size, inode) match the cache are not read again; if the
        folder itself has not changed since a settled cache was written, nothing is
        listed at all. Unreadable records are reported in ``Rows.corrupt``.
        """
        try:
            dir_mtime = os.stat(self.dir).st_mtime_ns
        except FileNotFoundError:
            return Rows.build([], [], [], [])
        cached = self._load_cache()
        if cached is not None and cached.dir_mtime == dir_mtime:
            return cached
        known = {name: i for i, name in enumerate(cached.names)} if cached else {}
        names, stamps, rows, corrupt = [], [], [], []
        with os.scandir(self.dir) as entries:
            for entry in entries:
                if not is_record(entry.name):
                    continue
                st = entry.stat()
                stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
                i = known.get(entry.name)
                if i is not None and cached.stamps[i] == stamp:
                    row = cached.row(i)
                else:
                    try:
                        row = flatten(json.loads(Path(entry.path).read_bytes()))
                    except (ValueError, KeyError, TypeError, OSError):
                        corrupt.append(entry.name)
                        continue
                names.append(entry.name)
                stamps.append(stamp)
                rows.append(row)
        fresh = Rows.build(names, stamps, rows, corrupt)
        # Trust the folder's mtime next time only if nothing changed while we listed and
        # its last change is old enough for any later one to show as a new mtime, also
        # on file systems with coarse timestamps.
        settled = os.stat(self.dir).st_mtime_ns == dir_mtime
        if settled and time.time() - dir_mtime / 1e9 > SETTLE_S:
            fresh.dir_mtime = dir_mtime
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.cache_path, pickle.dumps((CACHE_VERSION, fresh), protocol=5))
        return fresh

    def records(self) -> list:
        """Every readable record in full (with curves); unreadable ones are skipped."""
        records = []
        for path in sorted(self.dir.glob("*.json")):
            if is_record(path.name):
                try:
                    records.append(json.loads(path.read_bytes()))
                except ValueError:
                    continue
        return records

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

    names: list  # record file names
    stamps: list  # (mtime_ns, size, inode) of each record file
    columns: dict  # column -> list aligned with names, None where a record lacks it
    corrupt: list  # names of unreadable record files
    dir_mtime: int | None = None  # the records folder's mtime, once settled

    @classmethod
    def build(cls, names: list, stamps: list, rows: list, corrupt: list) -> "Rows":
        keys = list(dict.fromkeys(k for row in rows for k in row)) or ["id", "status"]
        columns = {k: [row.get(k) for row in rows] for k in keys}
        return cls(names, stamps, columns, corrupt)

    def __len__(self) -> int:
        return len(self.names)

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
        rows = [flatten(r, curves=True) for r in store.records()]
        frame = Rows.build([], [], rows, []).frame()
    else:
        frame = store.rows().frame()
    if status is not None and len(frame):
        frame = frame[frame["status"] == status].reset_index(drop=True)
    return frame


def flatten(record: dict, curves: bool = False) -> dict:
    """One table row from a record: params and scalar metrics as columns.

    >>> rec = {"id": "a", "_index": 0, "seed": 1, "status": "ok", "params": {"n": 2},
    ...        "metrics": {"score": 1.0, "curve": [1, 2]}, "wall_time": 0.5}
    >>> flatten(rec)
    {'_index': 0, 'id': 'a', 'n': 2, 'seed': 1, 'status': 'ok', 'score': 1.0, 'wall_time': 0.5}
    """
    row = {"_index": record["_index"], "id": record["id"]}
    for key, value in record["params"].items():
        row[key] = json.dumps(value) if isinstance(value, (list, dict)) else value
    row["seed"] = record["seed"]
    row["status"] = record["status"]
    for key, value in record["metrics"].items():
        if curves or not isinstance(value, (list, dict)):
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
