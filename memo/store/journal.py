"""The journal: every process that writes records appends them to a segment of its own.

``results/NAME/_journal/<host>-<pid>-<token>.jsonl`` holds one record a line: the CRC-32 of
the rest (8 hex digits), the time written, the record as JSON (id and status first). A
process creates its segment on its first record (``O_APPEND|O_NOFOLLOW|O_EXCL``, mode 0644)
and appends to it from then on: no two processes write one file, nothing is created per
point.

Each record is one ``write``, under a shared ``flock`` of the segment; compaction removes a
segment it merged only under an exclusive one, after checking that it did not grow, so no
record is ever written into a removed segment: a writer that finds its segment removed
(its name leads elsewhere or nowhere; another NFS client's removal: ESTALE) starts a new
one. Where the file system has no locks, compaction removes only the segments of writers
that are gone (their pid, or untouched for :data:`STALE_S`).

A process killed at any moment (even by SIGKILL) leaves whole lines in the page cache,
plus at most one torn last line. A daemon thread fsyncs what was written at most
:data:`SYNC_S` later (group commit: an fsync costs some 6 ms on this project's VM, a write
6 µs, and a point's overhead budget is 0.3 ms); a crash of the machine itself may lose that
last second, whose points then have no record and run again. Readers check each line's CRC
and the record in it, and skip a torn or damaged line: its point is pending and runs
again, never half-trusted.
"""

import atexit
import contextlib
import errno
import fcntl
import json
import math
import os
import re
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from memo.store.checks import BadRecord, check_record, to_json
from memo.store.files import HOST, NOFOLLOW, open_regular, own_dir, pid_alive

JOURNAL = "_journal"  # "_": not a record name
SUFFIX = ".jsonl"
SYNC_S = 1.0  # an appended record is fsynced at most this long after its write
CHUNK = 16 << 20  # bytes of a segment read at once
STALE_S = 600.0  # a segment of another host untouched this long counts as its writer's last
# host-pid-token: what a segment's name says of its writer.
NAME = re.compile(r"^(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{8}\.jsonl$")
HEAD = re.compile(rb'\{"id": ("(?:[^"\\]|\\.)*"), "status": "(ok|error|timeout)"[,}]')
LINE_CAP = 64 << 20  # bytes; a longer "line" is damage, skipped without holding it
HOST_TAG = re.sub(r"[^A-Za-z0-9.]", "_", HOST)  # this host as segment names spell it
_open: dict = {}  # (pid, folder) -> this process's Segment there
_mutex = threading.Lock()
_syncer: dict = {}  # pid -> its fsync thread, once started


class Retired(Exception):
    """The segment was merged and removed by compaction: write to a new one."""


class Segment:
    """This process's segment in one journal folder: appended to under a lock (a dask
    worker runs points in threads)."""

    def __init__(self, folder: Path):
        own_dir(folder)
        self.path = folder / f"{HOST_TAG}-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | NOFOLLOW  # NFS locks need
        self.fd = os.open(self.path, flags, 0o644)  # read access for a shared lock
        self.inode = os.fstat(self.fd).st_ino
        self.size, self.dirty, self.locks, self.lock = 0, False, True, threading.Lock()

    def retired(self) -> bool:
        """Whether compaction removed this segment: its name no longer leads to it (NFS
        renames a file removed while open here to .nfsXXXX: it still has a link)."""
        try:
            return os.stat(self.path, follow_symlinks=False).st_ino != self.inode
        except FileNotFoundError:
            return True

    def append(self, line: bytes) -> None:
        """Write ``line`` whole or raise OSError with the segment as it was before;
        Retired if compaction removed the segment."""
        with self.lock:
            if self.locks:
                try:
                    fcntl.flock(self.fd, fcntl.LOCK_SH)
                except OSError as e:  # no locks here: compaction goes by pid and age instead
                    if e.errno == errno.ESTALE:  # removed by another NFS client
                        raise Retired() from None
                    self.locks = False
            try:
                if self.retired():
                    raise Retired()
                done = 0
                try:
                    while done < len(line):  # a short write (a full disk) raises on the rest
                        done += os.write(self.fd, line[done:])
                except OSError:
                    if done:  # a torn line: cut it off (this process is its only writer)
                        with contextlib.suppress(OSError):
                            os.ftruncate(self.fd, self.size)
                    raise
                self.size += done
                self.dirty = True
            finally:
                if self.locks:
                    fcntl.flock(self.fd, fcntl.LOCK_UN)

    def sync(self) -> None:
        with self.lock:
            if self.dirty:
                self.dirty = False
                with contextlib.suppress(OSError):
                    os.fsync(self.fd)

    def close(self) -> None:
        self.sync()
        with contextlib.suppress(OSError):
            os.close(self.fd)


def append(records_dir: Path, text: str) -> None:
    """Append the record JSON ``text`` to this process's segment of ``records_dir``;
    OSError if the disk refuses (the segment is then as it was)."""
    key = (os.getpid(), str(records_dir))
    line = encode(text, time.time())
    for _ in range(3):
        with _mutex:
            segment = _open.get(key)
            if segment is None:
                segment = _open[key] = Segment(Path(records_dir) / JOURNAL)
                start_syncer()
        try:
            segment.append(line)
            return
        except (Retired, OSError) as e:
            with _mutex:  # a removed or failed segment is not written again
                if _open.get(key) is segment:
                    del _open[key]
            segment.close()
            if not isinstance(e, Retired) and e.errno != errno.ESTALE:
                raise


