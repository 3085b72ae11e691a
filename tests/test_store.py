"""The results store: which files are records, the row cache, reserved metric names."""

import json
import os
import shutil
import time
import types

import pandas as pd
import pytest

import run
from memo.store import records as store_module
from memo.run.spec import load_spec
from memo.store.records import BadRecord, Store, load_results
from memo.run.worker import Job, run_point


def grid(n=3):
    return {"trial": "synthetic", "param_grid": {"x": list(range(n))}}


def ran(write_spec, n=3) -> Store:
    """An experiment "exp" of n synthetic points, run; its store."""
    write_spec("exp", grid(n))
    assert run.main(["--name", "exp"]) == 0
    return Store("exp")


def record_paths(store):
    return sorted(store.dir.glob("[0-9a-f]*.json"))


def count_reads(monkeypatch) -> list:
    """The paths memo.store.records reads records from, from now on."""
    reads = []
    read = store_module.read_record
    monkeypatch.setattr(store_module, "read_record", lambda path: reads.append(path) or read(path))
    return reads


def test_unchanged_records_are_not_read_again_and_fresh_reads_all(write_spec, root, monkeypatch):
    store = ran(write_spec)
    reads = count_reads(monkeypatch)
    assert len(store.rows()) == 3 and reads == []
    assert len(store.rows(fresh=True)) == 3 and len(reads) == 3


def test_records_changed_in_place_are_seen(write_spec, root, capsys):
    store = ran(write_spec)
    path = record_paths(store)[0]
    text = path.read_text()
    record = json.loads(text)
    old = 1_000_000_000
    os.utime(store.dir, (old, old))  # the folder's mtime says nothing changed
    assert store.rows().status()[record["id"]] == "ok"
    # A restored backup: same inode, same size, the backup's mtime; only its ctime is new.
    time.sleep(0.05)  # past the file system's timestamp tick
    stat = path.stat()
    edited = text.replace(f'"value": {record["metrics"]["value"]}', '"value": 7.0')
    assert edited != text and len(edited) == len(text)
    with open(path, "r+") as handle:
        handle.write(edited)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.utime(store.dir, (old, old))
    assert run.main(["--name", "exp", "--collect"]) == 0
    table = pd.read_csv(store.table_path)
    assert table.set_index("id")["value"][record["id"]] == 7.0
    os.truncate(path, 50)  # damaged in place
    os.utime(store.dir, (old, old))
    capsys.readouterr()
    run.main(["--name", "exp", "--status"])
    out = capsys.readouterr().out
    assert "1 pending" in out and f"1 unreadable record files (pending): {path.name}" in out
    assert run.main(["--name", "exp"]) == 0  # the rerun does the damaged point again
    assert json.loads(path.read_text())["status"] == "ok"


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


def test_reserved_metric_names_of_older_records_leave_the_table_alone(write_spec, root):
    store = ran(write_spec, 1)
    (path,) = record_paths(store)
    record = json.loads(path.read_text())
    record["metrics"].update(status="converged", error=0.25, id=7)  # written before the check
    store.write(record)
    assert store.rows().status() == {record["id"]: "ok"}
    assert run.main(["--name", "exp", "--collect"]) == 0
    table = pd.read_csv(store.table_path)
    assert list(table["id"]) == [record["id"]] and "error" not in table


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
def test_a_file_that_is_not_a_valid_record_is_unreadable_everywhere(
    write_spec, root, capsys, damage
):
    store = ran(write_spec)
    path = record_paths(store)[0]
    bad = DAMAGE[damage](json.loads(path.read_text()))
    path.write_text(bad if isinstance(bad, str) else json.dumps(bad))
    with pytest.raises(BadRecord):
        store.read(path.stem)
    assert len(load_results("exp")) == len(load_results("exp", curves=False)) == 2
    assert len(load_results("exp", status=None)) == 2
    capsys.readouterr()
    run.main(["--name", "exp", "--status"])
    out = capsys.readouterr().out
    assert "2 ok, 0 error, 0 timeout, 1 pending" in out
    assert f"1 unreadable record files (pending): {path.name}" in out
    assert run.main(["--name", "exp"]) == 0
    assert json.loads(path.read_text())["status"] == "ok"


