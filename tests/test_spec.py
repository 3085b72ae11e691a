"""Spec loading, validation and grid expansion (memo/spec.py)."""

import json

import pytest

from memo.spec import SpecError, expand_value, load_spec

SYN = "synthetic"


def points_of(write_spec, grid, **extra):
    write_spec("exp", {"trial": SYN, "param_grid": grid, **extra})
    return load_spec("exp").points()


def test_range_follows_memo_semantics():
    assert expand_value("f", "k", {"type_": "range", "stop": 4}) == [0, 1, 2, 3]
    assert expand_value("f", "k", {"type_": "range", "start": 10, "stop": 40, "step": 10}) == [
        10,
        20,
        30,
    ]
    values = expand_value("f", "k", {"type_": "range", "start": 0.0, "stop": 2.55, "step": 0.05})
    assert len(values) == 51 and values[3] == 0.15 and values[-1] == 2.5
    # np.arange(0, 0.3, 0.1) overshoots to 0.30000000000000004; exact counting does not.
    assert expand_value("f", "k", {"type_": "range", "stop": 0.3, "step": 0.1}) == [0.0, 0.1, 0.2]
    assert expand_value("f", "k", {"type_": "range", "start": 3, "stop": 0, "step": -1}) == [
        3,
        2,
        1,
    ]


def test_linspace_and_logspace_are_rounded():
    assert expand_value("f", "k", {"type_": "linspace", "start": 0, "stop": 1, "num": 11})[3] == 0.3
    assert expand_value("f", "k", {"type_": "logspace", "start": -3, "stop": 1, "num": 5}) == [
        0.001,
        0.01,
        0.1,
        1.0,
        10.0,
    ]


def test_product_zip_and_list_of_grids(write_spec):
    grid = [
        {"x": [1, 2, 3], "restart": {"type_": "range", "stop": 2}},
        {"pair": {"type_": "zip", "x": [10, 20], "y": [0.5, 0.25]}},
    ]
    points = points_of(write_spec, grid)
    assert len(points) == 3 * 2 + 2
    pairs = [(p.params["x"], p.params["y"]) for p in points[-2:]]
    assert pairs == [(10.0, 0.5), (20.0, 0.25)]
    assert [p.index for p in points] == list(range(8))
    assert "pair" not in points[-1].params


def test_defaults_apply_and_grid_overrides_them(write_spec):
    points = points_of(write_spec, {"x": [1, 2]}, defaults={"y": 3, "x": 9})
    assert [(p.params["x"], p.params["y"]) for p in points] == [(1.0, 3.0), (2.0, 3.0)]


def test_ids_and_seeds_survive_a_growing_grid(write_spec):
    before = points_of(write_spec, {"x": [1, 2], "restart": [0, 1]})
    after = points_of(write_spec, {"x": [0, 1, 2, 3], "restart": [0, 1, 2]})
    old = {(p.params["x"], p.params["restart"]): (p.id, p.seed) for p in before}
    new = {(p.params["x"], p.params["restart"]): (p.id, p.seed) for p in after}
    assert all(new[key] == value for key, value in old.items())
    assert len({p.id for p in after}) == len(after)
    assert len({p.seed for p in after}) == len(after)


def test_writing_a_default_explicitly_keeps_the_id(write_spec):
    implicit = points_of(write_spec, {"x": [1]})
    explicit = points_of(write_spec, {"x": [1], "y": [1.0], "duration": [0]})
    assert implicit[0].id == explicit[0].id


def test_explicit_seed_is_used(write_spec):
    points = points_of(write_spec, {"seed": [5, 6]})
    assert [p.seed for p in points] == [5, 6]
    assert [p.params["seed"] for p in points] == [5, 6]


def test_memo_grid_of_127500_points_counts_right(write_spec):
    grid = {
        "restart": {"type_": "range", "stop": 50},
        "x": {"type_": "range", "start": 10, "stop": 510, "step": 10},
        "y": {"type_": "range", "start": 0.0, "stop": 2.55, "step": 0.05},
    }
    points = points_of(write_spec, grid)
    assert len(points) == 127_500
    assert len({p.id for p in points}) == 127_500


