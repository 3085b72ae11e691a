"""Reading an experiment's records: records.parquet, the journal segments past what it
merged, and legacy ``<id>.json`` files of memo before the journal.

A process keeps one View per records folder and refreshes it in place: records.parquet is
read again only when its stamp (inode, size, mtime, ctime) changed, a segment only from
where the last read ended. Of a segment and of a legacy file only each point's best record
is held, by place (the full record is read back when needed), so a worker looking up its
points holds little. Where one point has several records the rule of
:func:`memo.store.columns.dedup` picks one. records.parquet is stat'ed again after the
segments are read: a compaction that renamed a new one in (and removed what it merged)
meanwhile makes the reader start over, so no record is missed in between.
"""

import contextlib
import functools
import os
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from memo.store import columns as cols
from memo.store import journal, parquet
from memo.store.checks import BadRecord, MisnamedRecord, is_record, read_record
from memo.store.files import NOFOLLOW

BATCH = 50_000  # records read back in full at once
LOOK_SHARE = 0.05  # at most this share of a worker's time goes to looking for new records
_views: dict = {}  # records folder -> its View in this process
_said: set = set()  # notes printed by this process


@dataclass
class Segment:
    """What was read of one segment: each point's best record there, by place."""

    inode: int
    end: int  # where its last whole line read ends
    size: int = 0  # its size when last read
    best: dict = field(default_factory=dict)  # id -> (ok, written, offset, length)
    damaged: int = 0
    torn: bool = False


def better(a: tuple, b: tuple | None) -> bool:
    """Whether candidate ``a`` (ok, written, ...) beats ``b`` by the dedup rule."""
    if b is None or a[0] != b[0]:
        return b is None or a[0]
    return a[1] < b[1] if a[0] else a[1] > b[1]


