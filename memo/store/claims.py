"""Who is running what: the lock of a run.py, a claim per running point, cluster runs.

- The lock ``results/.cache/NAME.lock`` keeps a second run.py of the experiment on this
  machine from starting. Where it cannot be taken (a read-only ``.cache``, a file system
  without locks, two hosts not sharing locks) run.py says so and goes on.
- A claim ``results/NAME/_running/<id>.json`` (host, pid, start time) exists while a
  process runs the point, in whatever backend. It is written whole to a temp file and
  hard-linked into place (``link`` fails if the claim exists, on NFS too), so only one
  process can make it and none sees it empty (a worker running quick points in turn links
  them to one such file, made anew each second: :func:`sharing`, a link a point, not a new
  file); a second runner skips a point whose claim is
  fresh. A claim is fresh while its holder refreshes it (every :data:`HEARTBEAT_S`; not
  refreshed for :data:`STALE_S`, it is stale) and, on this host, while the process it
  names runs (its pid and process stamp: start time and boot). Its age counts from the
  older of its mtime and ctime: the kernel sets the ctime to its own clock at every
  change, so an mtime set into the future (``touch -d``) cannot keep a claim fresh, nor
  can a pid the claim names without the stamp of that process. Stale claims are taken
  over or removed. A claim made in the same run (its token, memo.run.worker.Job.run) is
  taken over too: a run starts a point again only after the process running it was lost
  (a dask worker on another host, an array task the scheduler requeued), so that claim is
  a dead one's.
- A file there that is not a claim (a JSON value other than a claim's object, a folder, a
  link, a FIFO) holds no point: it is named in a note and removed by the next run.
"""

import contextlib
import errno
import fcntl
import json
import os
import stat
import sys
import threading
import time
import typing
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from time import monotonic  # a shared claim file's age: a clock that never goes back

from memo.store.files import HOST, NOFOLLOW, NotRegular, open_regular, pid_alive, process_stamp
from memo.store.files import own_dir, read_regular, remove, temp_path

CLAIMS = "_running"  # "_": not a record name
STALE_S = 600.0
HEARTBEAT_S = 60.0
CAP = 1 << 16  # bytes of a claim file read at most
_held: dict = {}  # claim path -> inode, of the claims this process holds
_keeper: dict = {}  # pid -> its heartbeat thread, once started
_stamp: dict = {}  # pid -> its process_stamp, once read
_dirs: set = set()  # claim folders checked to be folders, not links
_shared: dict = {}  # pid -> the Shared file its claims link to while sharing, or None
REUSE_S = 1.0  # seconds a shared claim file is linked for new claims
CLAIM = "claim"  # the name a shared claim file's temp name is made from


class Shared(typing.NamedTuple):
    """The claim file a process links its claims to while :func:`sharing`."""

    path: Path
    inode: int
    folder: Path  # the claims folder it is in
    run: str | None  # the run it claims for
    made: float  # monotonic seconds


@dataclass(frozen=True)
class Holder:
    """Whoever holds a claim, as its file says."""

    host: str
    pid: int
    started: str
    age: float  # seconds since the claim was made or last refreshed (see holder)
    process: str | None = None  # memo.store.files.process_stamp of the pid when it claimed
    run: str | None = None  # the token of the run that claimed it (memo.run.worker.Job.run)
    bad: str | None = None  # why the file is not a claim (it then holds nothing)

    def fresh(self) -> bool:
        """Refreshed within STALE_S, and on this host its very process still runs: the pid
        alone may be a later process's, or any live one the file names."""
        if self.bad or not self.age < STALE_S:
            return False
        if self.host != HOST:
            return True
        if not pid_alive(self.pid):
            return False
        now = process_stamp(self.pid)
        return now is None or now == self.process  # None: no /proc here to tell

    def __str__(self) -> str:
        return f"{self.host} pid {self.pid} since {self.started}"


def claim_path(records: Path, point_id: str) -> Path:
    return Path(records) / CLAIMS / f"{point_id}.json"


