"""The Dataset record and its on-disk cache: ``datasets/<name>/{X,y,X_test,y_test}.npy``.

A dataset folder is written whole into a temporary folder beside it and then renamed
into place, so a killed build leaves no half dataset, only a hidden ``.<name>.*``
folder that is never read. If another process renamed its copy in first (two
builders on a shared NFS disk), theirs is kept and ours is dropped.

The folder also holds ``checksums.json``: each array file's size and SHA-256, written at
build time. Reading checks them (about 15 ms for mnist5k's 16 MB): a failed copy or a disk
error that zeroed, cut short or replaced a file raises :class:`DatasetDamaged` instead of
feeding zeros to the points. Small files are parsed from the very bytes checked; large ones
are memory-mapped after the check, and :func:`recheck` (run before each point by
``memo.datasets.load_dataset``) stats them and checks them again if they changed. A folder
written before checksums existed gets them on its first read.
"""

import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memo.store import paths
from memo.store.files import atomic_file

ARRAYS = ("X", "y", "X_test", "y_test")
CHECKSUMS = "checksums.json"  # {"X.npy": {"size": bytes, "sha256": hex}, ...}
# Smaller array files are read into memory: a file damaged later cannot reach a running
# point (a memory map of a file cut short kills the process with SIGBUS). Larger ones are
# memory-mapped, shared by the workers; 64 MiB: mnist5k and the moons draws are read.
IN_MEMORY_BYTES = 64 * 2**20
_verified: dict = {}  # path of a memory-mapped file -> its stamp when this process checked it


class DatasetError(Exception):
    """A problem the user can fix; the message is one line (run.py/data.py print it)."""


class DatasetDamaged(DatasetError):
    """A cached dataset's files are not those written: the user's data problem, not a point's
    result, so the worker does not record it and run.py stops (the points stay pending)."""


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
    return base / name


def is_cached(name: str) -> bool:
    return folder(name).is_dir()  # written whole or not at all (see the module doc)


def read(name: str) -> Dataset:
    """A cached dataset, each file checked against its checksum (see the module doc).

    A file under IN_MEMORY_BYTES is read once, checked and parsed from those same bytes; a
    larger one is checked, then memory-mapped so that joblib workers share its pages. A
    damaged folder raises DatasetDamaged naming the file and how to rebuild it.
    """
    where = Path(os.path.abspath(folder(name)))  # as np.memmap.filename has it (recheck)
    expected = _expected(where)
    arrays = {}
    for key in ARRAYS:
        path = where / f"{key}.npy"
        if f"{key}.npy" not in expected:
            continue
        try:
            if expected[path.name]["size"] < IN_MEMORY_BYTES:
                arrays[key] = _parse_npy(_read_checked(path, expected[path.name]))
            else:
                _check_file(path, expected[path.name])
                arrays[key] = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, EOFError) as e:
            raise DatasetDamaged(f"{path} is damaged ({e}); {_rebuild(where)}") from None
    for X, y in (("X", "y"), ("X_test", "y_test")):
        if (X in arrays) != (y in arrays) or (X in arrays and len(arrays[X]) != len(arrays[y])):
            shapes = {k: arrays[k].shape for k in (X, y) if k in arrays}
            raise DatasetDamaged(f"{where} holds mismatched arrays {shapes}; {_rebuild(where)}")
    if "X" not in arrays:
        raise DatasetDamaged(f"{where} has no X.npy and y.npy; {_rebuild(where)}")
    return Dataset(name, **arrays)


def recheck(dataset: Dataset) -> None:
    """DatasetDamaged if a file the dataset's arrays map changed since it was checked: a stat
    per file, and the checksum again only if the stamp moved (touched is fine, damaged not).
    Arrays read into memory need nothing: this process holds the bytes it checked."""
    for array in (dataset.X, dataset.y, dataset.X_test, dataset.y_test):
        if isinstance(array, np.memmap) and array.filename:
            path = Path(array.filename)
            if _stamp(path) != _verified.get(path):
                _check_file(path, _expected(path.parent)[path.name])


