"""What run.py prints: the summary at the end of a run, --dry-run and --status, and the
time left that these and the progress line estimate."""

import io
import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from memo.store import claims
from memo.run import point_progress, progress
from memo.run import report
from memo.store import columns as cols
from memo.store.rows import Rows
from memo.run.point import Point
from memo.run.worker import Outcome


def points(n, seeds=(1, 2)):
    return [
        Point(f"id{i}{s}", i * len(seeds) + k, {"x": i, "seed": s}, s)
        for i in range(n)
        for k, s in enumerate(seeds)
    ]


def test_summary_names_the_columns_it_leaves_out_and_puts_times_last():
    grid = points(2)
    metrics = {f"m{i:02d}": [1.0, 2.0] for i in range(20)}
    frame = pd.DataFrame({"x": [0, 1], "status": "ok", "fit_time": [0.1, 0.2], **metrics})
    frame["n_params"] = 1234
    text = report.table_summary(frame, grid, limit=16)
    lines = text.splitlines()
    assert [ln.split()[0] for ln in lines[2:18]] == [f"m{i:02d}" for i in range(16)]
    assert lines[-2] == "(5 more columns not shown: m16, m17, m18, m19, fit_time)"
    assert lines[-1] == "the same in every ok point: n_params 1234"
    assert "more columns" not in report.table_summary(frame[["x", "status", "m00"]], grid)


def dry_run(grid, done, walls=None, tasks=1, busy=frozenset()) -> str:
    preview = report.DryRun(done, busy=busy, walls=walls)
    for point in grid:
        preview.add(point)
    return preview.text("e", tasks)


def test_dry_run_shows_each_points_seed_and_an_estimate_from_the_records():
    grid = points(2)
    done = {grid[0].id: "ok", grid[1].id: "ok"}
    walls = {grid[0].id: 2.0, grid[1].id: 4.0}
    lines = dry_run(grid, done, walls, tasks=2).splitlines()
    assert lines[2:4] == ["  id11 #2: x=1 seed=1", "  id12 #3: x=1 seed=2"]  # same x, seeds apart
    assert lines[-1] == (
        "estimate: 2 points: 6 s of compute, ~3 s with 2 tasks, from 2 finished points"
        " (rough: fewer than 3 finished points of their kind)"
    )
    assert "estimate" not in dry_run(grid, {})  # no records: no guess


def test_dry_run_counts_points_another_process_runs_apart_and_leaves_them_to_it():
    grid = points(2)
    text = dry_run(grid, {grid[0].id: "ok"}, busy={grid[1].id})
    assert text.splitlines()[:2] == [
        "e: 4 points: 1 ok, 0 error, 0 timeout, 1 running, 2 pending",
        "would run 2 points now",
    ]
    assert "id02" not in text  # not listed among the points to run


# --- the time left: by the kind of the points left, the running ones, and saying when rough


def table1():
    """Zhang's Table 1 grid (16 points): 4 models x label noise x weight decay."""
    models = [("mlp", "512", 150), ("mlp", "512x512x512", 150), ("alexnet", "512", 60)]
    models.append(("inception", "512", 60))
    grid = []
    for model, hidden, epochs in models:
        for noise in (0.0, 1.0):
            for decay in (0.0, 0.0005):
                params = dict(model=model, hidden=hidden, epochs=epochs, label_noise=noise)
                params.update(weight_decay=decay, lr=0.1)
                grid.append(Point(f"p{len(grid):02d}", len(grid), params, 0))
    return grid


def test_the_progress_line_estimates_the_rest_by_the_kind_of_each_point_left():
    grid, stream = table1(), io.StringIO()
    shown = progress.Progress(grid, stream=stream, every_s=0)
    for point, wall in zip(grid, [2] * 4 + [5] * 4 + [20] * 2):
        shown.update(Outcome(point.id, "ok", wall))
    line = stream.getvalue().splitlines()[-1]
    assert line.startswith("10/16 points, 0 failed, ")
    assert line.endswith(  # AlexNets: as with true labels; the Inceptions: a guess, said to be
        'about 62 s left (rough: 6 of 6 points of a kind not measured yet, e.g. model="inception")'
    )
    for point, wall in zip(grid[10:14], [20, 20, 300, 300]):
        shown.update(Outcome(point.id, "ok", wall))
    line = stream.getvalue().splitlines()[-1]  # random labels: from the true-label Inceptions
    assert line.endswith(
        "about 10 min left (rough: 2 of 2 points of a kind not measured yet, e.g."
        ' model="inception" hidden="512" epochs=60 label_noise=1.0)'
    )


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_shows_the_estimate_not_tqdms_rate_guess():
    grid, stream = table1(), Terminal()
    shown = progress.Progress(grid[:4], stream=stream)
    shown.update(Outcome(grid[0].id, "ok", 30.0))
    shown.close()
    bar = stream.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert "1/4 [" in bar and "0 failed, about 90 s left" in bar and "<" not in bar


