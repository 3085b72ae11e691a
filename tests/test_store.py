"""The results store: what is read again and when, legacy record files, reserved metric
names, odd files, the table written while records arrive."""

import json
import os
import shutil
import subprocess
import sys
import time
import types

import pandas as pd
import pytest

import run
from conftest import legacy, records
from memo.run.spec import load_spec
from memo.run.worker import Job, make_record, run_point
from memo.store import journal, parquet
from memo.store import records as store_module
from memo.store import view as view_module
from memo.store.records import BadRecord, Store, load_results


def grid(n=3):
    return {"trial": "synthetic", "param_grid": {"x": list(range(n))}}


def ran(write_spec, n=3) -> Store:
    """An experiment "exp" of n synthetic points, run; its store."""
    write_spec("exp", grid(n))
    assert run.main(["--name", "exp"]) == 0
    return Store("exp")


def count_reads(monkeypatch) -> list:
    """What the store reads from now on: ("parquet", path) and ("segment", start)."""
    reads = []
    read, segment = parquet.read, journal.read_segment

    def reading(path, *args):
        reads.append(("parquet", path))
        return read(path, *args)

    def reading_segment(fd, start, size, inode):
        reads.append(("segment", start))
        return segment(fd, start, size, inode)

    monkeypatch.setattr(view_module.parquet, "read", reading)
    monkeypatch.setattr(view_module.journal, "read_segment", reading_segment)
    return reads


def test_only_what_changed_is_read_again_and_fresh_reads_all(write_spec, root, monkeypatch):
    store = ran(write_spec)
    reads = count_reads(monkeypatch)
    assert len(store.rows()) == 3 and reads == []
    assert len(store.rows(fresh=True)) == 3 and [r[0] for r in reads] == ["parquet"]
    write_spec("exp", grid(4))
    *_, last = load_spec("exp").points()
    reads.clear()
    run_point(Job("exp", "synthetic", str(root / "results"), None, 1, {}), last)
    assert len(store.rows()) == 4 and reads and all(r == ("segment", 0) for r in reads)
    reads.clear()
    assert len(store.rows()) == 4 and reads == []


def test_legacy_records_edited_in_place_are_seen_and_a_damaged_one_reruns(root, capsys):
    truth = legacy(root)
    point_id = next(i for i, r in truth.items() if r["status"] == "ok" and r["metrics"]["value"])
    path = root / "results" / "exp" / f"{point_id}.json"
    text = path.read_text()
    value = truth[point_id]["metrics"]["value"]
    old = 1_000_000_000
    assert Store("exp").rows().status()[point_id] == "ok"
    # A restored backup: same inode, same size, the backup's mtime; only its ctime is new.
    time.sleep(0.05)  # past the file system's timestamp tick
    stat = path.stat()
    edited = text.replace(f'"value": {value}', '"value": 7.0')
    assert edited != text and len(edited) == len(text)
    with open(path, "r+") as handle:
        handle.write(edited)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.utime(path.parent, (old, old))
    assert run.main(["--name", "exp", "--collect"]) == 1  # 4 failed points
    table = pd.read_csv(Store("exp").table_path)
    assert table.set_index("id")["value"][point_id] == 7.0
    os.truncate(path, 50)  # damaged in place
    capsys.readouterr()
    run.main(["--name", "exp", "--status"])
    out = capsys.readouterr().out
    assert "1 pending" in out and f"1 unreadable record files (pending): {path.name}" in out
    assert run.main(["--name", "exp"]) == 1  # the rerun does the damaged point again
    assert records(root)[point_id]["status"] == "ok" and not path.exists()
    (kept,) = (root / "results" / "exp" / "_damaged").glob(f"*{path.name}")
    assert kept.read_text() == edited[:50]
    assert f"note: moved the damaged file {kept.name}" in capsys.readouterr().err


def run_trial(root, write_spec, monkeypatch, metrics):
    """Run the first point of "exp" with a trial returning ``metrics``; its record."""
    write_spec("exp", grid(1))
    (point,) = load_spec("exp").points()
    trial = types.SimpleNamespace(trial=lambda params: metrics)
    monkeypatch.setattr("memo.run.worker.trial_module", lambda name: trial)
    job = Job("exp", "synthetic", str(root / "results"), None, 1, {})
    run_point(job, point)
    return Store("exp").read(point.id)


