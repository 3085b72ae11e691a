"""The results store: which files are records, the row cache, reserved metric names."""

import json
import os
import shutil
import time
import types

import pandas as pd
import pytest

import run
from memo import store as store_module
from memo.spec import load_spec
from memo.store import BadRecord, Store, load_results
from memo.worker import Job, run_point


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
    """The paths memo.store reads records from, from now on."""
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
    monkeypatch.setattr("memo.worker.trial_module", lambda name: trial)
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
