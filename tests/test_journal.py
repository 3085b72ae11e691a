"""The journal and records.parquet (issue 20): every point recorded exactly once whatever is
killed when, damage found and never read as numbers, memo's old one-file-per-point folders
folded in with nothing lost, and records.parquet readable with pandas."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

import run
from conftest import GOLDEN_LEGACY as GOLDEN
from conftest import PROJECT, Journal, legacy, records, start_runner
from memo.backends.run_files import write_manifest
from memo.run.spec import load_spec
from memo.run.worker import Job, make_record, provenance
from memo.store import parquet
from memo.store.records import Store, load_results


def grid(n, **defaults):
    return {"trial": "synthetic", "param_grid": {"x": list(range(n))}, "defaults": defaults}


def task_run(root, points, duration=None, wait=True):
    """Run ``points`` as array task 1 of 1 (memo/backends/task.py) in a process of its own,
    which writes a journal segment and compacts nothing, as on a cluster node."""
    job = Job("exp", "synthetic", str(root / "results"), None, 1, provenance("sge"))
    write_manifest(root / "manifest.json", job, points, 1, "sge")
    proc = subprocess.Popen(
        [sys.executable, "-m", "memo.backends.task", str(root / "manifest.json"), "1"],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    if wait:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    return proc


def segments(root):
    return sorted((root / "results" / "exp" / "_journal").glob("*.jsonl"))


def notes(err: str) -> list:
    return [line for line in err.splitlines() if line.startswith("note:")]


# -- memo's store before the journal -------------------------------------------------------


@pytest.mark.parametrize("how", ["run", "--compact"])
def test_a_folder_of_the_previous_version_is_read_then_folded_in_with_nothing_lost(
    root, capsys, how
):
    truth = legacy(root)
    assert run.main(["--name", "exp", "--status"]) == 1  # read as it is
    assert "exp: 8 points: 4 ok, 4 error, 0 timeout, 0 pending" in capsys.readouterr().out
    assert records(root) == truth
    assert run.main(["--name", "exp"] if how == "run" else ["--name", "exp", "--compact"]) in (
        0,
        1,
    )
    folder = root / "results" / "exp"
    assert not list(folder.glob("*.json")) and (folder / "records.parquet").is_file()
    assert records(root) == truth  # every key and value, provenance too
    assert run.main(["--name", "exp", "--collect"]) == 1
    pd.testing.assert_frame_equal(
        pd.read_csv(root / "results" / "exp.csv"), pd.read_csv(GOLDEN / "exp.csv")
    )
    capsys.readouterr()
    assert run.main(["--name", "exp", "--retry-failed"]) == 1  # the new errors replace the old
    assert "running 4 of 8 points" in capsys.readouterr().out
    after = records(root)
    assert {i: r["status"] for i, r in after.items()} == {i: r["status"] for i, r in truth.items()}
    assert all(after[i]["finished"] >= truth[i]["finished"] for i in truth)
    assert all(after[i] == truth[i] for i in truth if truth[i]["status"] == "ok")


def test_records_parquet_reads_with_pandas_as_flat_columns(root, write_spec):
    spec = {"trial": "synthetic", "param_grid": {"x": [0, 1, 2], "fail": [False, True]}}
    write_spec("exp", spec)
    assert run.main(["--name", "exp", "--tasks", "2"]) == 1
    frame = pd.read_parquet(root / "results" / "exp" / "records.parquet")
    assert list(frame.columns[:4]) == ["_index", "id", "x", "y"]
    assert {"seed", "status", "value", "curve", "wall_time", "error", "host", "git"} <= set(frame)
    assert list(frame["_index"]) == list(range(6)) and frame["id"].is_unique
    assert frame["value"].dtype == "float64" and frame["seed"].dtype == "int64"
    ok = frame[frame["status"] == "ok"]
    assert [list(c) for c in ok["curve"]] == [[0.0, 0.0], [1.0, 0.5], [2.0, 1.0]]
    failed = frame[frame["status"] == "error"]
    assert all(e.startswith("Traceback") for e in failed["error"])  # whole, in the file
    loaded = load_results("exp", status=None).set_index("id").sort_index()
    assert list(loaded["value"].dropna()) == list(
        frame.set_index("id").sort_index()["value"].dropna()
    )


# -- one record a point ---------------------------------------------------------------------


def test_one_record_a_point_ok_over_failed_the_first_ok_the_last_failure(root, write_spec):
    write_spec("exp", grid(3))
    a, b, c = load_spec("exp").points()
    job = Job("exp", "synthetic", str(root / "results"), None, 1, {})
    store = Store("exp")

    def put(point, status, value):
        record = make_record(job, point, status, {"value": value}, None if status == "ok" else "x")
        store.write(record)
        time.sleep(0.01)  # written one after the other

    for point, writes in ((a, "error ok ok error"), (b, "error timeout"), (c, "ok")):
        for i, status in enumerate(writes.split()):
            put(point, status, float(i))
    for _ in range(2):  # as written, then compacted (the segments, still live, stay)
        kept = {r["id"]: (r["status"], r["metrics"]["value"]) for r in Store("exp").records()}
        assert kept == {a.id: ("ok", 1.0), b.id: ("timeout", 1.0), c.id: ("ok", 0.0)}
        assert Store("exp").compact().records == 3
    put(a, "ok", 9.0)  # merged again with records.parquet: the dedup is the same
    assert Store("exp").compact().records == 3
    assert Store("exp").read(a.id)["metrics"]["value"] == 1.0


# -- damage ----------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["bit flip", "cut short"])
def test_a_damaged_journal_line_leaves_its_point_pending_with_one_note(
    root, write_spec, cli, damage
):
    write_spec("exp", grid(5))
    task_run(root, load_spec("exp").points())  # a cluster task: records only in its segment
    (segment,) = segments(root)
    data = segment.read_bytes()
    lines = data.split(b"\n")
    if damage == "bit flip":
        at = len(lines[0]) + 1 + len(lines[1]) // 2  # in the second line's JSON
        segment.write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :])
        said = f"note: {segment}: 1 damaged lines (checksum) not read"
    else:
        segment.write_bytes(data[: len(data) - len(lines[-2]) // 2])  # the last line, torn
        said = f"note: {segment} ends in a line cut short"
    status = cli("--name", "exp", "--status")
    assert status.returncode == 1 and "4 ok, 0 error, 0 timeout, 1 pending" in status.stdout
    assert notes(status.stderr) == [status.stderr.strip()] and said in status.stderr
    rerun = cli("--name", "exp")
    assert rerun.returncode == 0 and "running 1 of 5 points" in rerun.stdout, rerun.stderr
    assert segment not in segments(root)  # merged and removed (its writer is gone)
    damaged = list((root / "results" / "exp" / "_damaged").glob("*"))
    assert len(damaged) == (damage == "bit flip")  # kept aside, not deleted
    assert cli("--name", "exp", "--status").stderr == ""  # the note came once
    assert len(records(root)) == 5


def test_any_bit_flip_or_cut_of_records_parquet_is_found(root, write_spec):
    write_spec("exp", grid(4))
    assert run.main(["--name", "exp"]) == 0
    path = root / "results" / "exp" / "records.parquet"
    data = path.read_bytes()
    columns, _ = parquet.read(path)
    assert len(columns) == 4
    footer = len(data) - int.from_bytes(data[-8:-4], "little") - 8
    where = sorted({*range(0, len(data), max(1, len(data) // 150)), *range(footer, len(data), 7)})
    for at in where:  # the footer (schema, offsets, memo's metadata) densely
        path.write_bytes(data[:at] + bytes([data[at] ^ (1 << at % 8)]) + data[at + 1 :])
        with pytest.raises(parquet.Damaged):
            parquet.read(path)
    for size in (0, 4, len(data) // 2, len(data) - 9, len(data) - 1):
        path.write_bytes(data[:size])
        with pytest.raises(parquet.Damaged):
            parquet.read(path)


def test_a_damaged_records_parquet_leaves_its_points_pending_and_loses_nothing_else(
    root, write_spec, cli
):
    write_spec("exp", grid(6))
    first, *rest = load_spec("exp").points()
    assert run.main(["--name", "exp"]) == 0  # all six in records.parquet
    path = root / "results" / "exp" / "records.parquet"
    data = path.read_bytes()
    shutil.rmtree(root / "results" / "exp" / "_journal")
    path.write_bytes(data[:100] + bytes([data[100] ^ 8]) + data[101:])
    status = cli("--name", "exp", "--status")
    assert "0 ok, 0 error, 0 timeout, 6 pending" in status.stdout
    assert notes(status.stderr) == [
        f"note: {path} is damaged (checksum mismatch): its points are pending and run again;"
        " the next run moves it to _damaged/"
    ]
    task_run(root, [first])  # recorded in the journal meanwhile: kept through the repair
    before = records(root)[first.id]
    rerun = cli("--name", "exp")
    assert rerun.returncode == 0 and "running 5 of 6 points" in rerun.stdout, rerun.stderr
    assert "note: moved the damaged file" in rerun.stderr
    assert records(root)[first.id] == before and len(records(root)) == 6
    (kept,) = (root / "results" / "exp" / "_damaged").glob("*records.parquet")
    assert kept.read_bytes()[101:] == data[101:]


def test_a_pickle_or_links_planted_in_the_records_folder_are_never_run_or_followed(
    root, write_spec, cli
):
    import pickle

    write_spec("exp", grid(2))
    folder = root / "results" / "exp"
    marker = root / "planted-ran"
    (folder / "_journal").mkdir(parents=True)
    (folder / "records.parquet").write_bytes(pickle.dumps(Planted(marker)))
    os.mkfifo(folder / "_journal" / "fifo-1-0123abcd.jsonl")
    (folder / "_journal" / "zero-1-0123abcd.jsonl").symlink_to("/dev/zero")
    status = cli("--name", "exp", "--status", timeout=60)
    assert status.returncode == 1 and "2 pending" in status.stdout
    assert "is damaged (not a whole Parquet file" in status.stderr
    assert status.stderr.count("is not a regular file; not read") == 2
    assert cli("--name", "exp", timeout=60).returncode == 0
    assert not marker.exists() and len(records(root)) == 2


class Planted:
    """Unpickled, it creates the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# -- kill -9 at any moment --------------------------------------------------------------------