@pytest.mark.parametrize(
    "metric, value",
    [("error", 0.25), ("wall_time", 1), ("status", "converged"), ("id", 7), ("_index", 0)],
)
def test_a_metric_with_a_reserved_name_is_an_error(
    root, write_spec, monkeypatch, capsys, metric, value
):
    record = run_trial(root, write_spec, monkeypatch, {metric: value, "score": 1.0})
    assert record["status"] == "error"
    assert f"metric {metric!r} is reserved" in record["error"]
    assert run.main(["--name", "exp", "--collect"]) == 1
    table = pd.read_csv(Store("exp").table_path)
    assert list(table["status"]) == ["error"] and list(table["id"]) == [record["id"]]
    assert table["error"][0].startswith(f"TrialError: metric {metric!r} is reserved")


@pytest.mark.parametrize("folded", [False, True])
def test_reserved_metric_names_of_older_records_leave_the_table_alone(write_spec, root, folded):
    write_spec("exp", grid(1))
    (point,) = load_spec("exp").points()
    job = Job("exp", "synthetic", str(root / "results"), None, 1, {})
    metrics = {"value": 1.0, "status": "converged", "error": 0.25, "id": 7}  # before the check
    record = make_record(job, point, "ok", metrics, None)
    (root / "results" / "exp").mkdir(parents=True)
    (root / "results" / "exp" / f"{point.id}.json").write_text(json.dumps(record))
    if folded:
        assert Store("exp").compact().records == 1
        assert Store("exp").read(point.id)["metrics"] == metrics
    assert Store("exp").rows().status() == {point.id: "ok"}
    assert run.main(["--name", "exp", "--collect"]) == 0
    table = pd.read_csv(Store("exp").table_path)
    assert list(table["id"]) == [point.id] and table["value"][0] == 1.0 and "error" not in table


