"""The Dataset record and its on-disk cache: ``datasets/<name>/{X,y,X_test,y_test}.npy``.

A dataset folder is written whole into a temporary folder beside it and then renamed
into place, so a killed build leaves no half dataset, only a hidden ``.<name>.*``
folder that is never read. If another process renamed its copy in first (two
builders on a shared NFS disk), theirs is kept and ours is dropped.

The folder also holds ``checksums.json``: each array file's size and SHA-256, written at
build time. What a folder must hold is decided elsewhere (``verify``): this module reads
its files, never through a link and only regular files, and hashes them as it reads. Small
files are parsed from the very bytes hashed; large ones are memory-mapped from the file
hashed, and :func:`recheck` (run before each point by ``memo.datasets.load_dataset``) stats
them and hashes them again if they changed since they were accepted.
"""

import errno
import hashlib
import io
import json
import math
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memo.store import paths
from memo.store.files import NotRegular, atomic_file, open_regular, read_regular

ARRAYS = ("X", "y", "X_test", "y_test")
CHECKSUMS = "checksums.json"  # {"X.npy": {"size": bytes, "sha256": hex}, ...}
JSON_CAP = 1_000_000  # bytes: checksums.json lists four files
# Smaller array files are read into memory: a file damaged later cannot reach a running
# point (a memory map of a file cut short kills the process with SIGBUS). Larger ones are
# memory-mapped, shared by the workers; 64 MiB: mnist5k and the moons draws are read.
IN_MEMORY_BYTES = 64 * 2**20
_accepted: dict = {}  # path of a memory-mapped file -> (its stamp, its digest) when accepted


class DatasetError(Exception):
    """A problem the user can fix; the message is one line (run.py/data.py print it)."""


class DatasetDamaged(DatasetError):
    """A cached dataset's files are not what they must be: the user's data problem, not a
    point's result, so the worker does not record it and run.py stops (the points stay
    pending)."""


