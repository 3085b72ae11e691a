"""No point runs twice, no single death stops a grid: claims, the lock, dying workers,
cluster runs still queued, a full disk."""

import json
import os
import resource
import signal
import subprocess
import sys
import time

import pytest

import run
from conftest import Journal, records
from memo.store import claims, journal
from memo.store.files import HOST, process_stamp
from memo.run.spec import load_spec

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def grid_spec(n, **defaults):
    return {"trial": "synthetic", "param_grid": {"x": list(range(n))}, "defaults": defaults}


def start_runner(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, os.path.join(PROJECT, "run.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_sigkill_of_run_py_alone_then_an_immediate_rerun_runs_every_point_once(write_spec, root):
    write_spec("exp", grid_spec(4, duration=2.0))
    seen = Journal(root)
    first = start_runner("--name", "exp", "--tasks", "2")
    seen.watch([first], until=2)
    first.kill()  # run.py only (the OOM killer's choice); its workers are not signalled
    first.wait()
    rerun = start_runner("--name", "exp", "--tasks", "2")
    written = seen.watch([rerun], after_s=4.0)
    out, err = rerun.communicate()
    assert rerun.returncode == 0, err
    assert sorted(len(times) for times in written.values()) == [1] * 4, (written, out, err)


def test_two_runs_without_a_lock_run_each_point_once(write_spec, root):
    write_spec("exp", grid_spec(16, duration=0.3))
    (root / "results").mkdir()
    (root / "results" / ".cache").write_text("")  # no lock can be made there
    runners = [start_runner("--name", "exp", "--tasks", "2") for _ in range(2)]
    written = Journal(root).watch(runners)
    errs = [r.communicate()[1] for r in runners]
    assert all("note: cannot lock" in err and "none runs twice" in err for err in errs), errs
    assert len(written) == 16 and all(len(t) == 1 for t in written.values()), written
    assert all(r["status"] == "ok" for r in records(root).values())


def claim(root, point, host, pid, age=0.0):
    path = claims.claim_path(root / "results" / "exp", point.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": host, "pid": pid, "started": "earlier"}))
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_a_claimed_point_is_left_to_its_runner_until_the_claim_is_stale(write_spec, root, capsys):
    write_spec("exp", grid_spec(3))
    first, second, third = load_spec("exp").points()
    dead = dead_pid()
    claim(root, first, "node7", 4242)  # another host, refreshed just now
    gone = claim(root, second, HOST, dead)  # this host, its process gone
    assert run.main(["--name", "exp"]) == 1  # the first stays pending: node7 runs it
    out, err = capsys.readouterr()
    assert "running 2 of 3 points" in out and "1 more are running in another process" in out
    assert run.main(["--name", "exp", "--dry-run"]) == 0
    assert "1 more are running in another process (node7 pid 4242" in capsys.readouterr().out
    assert "node7 pid 4242" in out and "removed 0 temp files and 1 point claims" in err
    assert set(records(root)) == {second.id, third.id} and not gone.exists()
    assert run.main(["--name", "exp", "--status"]) == 1
    assert "pending: 1 running now (node7 pid 4242), 0 not started" in capsys.readouterr().out
    claim(root, first, "node7", 4242, age=claims.STALE_S + 1)  # node7 stopped refreshing it
    assert run.main(["--name", "exp"]) == 0
    assert set(records(root)) == {first.id, second.id, third.id}


def dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


def test_a_lock_that_cannot_be_taken_is_said_at_the_start(write_spec, root, capsys, monkeypatch):
    def no_locks(fd, how):
        raise OSError(37, "No locks available")

    monkeypatch.setattr(claims.fcntl, "flock", no_locks)
    write_spec("exp", grid_spec(2))
    assert run.main(["--name", "exp"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("note: cannot lock ") and "(No locks available)" in err


def test_a_lock_replaced_by_a_link_is_refused_and_its_target_left_alone(write_spec, root, cli):
    write_spec("exp", grid_spec(2))
    victim = root / "victim.txt"
    victim.write_text("precious\n")
    lock = root / "results" / ".cache" / "exp.lock"
    lock.parent.mkdir(parents=True)
    lock.symlink_to(victim)
    result = cli("--name", "exp")
    assert result.returncode == 2 and "running" not in result.stdout
    assert result.stderr == f"error: {lock} is not a regular file; remove it and rerun\n"
    assert victim.read_text() == "precious\n" and records(root) == {}


def kill_first_worker(proc, limit=60):
    """SIGKILL the first worker process run.py starts, as soon as it is there (before it
    can run a point: it is still importing)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
            except (OSError, ValueError, IndexError):
                continue
            if ppid == proc.pid and b"loky" in cmd and b"resource_tracker" not in cmd:
                os.kill(int(pid), signal.SIGKILL)
                return
        time.sleep(0.002)
    raise AssertionError("no worker appeared")


def test_a_worker_killed_before_its_first_point_does_not_stop_the_sweep(write_spec, root):
    write_spec("exp", grid_spec(4, duration=0.2))
    proc = start_runner("--name", "exp", "--tasks", "2")
    kill_first_worker(proc)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert len(records(root)) == 4


@pytest.mark.parametrize("tasks", ["1", "2"])
def test_a_point_that_kills_its_process_is_a_record_with_any_tasks(write_spec, root, cli, tasks):
    grid = [{"x": [0, 1, 2]}, {"x": [99], "die": [True]}]
    write_spec("exp", {"trial": "synthetic", "param_grid": grid})
    result = cli("--name", "exp", "--tasks", tasks)
    assert result.returncode == 1, result.stderr
    by_x = {r["params"]["x"]: r for r in records(root).values()}
    assert [by_x[x]["status"] for x in (0, 1, 2, 99)] == ["ok", "ok", "ok", "error"]
    assert by_x[99]["error"].startswith("WorkerDied: the process running this point died")
    again = cli("--name", "exp", "--tasks", tasks)
    assert again.returncode == 1 and "running 0 of 4 points" in again.stdout


def test_the_inline_backend_runs_points_in_run_py(write_spec, root, capsys):
    write_spec("exp", grid_spec(2))
    assert run.main(["--name", "exp", "--backend", "inline"]) == 0
    assert {r["pid"] for r in records(root).values()} == {os.getpid()}
    assert run.main(["--name", "exp", "--backend", "inline", "--tasks", "2"]) == 2
    assert "the inline backend runs one point at a time" in capsys.readouterr().err


def unfinished_cluster_run(root, points, backend="slurm"):
    run_dir = root / "results" / "exp" / "_runs" / "20261130-000000-abcdef"
    run_dir.mkdir(parents=True)
    points = [{"id": p.id} for p in points]
    manifest = {"version": 1, "backend": backend, "tasks": 1, "points": points}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    (run_dir / "submitted.json").write_text(json.dumps({"job_id": "42", "submitted": "now"}))
    return run_dir


@pytest.mark.parametrize("linked", ["run folder", "manifest"])
def test_cluster_runs_are_read_without_following_links(write_spec, root, capsys, linked):
    """A run folder (or its manifest) that is a link, in a shared results tree, is not
    followed: it holds no points back and --status does not list it."""
    write_spec("exp", grid_spec(2))
    run_dir = unfinished_cluster_run(root, load_spec("exp").points())
    elsewhere = root / "elsewhere"
    if linked == "run folder":
        run_dir.rename(elsewhere)
        run_dir.symlink_to(elsewhere)
    else:
        (run_dir / "manifest.json").rename(elsewhere)
        (run_dir / "manifest.json").symlink_to(elsewhere)
    assert run.main(["--name", "exp", "--status"]) == 1
    assert "slurm job 42" not in capsys.readouterr().out
    assert run.main(["--name", "exp"]) == 0


def test_a_local_run_refuses_points_of_a_cluster_run_not_ended(
    write_spec, root, capsys, monkeypatch, tmp_path
):
    write_spec("exp", grid_spec(3))
    run_dir = unfinished_cluster_run(root, load_spec("exp").points()[1:])
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no squeue here to ask
    assert run.main(["--name", "exp"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: slurm job 42 has not ended (no answer here) and may still run 2 of these "
        "points; follow it with --status, cancel it (scancel 42), or run them here anyway "
        "with --force-local\n"
    )
    assert records(root) == {}
    (tmp_path / "bin").mkdir()
    squeue = tmp_path / "bin" / "squeue"
    squeue.write_text("#!/bin/sh\nexit 0\n")  # answers: not in the queue
    squeue.chmod(0o755)
    assert run.main(["--name", "exp"]) == 0
    assert (run_dir / "ended.json").exists() and len(records(root)) == 3


def test_force_local_runs_points_of_a_cluster_run_anyway(write_spec, root, monkeypatch, tmp_path):
    write_spec("exp", grid_spec(2))
    unfinished_cluster_run(root, load_spec("exp").points())
    monkeypatch.setenv("PATH", str(tmp_path))
    assert run.main(["--name", "exp", "--force-local"]) == 0 and len(records(root)) == 2


@pytest.mark.parametrize("tasks", ["1", "2"])
def test_a_full_disk_is_one_line_and_keeps_the_points_done(write_spec, root, cli, tasks):
    # A file size limit lets each journal segment hold two records or so and refuses the
    # next, as a disk that fills up would (EFBIG here, ENOSPC there: the same path).
    write_spec("probe", grid_spec(1))
    assert run.main(["--name", "probe"]) == 0
    (probe,) = records(root, "probe").values()
    limit = int(len(journal.encode(journal.encode_record(probe), time.time())) * 2.5)
    spec = {"trial": "synthetic", "param_grid": {"x": [0, 1, 2, 3], "fail": [False, True]}}
    write_spec("exp", spec)

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = start_runner("--name", "exp", "--tasks", tasks, preexec_fn=small_files)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: cannot write record "), err
    assert "File too large; the " in err and "make room and rerun" in err
    kept = records(root)
    assert 0 < len(kept) < 8
    for segment in (root / "results" / "exp" / "_journal").glob("*.jsonl"):
        data = segment.read_bytes()  # whole lines only: the refused one was cut off again
        assert data.endswith(b"\n") and segment.stat().st_size <= limit
        for line in data.split(b"\n")[:-1]:
            journal.decode(line, segment)
    result = cli("--name", "exp", "--tasks", tasks)  # room again: the rest runs, once
    assert result.returncode == 1 and f"running {8 - len(kept)} of 8 points" in result.stdout
    assert len(records(root)) == 8


def test_a_claim_of_a_later_process_with_the_same_pid_is_stale(write_spec, root):
    write_spec("exp", grid_spec(1))
    (point,) = load_spec("exp").points()
    path = claim(root, point, HOST, os.getpid())  # alive, but not the claimer (pid reused)
    record = json.loads(path.read_text()) | {"process": "an-earlier-boot/123"}
    path.write_text(json.dumps(record))
    assert run.main(["--name", "exp"]) == 0 and set(records(root)) == {point.id}


def test_a_fresh_claim_of_the_same_run_is_taken_over_and_another_runs_is_not(root):
    """A run starts a point again only when the process running it was lost, say a dask
    worker on another host, whose claim still looks fresh for minutes."""
    records_dir = root / "results" / "exp"
    for claimer, run_token, mine in (("ours", "run-1", True), ("theirs", "run-0", False)):
        path = claims.claim_path(records_dir, claimer)
        path.parent.mkdir(parents=True, exist_ok=True)
        lost = {"host": "node7", "pid": 4242, "started": "2026-11-30T00:00:00", "run": run_token}
        path.write_text(json.dumps(lost))
        other = claims.take(records_dir, claimer, "run-1")
        assert (other is None) == mine
        if mine:
            assert json.loads(path.read_text())["pid"] == os.getpid()
            claims.release(records_dir, claimer)
        else:
            assert (other.host, other.run) == ("node7", "run-0")


def test_claims_a_worker_takes_in_turn_share_one_file_and_hold_their_points_as_any(
    root, write_spec, monkeypatch
):
    folder = root / "results" / "exp"
    paths = [claims.claim_path(folder, p) for p in ("p1", "p2", "p3")]
    with claims.sharing():
        assert (
            claims.take(folder, "p1", "run-1") is None
            and claims.take(folder, "p2", "run-1") is None
        )
        assert os.lstat(paths[0]).st_ino == os.lstat(paths[1]).st_ino  # one file, two links
        held, stale = claims.running(folder)
        assert set(held) == {"p1", "p2"} and stale == 0 and held["p1"].pid == os.getpid()
        assert claims.take(folder, "p1", "run-2").run == "run-1"  # another run's: refused
        claims.release(folder, "p1")
        assert not paths[0].exists() and json.loads(paths[1].read_text())["run"] == "run-1"
        monkeypatch.setattr(claims, "REUSE_S", 0.0)  # the file is made anew: a start time
        assert claims.take(folder, "p3", "run-1") is None  # ... at most REUSE_S early
        assert os.lstat(paths[2]).st_ino != os.lstat(paths[1]).st_ino
    claims.release(folder, "p2")
    claims.release(folder, "p3")
    assert os.listdir(folder / claims.CLAIMS) == []  # no file of the block left
    write_spec("exp", grid_spec(40))
    assert run.main(["--name", "exp", "--tasks", "2"]) == 0  # workers share their claims'
    assert len(records(root)) == 40 and os.listdir(folder / claims.CLAIMS) == []


def test_a_process_killed_while_claiming_leaves_no_claim_that_holds_the_point(root):
    folder = root / "results" / "exp"
    claiming = (
        "import os, signal, sys; from pathlib import Path; from memo.store import claims;"
        " os.write = lambda fd, data: os.kill(os.getpid(), signal.SIGKILL);"
        " claims.take(Path(sys.argv[1]), 'p', 'run-1')"
    )
    killed = subprocess.run([sys.executable, "-c", claiming, str(folder)], cwd=PROJECT)
    assert killed.returncode == -signal.SIGKILL
    assert claims.take(folder, "p", "run-2") is None  # not held by a half-made claim
    claims.release(folder, "p")


def test_memo_makes_nothing_through_a_linked_cache_or_claims_folder(write_spec, root, cli):
    write_spec("exp", grid_spec(2))
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    (root / "results").mkdir()
    (root / "results" / ".cache").symlink_to(elsewhere)
    result = cli("--name", "exp")
    assert result.returncode == 2 and records(root) == {}
    cache = root / "results" / ".cache"
    assert result.stderr == f"error: {cache} is a link or not a folder; remove it and rerun\n"
    cache.unlink()
    (root / "results" / "exp").mkdir(exist_ok=True)
    (root / "results" / "exp" / claims.CLAIMS).symlink_to(elsewhere)
    bait = elsewhere / f".x.json.{dead_pid()}.0123abcd.tmp"  # looks like a killed writer's
    bait.write_text("")
    os.utime(bait, (0, 0))
    result = cli("--name", "exp")
    assert result.returncode == 2 and "is a link or not a folder" not in result.stderr
    assert "_running): a link or not a folder; the 0 points" in result.stderr
    assert result.stderr.endswith("fix that and rerun\n")
    assert len(result.stderr.splitlines()) == 1 and os.listdir(elsewhere) == [bait.name]


@pytest.mark.parametrize(
    ("content", "why"),
    [("null", "holds null"), ("[1, 2]", "holds a list"), ("7", "holds a number"), (None, "")],
)
def test_a_claim_file_that_is_not_a_claim_holds_nothing_and_is_noted(
    write_spec, root, capsys, content, why
):
    """Was: an AttributeError in every run, --status and --dry-run (null, a list, a number),
    whatever the file's name; a folder held its point, then left a .tmp folder for good."""
    write_spec("exp", grid_spec(2))
    first, second = load_spec("exp").points()
    folder = root / "results" / "exp" / claims.CLAIMS
    folder.mkdir(parents=True)
    if content is None:  # a folder where a claim should be, and one a killed run left aside
        (folder / f"{first.id}.json").mkdir()
        leftover = folder / f".{second.id}.json.{dead_pid()}.0123abcd.tmp"
        (leftover / "inside").mkdir(parents=True)
        os.utime(leftover, (0, 0))
        why = "not a regular file"
    else:
        for name in (first.id, "not-a-point"):
            (folder / f"{name}.json").write_text(content)
    assert run.main(["--name", "exp", "--status"]) == 1
    out, err = capsys.readouterr()
    assert err.startswith("note: ") and err.count("\n") == 1, err
    assert f"in {folder} are not claims and hold no point ({first.id}.json: {why}" in err
    assert "pending: 0 running now, 2 not started" in out
    assert run.main(["--name", "exp", "--dry-run"]) == 0
    assert run.main(["--name", "exp"]) == 0
    assert set(records(root)) == {first.id, second.id} and os.listdir(folder) == []


def future_clock(monkeypatch, ahead_s):
    """claims sees the clock ``ahead_s`` seconds later: as a run started that much later."""
    clock = type("clock", (), {"time": staticmethod(lambda: time.time() + ahead_s)})
    monkeypatch.setattr(claims, "time", clock)


def test_a_claim_dated_into_the_future_goes_stale_as_any(write_spec, root, monkeypatch):
    """Was: a claim touched to ten years ahead (touch -d '+10 years') was fresh for ten years."""
    write_spec("exp", grid_spec(1))
    (point,) = load_spec("exp").points()
    path = claim(root, point, "node7", 4242)
    ahead = time.time() + 10 * 365 * 86400
    os.utime(path, (ahead, ahead))
    assert run.main(["--name", "exp"]) == 1 and records(root) == {}  # held while young
    future_clock(monkeypatch, claims.STALE_S + 1)  # nobody refreshed it since
    assert run.main(["--name", "exp"]) == 0 and set(records(root)) == {point.id}


def test_a_claim_naming_a_live_process_of_this_host_is_not_taken_on_its_word(
    write_spec, root, monkeypatch
):
    """Was: a claim naming pid 1 of this host kept its point as long as pid 1 ran."""
    write_spec("exp", grid_spec(2))
    first, second = load_spec("exp").points()
    claim(root, first, HOST, 1)  # no process stamp: not the claim of a memo process
    path = claim(root, second, HOST, 1)
    record = json.loads(path.read_text()) | {"process": process_stamp(1)}  # stamp copied
    path.write_text(json.dumps(record))
    assert run.main(["--name", "exp"]) == 1 and set(records(root)) == {first.id}
    future_clock(monkeypatch, claims.STALE_S + 1)  # pid 1 never refreshed it
    assert run.main(["--name", "exp"]) == 0 and set(records(root)) == {first.id, second.id}