def _expected(where: Path) -> dict:
    """{file: {"size", "sha256"}} from checksums.json, after checking that the folder holds
    those files with those sizes (a stat each). A folder written before checksums gets them
    now, written if it may be."""
    try:
        present = sorted(p.name for p in where.glob("*.npy"))
    except OSError as e:
        raise DatasetDamaged(f"{where}: {e.strerror or e}; {_rebuild(where)}") from None
    expected = _read_checksums(where)
    if expected is None:  # an older cache: trust it from now on
        expected = {}
        for name in present:
            expected[name] = _file_digest(where / name)
        with contextlib.suppress(OSError):  # a read-only cache: check against these anyway
            _write_json(where / CHECKSUMS, expected)
    for name in sorted(set(present) | set(expected)):
        path = where / name
        if name not in present or name not in expected:
            why = "is missing" if name not in present else f"is not listed in {CHECKSUMS}"
            raise DatasetDamaged(f"{path} {why}; {_rebuild(where)}")
        size = _stamp(path)[1]
        if size != expected[name]["size"]:
            raise DatasetDamaged(
                f"{path} has {size} bytes, not the {expected[name]['size']} written; "
                f"{_rebuild(where)}"
            )
    return expected


def _parse_npy(data: bytes) -> np.ndarray:
    """The array a .npy file's bytes hold, as a read-only view of them (np.load would copy).

    >>> buffer = io.BytesIO(); np.save(buffer, np.arange(3.0))
    >>> _parse_npy(buffer.getvalue())
    array([0., 1., 2.])
    """
    stream = io.BytesIO(data)
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
    count = math.prod(shape)
    array = np.frombuffer(data, dtype=dtype, count=count, offset=stream.tell())
    return array.reshape(shape, order="F" if fortran else "C")


def _read_checked(path: Path, expected: dict) -> bytes:
    """The file's bytes, DatasetDamaged unless they have the expected size and checksum."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DatasetDamaged(f"{path}: {e.strerror or e}; {_rebuild(path.parent)}") from None
    if _digest(data) != expected:
        raise DatasetDamaged(
            f"{path} is damaged (its checksum differs from the one written with it); "
            f"{_rebuild(path.parent)}"
        )
    return data


def _check_file(path: Path, expected: dict) -> None:
    """Check a file to be memory-mapped, unless this process did and its stamp is unchanged."""
    stamp = _stamp(path)
    if _verified.get(path) == stamp:
        return
    try:
        actual = _file_digest(path)
    except OSError as e:
        raise DatasetDamaged(f"{path}: {e.strerror or e}; {_rebuild(path.parent)}") from None
    if actual != expected:
        raise DatasetDamaged(
            f"{path} is damaged (its checksum differs from the one written with it); "
            f"{_rebuild(path.parent)}"
        )
    _verified[path] = stamp


def _stamp(path: Path) -> tuple:
    """(inode, size, mtime, ctime): any write, truncation or replacement changes it."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError as e:
        raise DatasetDamaged(f"{path}: {e.strerror or e}; {_rebuild(path.parent)}") from None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _digest(data: bytes) -> dict:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _file_digest(path: Path) -> dict:
    """:func:`_digest` of a file, read in chunks (an array file can be GBs)."""
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256")
        return {"size": os.fstat(f.fileno()).st_size, "sha256": digest.hexdigest()}


def _read_checksums(where: Path) -> dict | None:
    """The checksums written with the folder; None if it has none (an older cache)."""
    path = where / CHECKSUMS
    try:
        sums = json.loads(path.read_bytes()[:1_000_000])
        ok = isinstance(sums, dict) and all(
            isinstance(v, dict)
            and isinstance(v.get("size"), int)
            and isinstance(v.get("sha256"), str)
            for v in sums.values()
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise DatasetDamaged(f"{path} is damaged; {_rebuild(where)}")
    return {k: {"size": v["size"], "sha256": v["sha256"]} for k, v in sums.items()}


def _rebuild(where: Path) -> str:
    return f"delete {where} and run: python data.py --name {where.name}"


def write(name: str, X, y, X_test=None, y_test=None) -> None:
    """Store the arrays as float32 features and int64 labels, atomically (see module doc)."""
    arrays = {"X": X, "y": y, "X_test": X_test, "y_test": y_test}
    target = folder(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        for key, array in arrays.items():
            if array is not None:
                dtype = np.int64 if key.startswith("y") else np.float32
                _save(tmp / f"{key}.npy", np.ascontiguousarray(array, dtype=dtype))
        sums = {p.name: _file_digest(p) for p in sorted(tmp.glob("*.npy"))}
        _write_json(tmp / CHECKSUMS, sums)
        tmp.chmod(0o777 & ~_umask())  # mkdtemp's 0o700 would hide it from the lab
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.exists():
                raise
            # Another builder finished first: keep theirs, ours is dropped below.
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _save(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())  # on disk before the rename makes it visible


def _write_json(path: Path, value) -> None:
    """Write JSON atomically (temp file + rename), on disk before it is visible."""
    with atomic_file(path) as f:
        f.write(json.dumps(value, indent=1, sort_keys=True).encode())
        f.flush()
        os.fsync(f.fileno())


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
