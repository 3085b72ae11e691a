"""What a record is: its keys and their JSON types, and the checks every reader applies.

A record is a JSON object with the keys and types of :data:`RECORD_TYPES`, a status in
:data:`STATUSES` and its point's id; whatever else it holds (provenance) is kept as it is.
The same checks hold a journal line, a row of records.parquet read back, and a legacy
``results/NAME/<id>.json`` file of memo before the journal.
"""

import json
from pathlib import Path

import numpy as np

from memo.store.files import read_regular

STATUSES = ("ok", "error", "timeout")
RECORD_CAP = 64 << 20  # bytes; a larger legacy record file is not read
# Columns every row of the table has besides params and metrics, in table order.
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


CHECKS = tuple(RECORD_TYPES.items())


class BadRecord(ValueError):
    """Something that does not hold a valid record."""


class MisnamedRecord(BadRecord):
    """A record file holding a valid record of another id, as a copy ``<id>.orig.json`` does."""


def check_record(record, where) -> dict:
    """``record`` if it is a valid record; BadRecord naming ``where`` otherwise."""
    if not isinstance(record, dict) or record.get("status") not in STATUSES:
        raise BadRecord(f"{where}: not a record")
    for key, types in CHECKS:
        if type(record.get(key)) not in types:
            raise BadRecord(f"{where}: not a record")
    return record


def read_record(path: Path) -> dict:
    """The record in the legacy record file ``path``; BadRecord if it holds none,
    MisnamedRecord if it holds one whose id is not the file's name. OSError if it cannot be
    read (not a regular file, over :data:`RECORD_CAP`)."""
    path = Path(path)
    try:
        record = json.loads(read_regular(path, RECORD_CAP))
    except ValueError:
        raise BadRecord(f"{path}: not JSON") from None
    check_record(record, path)
    if f"{record['id']}.json" != path.name:
        raise MisnamedRecord(f"{path}: holds the record of {record['id']}")
    return record


def is_record(name: str) -> bool:
    """Whether a file name in a records folder is a legacy record (not a temp file, claim or
    memo's own folder)."""
    return name.endswith(".json") and not name.startswith((".", "_"))


def to_json(value):
    """``json.dumps`` default hook for numpy scalars and arrays."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def error_line(error: str | None) -> str:
    """The last line of a traceback (the exception and its message); "" for none.

    >>> error_line("Traceback (most recent call last):\\n  ...\\nValueError: bad\\n")
    'ValueError: bad'
    """
    lines = (error or "").strip().splitlines()
    return lines[-1] if lines else ""