KILLER = """
import os, signal, sys
from pathlib import Path
from memo.store import compact, parquet
from memo.store.records import Store

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

where, calls = sys.argv[1], []
if where == "writing":
    parquet.seal = die  # the temp file written, not sealed nor renamed
elif where == "renaming":
    replace = os.replace
    def renaming(source, target):
        if str(target).endswith("records.parquet"):
            die()
        replace(source, target)
    os.replace = renaming
elif where == "renamed":
    parquet.sync_dir = die  # records.parquet new, nothing merged removed yet
else:  # removing: the first merged file removed, then killed
    unlink = os.unlink
    def once(path, *args, **kwargs):
        if not Path(path).name.startswith(".") and "_running" not in str(path):
            calls.append(path)  # a merged file, not a temp file or claim
        if len(calls) > 1:
            die()
        unlink(path, *args, **kwargs)
    os.unlink = once
Store("exp").compact()
"""


@pytest.mark.parametrize("where", ["writing", "renaming", "renamed", "removing"])
def test_kill_9_during_compaction_loses_nothing_and_duplicates_nothing(root, cli, where):
    truth = legacy(root)  # 8 legacy files
    points = load_spec("exp").points()
    assert run.main(["--name", "exp", "--compact"]) == 0  # now in records.parquet
    write = json.loads((GOLDEN / "exp.json").read_text())
    write["param_grid"]["x"] = [0, 1, 2, 3, 4, 5]
    (root / "experiments" / "exp.json").write_text(json.dumps(write))
    new = [p for p in load_spec("exp").points() if p.id not in truth]
    task_run(root, new[:2])
    task_run(root, new[2:])  # two dead segments, 4 new points
    truth |= {i: r for i, r in records(root).items() if i not in truth}
    assert len(truth) == 12 and len(points) == 8
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, where], cwd=PROJECT, capture_output=True, text=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert records(root) == truth  # read back whole, each point once
    status = cli("--name", "exp", "--status")
    assert "12 points: 6 ok, 6 error, 0 timeout, 0 pending" in status.stdout, status.stdout
    assert cli("--name", "exp", "--compact").returncode == 0
    assert records(root) == truth and segments(root) == []
    folder = root / "results" / "exp"
    assert {p.name for p in folder.iterdir()} - {".cache"} >= {"records.parquet"}
    assert not list(folder.glob("*.json"))
    assert cli("--name", "exp").stdout.startswith("exp: running 0 of 12 points")


