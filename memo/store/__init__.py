"""Everything that touches results/: records, the row cache, claims and locks, safe file I/O.

``from memo.store import load_results, Store`` is the public entry; modules: ``records``
(one record per point, the table), ``rowcache`` (rows cached with their files' stamps),
``claims`` (the run lock and a claim per running point), ``files`` (atomic writes, reads
that follow no link), ``paths`` (the project's folders).
"""

from memo.store.records import (
    RESERVED,
    STATUSES,
    BadRecord,
    RecordWriteError,
    Rows,
    Store,
    atomic_file,
    error_line,
    is_record,
    load_results,
    read_record,
    write_atomic,
)

__all__ = [
    "RESERVED",
    "STATUSES",
    "BadRecord",
    "RecordWriteError",
    "Rows",
    "Store",
    "atomic_file",
    "error_line",
    "is_record",
    "load_results",
    "read_record",
    "write_atomic",
]
