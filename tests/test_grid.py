"""A grid's points in bulk (memo/run/grid.py: ids from JSON fragments, Points built when
asked for) are the points listed one by one (Spec.iter_points, make_point), and --status
prints the same from either."""

import sys
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

import trials
from memo.run import report
from memo.run.grid import Listed
from memo.run.spec import SpecError, load_spec
from memo.store import claims
from memo.store import columns as cols
from memo.store.rows import Rows

TRIAL = '''
"""A trial of every kind of param, for tests/test_grid.py."""
from dataclasses import dataclass
from typing import Literal

METRICS = {"value": "x"}


@dataclass
class Params:
    x: float = 0.0
    n: int = 3
    name: str = "ä"
    flag: bool = False
    mode: Literal["a", "b"] = "a"
    sizes: list | None = None
    extra: dict | None = None
    model: str = "mlp"  # model, epochs, dataset: params that set a point's kind
    epochs: int = 10
    dataset: str = "d"

    def __post_init__(self):
        if self.x < 0:
            raise ValueError(f"x must be >= 0, got {self.x}")
        if self.mode == "b" and self.n > 5:  # n is read only for mode b
            raise ValueError(f"mode b takes n <= 5, got {self.n}")


def trial(params):
    return {"value": params["x"]}
'''

RANGE = {"type_": "range", "start": 0.1, "stop": 0.75, "step": 0.05}
SPECS = {
    "ranges": {
        "trial": "synthetic",
        "param_grid": {"x": RANGE, "restart": {"type_": "range", "stop": 3}},
        "defaults": {"y": 0.30000000000000004, "duration": 0},  # 0.1 + 0.2; a default
    },
    "several grids, a zip, seeds": {
        "trial": "synthetic",
        "param_grid": [
            {"x": [1, 2, 3], "y": [1.0, 2]},
            {"pair": {"type_": "zip", "x": [10, 20], "y": [0.5, 0.25]}, "fail": [False]},
            {"seed": [5, 6], "x": [0]},  # x at its default: left out of the id
        ],
    },
    "nested values": {
        "trial": "gridtrial",
        "param_grid": {
            "sizes": [[1, 2], [0.1, [3, {"z": 1, "a": None}]], None],
            "extra": [{"b": 1, "a": [0.5]}, None, {}],
            "name": ["ä", 'x"y', "日本", "ä\n"],
            "n": {"type_": "range", "stop": 3},
        },
    },
    "a zip among other keys, defaults between": {
        "trial": "gridtrial",
        "param_grid": {
            "z1": {"type_": "zip", "model": ["mlp", "cnn"], "x": [0.5, 0.25]},
            "epochs": [1, 10],
            "mode": ["a", "b"],
            "dataset": ["d", "e"],
            "restart": [0, 1],
        },
        "defaults": {"flag": True, "name": "q", "n": 4},
    },
    "memo's datasets": {
        "trial": "algorithm",
        "param_grid": {
            "dataset": ["mnist", "digits", "moons_size_1k", "moons"],
            "n_iter": [10, 20],
            "restart": {"type_": "range", "stop": 2},
        },
        "defaults": {"max_bias": 0.5},
    },
    "memo's dataset in defaults": {
        "trial": "algorithm",
        "param_grid": {"n_iter": [10, 20]},
        "defaults": {"dataset": "digits"},
    },
    "memo's dataset zipped with preprocess": {
        "trial": "algorithm",
        "param_grid": [
            {"d": {"type_": "zip", "dataset": ["mnist", "digits"], "preprocess": ["", "maxnorm"]}},
            {"dataset": ["digits", "moons"], "preprocess": ["", "div255"], "n_iter": [5]},
        ],
    },
}