BAD_SPECS = [
    ('{"trial": "synthetic", "param_grid": {"x": [1,]}', "invalid JSON at line 1, column"),
    ({"trial": "nope", "param_grid": {"x": [1]}}, "trial 'nope' is unknown; known trials:"),
    ({"param_grid": {"x": [1]}}, "missing key 'trial'"),
    ({"trial": SYN}, "missing key 'param_grid'"),
    ({"trial": SYN, "param_grid": {"x": [1]}, "plot": []}, "unknown key 'plot'; valid keys"),
    ({"trial": SYN, "param_grid": {"z": [1]}}, "param_grid.z: trial 'synthetic' has no param 'z'"),
    ({"trial": SYN, "param_grid": {"x": ["a"]}}, "param_grid.x: 'a' is not a number"),
    ({"trial": SYN, "param_grid": {"fail": [1]}}, "param_grid.fail: 1 is not true or false"),
    ({"trial": SYN, "param_grid": {"restart": [0.5]}}, "param_grid.restart: 0.5 is not an integer"),
    ({"trial": SYN, "param_grid": {"x": 3}}, "param_grid.x: 3 must be a list of values"),
    ({"trial": SYN, "param_grid": {"x": []}}, "param_grid.x: expands to no values"),
    ({"trial": SYN, "param_grid": {"x": {"type_": "ranged", "stop": 3}}}, "unknown type_ 'ranged'"),
    ({"trial": SYN, "param_grid": {"x": {"type_": "range", "stop": 0}}}, "expands to no values"),
    ({"trial": SYN, "param_grid": {"x": {"type_": "range", "stop": 3, "stpe": 1}}}, "not 'stpe'"),
    ({"trial": SYN, "param_grid": {"x": {"type_": "range", "step": 3}}}, "range needs 'stop'"),
    (
        {"trial": SYN, "param_grid": {"x": {"type_": "range", "stop": 3, "step": 0}}},
        "must not be 0",
    ),
    ({"trial": SYN, "param_grid": {}}, "param_grid must be a non-empty object"),
    ({"trial": SYN, "param_grid": []}, "param_grid must be an object or a non-empty list"),
    (
        {"trial": SYN, "param_grid": {"g": {"type_": "zip", "x": [1, 2], "y": [1]}}},
        "zipped lists differ in length",
    ),
    (
        {"trial": SYN, "param_grid": {"x": {"type_": "zip", "y": [1]}}},
        "a zip group's key is a label",
    ),
    ({"trial": SYN, "param_grid": {"duration": [-1]}}, "duration must be >= 0, got -1"),
    ({"trial": SYN, "param_grid": {"x": [1]}, "defaults": {"q": 1}}, "defaults.q: trial"),
    ({"trial": SYN, "param_grid": {"x": [1]}, "plots": {}}, "plots must be a list"),
]


@pytest.mark.parametrize("spec, message", BAD_SPECS)
def test_bad_spec_is_one_clear_line(write_spec, spec, message):
    path = write_spec("bad", spec)
    with pytest.raises(SpecError) as info:
        load_spec("bad").points()
    text = str(info.value)
    assert message in text
    assert text.startswith(str(path)) and "\n" not in text


def test_missing_experiment_lists_known_ones(write_spec):
    write_spec("one", {"trial": SYN, "param_grid": {"x": [1]}})
    with pytest.raises(SpecError, match="no such experiment file; known experiments: one"):
        load_spec("two")


def test_bad_spec_exits_2_and_writes_nothing(write_spec, cli, root):
    write_spec("bad", {"trial": SYN, "param_grid": {"x": ["a"]}})
    result = cli("--name", "bad")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    assert not (root / "results").exists()


def test_spec_round_trips_through_json(write_spec):
    points = points_of(
        write_spec, {"x": {"type_": "range", "start": 0.1, "stop": 0.4, "step": 0.1}}
    )
    assert json.loads(json.dumps([p.params for p in points]))[2]["x"] == 0.3


def test_grid_order_is_parameter_grids(write_spec):
    from sklearn.model_selection import ParameterGrid

    grid = [
        {"x": [3, 1, 2], "y": [0.5, 0.25], "restart": [0, 1]},
        {"fail": [True], "x": [7, 8]},
    ]
    points = points_of(write_spec, grid)
    expected = list(ParameterGrid(grid))
    assert len(points) == len(expected)
    for point, combo in zip(points, expected):
        assert {k: point.params[k] for k in combo} == combo


@pytest.mark.parametrize(
    "dataset, message",
    [
        ("moonz", "unknown dataset 'moonz'"),
        ("mnist", "is not downloaded yet; run: python data.py --name mnist"),
    ],
)
@pytest.mark.parametrize("trial", ["memorize", "train"])
def test_datasets_are_checked_before_anything_runs(
    write_spec, monkeypatch, tmp_path, root, capsys, trial, dataset, message
):
    import run

    monkeypatch.setenv("MEMO_DATASETS", str(tmp_path / "no-datasets"))
    path = write_spec("exp", {"trial": trial, "param_grid": {"dataset": [dataset]}})
    assert run.main(["--name", "exp"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and message in err and err.count("\n") == 1
    assert not (root / "results").exists()
    assert run.main(["--name", "exp", "--dry-run"]) == 0  # counting needs no data
    assert "note: " in capsys.readouterr().out