def locked(method):
    """One thread at a time in a View (a dask worker runs points in threads)."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        with self.lock:
            return method(self, *args, **kwargs)

    return call


class View:
    def __init__(self, folder: Path):
        self.lock = threading.RLock()
        self.folder = Path(folder)
        self.stamp = None  # records.parquet's stamp when read; None: not there
        self.table = None  # its Columns, decoded column by column as asked for
        self.meta = {"segments": {}}
        self.damaged = None  # why records.parquet could not be used
        self.index = None  # id -> row of records.parquet, built for lookups
        self.segments = {}  # name -> Segment
        self.legacy = None  # name -> (stamp, (ok, written, id) or the problem), once listed
        self.notes = {}  # text -> None, in the order seen
        self.looked = (-1e9, 0.0)  # when the last lookup refresh ended, and its seconds
        self.rows = None  # the last columns(), kept up to date with what changed since
        self.changed = set()  # ids with a new record in a segment since self.rows
        self.reset = True  # something went away or was replaced: self.rows is stale

    # -- refreshing -----------------------------------------------------------------------

    @locked
    def refresh(self, legacy: bool = True) -> None:
        for _ in range(10):
            seen = self._parquet()
            self._segments()
            if legacy or self.legacy is None:
                self._legacy()
            if stamp(self.folder / parquet.FILE) == seen:
                return

    def _parquet(self):
        path = self.folder / parquet.FILE
        now = stamp(path)
        if now == self.stamp:
            return now
        self.stamp, self.table, self.index = now, None, None
        self.reset = True
        self.meta, self.damaged = {"segments": {}}, None
        if now is None:
            return now
        try:
            self.table, self.meta = parquet.read(path)
        except parquet.Damaged as e:
            self.damaged = str(e)
        except OSError as e:
            self.damaged = e.strerror or str(e)
        if self.damaged:
            self.notes[
                f"note: {path} is damaged ({self.damaged}): its points are pending and run"
                " again; the next run moves it to _damaged/"
            ] = None
        return now

    def _segments(self) -> None:
        folder = self.folder / journal.JOURNAL
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW)
        except OSError:
            self.reset |= bool(self.segments)
            self.segments = {}
            return
        try:
            with os.scandir(fd) as entries:
                found = {e.name: e for e in entries if e.name.endswith(journal.SUFFIX)}
            for name, entry in found.items():
                if name.startswith("."):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if not stat.S_ISREG(info.st_mode):
                    self.notes[f"note: {folder / name} is not a regular file; not read"] = None
                    continue
                self._segment(folder / name, info)
        finally:
            os.close(fd)
        self.reset |= any(n not in found for n in self.segments)
        self.segments = {n: s for n, s in self.segments.items() if n in found}

    def _segment(self, path: Path, info) -> None:
        old = self.segments.get(path.name)
        if old is None or old.inode != info.st_ino or info.st_size < old.end:
            merged = self.meta["segments"].get(path.name, 0)
            start = merged if isinstance(merged, int) and 0 <= merged <= info.st_size else 0
            self.reset |= old is not None  # replaced or cut short
            old = self.segments[path.name] = Segment(info.st_ino, start)
        else:
            start = max(old.end, min(self.meta["segments"].get(path.name, 0), info.st_size))
        if start >= info.st_size or (info.st_size == old.size and start == old.end):
            old.end, old.size = start, info.st_size  # nothing new
            return
        try:
            fd = journal.open_segment(path)
        except OSError:
            return
        try:
            read = journal.read_segment(fd, start, info.st_size, info.st_ino)
        finally:
            os.close(fd)
        for written, point_id, status, offset, length in read.records:
            candidate = (status == "ok", written, offset, length)
            if better(candidate, old.best.get(point_id)):
                old.best[point_id] = candidate
                if self.rows is not None:  # only a reader of the rows keeps track
                    self.changed.add(point_id)
        old.end, old.size = read.end, info.st_size
        old.damaged += read.damaged
        old.torn = read.torn
        if read.damaged:
            self.notes[
                f"note: {path}: {old.damaged} damaged lines (checksum) not read; their points"
                " are pending and run again"
            ] = None
        if read.torn and journal.idle(path):
            self.notes[
                f"note: {path} ends in a line cut short (its writer was killed mid-write?);"
                " that point is pending and runs again"
            ] = None

    def _legacy(self) -> None:
        """Legacy record files: each read again only when its stamp changed."""
        old, self.legacy = self.legacy or {}, {}
        listed = set(old)
        try:
            with os.scandir(self.folder) as entries:
                found = [e for e in entries if is_record(e.name)]
        except OSError:
            return
        for entry in found:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            now = (info.st_ctime_ns, info.st_size, info.st_ino)
            if entry.name in old and old[entry.name][0] == now:
                self.legacy[entry.name] = old[entry.name]
                continue
            if not stat.S_ISREG(info.st_mode):  # a link, folder or FIFO: never opened
                self.legacy[entry.name] = (now, "odd")
                continue
            try:
                record = read_record(self.folder / entry.name)
            except MisnamedRecord:
                found_as = "misnamed"
            except (BadRecord, OSError):
                found_as = "corrupt"
            else:
                found_as = (record["status"] == "ok", info.st_mtime_ns / 1e9, record["id"])
            self.legacy[entry.name] = (now, found_as)
        self.reset |= self.legacy.keys() != listed or any(
            old[n] != self.legacy[n] for n in listed if n in self.legacy
        )

    def version(self) -> tuple:
        """What was read: changes whenever any record could have."""
        segments = tuple(sorted((n, s.inode, s.end) for n, s in self.segments.items()))
        return self.stamp, segments, tuple(sorted((self.legacy or {}).items()))

    # -- looking up -----------------------------------------------------------------------

    @locked
    def look(self) -> None:
        """Refresh for a lookup, unless the last refresh was so recent that another would
        take more than LOOK_SHARE of the time (on a slow file system)."""
        ended, took = self.looked
        if time.monotonic() - ended < took / LOOK_SHARE:
            return
        start = time.monotonic()
        self.refresh(legacy=False)
        self.looked = (time.monotonic(), time.monotonic() - start)

    @locked
    def best(self, point_id: str):
        """(ok, written, where) of the point's record: where is ("parquet", row),
        ("segment", name, offset, length) or ("legacy", name); None without one."""
        found = None
        if self.table is not None:
            if self.index is None:
                ids = self.table.column("own:id").to_pylist()
                self.index = dict(zip(ids, range(len(ids))))
            row = self.index.get(point_id)
            if row is not None:
                ok = self.table.column("own:status")[row].as_py() == "ok"
                found = (ok, self.table.column(cols.WRITTEN)[row].as_py(), ("parquet", row))
        for name, segment in self.segments.items():
            got = segment.best.get(point_id)
            if got is not None and better(got, found):
                found = (got[0], got[1], ("segment", name, got[2], got[3]))
        for name, (_, got) in (self.legacy or {}).items():
            if isinstance(got, tuple) and got[2] == point_id and better(got, found):
                found = (got[0], got[1], ("legacy", name))
        return found

    @locked
    def extra(self) -> dict:
        """{point id: (ok, written, where)} of the best record of each point outside
        records.parquet."""
        best = {}
        for name, segment in self.segments.items():
            for point_id, got in segment.best.items():
                if better(got, best.get(point_id)):
                    best[point_id] = (got[0], got[1], ("segment", name, got[2], got[3]))
        for name, (_, got) in (self.legacy or {}).items():
            if isinstance(got, tuple) and better(got, best.get(got[2])):
                best[got[2]] = (got[0], got[1], ("legacy", name))
        return best

    @locked
    def record(self, point_id: str) -> dict | None:
        """The point's record in full; None without one."""
        for _ in range(3):
            found = self.best(point_id)
            if found is None:
                return None
            (record,) = self.fetch([found[2]])
            if record is not None and same(record, point_id, found[0]):
                return record
            self.refresh(legacy=False)  # changed under us: look again
        return None

    def fetch(self, places: list) -> list:
        """The full records at ``places`` (see :meth:`best`), None where one is gone or
        changed."""
        found = [None] * len(places)
        lines: dict = {}  # segment name -> [(offset, length, position in places)]
        rows = []
        for i, where in enumerate(places):
            if where[0] == "parquet":
                rows.append((where[1], i))
            elif where[0] == "segment":
                lines.setdefault(where[1], []).append((where[2], where[3], i))
            else:
                with contextlib.suppress(OSError, BadRecord):
                    found[i] = read_record(self.folder / where[1])
        for name, wanted in lines.items():
            with contextlib.suppress(OSError):
                for i, record in read_lines(self.folder / journal.JOURNAL / name, wanted):
                    found[i] = record
        if rows:
            taken = self.table.complete().table.take([r for r, _ in rows])
            for (_, i), record in zip(rows, cols.to_records(cols.Columns(taken, self.table.kinds))):
                found[i] = record
        return found

    # -- the rows -------------------------------------------------------------------------

    @locked
    def columns(self) -> cols.Columns:
        """Every point's record, deduplicated, as Columns (records.parquet's and the rest).
        Called again, only the records new since are read (a cluster run's waiting)."""
        self.refresh()
        extra = self.extra()
        if self.reset or self.rows is None:
            base = self.table if self.table is not None else cols.empty()
        else:  # the rows before, and the points with a new record since
            base, extra = self.rows, {i: extra[i] for i in self.changed if i in extra}
        self.reset, self.changed = False, set()
        if extra:
            parts = [base]
            items = list(extra.items())
            for start in range(0, len(items), BATCH):  # records as dicts a batch at a time
                batch = items[start : start + BATCH]
                fetched = self.fetch([where for _, (_, _, where) in batch])
                found = [
                    (written, record)
                    for (point_id, (ok, written, _)), record in zip(batch, fetched)
                    if record is not None and same(record, point_id, ok)
                ]
                parts.append(cols.encode([r for _, r in found], [w for w, _ in found]))
            base = cols.dedup(cols.unify(parts))
        self.rows = base
        return base

    def say(self) -> None:
        """Print each note not printed by this process yet, to stderr."""
        for text in self.notes:
            if text not in _said:
                _said.add(text)
                print(text, file=sys.stderr)


def same(record: dict, point_id: str, ok: bool) -> bool:
    """Whether a record read back in full is the one its index entry says."""
    return record["id"] == point_id and (record["status"] == "ok") == ok


def read_lines(path: Path, wanted: list):
    """(position, record) of the journal lines at [(offset, length, position)] of a
    segment, read in large pieces; a line that no longer checks is left out."""
    fd = journal.open_segment(path)
    try:
        buffer, start = b"", 0
        for offset, length, i in sorted(wanted):
            if offset < start or offset + length > start + len(buffer):
                buffer, start = os.pread(fd, max(journal.CHUNK, length), offset), offset
            line = buffer[offset - start : offset - start + length]
            with contextlib.suppress(BadRecord):
                yield i, journal.decode(line.rstrip(b"\n"), path)[1]
    finally:
        os.close(fd)


def stamp(path: Path):
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def view(folder: Path, fresh: bool = False) -> View:
    """This process's View of a records folder (a new one with ``fresh``)."""
    key = str(folder)
    if fresh or key not in _views:
        _views[key] = View(folder)
    return _views[key]
