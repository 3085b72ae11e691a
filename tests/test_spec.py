"""Spec loading, validation and grid expansion (memo/run/spec.py)."""

import json

import pytest

from memo.run.spec import SpecError, load_spec
from memo.run.values import expand_value

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


def test_range_stays_below_stop_after_rounding():
    third = 0.3333333333333333
    assert expand_value("f", "k", {"type_": "range", "stop": 1, "step": third}) == [
        0.0,
        0.333333333333,
        0.666666666667,
    ]
    assert expand_value("f", "k", {"type_": "range", "stop": -1, "step": -third}) == [
        0.0,
        -0.333333333333,
        -0.666666666667,
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


def syn(grid, **rest) -> dict:
    return {"trial": SYN, "param_grid": grid, **rest}


def gen(kind: str, **args) -> dict:
    return {"type_": kind, **args}


def zipped(**lists) -> dict:
    return {"type_": "zip", **lists}


BAD_SPECS = [
    ('{"trial": "synthetic", "param_grid": {"x": [1,]}', "invalid JSON at line 1, column"),
    ({"trial": "nope", "param_grid": {"x": [1]}}, 'trial "nope" is unknown; known trials:'),
    (
        {"trial": "kernels", "param_grid": {"x": [1]}},
        'trial "kernels" is unknown (did you mean "kernel"?); known trials:',
    ),
    ({"param_grid": {"x": [1]}}, "missing key 'trial'"),
    ({"trial": SYN}, "missing key 'param_grid'"),
    ({"trial": SYN, "param_grid": {"x": [1]}, "plot": []}, "unknown key 'plot'; valid keys"),
    ({"trial": SYN, "param_grid": {"z": [1]}}, "param_grid.z: trial 'synthetic' has no param 'z'"),
    ({"trial": SYN, "param_grid": {"x": ["a"]}}, 'param_grid.x: "a" is not a number'),
    ({"trial": SYN, "param_grid": {"fail": [1]}}, "param_grid.fail: 1 is not true or false"),
    ({"trial": SYN, "param_grid": {"restart": [0.5]}}, "param_grid.restart: 0.5 is not an integer"),
    ({"trial": SYN, "param_grid": {"x": 3}}, "param_grid.x: 3 must be a list of values"),
    ({"trial": SYN, "param_grid": {"x": []}}, "param_grid.x: expands to no values"),
    ({"trial": SYN, "param_grid": {"x": {"type_": "ranged", "stop": 3}}}, 'unknown type_ "ranged"'),
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
    (syn({"x": [1]}, trial=None), "trial null is unknown"),
    (syn({"x": [None]}), "param_grid.x: null is not a number"),
    # a param set in two places of one grid
    (
        syn({"shape": zipped(x=[1, 2], y=[3, 4]), "x": [5]}),
        "param_grid.x: 'x' is also set by param_grid.shape.x; set each param in one place",
    ),
    (
        syn([{"x": [1]}, {"a": zipped(x=[1], y=[2]), "b": zipped(y=[3])}]),
        "param_grid[1].b.y: 'y' is also set by param_grid[1].a.y",
    ),
    # sizes are counted before anything is built
    (
        syn({"x": gen("range", stop=1, step=1e-300)}),
        "param_grid.x: range gives 1.0e+300 values, more than 1,000,000; use a larger step",
    ),
    (
        syn({"x": gen("linspace", start=0, stop=1, num=10**9)}),
        "param_grid.x: linspace gives 1,000,000,000 values, more than 1,000,000; use a smaller num",
    ),
    (
        syn({"x": gen("range", stop=4000), "y": gen("range", stop=4000)}),
        "param_grid: 16,000,000 points (4,000 x * 4,000 y), more than 10,000,000",
    ),
    # the same point twice
    (
        syn({"x": [1, 1, 2]}),
        'param_grid {"x": 1.0} (point 1) gives the same point as param_grid {"x": 1.0} (point 0)',
    ),
    (
        syn([{"x": [1, 2]}, {"x": [2], "y": [1.0]}]),
        'param_grid[1] {"x": 2.0, "y": 1.0} (point 2) gives the same point as '
        'param_grid[0] {"x": 2.0} (point 1) (a param equal to its default counts as unset)',
    ),
    (syn({"x": [0.1, 0.1000000000001]}), 'param_grid {"x": 0.1} (point 1) gives the same point'),
    (
        syn({"x": gen("logspace", start=0, stop=1, num=3, base=1)}),
        "param_grid.x: logspace gives 1.0 more than once (values are rounded to 12 significant",
    ),
    (
        syn({"x": gen("range", start=1, stop=1.000000000001, step=1e-13)}),
        "param_grid.x: range gives 1.0 more than once",
    ),
    # seed and restart
    (syn({"seed": [-1]}), "param_grid.seed: seed must be from 0 to 2**63 - 1, got -1"),
    (syn({"seed": [2**63]}), "seed must be from 0 to 2**63 - 1, got 9223372036854775808"),
    (syn({"x": [1]}, defaults={"restart": -1}), "defaults.restart: restart must be from 0"),
    # generators and non-finite numbers
    (
        syn({"x": gen("linspace", start=0, stop=1, num=3, endpoint="no")}),
        'param_grid.x.endpoint: "no" must be true or false',
    ),
    (
        syn({"x": gen("logspace", start=0, stop=1, num=3, base=0)}),
        "param_grid.x.base: 0 must be > 0",
    ),
    (syn({"x": gen("logspace", start=0, stop=1, num=3, base=-2)}), "x.base: -2 must be > 0"),
    (
        syn({"x": gen("logspace", start=0, stop=400, num=3)}),
        "param_grid.x: logspace reaches Infinity, beyond the float range; narrow start and stop",
    ),
    (
        syn({"x": gen("logspace", start=-400, stop=0, num=3)}),
        "param_grid.x: logspace reaches 0.0, beyond the float range",
    ),
    ('{"trial": "synthetic", "param_grid": {"x": [1, NaN]}}', "param_grid.x: NaN is not finite"),
    ('{"trial": "synthetic", "param_grid": {"x": [-Infinity]}}', "x: -Infinity is not finite"),
    ('{"trial": "synthetic", "param_grid": {"x": [1e400]}}', "param_grid.x: Infinity is not"),
    ('{"trial": "synthetic", "param_grid": {"x": [1]}, "defaults": {"y": NaN}}', "defaults.y: NaN"),
    ('{"trial": "synthetic", "param_grid": {"g": {"type_": "zip", "x": [Infinity]}}}', "g.x: Inf"),
    (
        syn({"x": [10**400]}),
        "is not finite; write finite numbers (NaN, Infinity and numbers beyond",
    ),
    (syn({"x": gen("range", stop=10**400)}), "param_grid.x.stop: 1000000000"),
    # a key twice in one object
    (
        '{"trial": "synthetic", "param_grid": {"x": [1], "x": [2, 3]}}',
        "key 'x' appears twice in one object (values [1] and [2, 3]); keep one",
    ),
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


def test_a_name_with_results_but_no_spec_points_to_the_spec_path(write_spec, root):
    write_spec("tinkernel", {"trial": SYN, "param_grid": {"x": [1]}})
    (root / "results" / "tiny").mkdir(parents=True)  # run from elsewhere/tiny.json
    with pytest.raises(SpecError) as info:
        load_spec("tiny")
    assert str(info.value) == (
        f"{root / 'experiments' / 'tiny.json'}: no such experiment file ({root / 'results' / 'tiny'}"
        " exists: if a spec elsewhere made it, give that file's path); known experiments: tinkernel"
    )


def test_a_file_that_is_not_utf8_is_one_line(root):
    path = root / "experiments" / "bad.json"
    path.write_bytes(
        '{"trial": "synthetic",\n "description": "é", "param_grid": {"x": [1]}}'.encode("latin-1")
    )
    with pytest.raises(SpecError) as info:
        load_spec("bad")
    assert (
        str(info.value) == f"{path}: not UTF-8 text (byte 0xe9 on line 2); save the file as UTF-8"
    )


def test_a_spec_path_may_not_share_results_with_another_experiment(write_spec, tmp_path):
    spec = {"trial": SYN, "param_grid": {"x": [1]}}
    home = write_spec("pl", spec)
    assert load_spec(str(home)).name == "pl"  # the experiment itself, by path
    elsewhere = tmp_path / "other" / "pl.json"
    elsewhere.parent.mkdir()
    elsewhere.write_text(json.dumps(spec))
    assert load_spec(str(elsewhere)).name == "pl"  # a copy: the same points, the same results
    elsewhere.write_text(json.dumps({**spec, "param_grid": {"x": [2]}}))
    with pytest.raises(SpecError) as info:
        load_spec(str(elsewhere))
    assert str(info.value) == (
        f"{elsewhere}: would share results/pl with {home}; rename one of the files"
    )


def test_only_modules_with_trial_and_params_are_trials(write_spec, tmp_path, monkeypatch):
    import sys
    import types

    import trials
    from memo.run.trial_lookup import known_trials

    (tmp_path / "helpers.py").write_text("SHARED = 1\n")  # a helper module beside the trials
    monkeypatch.setattr(trials, "__path__", [*trials.__path__, str(tmp_path)])
    monkeypatch.setitem(sys.modules, "trials.helpers", types.ModuleType("trials.helpers"))
    assert "helpers" not in known_trials() and "synthetic" in known_trials()
    write_spec("bad", {"trial": "helpers", "param_grid": {"x": [1]}})
    with pytest.raises(SpecError, match='trial "helpers" is unknown; known trials: algorithm, '):
        load_spec("bad")


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


@pytest.mark.parametrize(
    "stem", [".", "..", ".cache", "checkpoints", "tensorboard", "_runs", "other.csv"]
)
def test_experiment_names_that_collide_with_memos_folders_are_refused(root, stem, capsys):
    import run

    path = root / "experiments" / f"{stem}.json"  # e.g. `..json`: results/../ is outside
    path.write_text(json.dumps({"trial": SYN, "param_grid": {"x": [1]}}))
    assert run.main(["--name", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: experiment name {stem!r} ") and err.count("\n") == 1
    assert not (root / "results").exists() and not (root / "logs").exists()


@pytest.mark.parametrize("levels", [900, 100_000])  # Python's stack: spec code, then the parser
def test_deeply_nested_spec_is_one_line(write_spec, levels):
    path = write_spec(
        "deep", '{"trial": "synthetic", "param_grid": {"x": [%s]}}' % ("[" * levels + "]" * levels)
    )
    with pytest.raises(SpecError) as info:
        load_spec("deep")
    assert str(info.value) == (
        f"{path}: lists and objects nested more than 100 levels deep; flatten them"
    )


def test_a_dry_run_streams_a_big_grid_in_little_memory(write_spec, capsys):
    import tracemalloc

    import run

    grid = {"x": {"type_": "range", "stop": 250}, "y": {"type_": "range", "stop": 200}}
    write_spec("big", {"trial": SYN, "param_grid": grid})
    tracemalloc.start()
    try:
        assert run.main(["--name", "big", "--dry-run"]) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    out = capsys.readouterr().out
    assert "big: 50000 points: 0 ok, 0 error, 0 timeout, 50000 pending" in out
    assert "x=0.0 y=4.0" in out and "... and 49995 more" in out
    # Holding every point took ~30 MB here (5.6 GB for 10,000,000); streaming keeps 8 bytes
    # a point to find a point given twice.
    assert peak < 4 * 2**20, f"{peak / 2**20:.0f} MiB"