def test_a_copy_of_a_record_is_ignored(write_spec, root, capsys):
    store = ran(write_spec)
    path = record_paths(store)[0]
    copy = path.with_name(f"{path.stem}.orig.json")
    copy.write_bytes(path.read_bytes())
    assert run.main(["--name", "exp", "--collect"]) == 0
    table = pd.read_csv(store.table_path)
    assert len(table) == 3 and table["id"].is_unique
    assert len(load_results("exp")) == len(load_results("exp", curves=False)) == 3
    capsys.readouterr()
    assert run.main(["--name", "exp", "--status"]) == 0
    out = capsys.readouterr().out
    assert "3 ok, 0 error, 0 timeout, 0 pending" in out and "unreadable" not in out
    assert f"1 files hold a record of another id (ignored): {copy.name}" in out


@pytest.mark.parametrize("blocked", ["cache folder", "cache file"])
def test_records_are_read_where_the_cache_cannot_be_written(write_spec, root, capsys, blocked):
    store = ran(write_spec)
    cache = store.cache_path.parent
    if blocked == "cache folder":  # as a read-only results folder would, even for root
        shutil.rmtree(cache)
        cache.write_text("not a folder")
    else:
        store.cache_path.unlink()
        store.cache_path.mkdir()
    capsys.readouterr()
    assert run.main(["--name", "exp", "--status"]) == 0
    assert "exp: 3 points: 3 ok" in capsys.readouterr().out
    assert run.main(["--name", "exp", "--dry-run"]) == 0
    assert "would run 0 points now" in capsys.readouterr().out
    assert run.main(["--name", "exp", "--collect"]) == 0
    assert len(load_results("exp", curves=False)) == 3
    made = {store.cache_path.name, store.lock_path.name}  # and no temp files
    assert not cache.is_dir() or set(os.listdir(cache)) <= made