@dataclass(frozen=True)
class Dataset:
    """Features X (float32, (N, D) or (N, H, W, C)) and int64 labels y, plus an optional test split.

    Arrays loaded from the cache are read-only (memory maps if large): copy before writing.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        """One more than the largest label in either split."""
        top = self.y.max(initial=0)
        if self.y_test is not None:
            top = max(top, self.y_test.max(initial=0))
        return int(top) + 1


@dataclass(frozen=True)
class Files:
    """A dataset folder as read: {key: array}, each file's {"size", "sha256"} as read, and
    the stamps of the memory-mapped ones (for :func:`accept`)."""

    name: str
    arrays: dict
    digests: dict
    stamps: dict


def folder(name: str) -> Path:
    """Where dataset ``name`` is cached; DatasetError if the cache folder cannot be one."""
    base = paths.datasets_dir()
    if not base.is_dir():  # e.g. MEMO_DATASETS=/etc/hostname: say so before any point runs
        blocker = next((p for p in (base, *base.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            via = "MEMO_DATASETS" if "MEMO_DATASETS" in os.environ else "the dataset folder"
            raise DatasetError(
                f"{via} is {base}, but {blocker} is not a folder; point it at a folder"
            )
    return Path(os.path.abspath(base / name))


def is_cached(name: str) -> bool:
    """Whether the folder of ``name`` is there (written whole or not at all, see the module
    doc); DatasetDamaged if a link (even one to another dataset, or to nothing) or a file
    stands in its place: memo follows no link among its datasets."""
    where = folder(name)
    try:
        mode = os.lstat(where).st_mode
    except FileNotFoundError:
        return False
    except OSError as e:
        raise DatasetDamaged(f"{where}: {e.strerror or e}; {rebuild_hint(where)}") from None
    if stat.S_ISDIR(mode):
        return True
    what = "a link" if stat.S_ISLNK(mode) else "not a folder"
    raise DatasetDamaged(f"{where} is {what}, not a dataset folder; {rebuild_hint(where)}")


def read_folder(name: str) -> Files:
    """The arrays in the folder of ``name`` and the digests of their files, as read.

    A file under IN_MEMORY_BYTES is read once, hashed and parsed from those same bytes; a
    larger one is hashed, then memory-mapped from the same open file so that joblib workers
    share its pages. Nothing is judged here but the form: a file that is a link or not a
    regular file, or does not parse as an array, raises DatasetDamaged naming the file and
    how to rebuild it.
    """
    where = folder(name)
    if not is_cached(name):
        raise DatasetDamaged(f"{where} is missing; {rebuild_hint(where)}")
    arrays, digests, stamps = {}, {}, {}
    for key in ARRAYS:
        path = where / f"{key}.npy"
        try:
            read = _read_array(path)
        except (ValueError, EOFError) as e:
            raise DatasetDamaged(f"{path} is damaged ({e}); {rebuild_hint(where)}") from None
        if read is not None:
            arrays[key], digests[path.name], stamp = read
            if stamp is not None:
                stamps[path] = stamp
    return Files(name, arrays, digests, stamps)


def accept(files: Files) -> Dataset:
    """The dataset of files found to be what they must be; DatasetDamaged if its arrays do
    not pair up. :func:`recheck` compares the memory-mapped ones with these digests from
    now on."""
    arrays, where = files.arrays, folder(files.name)
    for X, y in (("X", "y"), ("X_test", "y_test")):
        if (X in arrays) != (y in arrays) or (X in arrays and len(arrays[X]) != len(arrays[y])):
            shapes = {k: arrays[k].shape for k in (X, y) if k in arrays}
            raise DatasetDamaged(f"{where} holds mismatched arrays {shapes}; {rebuild_hint(where)}")
    if "X" not in arrays:
        raise DatasetDamaged(f"{where} has no X.npy and y.npy; {rebuild_hint(where)}")
    for path, stamp in files.stamps.items():
        _accepted[path] = (stamp, files.digests[path.name])
    return Dataset(files.name, **arrays)


def recheck(dataset: Dataset) -> None:
    """DatasetDamaged if a file the dataset's arrays map changed since it was accepted: a stat
    per file, and the hash again only if the stamp moved (touched is fine, damaged not).
    Arrays read into memory need nothing: this process holds the bytes it checked."""
    for array in (dataset.X, dataset.y, dataset.X_test, dataset.y_test):
        if not (isinstance(array, np.memmap) and array.filename):
            continue
        path = Path(array.filename)
        stamp, digest = _accepted[path]
        now = _stamp(path)
        if now == stamp:
            continue
        if now[1] != digest["size"]:
            raise DatasetDamaged(
                f"{path} has {now[1]} bytes, not the {digest['size']} checked; "
                f"{rebuild_hint(path.parent)}"
            )
        if _file_digest(path) != digest:
            raise DatasetDamaged(
                f"{path} is damaged (it changed since it was checked); {rebuild_hint(path.parent)}"
            )
        _accepted[path] = (now, digest)


def read_checksums(name: str) -> dict | None:
    """The checksums written with the folder of ``name``; None if it has none."""
    where = folder(name)
    try:
        return read_sums(where / CHECKSUMS)
    except ValueError as e:
        raise DatasetDamaged(f"{where / CHECKSUMS} {e}; {rebuild_hint(where)}") from None


def read_sums(path: Path) -> dict | None:
    """{file: {"size", "sha256"}} from a JSON file, read as every file under datasets/ is:
    not through a link, a regular file only, at most JSON_CAP bytes. None if there is no
    such file; ValueError if it is something else or holds something else."""
    try:
        sums = json.loads(read_regular(path, JSON_CAP))
    except FileNotFoundError:
        return None
    except OSError as e:  # a link, a FIFO, a device, too large
        why = "a link" if e.errno == errno.ELOOP else e.strerror or e
        raise ValueError(f"is unreadable: {why}") from None
    except ValueError:
        raise ValueError("is damaged (not JSON)") from None
    if not isinstance(sums, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("size"), int) and isinstance(v.get("sha256"), str)
        for v in sums.values()
    ):
        raise ValueError("is damaged (not a list of files, sizes and SHA-256)")
    return {k: {"size": v["size"], "sha256": v["sha256"]} for k, v in sums.items()}


def stored(key: str, array) -> np.ndarray:
    """An array as the cache stores it: float32 features, int64 labels, C order."""
    return np.ascontiguousarray(array, dtype=np.int64 if key.startswith("y") else np.float32)


def rebuild_hint(where: Path) -> str:
    return f"delete {where} and run: python data.py --name {where.name}"


def _read_array(path: Path):
    """(array, digest, stamp or None if read into memory) of an array file; None if there is
    no such file; DatasetDamaged if it is not a regular file or cannot be read."""
    try:
        fd = open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except NotRegular:
        raise DatasetDamaged(f"{path} is not a regular file; {rebuild_hint(path.parent)}") from None
    except OSError as e:
        why = " is a link" if e.errno == errno.ELOOP else f": {e.strerror or e}"
        raise DatasetDamaged(f"{path}{why}; {rebuild_hint(path.parent)}") from None
    try:
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if info.st_size < IN_MEMORY_BYTES:
                data = f.read(IN_MEMORY_BYTES)
                return _parse_npy(data), _digest(data), None
            digest = hashlib.file_digest(f, "sha256").hexdigest()
            f.seek(0)
            return (
                _map_npy(f, path, info.st_size),
                {"size": info.st_size, "sha256": digest},
                (_stamp_of(info)),
            )
    except OSError as e:  # a disk error mid-read
        raise DatasetDamaged(f"{path}: {e.strerror or e}; {rebuild_hint(path.parent)}") from None


def _header(stream) -> tuple:
    """(shape, fortran order, dtype) from a .npy header; ValueError if it is not one."""
    version = np.lib.format.read_magic(stream)
    read_header = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }.get(version)
    if read_header is None:
        raise ValueError(f"unsupported .npy version {version}")
    shape, fortran, dtype = read_header(stream)
    if dtype.hasobject:
        raise ValueError("it holds Python objects")
    return shape, fortran, dtype


def _parse_npy(data: bytes) -> np.ndarray:
    """The array a .npy file's bytes hold, as a read-only view of them (np.load would copy).

    >>> buffer = io.BytesIO(); np.save(buffer, np.arange(3.0))
    >>> _parse_npy(buffer.getvalue())
    array([0., 1., 2.])
    """
    stream = io.BytesIO(data)
    shape, fortran, dtype = _header(stream)
    _check_length(shape, dtype, stream.tell(), len(data))
    array = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=stream.tell())
    return array.reshape(shape, order="F" if fortran else "C")


def _check_length(shape: tuple, dtype: np.dtype, offset: int, size: int) -> None:
    if offset + math.prod(shape) * dtype.itemsize != size:
        raise ValueError(f"its header says {dtype} {shape}, but it has {size} bytes")


def _map_npy(f, path: Path, size: int) -> np.memmap:
    """A read-only memory map of the open .npy file ``f`` (np.load would open the path again,
    following a link put there since)."""
    shape, fortran, dtype = _header(f)
    offset = f.tell()
    _check_length(shape, dtype, offset, size)
    array = np.memmap(f, dtype, "r", offset, shape, "F" if fortran else "C")
    array.filename = str(path)  # what recheck stats; views of it keep it
    return array


def _stamp(path: Path) -> tuple:
    """(inode, size, mtime, ctime): any write, truncation or replacement changes it."""
    try:
        return _stamp_of(os.stat(path, follow_symlinks=False))
    except OSError as e:
        raise DatasetDamaged(f"{path}: {e.strerror or e}; {rebuild_hint(path.parent)}") from None


def _stamp_of(info: os.stat_result) -> tuple:
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _digest(data: bytes) -> dict:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _file_digest(path: Path) -> dict:
    """:func:`_digest` of a file, read in chunks (an array file can be GBs), not through a
    link; DatasetDamaged if it cannot be read."""
    try:
        with os.fdopen(open_regular(path, os.O_RDONLY), "rb") as f:
            digest = hashlib.file_digest(f, "sha256")
            return {"size": os.fstat(f.fileno()).st_size, "sha256": digest.hexdigest()}
    except OSError as e:
        raise DatasetDamaged(f"{path}: {e.strerror or e}; {rebuild_hint(path.parent)}") from None


def write(name: str, X, y, X_test=None, y_test=None) -> dict | None:
    """Store the arrays as float32 features and int64 labels, atomically (see module doc);
    the digests of the files written, or None if another builder's folder was kept."""
    arrays = {"X": X, "y": y, "X_test": X_test, "y_test": y_test}
    target = folder(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        for key, array in arrays.items():
            if array is not None:
                _save(tmp / f"{key}.npy", stored(key, array))
        sums = {p.name: _file_digest(p) for p in sorted(tmp.glob("*.npy"))}
        write_json(tmp / CHECKSUMS, sums)
        tmp.chmod(0o777 & ~_umask())  # mkdtemp's 0o700 would hide it from the lab
        try:
            os.rename(tmp, target)
        except OSError:
            if not os.path.lexists(target):
                raise
            return None  # another builder finished first: keep theirs, ours is dropped below
        return sums
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _save(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())  # on disk before the rename makes it visible


def write_json(path: Path, value) -> None:
    """Write JSON atomically (temp file + rename), on disk before it is visible."""
    with atomic_file(path) as f:
        f.write(json.dumps(value, indent=1, sort_keys=True).encode())
        f.flush()
        os.fsync(f.fileno())


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