def holder(path: Path) -> tuple | None:
    """(Holder, inode) of the claim file ``path``; None if there is none. A claim that
    cannot be read yet (empty while its maker writes it, cut short) counts as another
    host's, fresh while young; one that is not a claim is a Holder with ``bad`` set."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    # The older of the two: an mtime set ahead (touch -d) leaves the ctime at that change.
    age = time.time() - min(info.st_mtime, info.st_ctime)
    unknown = Holder("?", 0, "?", age)
    try:
        data = json.loads(read_regular(path, CAP))
    except NotRegular as e:
        return replace(unknown, bad=e.strerror), info.st_ino
    except OSError as e:
        if e.errno == errno.ELOOP:
            return replace(unknown, bad="a link"), info.st_ino
        return unknown, info.st_ino
    except ValueError:
        return unknown, info.st_ino
    except RecursionError:  # nested too deep for the parser: no claim is
        return replace(unknown, bad="not a claim"), info.st_ino
    why = not_a_claim(data)
    if why:
        return replace(unknown, bad=why), info.st_ino
    process, run = data.get("process"), data.get("run")
    found = Holder(
        data["host"],
        data["pid"],
        str(data.get("started")),
        age,
        str(process) if process else None,
        str(run) if run else None,
    )
    return found, info.st_ino


def not_a_claim(data) -> str | None:
    """Why the JSON value ``data`` is not a claim as take writes it, or None."""
    if not isinstance(data, dict):
        kinds = {type(None): "null", list: "a list", str: "a string", bool: "true or false"}
        return f"holds {kinds.get(type(data), 'a number')}"
    if type(data.get("host")) is not str or type(data.get("pid")) is not int:
        return "no host name and pid"
    return None


def take(records: Path, point_id: str, run: str | None = None) -> Holder | None:
    """Claim the point for this process in run ``run``; None once claimed, or the fresh
    claim's Holder if another run's process runs it. OSError if the claim cannot be written."""
    path = claim_path(records, point_id)
    if path.parent not in _dirs:  # checked once per process
        _dirs.add(own_dir(path.parent))
    found = None
    whole, inode = _claim_file(path, run)  # the claim is linked into place whole: a process
    try:  # killed meanwhile leaves no empty claim (another host's, it would seem, for STALE_S)
        for _ in range(3):
            try:
                os.link(whole, path)  # atomic, also on NFS; EEXIST if claimed
            except FileExistsError:
                found = holder(path)
                if found is None:  # released in between
                    continue
                if found[0].fresh() and not (run and found[0].run == run):
                    return found[0]
                remove_stale(path, found[1])
                continue
            _held[path] = inode
            heartbeat()
            return None
    finally:
        if os.getpid() not in _shared:
            whole.unlink(missing_ok=True)
    return found[0] if found else Holder("?", 0, "?", 0.0)


def _claim_file(path: Path, run: str | None) -> tuple:
    """(a temp file beside the claim ``path`` holding this process's claim in run ``run``,
    its inode): a new one; while :func:`sharing`, the block's, made anew for another run
    or folder and after REUSE_S."""
    pid, now = os.getpid(), monotonic()
    shared = _shared.get(pid)
    if shared and (shared.folder, shared.run) == (path.parent, run) and now - shared.made < REUSE_S:
        return shared.path, shared.inode
    mine = {"host": HOST, "pid": pid, "started": now_iso(), "process": _process(), "run": run}
    whole = temp_path(path.parent / CLAIM if pid in _shared else path)
    try:
        fd = os.open(whole, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o666)
    except FileNotFoundError:  # the folder was removed since it was checked (a user's rm)
        own_dir(path.parent)
        fd = os.open(whole, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o666)
    try:
        os.write(fd, json.dumps(mine).encode())
        inode = os.fstat(fd).st_ino
    finally:
        os.close(fd)
    if pid in _shared:
        if shared:  # the claims linked to it keep it; its name goes
            shared.path.unlink(missing_ok=True)
        _shared[pid] = Shared(whole, inode, path.parent, run, now)
    return whole, inode


@contextlib.contextmanager
def sharing():
    """Within the block, the claims this process takes are hard links to one file (made
    anew at most every REUSE_S: their start time is at most that early), so that a claim
    costs a link, not a file of its own; the file's name goes when the block ends. For the
    quick points a worker runs one after another."""
    pid = os.getpid()
    _shared[pid] = None
    try:
        yield
    finally:
        shared = _shared.pop(pid, None)
        if shared:
            shared.path.unlink(missing_ok=True)


def _process() -> str | None:
    """This process's process_stamp, read once (per pid: a forked child has its own)."""
    pid = os.getpid()
    if pid not in _stamp:
        _stamp[pid] = process_stamp(pid)
    return _stamp[pid]


