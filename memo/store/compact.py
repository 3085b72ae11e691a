"""Compaction: the journal and legacy record files folded into records.parquet.

It runs at the start and the end of a run (which holds the experiment's lock) and on
``run.py --compact``; one process at a time compacts an experiment (the claim ``_compact``
in ``_running/``, memo/store/claims.py, which holds across hosts too). It reads every
record (a fresh View), writes records.parquet anew (memo/store/parquet.py: a temp file,
fsync, rename), and only then removes what it merged: legacy record files unchanged since
they were read, and segments that did not grow since and are not being written to
(memo/store/journal.py: a writer that finds its segment gone starts a new one). A segment
that stays says in the new file how far it was merged.

A kill at any moment leaves the old records.parquet with everything beside it, or the new
one with some merged files not yet removed: the next compaction reads those again, and
the dedup rule (memo/store/columns.py) keeps one record a point. Damaged files (a
records.parquet that fails its checks, a segment with damaged lines, a legacy file that is
not a record) are moved to ``_damaged/`` with a note, never deleted.
"""

import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from memo.store import claims, journal, parquet
from memo.store.checks import is_record
from memo.store.files import own_dir
from memo.store.view import View, stamp

COMPACTING = "_compact"  # its claim's name in _running/: no point has an id like it
DAMAGED = "_damaged"


@dataclass
class Compacted:
    records: int  # rows of records.parquet now
    merged: int  # segments and legacy files merged and removed
    moved: list  # damaged files moved to _damaged/, as moved there


def compact(folder: Path, force: bool = False) -> Compacted | None:
    """Fold the journal and legacy files of records folder ``folder`` into records.parquet;
    None if another process compacts it now. Nothing is claimed or written when there is
    nothing to fold or remove (no segment, no legacy file, records.parquet whole), unless
    ``force``. OSError if the disk refuses (what was there stays as it was)."""
    folder = Path(folder)
    if not folder.is_dir():
        return Compacted(0, 0, [])
    if not (force or waiting(folder)):
        seen, work = survey(folder)  # records.parquet alone: is it whole?
        if not any(work):
            return Compacted(len(seen.table) if seen.table else 0, 0, [])
    if claims.take(folder, COMPACTING) is not None:
        return None
    try:
        return fold(folder, *survey(folder), force)
    finally:
        claims.release(folder, COMPACTING)


def waiting(folder: Path) -> bool:
    """Whether a journal segment or a legacy record file is there (one listing each)."""
    with contextlib.suppress(OSError):
        if any(n.endswith(journal.SUFFIX) for n in os.listdir(folder / journal.JOURNAL)):
            return True
    return any(is_record(name) for name in os.listdir(folder))


def survey(folder: Path) -> tuple:
    """(View of records.parquet's index and the rest, (why records.parquet must go, the
    segments, the legacy files to fold, whether a segment holds a record not merged))."""
    seen = View(folder)
    seen.refresh()  # records.parquet's index only: all of it only if something is new
    legacy = {n: g for n, (_, g) in (seen.legacy or {}).items() if g not in ("misnamed", "odd")}
    grown = any(segment.best for segment in seen.segments.values())
    return seen, (seen.damaged, set(seen.segments), legacy, grown)


def fold(folder: Path, seen: View, work: tuple, force: bool = False) -> Compacted:
    """Write records.parquet anew if anything is new, then remove what it holds."""
    damaged, _, legacy, grown = work
    moved = []
    if force or damaged or legacy or grown:
        columns = seen.columns()
        if damaged and seen.stamp is not None:
            moved.append(set_aside(folder / parquet.FILE, folder))
        offsets = {n: s.end for n, s in seen.segments.items()}
        parquet.write(folder / parquet.FILE, columns, offsets)
        rows = len(columns)
    else:  # only segments merged already: nothing to write
        rows = len(seen.table) if seen.table else 0
    removed = retire(folder, seen, moved)
    for name, got in legacy.items():
        path = folder / name
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if (info.st_ctime_ns, info.st_size, info.st_ino) != seen.legacy[name][0]:
            continue  # changed since it was read
        if isinstance(got, tuple):
            path.unlink()
            removed += 1
        else:  # a regular file that is not a record
            moved.append(set_aside(path, folder))
    parquet.sync_dir(folder)
    for where in moved:
        print(f"note: moved the damaged file {where.name} to {where.parent}", file=sys.stderr)
    return Compacted(rows, removed, moved)


def retire(folder: Path, seen: View, moved: list) -> int:
    """Remove the segments merged whole (those with damaged lines go to _damaged/); a
    segment being written to, or grown since it was read, stays. How many were removed."""
    removed = 0
    for name, segment in seen.segments.items():
        path = folder / journal.JOURNAL / name
        aside = aside_path(path, folder) if segment.damaged else None
        done = journal.retire(path, segment.inode, segment.size, aside)
        if done is None and journal.writer_gone(path):  # no locks here
            now = stamp(path)
            if now is not None and (now[0], now[1]) == (segment.inode, segment.size):
                if aside:
                    os.rename(path, aside)
                else:
                    path.unlink()
                done = True
        if done:
            removed += 1
            if aside:
                moved.append(aside)
    return removed


def aside_path(path: Path, folder: Path) -> Path:
    """Where a damaged file goes: ``folder/_damaged/``, its name stamped with the time."""
    return own_dir(folder / DAMAGED) / f"{time.strftime('%Y%m%d-%H%M%S')}-{path.name}"


def set_aside(path: Path, folder: Path) -> Path:
    """Move a damaged file into ``folder/_damaged/``."""
    place = aside_path(path, folder)
    os.rename(path, place)
    return place
