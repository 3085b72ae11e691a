"""Points that share work run as one group: each keeps its own claim, record, seed and error."""

import pytest

import run
from conftest import records
from memo.backends import task
from memo.backends.run_files import write_manifest
from memo.run.groups import plan
from memo.run.spec import load_spec
from memo.run.worker import Job, provenance
from memo.store.records import Store


def grouped_spec(n=6, **grid):
    return {
        "trial": "synthetic",
        "param_grid": {"x": list(range(n)), **{k: v for k, v in grid.items()}},
        "defaults": {"group": True, "duration": 0.05},
    }


@pytest.mark.parametrize("backend", ["joblib", "inline"])
def test_a_group_gives_each_point_its_own_record_seed_and_error(write_spec, root, backend):
    write_spec("exp", grouped_spec(4, fail=[False, True]))
    assert run.main(["--name", "exp", "--backend", backend]) == 1  # the failing points
    recs = records(root)
    assert len(recs) == 8
    for record in recs.values():
        assert record["group"] == 8  # one group of all eight
        assert record["metrics"].get("seed_used", record["seed"]) == record["seed"]
        if record["params"]["fail"]:
            assert record["status"] == "error"
            assert f"failing on purpose at x={record['params']['x']}" in record["error"]
        else:
            assert record["status"] == "ok"
            assert record["metrics"]["value"] == record["params"]["x"]
    assert len({r["seed"] for r in recs.values()}) == 8
    ungrouped = records(root)
    assert run.main(["--name", "exp", "--retry-failed", "--group", "1"]) == 1
    rerun = records(root)
    assert all(r.get("group") is None for r in rerun.values() if r["status"] == "error")
    assert {k: r["seed"] for k, r in rerun.items()} == {k: r["seed"] for k, r in ungrouped.items()}


def test_dry_run_shows_the_groups(write_spec, root, capsys):
    write_spec(
        "exp", {**grouped_spec(6), "param_grid": {"x": list(range(6)), "group": [True, False]}}
    )
    assert run.main(["--name", "exp", "--dry-run", "--tasks", "2"]) == 0
    assert "groups: 6 points that share work run as 1 group of at most 6" in capsys.readouterr().out
    assert run.main(["--name", "exp", "--dry-run", "--group", "2"]) == 0
    out = capsys.readouterr().out
    assert "run as 3 groups of at most 2 (--group 1: each alone); 6 run alone" in out
    assert run.main(["--name", "exp", "--dry-run", "--group", "1"]) == 0
    assert "groups:" not in capsys.readouterr().out


def test_plan_keeps_grid_order_caps_groups_and_feeds_every_worker(write_spec, root):
    write_spec("exp", grouped_spec(10, y=[1.0, 2.0]))
    points = load_spec("exp").points()
    units = plan("synthetic", points, most=None, workers=1)
    assert [len(u) for u in units] == [20]
    units = plan("synthetic", points, most=None, workers=3)
    assert sorted(len(u) for u in units) == [6, 7, 7]
    assert sorted(p.index for u in units for p in u) == list(range(20))
    assert [len(u) for u in plan("synthetic", points, most=8, workers=1)] == [7, 6, 7]
    assert [len(u) for u in plan("synthetic", points, most=1)] == [1] * 20


def test_a_group_whose_process_dies_records_every_point_exactly_once(write_spec, root):
    """kill -9 of a group's worker before its points are recorded: they run again alone;
    the one that kills its process again gets a WorkerDied record, the others their
    results, each once."""
    grids = [{"x": [0], "die": [True]}, {"x": [1, 2, 3, 4, 5]}]
    write_spec("exp", {**grouped_spec(), "param_grid": grids})
    assert run.main(["--name", "exp", "--tasks", "2"]) == 1  # groups [0 1 2] and [3 4 5]
    recs = records(root)
    assert len(recs) == 6
    for record in recs.values():
        if record["params"]["die"]:
            assert record["status"] == "error" and "WorkerDied" in record["error"]
        else:
            assert record["status"] == "ok", record["error"]
    alone = sorted(r["params"]["x"] for r in recs.values() if r.get("group") is None)
    assert {0, 1, 2} <= set(alone)  # the dead group's points, run again one by one
    stamps = Store("exp", root / "results").rows().stamps()  # when each was recorded
    assert run.main(["--name", "exp", "--tasks", "2"]) == 1  # nothing runs twice
    assert stamps == Store("exp", root / "results").rows().stamps()


def test_a_group_past_its_time_limit_records_its_points_as_timeouts(write_spec, root):
    """The points of a group share its time: limit = --timeout x points."""
    write_spec("exp", {**grouped_spec(3), "defaults": {"group": True, "duration": 3.0}})
    assert run.main(["--name", "exp", "--timeout", "0.3", "--backend", "inline"]) == 1
    recs = records(root)
    assert [r["status"] for r in recs.values()] == ["timeout"] * 3
    assert all("0.9 s (its group of 3)" in r["error"] for r in recs.values())


def test_an_array_task_groups_the_points_of_its_share(write_spec, root, capsys):
    write_spec("exp", grouped_spec(6))
    spec = load_spec("exp")
    results = root / "results"
    job = Job("exp", "synthetic", str(results), None, 1, provenance("sge"), run="r1")
    manifest = root / "manifest.json"
    write_manifest(manifest, job, spec.points(), 2, "sge")
    assert task.main([str(manifest), "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("memo: running") == 3 and out.count("memo: done") == 3
    assert sorted(r["group"] for r in records(root).values()) == [3, 3, 3]
    assert task.main([str(manifest), "2"]) == 0
    assert len(records(root)) == 6 and all(r["status"] == "ok" for r in records(root).values())