class Planted:
    """Unpickled, it creates the file ``marker``: what a planted cache could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_planted_as_the_row_cache_is_never_run(write_spec, root, capsys):
    import pickle

    store = ran(write_spec)
    marker = root / "planted-ran"
    for name in ("exp.rows.pkl", store.cache_path.name):  # the old cache and the new
        (store.cache_path.parent / name).write_bytes(pickle.dumps((2, Planted(marker))))
    assert run.main(["--name", "exp", "--status"]) == 0
    assert run.main(["--name", "exp", "--dry-run"]) == 0
    assert run.main(["--name", "exp"]) == 0
    assert len(load_results("exp")) == len(load_results("exp", curves=False)) == 3
    assert not marker.exists()
    assert "exp: 3 points: 3 ok" in capsys.readouterr().out


def test_a_damaged_row_cache_is_rebuilt_from_the_records_with_a_note(write_spec, root, capsys):
    store = ran(write_spec, 4)
    truth = store.rows(fresh=True).columns
    data = store.cache_path.read_bytes()
    body = data.index(b"\n") + 1
    for i in range(body, len(data), max(1, (len(data) - body) // 25)):  # a bit flip each
        store.cache_path.write_bytes(data[:i] + bytes([data[i] ^ 4]) + data[i + 1 :])
        capsys.readouterr()
        assert Store("exp").rows().columns == truth
        assert "is damaged (checksum mismatch); rebuilt from the records" in capsys.readouterr().err
    # A cache with a right checksum but a value no record can hold: rebuilt too.
    columns = dict(truth, wall_time=[[1]] * 4)
    rows = store_module.Rows(columns, store.rows().files, [], [])
    store_module.rowcache.save(store.cache_path, rows)
    capsys.readouterr()
    assert Store("exp").rows().columns == truth
    assert "a value that is not a scalar" in capsys.readouterr().err


def test_deleted_records_are_pending_whatever_a_re_signed_cache_lists(write_spec, root, capsys):
    """Was: with 5 records deleted and the cache re-signed without their files (but with
    their rows), the 5 counted as ok in --status, load_results and the CSV, and never ran."""
    store = ran(write_spec, 8)
    rows = store.rows()
    gone = record_paths(store)[:5]
    for path in gone:
        path.unlink()
    files = {n: s for n, s in rows.files.items() if store.dir / n not in gone}
    store_module.rowcache.save(store.cache_path, store_module.Rows(rows.columns, files, [], []))
    capsys.readouterr()
    assert run.main(["--name", "exp", "--status"]) == 1
    out, err = capsys.readouterr()
    assert "exp: 8 points: 3 ok, 0 error, 0 timeout, 5 pending" in out
    assert err == (
        f"note: the row cache {store.cache_path} is damaged (its rows are not those of the "
        f"record files it lists); rebuilt from the records\n"
    )
    assert len(load_results("exp")) == 3
    assert run.main(["--name", "exp"]) == 0 and all(path.exists() for path in gone)
    assert "running 5 of 8 points" in capsys.readouterr().out


def test_load_results_reads_no_record_when_none_has_curves(write_spec, root, monkeypatch):
    store = ran(write_spec)
    for path in record_paths(store):
        record = json.loads(path.read_text())
        del record["metrics"]["curve"]
        store.write(record)
    with_curves = load_results("exp")  # fills the cache
    reads = count_reads(monkeypatch)
    again = load_results("exp")
    assert reads == [] and len(again) == 3 and "curve" not in again
    pd.testing.assert_frame_equal(again, with_curves)
    assert list(again["id"]) == sorted(again["id"])


def test_a_record_written_while_the_table_is_written_is_in_the_table(write_spec, root, monkeypatch):
    store = ran(write_spec)
    late = json.loads(record_paths(store)[0].read_text())
    late["id"], late["_index"] = "f" * 16, 3
    write_spec("exp", grid(3))
    points = load_spec("exp").points()
    points.append(type(points[0])(late["id"], 3, late["params"], late["seed"]))
    frame = store_module.Rows.frame
    calls = []

    def racing(rows):  # another process records a point while this one writes the table
        calls.append(1)
        if len(calls) == 1:
            store.write(late)
        return frame(rows)

    monkeypatch.setattr(store_module.Rows, "frame", racing)
    table, _ = store.write_table(points, fresh=True)
    assert list(pd.read_csv(store.table_path)["id"]) == [p.id for p in points]
    assert len(calls) == 2


def test_odd_files_in_a_records_folder_neither_hang_nor_crash(write_spec, root, cli):
    store = ran(write_spec, 4)
    fifo, zero, folder, _ = record_paths(store)
    for path in (fifo, zero, folder):
        path.unlink()
    os.mkfifo(fifo)
    zero.symlink_to("/dev/zero")
    folder.mkdir()
    (folder / "x").write_text("")
    status = cli("--name", "exp", "--status", timeout=60)
    assert status.returncode == 1 and "1 ok, 0 error, 0 timeout, 3 pending" in status.stdout
    assert "3 unreadable record files (pending)" in status.stdout and status.stderr == ""
    result = cli("--name", "exp", timeout=60)  # the folder cannot be replaced by a record
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert f"error: cannot write record {folder}:" in result.stderr
    shutil.rmtree(folder)
    assert cli("--name", "exp", timeout=60).returncode == 0
    assert all(json.loads(p.read_text())["status"] == "ok" for p in record_paths(store))


def test_temp_files_of_killed_writers_are_removed_on_the_next_run(write_spec, root, capsys):
    import subprocess
    import sys

    store = ran(write_spec, 2)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    old = time.time() - 3600
    left = store.dir / f".{'a' * 16}.json.{dead}.0123abcd.tmp"  # a killed writer's
    live = store.dir / f".{'b' * 16}.json.{os.getpid()}.0123abcd.tmp"  # still writing
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


def test_a_re_signed_cache_with_any_byte_changed_never_crashes_a_reader(write_spec, root):
    import hashlib

    from memo.store import rowcache

    store = ran(write_spec, 3)
    head, _, body = store.cache_path.read_bytes().partition(b"\n")
    header = json.loads(head)
    for i in range(0, len(body), max(1, len(body) // 60)):  # as someone who can write .cache
        forged = body[:i] + bytes([body[i] ^ 0x41]) + body[i + 1 :]
        header["sha256"] = hashlib.sha256(forged).hexdigest()
        store.cache_path.write_bytes(json.dumps(header).encode() + b"\n" + forged)
        try:
            rows = rowcache.load(store.cache_path)
        except rowcache.DamagedCache:
            continue
        assert len(rows) == 3 and all(type(i) is str for i in rows.columns["id"])