def test_status_counts_running_points_at_least_as_long_as_they_ran_and_reads_their_epochs(
    tmp_path,
):
    grid = table1()
    walls = [2] * 4 + [5] * 4 + [20] * 4 + [400, 400]  # 14 done; 2 Inceptions running
    records = [
        {"id": p.id, "status": "ok", "wall_time": w, "params": {}, "metrics": {}}
        for p, w in zip(grid, walls)
    ]
    rows = Rows(cols.encode(records, [0.0] * len(records)))
    started = (datetime.now(timezone.utc) - timedelta(seconds=360)).isoformat()
    busy = {p.id: claims.Holder("host", 1, started, 1.0) for p in grid[14:]}
    text = report.status("table1", grid, rows, busy, tmp_path)
    # 6 minutes in, of a kind not measured (random labels): as long again, at least
    assert text.splitlines()[-1] == (
        "still to run: 2 points (2 running): 12 min of compute, ~6 min with 2 running at once,"
        " from 14 finished points (rough: 2 of 2 points of a kind not measured yet, e.g."
        ' model="inception" hidden="512" epochs=60 label_noise=1.0)'
    )
    (tmp_path / claims.CLAIMS).mkdir()
    for point in grid[14:]:  # each says: 59 of 60 epochs done, 10 s an epoch
        report_file = tmp_path / claims.CLAIMS / f"{point.id}{point_progress.REPORT}"
        report_file.write_text(json.dumps({"done": 59, "total": 60, "each": 10.0}))
    line = report.status("table1", grid, rows, busy, tmp_path).splitlines()[-1]
    assert line.startswith("still to run: 2 points (2 running): 20 s of compute, ~10 s with 2")


def test_a_trial_reports_its_progress_beside_its_claim_while_it_runs(tmp_path, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    (tmp_path / claims.CLAIMS).mkdir()
    point_progress.report(1, 10)  # outside a point: nothing written, nothing raised
    with point_progress.reporting(tmp_path, "p1"):
        clock[0] += 30.0  # resumed at epoch 10 of 20; 3 epochs in 30 s
        point_progress.report(13, 20, since=10)
        assert 69.0 <= point_progress.reported_left(tmp_path, "p1") <= 70.0  # 7 epochs x 10 s
        clock[0] += 1.0
        point_progress.report(14, 20, since=10)  # too soon to write again
        assert point_progress.reported_left(tmp_path, "p1") <= 70.0
    assert point_progress.reported_left(tmp_path, "p1") is None  # removed when the point ends
    assert list((tmp_path / claims.CLAIMS).iterdir()) == []


def test_an_estimate_is_rough_where_points_of_one_kind_took_very_different_times():
    grid = points(3, seeds=(1, 2, 3))
    done = {p.id: "ok" for p in grid[:6]}
    even = dry_run(grid, done, {p.id: 4.0 for p in grid[:6]})
    assert even.splitlines()[-1] == "estimate: 3 points: 12 s of compute, from 6 finished points"
    spread = {p.id: w for p, w in zip(grid, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0])}
    assert (
        dry_run(grid, done, spread)
        .splitlines()[-1]
        .endswith("(rough: times of one kind vary, ±80% on the total)")
    )


def test_a_one_off_slow_point_does_not_stand_for_the_rest_of_its_kind():
    costs, params = progress.Costs(), {"n_iter": 10}
    for wall in [25.0] + [0.003] * 999:  # a worker's first point: imports, compiling
        costs.add(params, wall)
    est = costs.estimate(Counter({progress.kind_levels(params): 1000}))
    assert est.compute == pytest.approx(3.0) and not est.rough  # not 28 s, and not "rough"