DAMAGE = {
    "status OK": lambda r: r | {"status": "OK"},
    "status null": lambda r: r | {"status": None},
    "keys missing": lambda r: {"id": r["id"]},
    "params not a dict": lambda r: r | {"params": [1]},
    "error not text": lambda r: r | {"error": 3},
    "a list": lambda r: [r],
    "not JSON": lambda r: '{"id": "trunc',
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_legacy_file_that_is_not_a_valid_record_is_unreadable_everywhere(root, capsys, damage):
    truth = legacy(root)
    point_id = next(i for i, r in truth.items() if r["status"] == "ok")
    path = root / "results" / "exp" / f"{point_id}.json"
    bad = DAMAGE[damage](truth[point_id])
    path.write_text(bad if isinstance(bad, str) else json.dumps(bad))
    with pytest.raises(BadRecord):
        Store("exp").read(point_id)
    assert len(load_results("exp")) == len(load_results("exp", curves=False)) == 3
    assert len(load_results("exp", status=None)) == 7
    capsys.readouterr()
    run.main(["--name", "exp", "--status"])
    out = capsys.readouterr().out
    assert "3 ok, 4 error, 0 timeout, 1 pending" in out
    assert f"1 unreadable record files (pending): {path.name}" in out
    assert run.main(["--name", "exp"]) == 1  # the 4 failed points stay failed
    assert records(root)[point_id]["status"] == "ok"


def test_a_copy_of_a_record_is_ignored(write_spec, root, capsys):
    store = ran(write_spec)
    record = next(iter(records(root).values()))
    copy = store.dir / f"{record['id']}.orig.json"
    copy.write_text(json.dumps(record))
    assert run.main(["--name", "exp", "--collect"]) == 0
    table = pd.read_csv(store.table_path)
    assert len(table) == 3 and table["id"].is_unique
    assert len(load_results("exp")) == len(load_results("exp", curves=False)) == 3
    capsys.readouterr()
    assert run.main(["--name", "exp", "--status"]) == 0
    out = capsys.readouterr().out
    assert "3 ok, 0 error, 0 timeout, 0 pending" in out and "unreadable" not in out
    assert f"1 files hold a record of another id (ignored): {copy.name}" in out
    assert run.main(["--name", "exp", "--compact"]) == 0 and copy.exists()  # not memo's


def test_records_are_read_where_the_lock_cannot_be_made(write_spec, root, capsys):
    ran(write_spec)
    cache = root / "results" / ".cache"
    shutil.rmtree(cache)
    cache.write_text("not a folder")  # as a read-only results folder would, even for root
    capsys.readouterr()
    assert run.main(["--name", "exp", "--status"]) == 0
    assert "exp: 3 points: 3 ok" in capsys.readouterr().out
    assert run.main(["--name", "exp", "--dry-run"]) == 0
    assert "would run 0 points now" in capsys.readouterr().out
    assert run.main(["--name", "exp", "--collect"]) == 0
    assert len(load_results("exp", curves=False)) == 3
    assert cache.read_text() == "not a folder"


def test_a_record_written_while_the_table_is_written_is_in_the_table(write_spec, root, monkeypatch):
    store = ran(write_spec)
    late = next(iter(records(root).values()))
    late["id"], late["_index"] = "f" * 16, 3
    write_spec("exp", grid(3))
    points = load_spec("exp").points()
    points.append(type(points[0])(late["id"], 3, late["params"], late["seed"]))
    frame = store_module.Rows.frame
    calls = []

    def racing(rows, curves=False):  # another process records a point meanwhile
        calls.append(1)
        if len(calls) == 1:
            store.write(late)
        return frame(rows, curves)

    monkeypatch.setattr(store_module.Rows, "frame", racing)
    table, _ = store.write_table(points, fresh=True)
    assert list(pd.read_csv(store.table_path)["id"]) == [p.id for p in points]
    assert len(calls) == 2


def test_odd_legacy_files_in_a_records_folder_neither_hang_nor_crash(root, cli):
    truth = legacy(root)
    fifo, zero, folder, *_ = (root / "results" / "exp" / f"{i}.json" for i in sorted(truth))
    for path in (fifo, zero, folder):
        path.unlink()
    os.mkfifo(fifo)
    zero.symlink_to("/dev/zero")
    folder.mkdir()
    (folder / "x").write_text("")
    status = cli("--name", "exp", "--status", timeout=60)
    assert status.returncode == 1 and "0 timeout, 3 pending" in status.stdout
    assert "3 unreadable record files (pending)" in status.stdout and status.stderr == ""
    result = cli("--name", "exp", timeout=60)  # never opened, never replaced: left alone
    assert result.returncode == 1 and "running 3 of 8 points" in result.stdout, result.stderr
    assert len(records(root)) == 8 and zero.is_symlink() and folder.is_dir()
    assert "unreadable" not in cli("--name", "exp", "--status", timeout=60).stdout


def test_temp_files_of_killed_writers_are_removed_on_the_next_run(write_spec, root, capsys):
    store = ran(write_spec, 2)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    old = time.time() - 3600
    left = store.dir / f".records.parquet.{dead}.0123abcd.tmp"  # a killed compaction's
    live = store.dir / f".records.parquet.{os.getpid()}.0123abcd.tmp"  # still writing
    young = store.dir / f".{'c' * 16}.json.{dead}.0123abcd.tmp"  # too new to tell
    for path in (left, live, young):
        path.write_text("{")
    os.utime(left, (old, old))
    os.utime(live, (old, old))
    write_spec("exp", grid(3))
    capsys.readouterr()
    assert run.main(["--name", "exp"]) == 0
    assert not left.exists() and live.exists() and young.exists()
    assert "note: removed 1 temp files and 0 point claims left by killed processes" in (
        capsys.readouterr().err
    )


def test_a_records_parquet_re_sealed_with_any_byte_changed_never_crashes_a_reader(write_spec, root):
    """Who can write results/ can also fix up the checksum (out of scope: it is then read as
    written); a reader still never crashes on it."""
    store = ran(write_spec, 3)
    data = store.parquet_path.read_bytes()
    at = data.rindex(parquet.MARK) + len(parquet.MARK)
    data = data[:at] + parquet.ZEROS + data[at + 64 :]  # as written, before sealing
    tail = range(len(data) - 16, len(data))  # the footer's length and the magic among them
    for i in sorted({*range(0, len(data), max(1, len(data) // 80)), *tail}):
        forged = data[:i] + bytes([data[i] ^ 0x41]) + data[i + 1 :]
        store.parquet_path.write_bytes(forged)
        fd = os.open(store.parquet_path, os.O_RDWR)
        try:
            parquet.seal(fd)
        except parquet.Damaged:  # the checksum's own mark was hit
            continue
        finally:
            os.close(fd)
        try:
            columns, _ = parquet.read(store.parquet_path)
            columns.complete()
        except parquet.Damaged:
            continue
        assert all(type(i) is str for i in columns.table["own:id"].to_pylist())


def test_rows_read_again_in_one_process_drop_records_whose_files_are_gone(write_spec, root):
    write_spec("exp", grid(3))
    job = Job("exp", "synthetic", str(root / "results"), None, 1, {})
    points = load_spec("exp").points()
    run_point(job, points[0])
    assert len(Store("exp").rows()) == 1
    for point in points[1:]:
        run_point(job, point)
    assert len(Store("exp").rows()) == 3  # the new ones read on top of the rows before
    shutil.rmtree(root / "results" / "exp")  # as a user starting over
    assert len(Store("exp").rows()) == 0
    run_point(job, points[0])
    assert list(Store("exp").rows().status()) == [points[0].id]
