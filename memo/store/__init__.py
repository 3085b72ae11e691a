"""Everything that touches results/: records, the journal, records.parquet, claims and locks,
safe file I/O.

``from memo.store import load_results, Store`` is the public entry; modules: ``records``
(the Store: writing, reading, the table), ``checks`` (what a record is), ``journal`` (a
segment per writing process), ``columns`` (records as typed columns, the dedup rule),
``parquet`` (records.parquet, checksummed), ``view`` (reading it all back), ``rows`` (the
table's rows of it), ``compact`` (folding the journal into records.parquet), ``claims``
(the run lock and a claim per running point), ``files`` (atomic writes, reads that follow
no link), ``paths`` (the project's folders).
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