def start_syncer() -> None:
    """Start, once per process, the thread that fsyncs what its segments were given."""
    if os.getpid() in _syncer:  # a forked child has no thread of its parent's
        return

    def loop():
        while True:
            time.sleep(SYNC_S)
            sync_all()

    _syncer[os.getpid()] = threading.Thread(target=loop, name="memo-journal", daemon=True)
    _syncer[os.getpid()].start()


def sync_all() -> None:
    for (pid, _), segment in list(_open.items()):
        if pid == os.getpid():
            segment.sync()


atexit.register(sync_all)


def encode(text: str, written: float) -> bytes:
    body = f"{written!r} {text}".encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def encode_record(record: dict) -> str:
    """A record's JSON text, id and status first (what :func:`peek` reads); ValueError
    (BadRecord) if it is not a valid record, TypeError if not JSON-ready."""
    check_record(record, f"record {record.get('id')!r}")
    return json.dumps({"id": record["id"], "status": record["status"], **record}, default=to_json)


def checked(line: bytes, where) -> tuple:
    """(time written, JSON text) of a journal line whose CRC holds; BadRecord if not."""
    crc, _, body = line.partition(b" ")
    if len(crc) != 8 or crc.strip(b"0123456789abcdef") or int(crc, 16) != zlib.crc32(body):
        raise BadRecord(f"{where}: checksum mismatch")
    stamp, _, text = body.partition(b" ")
    try:
        written = float(stamp)
    except ValueError:
        raise BadRecord(f"{where}: not a journal line") from None
    if not math.isfinite(written):
        raise BadRecord(f"{where}: not a journal line")
    return written, text


def peek(line: bytes, where) -> tuple:
    """(time written, id, status) of a journal line, from the start of its JSON (memo
    writes id and status first) after the CRC; BadRecord if it fails."""
    written, text = checked(line, where)
    found = HEAD.match(text)
    if found is None:
        record = decode(line, where)[1]
        return written, record["id"], record["status"]
    return written, json.loads(found[1]), found[2].decode()


def decode(line: bytes, where) -> tuple:
    """(time written, record) of one journal line; BadRecord if it fails any check."""
    written, text = checked(line, where)
    try:
        record = json.loads(text)
    except ValueError:
        raise BadRecord(f"{where}: not a journal line") from None
    return written, check_record(record, where)


@dataclass
class Read:
    """What one segment held from ``start`` on: its records (time written, id, status,
    offset and length of the line), where the last whole line ends, the damaged lines and
    whether a torn line follows."""

    inode: int
    end: int
    records: list = field(default_factory=list)
    damaged: int = 0
    torn: bool = False


def read_segment(fd: int, start: int, size: int, inode: int) -> Read:
    """The whole lines of an open segment between ``start`` and ``size``."""
    read = Read(inode, start)
    pending, skipping, at = b"", False, start
    while at < size:
        chunk = os.pread(fd, min(CHUNK, size - at), at)
        if not chunk:  # truncated since the stat
            break
        at += len(chunk)
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            offset = read.end
            read.end += len(line) + 1
            if skipping:  # the rest of an overlong line, counted already
                skipping = False
                continue
            try:
                read.records.append((*peek(line, "line"), offset, len(line) + 1))
            except BadRecord:
                read.damaged += 1
        if len(pending) > LINE_CAP:
            read.end += len(pending)
            read.damaged += not skipping
            pending, skipping = b"", True
    read.torn = bool(pending) or skipping
    return read


def open_segment(path: Path) -> int:
    """A read-only descriptor of a segment (regular file, no link followed)."""
    return open_regular(path, os.O_RDONLY)


def retire(path: Path, inode: int, size: int, to: Path | None = None) -> bool | None:
    """Remove the segment ``path`` (or move it to ``to``) if it is still inode ``inode`` of
    ``size`` bytes (all of it merged) and no record is being written to it: True if done,
    False if not now, None if this file system has no locks (see :func:`writer_gone`)."""
    try:
        fd = open_regular(path, os.O_RDWR)  # NFS locks only a file open for writing
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a record is being written
            return False
        except OSError as e:
            if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                return None
            return False
        info = os.fstat(fd)
        if (info.st_ino, info.st_size) != (inode, size):
            return False  # grown since it was read: merged by a later compaction
        if to is None:
            os.unlink(path)
        else:
            os.rename(path, to)
        return True
    finally:
        os.close(fd)


def idle(path: Path) -> bool:
    """Whether no record is being written to segment ``path`` now (its lock is free, or,
    without locks here, its writer is gone): a torn last line there is then for good."""
    try:
        fd = open_regular(path, os.O_RDWR)
    except OSError:
        return writer_gone(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return writer_gone(path)
    finally:
        os.close(fd)


def writer_gone(path: Path) -> bool:
    """Whether the process that wrote segment ``path`` is gone, where locks do not tell:
    its pid is not running (this host), or it was untouched for STALE_S (another)."""
    if any(segment.path == path for segment in _open.values()):
        return False  # this process's own
    match = NAME.match(path.name)
    if match and match["host"] == HOST_TAG:
        return not pid_alive(int(match["pid"]))
    try:
        return time.time() - os.lstat(path).st_mtime > STALE_S
    except OSError:
        return False
