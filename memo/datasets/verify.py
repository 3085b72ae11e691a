"""What a cached dataset must hold, and the check of its folder against it.

A dataset folder is checked against what it should be, never against itself:

- Built offline (moons*, lines, digits, mnist5k*): the sizes and SHA-256 pinned in
  ``digests.py``, which a test proves equal to a fresh build. A folder whose files differ
  is compared with a build in memory (a machine whose numpy rounds differently writes
  other bytes): the same shapes and labels, and features within a relative 1e-5, pass;
  anything else is damage.
- Made from the official downloads (mnist, cifar10, cifar100, svhn and the sets made from
  them): the digests memo recorded when it made the folder, from official files whose
  SHA-256 it checked or from a checked base; kept in ``datasets/_digests/NAME.json``,
  outside the folder. Without that record (a folder copied from elsewhere, or made by an
  older memo) the set is rebuilt in memory from its sources, if they are here, compared,
  and the record written; if they are not, it cannot be verified: a note says so, and its
  own checksums.json is all it is checked against.

So a damaged folder, its checksums.json deleted or edited to match, or another dataset's
folder in its place, is caught. Not caught: someone who also rewrites the record in
``_digests/`` of a set made from downloads (rebuild it to be sure).
"""

import math
from pathlib import Path
from typing import Callable

import numpy as np

from memo.store import paths
from memo.datasets import cache
from memo.datasets.cache import Dataset, DatasetDamaged
from memo.store.files import own_dir

RTOL = 1e-5  # features rebuilt on another machine may round differently; damage does not
CHUNK = 2**22  # elements compared at a time: a bounded temporary for GB-sized arrays


class CannotRebuild(Exception):
    """Why a dataset cannot be rebuilt here to compare with (its download is not here)."""


def read(name: str, pinned: dict | None, rebuild: Callable) -> tuple[Dataset, str | None]:
    """The cached dataset ``name`` once its files are what they must be, and a note if that
    cannot be known here (see the module doc); DatasetDamaged if they are not.

    ``pinned``: the digests a fresh build has, or None for a set made from downloads.
    ``rebuild``: () -> (X, y, X_test, y_test) built afresh, or CannotRebuild.
    """
    files = cache.read_folder(name)
    expected = pinned if pinned is not None else _record(name)
    note = None
    if files.digests != expected:
        try:
            arrays = rebuild()
        except CannotRebuild as why:
            note = _unverified(name, files, expected, str(why))
        else:
            _compare(files.arrays, arrays, cache.folder(name))
            if pinned is None:
                write_record(name, files.digests)
    return cache.accept(files), note


def record_path(name: str) -> Path:
    return paths.datasets_dir() / "_digests" / f"{name}.json"


def write_record(name: str, sums: dict) -> None:
    """Record the digests of a folder memo made (or rebuilt and compared) from its sources."""
    path = record_path(name)
    try:
        own_dir(path.parent)
        cache.write_json(path, sums)
    except OSError:  # a read-only dataset folder: checked, not recorded; checked again next time
        pass


def _record(name: str) -> dict | None:
    """The digests recorded for ``name``; None if there are none, or none readable (it is
    then rebuilt and compared, or noted as unverified)."""
    try:
        return cache.read_sums(record_path(name))
    except ValueError:
        return None


def _unverified(name: str, files: cache.Files, recorded: dict | None, why: str) -> str:
    """The note for a dataset that cannot be rebuilt here, once its files match what there
    is to check them against: the record, else its own checksums.json."""
    where = cache.folder(name)
    if recorded is not None:
        problem = _difference(where, files.digests, recorded)
        raise DatasetDamaged(
            f"{problem}, unlike the file memo made (recorded in {record_path(name)}); "
            f"{cache.rebuild_hint(where)}"
        )
    own = cache.read_checksums(name)
    if own is None:
        checked = f"not checked at all (it has no {cache.CHECKSUMS})"
    elif own != files.digests:
        problem = _difference(where, files.digests, own)
        raise DatasetDamaged(
            f"{problem}, unlike the file written with its {cache.CHECKSUMS}; "
            f"{cache.rebuild_hint(where)}"
        )
    else:
        checked = f"checked only against its own {cache.CHECKSUMS}"
    return (
        f"dataset {name!r} cannot be verified: memo has no record of making {where}, and it "
        f"cannot be rebuilt here to compare ({why}); {checked}"
    )


def _difference(where: Path, actual: dict, expected: dict) -> str:
    """How the first file that differs from its expected digest differs."""
    name = next(n for n in sorted(set(actual) | set(expected)) if actual.get(n) != expected.get(n))
    if name not in actual:
        return f"{where / name} is missing"
    if name not in expected:
        return f"{where / name} is extra"
    if actual[name]["size"] != expected[name]["size"]:
        return f"{where / name} has {actual[name]['size']} bytes"
    return f"{where / name} has another SHA-256"


def _compare(read: dict, arrays: tuple, where: Path) -> None:
    """DatasetDamaged naming the first array read that is not the rebuilt one."""
    for key, built in zip(cache.ARRAYS, arrays):
        have, path = read.get(key), where / f"{key}.npy"
        if have is None and built is None:
            continue
        if built is None or have is None:
            problem = "is extra" if built is None else "is missing"
        else:
            built = cache.stored(key, built)
            if (have.dtype, have.shape) != (built.dtype, built.shape):
                problem = f"holds {have.dtype} {have.shape}, not {built.dtype} {built.shape}"
            elif not _close(have, built):
                problem = "holds other values"
            else:
                continue
        raise DatasetDamaged(
            f"{path} {problem}, unlike what memo builds for {where.name}; "
            f"{cache.rebuild_hint(where)}"
        )


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether arrays of one shape and dtype agree: labels exactly, features to RTOL."""
    rows = max(1, CHUNK // max(1, math.prod(a.shape[1:])))
    for start in range(0, len(a), rows):
        x, y = a[start : start + rows], b[start : start + rows]
        same = np.array_equal(x, y) or (
            a.dtype.kind == "f" and np.allclose(x, y, rtol=RTOL, atol=0)
        )
        if not same:
            return False
    return True
