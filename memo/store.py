"""The results store: one JSON record per point, ``results/NAME/<id>.json``.

Records are written to a temp file in the same folder and renamed into place, so a
reader never sees half a record and many writers (array tasks on NFS) need no lock or
shared counter. The collected table ``results/NAME.csv`` and the summary cache
``results/NAME/_rows.pkl`` are both derived from the records and rebuilt at will; the
cache is checked against each record's size, mtime and inode, so it is never stale.
"""

import json
import os
import pickle
import uuid
from pathlib import Path

import numpy as np

from memo import paths

CACHE_NAME = "_rows.pkl"
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

    def write(self, record: dict) -> None:
        """Write one record atomically (temp file + rename), replacing any older one."""
        self.dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(record, default=to_json)
        _write_atomic(self.dir / f"{record['id']}.json", text.encode())

    def read(self, point_id: str) -> dict:
        return json.loads((self.dir / f"{point_id}.json").read_bytes())

    def rows(self) -> tuple[dict, list]:
        """Flat scalar rows of every record by id, and the names of unreadable records.

        Only records that changed since the last call are read (see module docstring).
        """
        try:
            entries = [e for e in os.scandir(self.dir) if _is_record(e.name)]
        except FileNotFoundError:
            return {}, []
        cache = self._load_cache()
        fresh, rows, corrupt = {}, {}, []
        for entry in entries:
            st = entry.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            cached = cache.get(entry.name)
            if cached and cached[0] == stamp:
                row = cached[1]
            else:
                try:
                    row = flatten(json.loads(Path(entry.path).read_bytes()))
                except (ValueError, KeyError, TypeError, OSError):
                    corrupt.append(entry.name)
                    continue
            fresh[entry.name] = (stamp, row)
            rows[row["id"]] = row
        if fresh.keys() != cache.keys() or any(fresh[k][0] != cache[k][0] for k in fresh):
            _write_atomic(self.dir / CACHE_NAME, pickle.dumps(fresh, protocol=5))
        return rows, corrupt

    def records(self) -> list:
        """Every readable record in full (with curves); unreadable ones are skipped."""
        records = []
        for path in sorted(self.dir.glob("*.json")):
            if _is_record(path.name):
                try:
                    records.append(json.loads(path.read_bytes()))
                except ValueError:
                    continue
        return records

    def write_table(self, points: list, rows: dict):
        """Write results/NAME.csv: one row per grid point that has a record, in grid order."""
        table = []
        for point in points:
            row = rows.get(point.id)
            if row is not None:
                table.append({**row, "_index": point.index})
        frame = order_columns(to_frame(table), points)
        _write_atomic(self.table_path, frame.to_csv(index=False).encode())
        return frame

    def _load_cache(self) -> dict:
        try:
            return pickle.loads((self.dir / CACHE_NAME).read_bytes())
        except Exception:  # missing, truncated or from an incompatible version: rebuild
            return {}


def load_results(experiment: str, curves: bool = True, status: str | None = "ok"):
    """Load an experiment's records into a pandas DataFrame, one row per record.

    With ``curves=True`` list-valued metrics (per-epoch curves) are kept as list
    columns; otherwise only scalars are loaded (fast, from the cache). ``status``
    filters rows ("ok" by default; None keeps failed points too).
    """
    store = Store(experiment)
    if curves:
        frame = to_frame([flatten(r, curves=True) for r in store.records()])
    else:
        frame = to_frame(list(store.rows()[0].values()))
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
            row[key] = value.strip().splitlines()[-1] if key == "error" else value
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


def to_frame(rows: list):
    """A DataFrame of rows; integer columns stay integer where some rows lack them."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    for column in frame.columns:
        values = [r[column] for r in rows if r.get(column) is not None]
        if len(values) < len(rows) and all(type(v) is int for v in values):
            frame[column] = pd.array([r.get(column) for r in rows], dtype="Int64")
    return frame


def to_json(value):
    """``json.dumps`` default hook for numpy scalars and arrays."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _is_record(name: str) -> bool:
    return name.endswith(".json") and not name.startswith((".", "_"))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