def remove_stale(path: Path, inode: int) -> None:
    """Remove the stale claim ``path`` (inode ``inode``), a folder too; never a fresh one
    made meanwhile: it is renamed aside first, and put back if it is not the stale one."""
    aside = temp_path(path)
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    try:
        if os.lstat(aside).st_ino != inode:
            with contextlib.suppress(OSError):
                os.link(aside, path)
    finally:
        remove(aside)


def release(records: Path, point_id: str) -> None:
    """Remove this process's claim of the point (not one another process made since)."""
    path = claim_path(records, point_id)
    inode = _held.pop(path, None)
    with contextlib.suppress(OSError):
        if inode is not None and os.lstat(path).st_ino == inode:
            os.unlink(path)


def heartbeat() -> None:
    """Start, once per process, the thread that refreshes this process's claims so that other
    hosts see them fresh."""
    if os.getpid() in _keeper:  # a forked child has no thread of its parent's
        return

    def refresh():
        while True:
            time.sleep(HEARTBEAT_S)
            for path in list(_held):
                with contextlib.suppress(OSError):
                    os.utime(path, follow_symlinks=False)

    _keeper[os.getpid()] = threading.Thread(target=refresh, name="memo-claims", daemon=True)
    _keeper[os.getpid()].start()


def running(records: Path, clean: bool = False) -> tuple:
    """({point id: Holder} of the fresh claims, number of stale claims); with ``clean`` the
    stale ones are removed (files that are not claims too), else those are named in a note."""
    fresh, stale, bad = {}, 0, []
    folder = Path(records) / CLAIMS
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):  # a link: not ours
            return fresh, stale
        names = sorted(n for n in os.listdir(folder) if n.endswith(".json"))
    except OSError:
        return fresh, stale
    for name in names:
        found = holder(folder / name)
        if found is None:
            continue
        if found[0].fresh():
            fresh[name[: -len(".json")]] = found[0]
            continue
        stale += 1
        if found[0].bad:
            bad.append(f"{name}: {found[0].bad}")
        if clean:
            with contextlib.suppress(OSError):
                remove_stale(folder / name, found[1])
    if bad and not clean:
        shown = "; ".join(bad[:3]) + ("; ..." if len(bad) > 3 else "")
        print(
            f"note: {len(bad)} files in {folder} are not claims and hold no point ({shown});"
            f" a run removes them",
            file=sys.stderr,
        )
    return fresh, stale


def lock(store, held: contextlib.ExitStack) -> tuple:
    """Lock the experiment for this run.py until ``held`` closes: (error, note). The error
    says why not (another run.py holds it, the lock is not a regular file); the note, that
    no lock could be taken here at all."""
    path = store.lock_path
    try:
        own_dir(path.parent)
        fd = open_regular(path, os.O_RDWR | os.O_CREAT)
    except NotRegular as e:  # the lock, or the folder it is in
        return f"{e.filename} is {e.strerror}; remove it and rerun", None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EISDIR):
            return f"{path} is not a regular file; remove it and rerun", None
        return None, unlocked_note(store, e)
    held.callback(os.close, fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        return (
            f"another run.py is running {store.experiment} (pid {pid});"
            " wait for it, or follow it with --status"
        ), None
    except OSError as e:
        return None, unlocked_note(store, e)
    with contextlib.suppress(OSError):  # the pid is for the message above only
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    return None, None


def unlocked_note(store, error: OSError) -> str:
    return (
        f"note: cannot lock {store.lock_path} ({error.strerror or error}): a second run.py of "
        f"{store.experiment} would not be refused, but points are claimed while they run, "
        f"so none runs twice"
    )


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