@pytest.fixture
def spec_of(write_spec, tmp_path, monkeypatch):
    """spec_of(spec dict) -> the Spec, with the trial "gridtrial" known."""
    (tmp_path / "gridtrial.py").write_text(TRIAL)
    monkeypatch.setattr(trials, "__path__", [*trials.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "trials.gridtrial", raising=False)

    def load(spec):
        write_spec("exp", spec)
        return load_spec("exp")

    return load


def shown(point) -> tuple:
    return point.id, point.index, point.seed, list(point.params.items())  # params in order


@pytest.mark.parametrize("name", SPECS)
def test_the_points_of_a_grid_in_bulk_are_those_listed_one_by_one(spec_of, name):
    spec = spec_of(SPECS[name])
    grid, listed = spec.lazy_points(), list(spec.iter_points())
    assert len(grid) == len(listed) and grid.ids == [p.id for p in listed]
    assert [shown(p) for p in grid] == [shown(p) for p in listed]
    assert [shown(p) for p in spec.points()] == [shown(p) for p in listed]
    middle = len(listed) // 2
    assert shown(grid[-1]) == shown(listed[-1]) and shown(grid[middle]) == shown(listed[middle])
    assert grid.varying() == Listed(listed).varying()
    every = np.arange(len(listed))
    codes, levels = grid.kind_codes(every[::-1])
    listed_codes, listed_levels = Listed(listed).kind_codes(every[::-1])
    assert [levels[c] for c in codes.tolist()] == [listed_levels[c] for c in listed_codes]
    ids = [p.id for p in reversed(listed)] + ["x", "F" * 16, "0" * 16, listed[0].id[:15]]
    assert grid.positions(ids).tolist() == Listed(listed).positions(ids).tolist()


def test_ids_and_seeds_are_those_of_the_results_folders_already_made(spec_of):
    """Pinned: made by memo before the bulk ids (49c2bf9); point ids name users' records."""
    grid = spec_of(SPECS["several grids, a zip, seeds"]).lazy_points()
    assert [(p.id, p.seed) for p in grid[::3]] == [
        ("7d6d8bf57c94d275", 710677812750405897),
        ("054389cc732fd240", 581467097984435298),
        ("6c072a2becaa0139", 1152086001987555279),
        ("42324dab1c2f237f", 6),
    ]
    grid = spec_of(SPECS["memo's datasets"]).lazy_points()
    assert grid.ids[:3] == ["fd6af4bf14fd47bd", "47861779726feaab", "debc6fc710d4dfc4"]


def rows_of(points) -> Rows:
    """Records of some of the points: ok ones (some as slow as each other), failures, strays."""
    records, base = [], datetime(2026, 1, 1, tzinfo=timezone.utc)
    for k, point in enumerate(points[: len(points) * 2 // 3]):
        status = ("ok", "ok", "error", "ok", "timeout")[k % 5]
        record = {"id": point.id, "status": status, "params": {}, "metrics": {}}
        record["wall_time"] = [2.0, 7.5, 0.5, 7.5, 3, None][k % 6]
        record["finished"] = (base + timedelta(seconds=k * 7 % 11)).isoformat()
        record["error"] = f"RuntimeError: {k}" if status == "error" else None
        records.append(record)
    for stray in ("f" * 16, "not-an-id"):  # a point no longer in the grid, and not memo's
        records.insert(1, {"id": stray, "status": "ok", "params": {}, "metrics": {}})
    return Rows(cols.encode(records, [0.0] * len(records)))


@pytest.mark.parametrize("name", SPECS)
def test_status_from_a_grid_in_bulk_is_as_from_its_points(spec_of, name, tmp_path):
    spec = spec_of(SPECS[name])
    grid, listed = spec.lazy_points(), list(spec.iter_points())
    rows, started = rows_of(listed), (datetime.now(timezone.utc) - timedelta(seconds=30))
    busy = {p.id: claims.Holder("host", 1, started.isoformat(), 1.0) for p in listed[-2:]}
    text = report.status("exp", grid, rows, busy, tmp_path)
    assert text == report.status("exp", listed, rows, busy, tmp_path)
    standing, listing = report.Standing(grid, rows), report.Standing(listed, rows)
    assert standing.tally == listing.tally
    assert standing.running_line(busy) == listing.running_line(busy)


def test_status_prints_what_it_did_before_the_bulk_grid(spec_of, tmp_path):
    """Pinned: what report.status of 49c2bf9 printed for these points and records."""
    grid = spec_of(SPECS["ranges"]).lazy_points()
    text = report.status("exp", grid, rows_of(list(grid)), {}, tmp_path)
    assert text == PINNED_STATUS


PINNED_STATUS = """\
exp: 39 points: 16 ok, 5 error, 5 timeout, 13 pending
2 records are of points no longer in the grid (kept)
last failures:
  b747c77d3017211a restart=1 x=0.15 seed=595772681032329807: timeout
  843b45c4e20c7b44 restart=1 x=0.3 seed=501584881600447525: RuntimeError: 17
  5bad6889387dc2b5 restart=0 x=0.55 seed=860680857319480190: timeout
  0216c1324b4d22fd restart=0 x=0.7 seed=878477629832448378: RuntimeError: 12
  59dda5c936e6f503 restart=0 x=0.3 seed=331598507746258795: timeout
slowest points:
  680fd87e78153d57 7.50 s restart=0 x=0.15 seed=650422522070682892
  2c9fe5e116875aa9 7.50 s restart=0 x=0.25 seed=234239223231092171
  aa7eb44c125d72b2 7.50 s restart=1 x=0.1 seed=472523613046440790
  4adab807069280d0 7.50 s restart=1 x=0.2 seed=1088350361086954730
  2cfa0fcffab4d2af 7.50 s restart=1 x=0.5 seed=4909410344590064
still to run: 13 points: 58 s of compute, from 13 finished points"""


@pytest.mark.parametrize("restart", [[0], [0, 1]])
def test_a_combination_the_trial_refuses_is_named_as_when_listing_the_points(spec_of, restart):
    grid = {"mode": ["a", "b"], "n": [3, 9], "x": [1.0, 2.0], "restart": restart}
    spec = spec_of({"trial": "gridtrial", "param_grid": grid})
    with pytest.raises(SpecError) as listing:
        list(spec.iter_points())
    with pytest.raises(SpecError) as bulk:
        spec.lazy_points()
    assert str(bulk.value) == str(listing.value)
    first = 6 * len(restart)  # mode b, n 9: read only when mode is b
    assert f"point {first} " in str(bulk.value) and "mode b takes n <= 5, got 9" in str(bulk.value)


def test_a_point_given_twice_is_named_as_when_listing_the_points(spec_of):
    spec = spec_of({"trial": "synthetic", "param_grid": [{"x": [0, 1, 2]}, {"x": [2.0]}]})
    with pytest.raises(SpecError) as listing:
        list(spec.iter_points())
    with pytest.raises(SpecError) as bulk:
        spec.lazy_points()
    assert str(bulk.value) == str(listing.value) and "(point 3)" in str(bulk.value)
