"""The Dataset record and its on-disk cache: ``datasets/<name>/{X,y,X_test,y_test}.npy``.

A dataset folder is written whole into a temporary folder beside it and then renamed
into place, so a killed build leaves no half dataset, only a hidden ``.<name>.*``
folder that is never read. If another process renamed its copy in first (two
builders on a shared NFS disk), theirs is kept and ours is dropped.
"""

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memo import paths

ARRAYS = ("X", "y", "X_test", "y_test")


class DatasetError(Exception):
    """A problem the user can fix; the message is one line (run.py/data.py print it)."""


@dataclass(frozen=True)
class Dataset:
    """Features X (float32, (N, D) or (N, H, W, C)) and int64 labels y, plus an optional test split.

    Arrays loaded from the cache are read-only memory maps: copy before writing into them.
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
    """Memory-map a cached dataset, so that joblib workers share its pages.

    A damaged folder (a file cut short, deleted or overwritten since it was written) raises
    DatasetError naming the file and how to rebuild it.
    """
    where = folder(name)
    arrays = {}
    rebuild = f"delete {where} and run: python data.py --name {name}"
    for key in ARRAYS:
        path = where / f"{key}.npy"
        if path.is_file():
            try:
                arrays[key] = np.load(path, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError, EOFError) as e:
                raise DatasetError(f"{path} is damaged ({e}); {rebuild}") from None
    for X, y in (("X", "y"), ("X_test", "y_test")):
        if (X in arrays) != (y in arrays) or (X in arrays and len(arrays[X]) != len(arrays[y])):
            shapes = {k: arrays[k].shape for k in (X, y) if k in arrays}
            raise DatasetError(f"{where} holds mismatched arrays {shapes}; {rebuild}")
    if "X" not in arrays:
        raise DatasetError(f"{where} has no X.npy and y.npy; {rebuild}")
    return Dataset(name, **arrays)


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
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp's 0o700 would hide it from the lab
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
