"""records.parquet: written whole and renamed into place, read only when every byte checks.

Written with pyarrow (zstd, page checksums) to a temp file beside it, fsynced and renamed,
then the folder fsynced: a reader sees the old file or the new one, never a part. The
file's key-value metadata holds memo's own (``memo``: which column is which param, metric
or own key, and of what kind, the row count, how far each journal segment was merged) and
``memo.sha256``: the SHA-256 of the whole file as written with that value's 64 hex digits
zeroed. A reader checks that first, then Parquet's page checksums and the columns against
memo's list, so a bit flip or a cut anywhere in the file (its footer too) is found, not
read as other numbers. A file someone edits and writes again with other tools is not
memo's: its checksum fails and it counts as damaged.
"""

import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from memo.store.columns import TYPES, WRITTEN, Columns, file_order, names
from memo.store.files import NOFOLLOW, read_regular, temp_path

FILE = "records.parquet"
FORMAT, VERSION = "memo-records", 1
MARK = b"memo-sha256:"  # the digest follows this in the file's footer
ZEROS = b"0" * 64
CAP = 1 << 36  # bytes; 64 GiB, far past a million points with curves


class Damaged(ValueError):
    """A records.parquet that fails a check; the message says which."""


def write(path: Path, columns: Columns, segments: dict) -> None:
    """Write ``columns`` to ``path`` atomically; ``segments``: {segment name: bytes of it
    merged}."""
    keys = file_order(columns.kinds)
    named = names(columns.kinds)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "columns": {named[k]: [k, columns.kinds[k]] for k in keys},
        "rows": len(columns),
        "segments": segments,
    }
    table = columns.complete().table.select(keys).rename_columns([named[k] for k in keys])
    table = table.replace_schema_metadata(
        {"memo": json.dumps(meta), "memo.sha256": (MARK + ZEROS).decode()}
    )
    floats = [named[k] for k in keys if columns.kinds[k] in ("float", "list<float>")]
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "w+b") as handle:
            pq.write_table(
                table,
                handle,
                compression="zstd",
                write_page_checksum=True,
                use_byte_stream_split=floats or False,
            )
            handle.flush()
            seal(handle.fileno())
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_dir(path.parent)


def seal(fd: int) -> None:
    """Write the file's SHA-256 (with the digest's place zeroed) into that place."""
    size = os.fstat(fd).st_size
    digest, at = hashlib.sha256(), 0
    while at < size:
        chunk = os.pread(fd, min(1 << 24, size - at), at)
        digest.update(chunk)
        at += len(chunk)
    length = int.from_bytes(os.pread(fd, 4, size - 8), "little") + 8  # the footer and after
    if length > size:
        raise Damaged(f"a footer of {length} bytes in a file of {size}")
    place = size - length + locate(os.pread(fd, length, size - length))
    os.pwrite(fd, digest.hexdigest().encode(), place)


def locate(footer: bytes) -> int:
    """Where the digest starts in ``footer``; Damaged unless its mark is there once."""
    at = footer.find(MARK)
    if at < 0 or footer.find(MARK, at + 1) >= 0:
        raise Damaged("no checksum in its footer")
    return at + len(MARK)


def sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path, first=("own:id", "own:status", WRITTEN)) -> tuple:
    """(Columns, memo's metadata) of the file at ``path``: the whole file checked, the
    columns ``first`` decoded, the rest when asked for (Columns.column). Damaged if a check
    fails, OSError if the file cannot be read (none there, a link)."""
    data = read_regular(path, CAP)
    if len(data) < 12 or data[:4] != b"PAR1" or data[-4:] != b"PAR1":
        raise Damaged("not a whole Parquet file (cut short?)")
    length = int.from_bytes(data[-8:-4], "little") + 8
    if length > len(data) - 4:
        raise Damaged("not a whole Parquet file (cut short?)")
    start = len(data) - length
    at = start + locate(data[start:])
    view = memoryview(data)
    digest = hashlib.sha256(view[:at])
    digest.update(ZEROS)
    digest.update(view[at + 64 :])
    if digest.hexdigest().encode() != data[at : at + 64]:
        raise Damaged("checksum mismatch")
    try:
        handle = pq.ParquetFile(pa.BufferReader(data), page_checksum_verification=True)
        meta = json.loads(handle.metadata.metadata[b"memo"])
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise Damaged("not memo's records")
        kinds, named = check(handle.schema_arrow, meta, handle.metadata.num_rows)
    except Damaged:
        raise
    except Exception as e:  # pyarrow raises many kinds on a file made to fool it
        raise Damaged(f"unreadable ({type(e).__name__})") from None

    def load(keys) -> dict:
        try:
            table = handle.read(columns=[named[k] for k in keys], use_threads=True)
        except Exception as e:  # only a file made to fool the checksum gets here
            raise Damaged(f"unreadable ({type(e).__name__})") from None
        return {k: table[named[k]] for k in keys}

    columns = Columns(pa.table({}), kinds, load)
    columns.table = pa.table(load([k for k in first if k in kinds]))
    return columns, meta


def check(schema: pa.Schema, meta: dict, rows: int) -> tuple:
    """({key: kind}, {key: column name}) if the file's columns are those memo's metadata
    lists, each of its kind; Damaged otherwise."""
    kinds, named = {}, {}
    listed = meta.get("columns")
    if not isinstance(listed, dict) or meta.get("rows") != rows:
        raise Damaged("its columns do not match memo's list")
    if sorted(schema.names) != sorted(listed):
        raise Damaged("its columns do not match memo's list")
    for field in schema:
        key, kind = listed[field.name] if len(listed[field.name]) == 2 else (None, None)
        if kind not in TYPES or not isinstance(key, str) or key in kinds:
            raise Damaged(f"column {field.name!r} is not memo's")
        if not field.type.equals(TYPES[kind]):
            raise Damaged(f"column {field.name!r} is not {kind}")
        kinds[key], named[key] = kind, field.name
    offsets = meta.get("segments")
    if not isinstance(offsets, dict) or not all(
        type(v) is int and v >= 0 for v in offsets.values()
    ):
        raise Damaged("no journal offsets")
    if "own:id" not in kinds or "own:status" not in kinds or WRITTEN not in kinds:
        raise Damaged("no id, status or _written column")
    return kinds, named
