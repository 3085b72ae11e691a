"""Files in a shared results folder, read and written without trusting what is there.

A results tree is often group-writable (a cluster's NFS space), so another user may put a
symlink, a FIFO, a directory or a huge file where memo expects its own file. Everything
here opens without following links (``O_NOFOLLOW``), reads only regular files, and only up
to a size cap; temp files are created exclusively (``O_EXCL``) and renamed into place.
"""

import contextlib
import errno
import os
import re
import shutil
import socket
import stat
import time
import uuid
from pathlib import Path

HOST = socket.gethostname()
NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
# A temp file of atomic_file: ".<name>.<pid>.<8 hex>.tmp".
TEMP = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$")


class NotRegular(OSError):
    """A path that is a link, a folder, a FIFO or a device where a file should be."""


def read_regular(path, cap: int) -> bytes:
    """The bytes of the regular file ``path``; NotRegular if it is anything else (links are
    not followed) or longer than ``cap`` bytes, OSError if it cannot be read.

    ``O_NONBLOCK`` makes opening a FIFO return at once instead of waiting for a writer.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | NOFOLLOW)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegular(errno.EINVAL, "not a regular file", str(path))
        if info.st_size > cap:
            raise NotRegular(errno.EFBIG, f"larger than {cap} bytes", str(path))
        chunks, size = [], 0
        while chunk := os.read(fd, info.st_size + 1 if not chunks else 65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:  # grown since the fstat
                raise NotRegular(errno.EFBIG, f"larger than {cap} bytes", str(path))
            if len(chunks) == 1 and size <= info.st_size:  # all of it, in one read
                break
        return b"".join(chunks)
    finally:
        os.close(fd)


def open_regular(path, flags: int, mode: int = 0o666) -> int:
    """``os.open`` without following a link; NotRegular (and nothing opened) if ``path`` is
    not a regular file."""
    fd = os.open(path, flags | NOFOLLOW | os.O_NONBLOCK, mode)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegular(errno.EINVAL, "not a regular file", str(path))
    return fd


def own_dir(path: Path) -> Path:
    """Create the folder ``path`` memo keeps its own files in (``.cache``, ``_running``) if
    missing; NotRegular if it is a link or not a folder, so nothing is made elsewhere."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        raise NotRegular(errno.ELOOP, "a link or not a folder", str(path))
    return path


def temp_path(path: Path) -> Path:
    """A fresh hidden name beside ``path`` that clean_temps recognizes by its pid."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


@contextlib.contextmanager
def atomic_file(path: Path):
    """A binary file handle whose contents appear at ``path`` whole, or not at all.

    It writes a hidden temp file beside ``path`` (created exclusively, never through a
    link) and renames it into place when the block ends; if the block raises, the temp
    file is removed and ``path`` is left as it was. The rename replaces a link at ``path``
    itself, never its target.
    """
    path = Path(path)
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove(path, dir_fd: int | None = None) -> None:
    """Remove the file or folder ``path`` (a folder with all it holds; links are removed,
    never followed); nothing if it is gone. ``dir_fd``: the folder ``path`` is relative to."""
    try:
        folder = stat.S_ISDIR(os.lstat(path, dir_fd=dir_fd).st_mode)
        if folder:  # shutil's rmtree works by descriptors here: it follows no link
            shutil.rmtree(path, dir_fd=dir_fd)
        else:
            os.unlink(path, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def write_atomic(path: Path, data: bytes) -> None:
    with atomic_file(path) as handle:
        handle.write(data)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (a zombie, dead but not yet reaped, does
    not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # no /proc here: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True


def process_stamp(pid: int) -> str | None:
    """The boot and the start time of process ``pid`` here: what tells it from a later
    process given the same pid (after a reboot, say); None if unknown (no /proc)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot = handle.read().strip()
        with open(f"/proc/{pid}/stat", "rb") as handle:
            start = handle.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None
    return f"{boot}/{start}"


def clean_temps(folder: Path, min_age_s: float = 60.0) -> int:
    """Remove the temp files of writers killed mid-write (atomic_file's names, older than
    ``min_age_s``, of a pid no longer running here; a folder of such a name too, as a claim
    that was a folder left once); how many were removed. A ``folder`` that is a link is
    left alone."""
    removed, now = 0, time.time()
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW)
    except OSError:
        return 0
    try:
        with os.scandir(fd) as entries:
            found = [(e, TEMP.match(e.name)) for e in entries]
        for entry, match in found:
            if not match:
                continue
            try:
                info = entry.stat(follow_symlinks=False)
                if now - info.st_mtime < min_age_s or pid_alive(int(match.group(1))):
                    continue
                remove(entry.name, dir_fd=fd)
                removed += 1
            except OSError:  # gone already, or not ours to remove
                continue
    finally:
        os.close(fd)
    return removed
