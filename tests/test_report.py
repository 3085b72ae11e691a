"""What run.py prints: the summary at the end of a run, --dry-run and --status."""

import pandas as pd

from memo.run import report
from memo.run.spec import Point


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


def dry_run(grid, done, walls=(), tasks=None, busy=frozenset()) -> str:
    preview = report.DryRun(done, busy=busy)
    for point in grid:
        preview.add(point)
    return preview.text("e", walls, tasks)


def test_dry_run_shows_each_points_seed_and_an_estimate_from_the_records():
    grid = points(2)
    done = {grid[0].id: "ok", grid[1].id: "ok"}
    lines = dry_run(grid, done, walls=[2.0, 4.0], tasks=2).splitlines()
    assert lines[2:4] == ["  id11 #2: x=1 seed=1", "  id12 #3: x=1 seed=2"]  # same x, seeds apart
    assert lines[-1] == (
        "estimate: 2 points x 3 s (median of 2 ok records) = 6 s of compute, ~3 s with 2 tasks"
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
