"""The row cache: every record's flat scalar row, column by column, in one JSON file.

``results/.cache/NAME.rows.json`` is derived from the records and rebuilt at will. It is
plain data (never pickle: a results folder may be writable by others, and whatever is read
from it must not run as code), checked against a SHA-256 of its body written in its first
line, and checked for shape and value types before use, so a damaged or planted cache is
rebuilt from the records instead of trusted.
"""

import hashlib
import json
from dataclasses import dataclass, field

from memo.files import read_regular, write_atomic

FORMAT = "memo-rows"
VERSION = 3
CAP = 1 << 31  # bytes; a cache of 100,000 records is some tens of MB
SCALARS = (str, int, float, bool, type(None))


class DamagedCache(ValueError):
    """A cache file that fails its checksum or does not hold rows."""


@dataclass
class Rows:
    """The records' flat rows column by column: quick to cache, load and tabulate."""

    columns: dict  # column -> list, one value per record (None where a record lacks it)
    files: dict  # {file name: stamp} of every record file listed
    corrupt: list  # names of files that are not valid records (their points are pending)
    misnamed: list  # names of files holding a record of another id (ignored)
    curved: list = field(default_factory=list)  # names of records with list-valued metrics

    @classmethod
    def build(cls, rows: list, files=None, corrupt=(), misnamed=(), curved=()) -> "Rows":
        keys = list(dict.fromkeys(k for row in rows for k in row)) or ["id", "status"]
        columns = {k: [row.get(k) for row in rows] for k in keys}
        return cls(columns, files or {}, list(corrupt), list(misnamed), list(curved))

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


def save(path, rows: Rows) -> None:
    """Write the cache atomically: a header line with the body's SHA-256, then the body."""
    body = json.dumps(
        {
            "columns": rows.columns,
            "files": rows.files,
            "corrupt": rows.corrupt,
            "misnamed": rows.misnamed,
            "curved": rows.curved,
        },
        separators=(",", ":"),
    ).encode()
    header = {"format": FORMAT, "version": VERSION, "sha256": hashlib.sha256(body).hexdigest()}
    write_atomic(path, json.dumps(header).encode() + b"\n" + body)


def load(path) -> Rows | None:
    """The cached rows; None if there is no cache of this version; DamagedCache if the file
    is there but fails its checksum or checks; OSError if it cannot be read (a link, a
    folder)."""
    data = read_regular(path, CAP)
    head, _, body = data.partition(b"\n")
    try:
        header = json.loads(head)
    except ValueError:
        raise DamagedCache("its first line is not JSON") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise DamagedCache("not a row cache")
    if header.get("version") != VERSION:
        return None  # another memo version's cache: rebuilt without a word
    if header.get("sha256") != hashlib.sha256(body).hexdigest():
        raise DamagedCache("checksum mismatch")
    try:
        content = json.loads(body)
    except ValueError:
        raise DamagedCache("not JSON") from None
    return checked(content)


def checked(content) -> Rows:
    """Rows from a cache file's parsed body, every shape and type checked (the file is
    untrusted data); DamagedCache otherwise."""
    if not isinstance(content, dict):
        raise DamagedCache("not an object")
    columns, files = content.get("columns"), content.get("files")
    names = [content.get(key) for key in ("corrupt", "misnamed", "curved")]
    if not (isinstance(columns, dict) and isinstance(files, dict)):
        raise DamagedCache("no columns or files")
    ids = columns.get("id")
    if not (isinstance(ids, list) and isinstance(columns.get("status"), list)):
        raise DamagedCache("no id or status column")
    for values in columns.values():
        if not isinstance(values, list) or len(values) != len(ids):
            raise DamagedCache("columns of different lengths")
        if not all(type(v) in SCALARS for v in values):
            raise DamagedCache("a value that is not a scalar")
    if not all(type(i) is str for i in ids):
        raise DamagedCache("an id that is not text")
    for name, stamp in files.items():
        if not (isinstance(stamp, list) and len(stamp) == 3 and all(type(s) is int for s in stamp)):
            raise DamagedCache(f"a bad stamp for {name}")
    for group in names:
        if not (isinstance(group, list) and all(type(n) is str for n in group)):
            raise DamagedCache("a bad list of file names")
    stamps = {name: tuple(stamp) for name, stamp in files.items()}
    return Rows(columns, stamps, *names)