def test_kill_9_of_a_worker_mid_sweep_then_every_point_is_recorded_once(root, write_spec):
    write_spec("exp", grid(20, duration=0.2))
    journal = Journal(root)
    proc = start_runner("--name", "exp", "--tasks", "2")
    journal.watch([proc], until=4)
    workers = [p for p in children(proc.pid) if b"loky" in cmdline(p)]
    os.kill(next(p for p in workers if b"resource_tracker" not in cmdline(p)), signal.SIGKILL)
    written = journal.watch([proc])
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert len(written) == 20 and all(len(t) == 1 for t in written.values()), written


def children(pid: int) -> list:
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as handle:
                if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def test_a_requeued_array_task_records_each_point_of_its_share_once(root, write_spec):
    write_spec("exp", grid(8, duration=0.3))
    points = load_spec("exp").points()
    journal = Journal(root)
    first = task_run(root, points, wait=False)
    journal.watch([first], until=3)
    os.killpg(first.pid, signal.SIGKILL)  # the node died; the scheduler requeues the task
    first.wait()
    again = task_run(root, points, wait=False)
    written = journal.watch([again])
    out, err = again.communicate()
    assert again.returncode == 0, err
    assert sorted(written) == sorted(p.id for p in points), (first.communicate(), out, err)
    assert all(len(times) == 1 for times in written.values()), written


def test_collect_racing_a_run_writes_whole_tables_and_the_last_has_every_point(
    root, write_spec, cli
):
    write_spec("exp", grid(24, duration=0.15))
    journal = Journal(root)
    runner = start_runner("--name", "exp", "--tasks", "2")
    tables = 0
    while runner.poll() is None:
        result = cli("--name", "exp", "--collect")
        journal.look()
        assert result.returncode in (0, 1), result.stderr
        try:
            table = pd.read_csv(root / "results" / "exp.csv")
        except pd.errors.EmptyDataError:  # no record yet
            continue
        assert table["id"].is_unique and set(table["status"]) <= {"ok"}
        tables += 1
    assert runner.wait() == 0, runner.communicate()[1]
    written = journal.watch([runner])
    assert cli("--name", "exp", "--collect").returncode == 0
    assert len(pd.read_csv(root / "results" / "exp.csv")) == 24 and tables
    assert len(written) == 24 and all(len(t) == 1 for t in written.values()), written
