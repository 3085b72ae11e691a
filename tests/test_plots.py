"""Plots: the numbers behind each figure, key checking, and plot.py's files and exit codes.

Each plot function returns Drawn(fig, data); the tests compare data *and* the artists
drawn with means and bands computed here by hand from small synthetic results.
"""

import importlib.util
import json
import math
import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import plot
from memo.run import measures
from memo import plots
from memo.plots import PlotError, boundary as plot_boundary, dataset as plot_dataset
from memo.plots.axes import smooth

NOISY = 0.15000000000000002  # what np.arange(0, 0.3, 0.05)[3] gives; must match 0.15


def results(seeds=3):
    """A 3 x 3 grid (n_iter x max_bias), `seeds` rows per point, known values per row."""
    rows = []
    for n_iter in (10, 20, 30):
        for max_bias in (0.0, 0.15, 0.3):
            for seed in range(seeds):
                width = n_iter / 10 + 10 * max_bias + seed**2  # seed**2: unequal spread
                score = 1.0 if (n_iter >= 20 and seed != 0) or max_bias == 0.3 else 0.9
                bias = NOISY if (max_bias == 0.15 and seed % 2) else max_bias
                rows.append(dict(n_iter=n_iter, max_bias=bias, restart=seed, seed=seed))
                rows[-1].update(status="ok", score=score, second_dim_out=width)
    return pd.DataFrame(rows)


def entry(type_, **keys):
    return plots.validate({"type": type_, "name": "p", **keys})


def draw(type_, df=None, **keys):
    return plots.draw(entry(type_, **keys), df)


def by_hand(df, by, val):
    """Mean, sample std and n per group, with the bias column snapped to 0.15."""
    df = df.assign(max_bias=df["max_bias"].round(9))
    return df.groupby(by)[val].agg(["mean", "std", "count"])


PIVOT = {"idx": "n_iter", "col": "max_bias", "val": "second_dim_out"}


# --- key checking ----------------------------------------------------------------


def test_validate_fills_defaults_and_expands_flags():
    cfg = entry("heatmap", pivot=PIVOT, contours=True)
    assert cfg["pivot"] == {**PIVOT, "agg": "mean", "round": None}
    assert cfg["contours"] == {"smoothing": 0.0, "vmin": None, "vmax": None, "levels": None}
    assert cfg["interpolation"] is None and cfg["figsize"] is None
    assert entry("boundary_2d", dataset="moons", model={"n_iter": 5, "max_bias": 1.0})["model"] == {
        "n_iter": 5,
        "max_bias": 1.0,
        "activation": "thres",
        "seed": 0,
    }


@pytest.mark.parametrize(
    "keys, key, match",
    [
        ({"type": "heatmapp"}, "type", "unknown plot type 'heatmapp'; one of: .*heatmap"),
        ({"type": "heatmap", "pivot": PIVOT, "colour": 1}, "colour", "valid keys: .*contours"),
        ({"type": "heatmap"}, "pivot", "missing"),
        ({"type": "heatmap", "pivot": {**PIVOT, "fn": 1}}, "pivot.fn", "valid keys: idx, col"),
        ({"type": "heatmap", "pivot": {"idx": "a", "col": "b"}}, "pivot.val", "missing"),
        ({"type": "heatmap", "pivot": {**PIVOT, "agg": "avg"}}, "pivot.agg", "one of mean"),
        ({"type": "slices", "pivot": PIVOT, "slices": [1], "band": "sd"}, "band", "std, sem, ci95"),
        ({"type": "slices", "pivot": PIVOT, "slices": 1}, "slices", "non-empty list"),
        ({"type": "heatmap", "pivot": PIVOT, "figsize": [3]}, "figsize", "width, height"),
        ({"type": "heatmap", "pivot": PIVOT, "name": "../x"}, "name", "file name"),
        ({"type": "heatmap", "pivot": PIVOT, "contours": 3}, "contours", "true, false or"),
        ({"type": "dataset_2d", "dataset": "m", "xticks": "no"}, "xticks", "true or false"),
        ({"type": "heatmap", "pivot": PIVOT, "xlabel": "$\\frac{a$"}, "xlabel", "cannot typeset"),
    ],
)
def test_validate_names_the_bad_key(keys, key, match):
    with pytest.raises(PlotError, match=match) as info:
        plots.validate({"name": "p", **keys})
    assert info.value.key == key
    assert str(info.value).startswith(f"key '{key}': ")


def test_every_plot_docstring_lists_its_keys():
    for name, fn in plots.PLOTS.items():
        own = [k for k in fn.keys if k not in ("type", "name")]
        missing = [k for k in own if k not in fn.__doc__]
        assert not missing, f"{name} docstring lacks {missing}"


def test_missing_column_error_names_key_and_lists_columns():
    with pytest.raises(PlotError, match="no column 'nope'.*second_dim_out.*interpolated") as e:
        draw("heatmap", results(), pivot={**PIVOT, "val": "nope"})
    assert e.value.key == "pivot.val"
    with pytest.raises(PlotError, match="needs column.*'score'") as e:
        draw("heatmap", results().drop(columns="score"), pivot={**PIVOT, "val": "interpolated"})


# --- derived columns ---------------------------------------------------------------


def test_measures_interpolated_and_lazy_n_samples(monkeypatch):
    df = pd.DataFrame({"score": [1.0, 0.999, 1.0], "dataset": ["a", "b", "a"]})
    monkeypatch.setattr(measures, "_dataset_size", {"a": 10, "b": 20}.get)
    assert measures.derivable(df, "n_samples") and not measures.derivable(df, "foo")
    measures.add(df, "interpolated")
    measures.add(df, "n_samples")
    assert df["interpolated"].tolist() == [True, False, True]
    assert df["n_samples"].tolist() == [10, 20, 10]
    df["score"] = 0.0
    measures.add(df, "interpolated")  # present: never recomputed
    assert df["interpolated"].tolist() == [True, False, True]


# --- heatmap -----------------------------------------------------------------------


def test_heatmap_pivot_image_and_interpolation_equal_hand_means():
    df = results()
    drawn = draw("heatmap", df, pivot=PIVOT, interpolation={"smoothing": 0}, contours=True)
    expect = by_hand(df, ["n_iter", "max_bias"], "second_dim_out")["mean"].unstack()
    table = drawn.data["pivot"]
    assert table.shape == (3, 3)  # 0.15 and 0.15000000000000002 share one column
    assert list(table.columns) == [0.0, 0.15, 0.3] and list(table.index) == [10, 20, 30]
    np.testing.assert_allclose(table.to_numpy(), expect.to_numpy())
    ax = drawn.fig.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), expect.to_numpy())  # rows = n_iter, up
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.0", "0.15", "0.3"]
    assert ax.get_xlabel() == "maximal bias $\\lambda$"
    assert ax.get_ylabel() == "width of first layer $n$"
    assert drawn.fig.axes[1].get_ylabel() == "width of second layer"  # the colour bar's label
    legend = ax.get_legend()  # says what the dashed line is
    assert [t.get_text() for t in legend.get_texts()] == ["interpolation probability 0.99"]
    assert legend.get_lines()[0].get_linestyle() == "--"
    prob = df.assign(i=df["score"] == 1, max_bias=df["max_bias"].round(9))
    prob = prob.groupby(["n_iter", "max_bias"])["i"].mean().unstack().to_numpy()
    np.testing.assert_allclose(drawn.data["interpolation"], prob)
    np.testing.assert_allclose(drawn.data["contours"], expect.to_numpy())  # smoothing 0
    styles = [c.get_linestyles() for c in ax.collections]
    assert len(ax.collections) == 2 and styles[1][0][1] is not None  # the dashed one


def test_heatmap_agg_round_where_and_no_interpolation_without_score():
    df = results().drop(columns="score")
    drawn = draw(
        "heatmap", df, pivot={**PIVOT, "agg": "max", "round": 1}, where={"n_iter": [10, 30]}
    )
    table = drawn.data["pivot"]
    assert list(table.index) == [10, 30] and list(table.columns) == [
        0.0,
        0.2,
        0.3,
    ]  # numpy rounds 1.5 to 2
    sub = df[df["n_iter"] != 20].assign(max_bias=lambda d: d["max_bias"].round(1))
    expect = sub.groupby(["n_iter", "max_bias"])["second_dim_out"].max().unstack()
    np.testing.assert_allclose(table.to_numpy(), expect.to_numpy())
    assert drawn.data["interpolation"] is None and drawn.data["contours"] is None


def test_smooth_ignores_missing_cells():
    grid = np.array([[1.0, np.nan], [1.0, 1.0]])
    out = smooth(grid, 1.0)
    assert np.isnan(out[0, 1]) and np.allclose(out[~np.isnan(grid)], 1.0)


# --- slices ------------------------------------------------------------------------


@pytest.mark.parametrize("band", ["std", "sem", "ci95"])
def test_slices_mean_and_band_equal_hand_computation(band):
    df = results(seeds=4)
    drawn = draw("slices", df, pivot=PIVOT, slices=[0.0, 0.15], band=band, legend=True)
    hand = by_hand(df, ["max_bias", "n_iter"], "second_dim_out")
    ax = drawn.fig.axes[0]
    for k, s in enumerate([0.0, 0.15]):
        mean, std, n = (hand.loc[s][c].to_numpy() for c in ("mean", "std", "count"))
        half = {"std": std, "sem": std / np.sqrt(n), "ci95": stats.t.ppf(0.975, n - 1) * std / 2}
        rows = drawn.data[drawn.data["slice"] == s]
        assert rows["n"].tolist() == [4, 4, 4]  # float-tolerant: both spellings of 0.15
        np.testing.assert_allclose(rows["mean"], mean)
        np.testing.assert_allclose(rows["high"] - rows["mean"], half[band])
        np.testing.assert_allclose(ax.lines[k].get_ydata(), mean)
        vertices = ax.collections[k].get_paths()[0].vertices
        low = np.maximum(mean - half[band], 0.0)  # a width is >= 0: the band stops there
        np.testing.assert_allclose(rows["low"], low)
        for x, lo, hi in zip([10, 20, 30], low, mean + half[band]):
            at = vertices[np.isclose(vertices[:, 0], x), 1]
            assert np.isclose(at.min(), lo) and np.isclose(at.max(), hi)
    what = {"std": "mean ± 1 sd", "sem": "mean ± 1 sem", "ci95": "95% CI"}[band]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    cut = ",\ncut at 0" if band == "ci95" else ""  # only the t CI reaches below 0 here
    assert texts == ["0.0", "0.15", f"band: {what} of 4 runs{cut}"]
    assert ax.get_legend().get_title().get_text() == "maximal bias $\\lambda$"


def test_slices_markers_follow_threshold_and_mark_every():
    df = results()
    drawn = draw(
        "slices", df, pivot=PIVOT, slices=[0.0], marker_threshold=0.5, mark_every=2, band="none"
    )
    rows = drawn.data
    np.testing.assert_allclose(rows["interpolation"], [0.0, 2 / 3, 2 / 3])
    assert rows["marker"].tolist() == [False, False, True]  # 20 passes but is skipped
    dots = [ln for ln in drawn.fig.axes[0].lines if ln.get_marker() == "o"]
    assert [list(d.get_xdata()) for d in dots] == [[30]]
    assert not drawn.fig.axes[0].collections  # band "none": no band drawn


def test_slices_errors_name_the_key():
    with pytest.raises(
        PlotError, match=r"no ok rows with max_bias = 0.2 \(values: 0.0, 0.15, 0.3\)"
    ):
        draw("slices", results(), pivot=PIVOT, slices=[0.2])
    with pytest.raises(PlotError, match="use 'mean'"):
        draw("slices", results(), pivot={**PIVOT, "agg": "max"}, slices=[0.0])


def test_slices_value_limits_like_memo():
    drawn = draw("slices", results(), pivot=PIVOT, slices=[0.0], vmin=0.0, vmax=10.0)
    low, high = drawn.fig.axes[0].get_ylim()
    assert low < 0.0 < 10.0 < high and math.isclose(high - 10.0, 0.0 - low)


# --- line, scatter, curves ---------------------------------------------------------


def test_line_means_per_hue_and_log_axes():
    df = results()
    drawn = draw("line", df, x="n_iter", y="second_dim_out", hue="max_bias", band="sem", logx=True)
    hand = by_hand(df, ["max_bias", "n_iter"], "second_dim_out")
    np.testing.assert_allclose(drawn.data["mean"], hand["mean"])
    np.testing.assert_allclose(drawn.data["high"] - drawn.data["mean"], hand["std"] / np.sqrt(3))
    ax = drawn.fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
    assert len(ax.lines) == 3
    np.testing.assert_allclose(ax.lines[1].get_ydata(), hand.loc[0.15]["mean"])


def test_scatter_draws_every_selected_row():
    df = results()
    drawn = draw("scatter", df, x="n_iter", y="score", hue=["max_bias"], where={"max_bias": 0.15})
    assert len(drawn.data) == 9 and len(drawn.fig.axes[0].collections) == 1
    offsets = drawn.fig.axes[0].collections[0].get_offsets()
    sub = df[np.isclose(df["max_bias"], 0.15)]
    assert sorted(map(tuple, offsets.tolist())) == sorted(zip(sub["n_iter"], sub["score"]))


def curve_frame():
    """Two learning rates, three seeds; one run stopped after 2 of 3 epochs."""
    rows = [
        dict(lr=0.1, seed=0, train_acc=[0.5, 0.7, 0.9]),
        dict(lr=0.1, seed=1, train_acc=[0.3, 0.5, 1.0]),
        dict(lr=0.1, seed=2, train_acc=[0.4, 0.6]),
        dict(lr=0.01, seed=0, train_acc=[0.1, 0.2, 0.3]),
        dict(lr=0.01, seed=1, train_acc=[0.2, 0.2, 0.5]),
    ]
    return pd.DataFrame(rows).assign(status="ok")


@pytest.mark.parametrize("band", ["std", "ci95"])
def test_curves_mean_and_band_per_epoch_kept_within_the_metric_range(band):
    drawn = draw("curves", curve_frame(), metric="train_acc", hue="lr", band=band)
    fast = drawn.data[drawn.data["lr"] == 0.1]
    np.testing.assert_allclose(fast["mean"], [0.4, 0.6, 0.95])
    assert fast["n"].tolist() == [3, 3, 2] and fast["epoch"].tolist() == [1, 2, 3]
    std = np.array([0.1, 0.1, np.std([0.9, 1.0], ddof=1)])
    half = std if band == "std" else stats.t.ppf(0.975, [2, 2, 1]) * std / np.sqrt([3, 3, 2])
    mean = np.array([0.4, 0.6, 0.95])
    np.testing.assert_allclose(fast["high"], np.minimum(mean + half, 1.0))  # accuracy <= 1
    np.testing.assert_allclose(fast["low"], np.maximum(mean - half, 0.0))
    assert fast["high"].max() == 1.0  # the last epoch's band was cut
    ax = drawn.fig.axes[0]
    solid = {ln.get_label(): ln for ln in ax.lines if not ln.get_label().startswith("_")}
    np.testing.assert_allclose(solid["0.1"].get_ydata(), [0.4, 0.6])  # while all 3 runs go
    np.testing.assert_allclose(solid["0.01"].get_ydata(), [0.15, 0.2, 0.4])
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    what = "mean ± 1 sd" if band == "std" else "95% CI"
    assert texts[:3] == ["0.01", "0.1", f"band: {what} of 2-3 runs,\ncut at 0 and 1"]
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "train accuracy"
    assert ax.get_legend().get_title().get_text() == "learning rate"


def test_curves_show_where_each_run_ended_and_the_mean_of_the_rest_dotted():
    drawn = draw("curves", curve_frame(), metric="train_acc", hue="lr", band="none")
    ax = drawn.fig.axes[0]
    dotted = [ln for ln in ax.lines if ln.get_linestyle() == ":"]
    assert len(dotted) == 1  # only lr 0.1 has a run that stopped early
    np.testing.assert_allclose(dotted[0].get_xydata(), [[2, 0.6], [3, 0.95]])
    ends = [ln for ln in ax.lines if ln.get_marker() == "o"]
    assert sorted(map(tuple, ends[0].get_xydata())) == [(2, 0.6), (3, 0.9), (3, 1.0)]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[-1] == "runs ended: circles;\nmean of the rest dotted"


def test_curves_default_band_of_few_runs_is_min_max_and_says_so():
    drawn = draw("curves", curve_frame(), metric="train_acc", where={"lr": 0.01})
    np.testing.assert_allclose(drawn.data["low"], [0.1, 0.2, 0.3])  # 2 runs: their min-max
    np.testing.assert_allclose(drawn.data["high"], [0.2, 0.2, 0.5])
    ax = drawn.fig.axes[0]
    assert ax.get_legend() is None  # no groups: the note stands above the axes
    assert [t.get_text() for t in ax.texts] == ["band: min-max of 2 runs"]


def test_curves_over_steps_and_log_x_when_runs_differ_tenfold():
    df = pd.DataFrame(
        [
            dict(g="true", seed=0, loss=[2.0, 0.5], steps=20, epochs_run=2),
            dict(
                g="random", seed=0, loss=list(np.linspace(2.3, 0.1, 25)), steps=250, epochs_run=25
            ),
        ]
    ).assign(status="ok")
    drawn = draw("curves", df, metric="loss", hue="g", x="step")
    ax = drawn.fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "step"
    true = drawn.data[drawn.data["g"] == "true"]
    assert true["x"].tolist() == [10.0, 20.0] and true["epoch"].tolist() == [1, 2]
    same = draw("curves", df, metric="loss", hue="g", logx=False)
    assert same.fig.axes[0].get_xscale() == "linear"
    with pytest.raises(PlotError, match="must be one of epoch, step") as e:
        draw("curves", df, metric="loss", x="time")
    assert e.value.key == "x"


def test_curves_leave_out_inf_epochs_and_keep_null_hue_values():
    df = curve_frame()
    df.loc[3, "train_acc"] = [0.1, float("inf"), 0.3]
    df["init_std"] = [None, None, None, 0.5, 0.5]  # a param left at its null default
    drawn = draw("curves", df, metric="train_acc", hue="init_std", band="none")
    second = drawn.data[drawn.data["init_std"] == 0.5]
    assert second["n"].tolist() == [2, 1, 2] and second["mean"].tolist()[1] == 0.2
    assert drawn.data["init_std"].isna().sum() == 3  # the null group is drawn, not dropped
    legend = [t.get_text() for t in drawn.fig.axes[0].get_legend().get_texts()]
    assert legend[:2] == ["0.5", "None"]


def test_a_log_axis_within_a_decade_gets_plain_ticks_not_overlapping_ones():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    def labels(ends, minor=False):  # more x values than a grid's few, which label themselves
        xs = np.geomspace(*ends, 9)
        df = pd.DataFrame({"d": xs, "w": np.arange(9.0), "status": "ok"})
        drawn = draw("line", df, x="d", y="w", logx=True, band="none")
        FigureCanvasAgg(drawn.fig).draw()
        ax = drawn.fig.axes[0]
        low, high = ax.get_xlim()
        ticks = ax.xaxis.get_minorticklocs() if minor else ax.get_xticks()
        texts = ax.get_xticklabels(minor=minor)
        return [t.get_text() for x, t in zip(ticks, texts) if low <= x <= high and t.get_text()]

    assert labels([0.115, 0.145]) == ["0.12", "0.13", "0.14"]
    assert labels([0.115, 0.145], minor=True) == []
    # One to two decades (the kernel's gamma): 1, 2, 5 of each, no minor labels to overlap.
    assert labels([0.005, 0.05]) == ["0.005", "0.01", "0.02", "0.05"]
    assert labels([0.005, 0.05], minor=True) == []
    assert "$\\mathdefault{10^{-2}}$" in labels([0.001, 10])  # decades keep matplotlib's


def test_curves_reject_a_scalar_metric():
    with pytest.raises(PlotError, match="not a per-epoch list") as e:
        draw("curves", results(), metric="score")
    assert e.value.key == "metric"


# --- plots of datasets ---------------------------------------------------------------

POINTS = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0], [3.0, 1.0]], dtype=np.float32)
LABELS = np.array([0, 1, 1, 0])


@pytest.fixture
def tiny(monkeypatch):
    """memo.datasets replaced by one 4-point dataset, 'tiny'; other names are unknown."""

    def load(name):
        if name != "tiny":
            raise PlotError("dataset", f"cannot load {name!r}")
        return POINTS, LABELS

    monkeypatch.setattr(plot_dataset, "load_dataset", load)


def test_dataset_2d_draws_each_class(tiny):
    drawn = draw("dataset_2d", dataset="tiny", legend=True, xlim=[-1, 4])
    ax = drawn.fig.axes[0]
    zero, one = ax.lines
    assert zero.get_xydata().tolist() == [[0, 0], [3, 1]] and zero.get_marker() == "o"
    assert one.get_xydata().tolist() == [[1, 1], [2, 0]] and one.get_marker() == "^"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["$y = 0$", "$y = 1$"]
    assert ax.get_aspect() == 1.0 and ax.get_xlim()[0] < -1 < 4 < ax.get_xlim()[1]


class HalfPlanes:
    """A stand-in network: neuron 0 fires where x > 1.5, neuron 1 where y > 0.5."""

    classes = [1]
    centers = [np.array([2, 1])]

    def neurons(self, X, i):
        return np.column_stack([X[:, 0] - 1.5, X[:, 1] - 0.5])

    def predict(self, X):
        return (self.neurons(X, 0) > 0).any(axis=1).astype(int)


def test_boundary_2d_regions_boundary_and_centres(tiny, monkeypatch):
    calls = []
    monkeypatch.setattr(plot_boundary, "fit_model", lambda X, y, m: calls.append(m) or HalfPlanes())
    drawn = draw("boundary_2d", dataset="tiny", model={"n_iter": 7, "max_bias": 0.5}, resolution=41)
    assert calls == [{"n_iter": 7, "max_bias": 0.5, "activation": "thres", "seed": 0}]
    d = drawn.data
    gx, gy = d["grid_x"], d["grid_y"]
    assert gx.shape == (41, 41)
    assert [r["mask"].tolist() for r in d["regions"]] == [(gx > 1.5).tolist(), (gy > 0.5).tolist()]
    assert [r["center"].tolist() for r in d["regions"]] == [[2, 0], [1, 1]]
    assert (d["prediction"] == ((gx > 1.5) | (gy > 0.5))).all()
    ax = drawn.fig.axes[0]
    stars = [ln.get_xydata().tolist() for ln in ax.lines if ln.get_marker() == "*"]
    assert stars == [[[2, 0]], [[1, 1]]]
    markers = [ln.get_marker() for ln in ax.lines]
    assert markers == ["o", "^", "o", "^", "*", "*"]  # points over the regions, stars on top
    assert len(ax.collections) == 5  # two filled regions, their outlines, the decision boundary
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[-2:] == ["decision boundary", "neuron centre"]  # the lines explained
    model = {"n_iter": 7, "max_bias": 0.5}
    top = draw("boundary_2d", dataset="tiny", model=model, samples_on_top=True, resolution=11)
    markers = [ln.get_marker() for ln in top.fig.axes[0].lines]
    assert markers == ["o", "^", "o", "^", "*", "*", "o", "^"]  # memo's: points over the stars


def test_boundary_2d_too_big_is_one_line_naming_the_key_before_any_fit(
    root, tiny, monkeypatch, capsys
):
    monkeypatch.setattr(plot_boundary, "fit_model", lambda *a: pytest.fail("fitted anyway"))
    model = {"n_iter": 10**9, "max_bias": 1.0}
    wide = {"type": "boundary_2d", "name": "wide", "dataset": "tiny", "model": model}
    fine = {**wide, "name": "fine", "model": {**model, "n_iter": 5}, "resolution": 10**4}
    experiment(root, [wide, fine], with_results=False)
    assert plot.main(["--name", "e"]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert errors == [
        "error: plot 'wide' (boundary_2d): key 'model.n_iter': 1,000,000,000 units on 4 points"
        " and 22,500 grid points are 2.3e+13 unit evaluations, over the 5e+08 this plot allows:"
        " at most n_iter 22,218 here (or a lower resolution)",
        "error: plot 'fine' (boundary_2d): key 'resolution': 10000² = 100,000,000 grid points;"
        " at most 1,000,000 (resolution 1000)",
    ]


def test_dataset_images_first_image_of_each_class(monkeypatch):
    X = np.arange(5 * 12, dtype=np.float32).reshape(5, 2, 2, 3) / 60  # (N, H, W, C)
    y = np.array([3, 1, 3, 1, 2])
    monkeypatch.setattr(plot_dataset, "load_dataset", lambda name: (X, y))
    keys = dict(dataset="d", rows=1, cols=3, img_width=2, img_height=2, img_channels=3)
    drawn = draw("dataset_images", classes=[1, 2, 3], **keys)
    assert drawn.data["index"] == [1, 4, 0]
    shown = [ax.images[0].get_array() for ax in drawn.fig.axes]
    for img, i in zip(shown, [1, 4, 0]):
        np.testing.assert_allclose(img, X[i])
    with pytest.raises(PlotError, match=r"no image of class 7 .*classes: 1, 2, 3") as e:
        draw("dataset_images", classes=[7], **keys)
    assert e.value.key == "classes"
    with pytest.raises(PlotError, match="4 values per image, but .d. has 12") as e:
        draw("dataset_images", classes=[1], **{**keys, "img_channels": 1})


# --- files and plot.py ----------------------------------------------------------------


def test_save_writes_each_format_atomically(tmp_path):
    fig = draw("heatmap", results(), pivot=PIVOT).fig
    written = plots.save(fig, tmp_path / "out" / "h", ["png", "pdf"])
    assert [p.name for p in written] == ["h.png", "h.pdf"]
    assert (tmp_path / "out" / "h.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "out" / "h.pdf").read_bytes()[:4] == b"%PDF"
    with pytest.raises(ValueError):
        plots.save(fig, tmp_path / "out" / "bad", ["nope"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["h.pdf", "h.png"]


def test_load_table_keeps_only_ok_rows(root):
    (root / "results").mkdir()
    df = results().assign(status=["ok", "error", "timeout"] * 9)
    df.to_csv(root / "results" / "e.csv", index=False)
    assert plots.load_table("e")["status"].unique().tolist() == ["ok"]
    assert len(plots.load_table("e")) == 9
    with pytest.raises(plots.MissingResults):
        plots.load_table("other")


def experiment(root, plot_entries, with_results=True):
    (root / "experiments" / "e.json").write_text(json.dumps({"plots": plot_entries}))
    if with_results:
        (root / "results").mkdir(exist_ok=True)
        results().to_csv(root / "results" / "e.csv", index=False)


GOOD = [
    {"type": "heatmap", "name": "map", "pivot": PIVOT, "xlabel": r"bias $\lambda$"},
    {"type": "slices", "name": "cut", "pivot": PIVOT, "slices": [0.15], "band": "sem"},
]
BAD = [
    {"type": "heatmap", "name": "typo", "pivot": PIVOT, "vmaxx": 1},
    {"type": "slices", "name": "nocol", "pivot": {**PIVOT, "val": "width"}, "slices": [0.0]},
    {"type": "pie", "name": "pie"},
]


def test_cli_draws_good_plots_and_names_each_bad_one(root, capsys):
    experiment(root, [BAD[0], GOOD[0], BAD[1], GOOD[1], BAD[2]])
    assert plot.main(["--name", "e"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert err[0].startswith("error: plot 'typo' (heatmap): key 'vmaxx': unknown key")
    assert err[1].startswith("error: plot 'nocol' (slices): key 'pivot.val': no column 'width'")
    assert err[2].startswith("error: plot 'pie' (pie): key 'type': unknown plot type 'pie'")
    files = sorted(p.name for p in (root / "plots" / "e").iterdir())
    assert files == ["cut.pdf", "cut.png", "map.pdf", "map.png"]


def test_cli_notes_when_the_figures_show_part_of_the_grid(root, capsys):
    experiment(root, GOOD)
    spec = json.loads((root / "experiments" / "e.json").read_text())
    spec.update(trial="algorithm", param_grid={"n_iter": list(range(1, 101))})
    (root / "experiments" / "e.json").write_text(json.dumps(spec))
    assert plot.main(["--name", "e", "--format", "png"]) == 0
    assert "note: 27 of 100 grid points have ok results" in capsys.readouterr().out


def test_cli_only_and_format(root, capsys):
    experiment(root, GOOD)
    assert plot.main(["--name", "e", "--only", "cut", "--format", "png"]) == 0
    assert [p.name for p in (root / "plots" / "e").iterdir()] == ["cut.png"]
    assert plot.main(["--name", "e", "--only", "cake"]) == 2
    assert "no plot named cake" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        plot.main(["--name", "e", "--format", "gif"])


def test_cli_missing_experiment_or_plots_is_one_line_exit_2(root, capsys):
    assert plot.main(["--name", "nope"]) == 2
    (root / "experiments" / "bare.json").write_text(json.dumps({"trial": "x"}))
    assert plot.main(["--name", "bare"]) == 2
    experiment(root, [GOOD[0], GOOD[0]])
    assert plot.main(["--name", "e"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "nope.json: no such experiment file" in err[0]
    assert 'no "plots" list' in err[1]
    assert "must be unique" in err[2] and err[2].endswith("repeated: map")
    assert not (root / "plots").exists()


def test_cli_takes_the_spec_as_run_py_does_by_path_or_positional(root, tmp_path, capsys):
    spec = tmp_path / "elsewhere" / "tiny.json"
    spec.parent.mkdir()
    spec.write_text(json.dumps({"plots": GOOD}))
    (root / "results").mkdir()
    results().to_csv(root / "results" / "tiny.csv", index=False)  # as run.py wrote it
    assert plot.main(["--name", str(spec), "--format", "png"]) == 0
    assert sorted(p.name for p in (root / "plots" / "tiny").iterdir()) == ["cut.png", "map.png"]
    assert f"of tiny into {root / 'plots' / 'tiny'}" in capsys.readouterr().out
    (root / "results" / "tiny.csv").unlink()
    assert plot.main([str(spec), "--only", "map"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no results for tiny (") and f"run.py --name {spec}`" in err
    (root / "experiments" / "tiny.json").write_text(json.dumps({"plots": GOOD[:1]}))
    assert plot.main([str(spec)]) == 2  # would draw another experiment's results
    assert capsys.readouterr().err == (
        f"error: {spec}: would share results/tiny with {root / 'experiments' / 'tiny.json'};"
        " rename one of the files\n"
    )


def test_cli_without_results_still_draws_dataset_plots(root, capsys, tiny):
    experiment(root, [GOOD[0], {"type": "dataset_2d", "name": "pts", "dataset": "tiny"}], False)
    assert plot.main(["--name", "e"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no results for e" in err[0] and err[0].endswith("Not drawn: map")
    assert sorted(p.name for p in (root / "plots" / "e").iterdir()) == ["pts.pdf", "pts.png"]


def test_cli_unexpected_error_is_one_line(root, capsys, monkeypatch):
    def broken(name):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(plot_dataset, "load_dataset", broken)
    experiment(root, [{"type": "dataset_2d", "name": "pts", "dataset": "x"}, GOOD[0]])
    assert plot.main(["--name", "e"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: plot 'pts' (dataset_2d): unexpected RuntimeError: disk on fire"
        " (--debug shows the traceback)"
    ]
    with pytest.raises(RuntimeError):
        plot.main(["--name", "e", "--debug"])


def test_cli_subprocess_exit_codes_and_files(root, cli):
    experiment(root, [GOOD[0], BAD[0], GOOD[1]])
    done = cli("--name", "e", script="plot.py")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: plot 'typo' (heatmap): key 'vmaxx': unknown key for heatmap; valid keys: type,"
        " name, figsize, xlabel, ylabel, title, pivot, vmin, vmax, contours, interpolation, where,"
        " clabel, row_names, annotate, xticks, yticks"
    ]
    files = sorted(p.name for p in (root / "plots" / "e").iterdir())
    assert files == ["cut.pdf", "cut.png", "map.pdf", "map.png"]  # no temp files left


def _moons_available():
    if not (importlib.util.find_spec("algorithm") and importlib.util.find_spec("memo.datasets")):
        return False
    try:
        from memo.datasets import load_dataset

        return len(load_dataset("moons").y) > 0
    except Exception:
        return False


@pytest.mark.skipif(not _moons_available(), reason="needs memo.datasets (moons) and algorithm.py")
def test_end_to_end_on_moons(root, cli):
    boundary = {"type": "boundary_2d", "name": "b", "dataset": "moons", "resolution": 60}
    boundary["model"] = {"n_iter": 200, "max_bias": 1.0}
    experiment(root, [{"type": "dataset_2d", "name": "d", "dataset": "moons"}, boundary, GOOD[0]])
    done = cli("--name", "e", "--format", "png", script="plot.py")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (root / "plots" / "e").iterdir()) == ["b.png", "d.png", "map.png"]
    # The figure shows the real network: each neuron fires on its own centre point.
    from algorithm import fit
    from memo.datasets import load_dataset

    ds = load_dataset("moons")
    net = fit(ds.X, ds.y, 200, 1.0)
    drawn = plots.draw(plots.validate(boundary))
    assert len(drawn.data["regions"]) == sum(net.K) > 0
    for region in drawn.data["regions"]:
        i, k = region["network"], region["neuron"]
        assert net.neurons(region["center"][None], i)[0, k] > 0


def test_cli_curves_read_the_records_of_the_points_in_the_table(root, capsys):
    from memo.store.records import Store

    store = Store("e")
    runs = [(0.1, [0.5, 0.9]), (0.1, [0.7, 1.0]), (0.01, [0.1, 0.2]), (0.01, [0.9, 0.9])]
    for i, (lr, acc) in enumerate(runs):
        params = {"lr": lr}
        metrics = {"train_acc": acc, "score": acc[-1]}
        store.write(dict(id=f"p{i}", _index=i, seed=i, status="ok", params=params, metrics=metrics))
    store.write(dict(id="bad", _index=4, seed=4, status="error", params={"lr": 0.1}, metrics={}))
    # p3 is no longer in the grid: run.py keeps its record but leaves it out of the table.
    table = pd.DataFrame({"id": ["p0", "p1", "p2", "bad"], "status": ["ok"] * 3 + ["error"]})
    table.to_csv(root / "results" / "e.csv", index=False)
    curves = {"type": "curves", "name": "acc", "metric": "train_acc", "hue": "lr"}
    experiment(root, [curves], with_results=False)
    drawn = plots.draw(plots.validate(curves), plots.load_curves("e"))
    np.testing.assert_allclose(drawn.data["mean"], [0.1, 0.2, 0.6, 0.95])  # lr 0.01, then 0.1
    assert drawn.data["n"].tolist() == [1, 1, 2, 2]  # the error record is left out
    assert plot.main(["--name", "e", "--format", "png"]) == 0, capsys.readouterr().err
    assert (root / "plots" / "e" / "acc.png").is_file()
    capsys.readouterr()
    (root / "results" / "e.csv").write_text('id,status\n"p0,ok\n')
    assert plot.main(["--name", "e"]) == 2  # a damaged table: one line, how to rewrite it
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot read {root / 'results' / 'e.csv'}")
    assert "rewrite it with: python run.py --name e --collect. Not drawn: acc" in err[0]


def test_cli_draws_the_records_where_the_table_is_missing_or_older_than_them(root, capsys):
    from memo.run.spec import load_spec
    from memo.store.records import Store

    spec = {"trial": "synthetic", "param_grid": {"x": [1.0, 2.0, 3.0]}}
    spec["plots"] = [{"type": "line", "name": "v", "x": "x", "y": "value", "band": "none"}]
    (root / "experiments" / "e.json").write_text(json.dumps(spec))
    points, store = load_spec("e").points(), Store("e")

    def record(point, value):
        metrics = {"value": value}
        store.write(
            dict(
                id=point.id,
                _index=point.index,
                seed=1,
                status="ok",
                params=point.params,
                metrics=metrics,
            )
        )

    record(points[1], 2.0)
    record(points[0], 1.0)
    gone = {"x": 9.0}  # a point no longer in the grid: kept, not drawn
    store.write(dict(id="gone", _index=7, seed=1, status="ok", params=gone, metrics={"value": 9.0}))
    # Ctrl-C: records, no table. The figure shows the grid's points, in grid order.
    assert plot.main(["--name", "e", "--format", "png"]) == 0
    out = capsys.readouterr().out
    assert f"note: {root / 'results' / 'e.csv'} is missing; the figures show the records" in out
    assert plots.load_table("e")["x"].tolist() == [1.0, 2.0]
    store.write_table(points)  # what --collect writes: read as it is, no note
    assert "note" not in plots.load_table("e").attrs
    assert plots.load_table("e")["x"].tolist() == [1.0, 2.0]
    table = root / "results" / "e.csv"
    stamp = table.stat().st_mtime_ns - 10**9
    os.utime(table, ns=(stamp, stamp))  # then a record arrives: the table is older
    record(points[2], 3.0)
    drawn = plots.load_table("e")
    assert "is older than the records" in drawn.attrs["note"]
    assert drawn["x"].tolist() == [1.0, 2.0, 3.0]


# --- table, legend labels ------------------------------------------------------------


def test_table_cells_are_mean_and_spread_per_group_in_markdown_and_latex(tmp_path):
    df = results()
    drawn = draw("table", df, index="n_iter", columns="max_bias", values="second_dim_out")
    assert drawn.fig is None
    hand = by_hand(df, ["n_iter", "max_bias"], "second_dim_out")
    cells = drawn.data.set_index(["n_iter", "max_bias"])
    for (n_iter, bias), row in hand.iterrows():
        mean, std = row["mean"], row["std"]
        assert cells.loc[(n_iter, bias), "cell"] == f"{mean:.3f} ± {std:.3f}"
    md, tex = drawn.texts["md"], drawn.texts["tex"]
    header = md.splitlines()[0]
    assert (
        "width of first layer $n$" in header
        and "width of second layer, $\\lambda$ = 0.15" in header
    )
    first = hand.loc[(10, 0.0)]
    assert f"{first['mean']:.3f} ± {first['std']:.3f}" in md.splitlines()[2]
    assert md.strip().endswith("Mean ± 1 sd over 3 runs per cell")
    assert "\\toprule" in tex and "\\bottomrule" in tex and "$\\pm$" in tex
    assert "\\multicolumn{3}{c}{width of second layer}" in tex
    written = plots.save(drawn, tmp_path / "t")
    assert sorted(p.name for p in written) == ["t.md", "t.tex"]
    assert (tmp_path / "t.md").read_text() == md


def test_table_spread_minmax_and_one_run_cells():
    df = results(seeds=2)
    drawn = draw("table", df, index=["n_iter", "max_bias"], values="score", spread="minmax")
    row = drawn.data.iloc[0]
    assert row["cell"] == f"{row['mean']:.3f} ({row['min']:.3f}-{row['max']:.3f})"
    two = draw("table", df, index="n_iter", values="score", decimals=2)
    assert two.data["cell"].str.fullmatch(r"\d\.\d\d ± \d\.\d\d").all()
    single = draw("table", results(seeds=1), index=["n_iter", "max_bias"], values="score")
    assert all("±" not in c for c in single.data["cell"])  # one run: the mean alone
    with pytest.raises(PlotError, match="unknown key for table") as e:
        entry("table", index="n_iter", values="score", figsize=[2, 2])
    assert e.value.key == "figsize"
    named = df.rename(columns={"max_bias": "max"})  # a param named like a statistic
    for key in ("index", "columns"):
        grouping = {"index": "n_iter", key: "max"}
        with pytest.raises(PlotError, match="'max' cannot be grouped by") as e:
            draw("table", named, values="score", **grouping)
        assert e.value.key == key


def test_legend_labels_name_groups_by_their_values_and_order_the_legend():
    df = pd.DataFrame(
        [
            dict(p=p, c=c, seed=s, acc=p + s / 10)
            for p, c in [(0.0, "none"), (1.0, "none"), (0.0, "random_pixels")]
            for s in (0, 1)
        ]
    ).assign(status="ok")
    plain = draw("line", df, x="seed", y="acc", hue=["p", "c"], band="none")
    texts = [t.get_text() for t in plain.fig.axes[0].get_legend().get_texts()]
    assert texts[:3] == ["p = 0.0", "p = 0.0, random pixels", "p = 1.0"]  # readable by default
    names = {"1.0, none": "random labels", "0.0, none": "true labels"}
    named = draw(
        "line", df, x="seed", y="acc", hue=["p", "c"], band="none", legend={"labels": names}
    )
    texts = [t.get_text() for t in named.fig.axes[0].get_legend().get_texts()]
    assert texts[:3] == ["random labels", "true labels", "p = 0.0, random pixels"]
    with pytest.raises(PlotError, match="no group '0.5, none'; the groups are '0.0, none'") as e:
        draw("line", df, x="seed", y="acc", hue=["p", "c"], legend={"labels": {"0.5, none": "x"}})
    assert e.value.key == "legend.labels"


def test_cli_names_a_plot_whose_column_the_trial_does_not_give(root, capsys):
    spec = {"trial": "synthetic", "param_grid": {"x": [1.0, 2.0]}}
    spec["plots"] = [
        {"type": "line", "name": "typo", "x": "x", "y": "valeu"},
        {"type": "line", "name": "fine", "x": "x", "y": "value"},
    ]
    (root / "experiments" / "e.json").write_text(json.dumps(spec))
    (root / "results").mkdir()
    pd.DataFrame({"x": [1.0, 2.0], "value": [1.0, 2.0], "status": "ok"}).to_csv(
        root / "results" / "e.csv", index=False
    )
    assert plot.main(["--name", "e", "--format", "png"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: plot 'typo' (line): key 'y': the trial gives no column 'valeu' (did you mean"
        " 'value'?); see python run.py --describe synthetic"
    ]
    assert (root / "plots" / "e" / "fine.png").is_file()


def test_one_run_per_point_draws_no_band_and_says_none():
    df = results(seeds=1)
    drawn = draw("line", df, x="n_iter", y="score", hue="max_bias")
    ax = drawn.fig.axes[0]
    assert not ax.collections and drawn.data["low"].isna().all()
    assert [t.get_text() for t in ax.get_legend().get_texts()][:3] == ["0.0", "0.15", "0.3"]


def test_heatmap_names_the_dashed_line_only_where_one_is_drawn():
    df = results().assign(score=1.0)  # interpolates everywhere: no 0.99 line to draw
    drawn = draw("heatmap", df, pivot=PIVOT, title="t")
    assert drawn.fig.axes[0].get_legend() is None
    assert drawn.data["interpolation"] is not None


def test_large_numbers_on_axes_read_short_not_with_an_offset():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    df = pd.DataFrame({"size": [2e5, 6e5, 1e6], "w": [1.0, 2.0, 3.0], "status": "ok"})
    drawn = draw("line", df, x="size", y="w", band="none")
    FigureCanvasAgg(drawn.fig).draw()
    ax = drawn.fig.axes[0]
    texts = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert "200k" in texts and "1M" in texts and not ax.xaxis.get_offset_text().get_text()
    cells = pd.DataFrame({"n": np.repeat(np.arange(1, 11) * 1e5, 2), "m": [1, 2] * 10})
    heat = draw(
        "heatmap", cells.assign(v=1.0, status="ok"), pivot={"idx": "m", "col": "n", "val": "v"}
    )
    labels = [t.get_text() for t in heat.fig.axes[0].get_xticklabels()]
    assert "200,000" in labels and "1,000,000" in labels  # round values, separated thousands
    with pytest.raises(PlotError, match="a column named 'n' cannot be grouped by"):
        draw("line", df.rename(columns={"size": "n"}), x="n", y="w")


# --- what a reader sees: lines that meet, a grid's ticks, named rows, cell values, headers


def test_lines_that_coincide_stay_visible_and_the_legend_says_so():
    rows = [
        dict(kernel=k, label_noise=p, seed=s, train_error=0.0, test_error=p / (2 + i))
        for i, k in enumerate(["gaussian", "laplacian"])
        for p in (0.0, 0.5, 1.0)
        for s in (0, 1)
    ]
    df = pd.DataFrame(rows).assign(status="ok")
    legend = {"title": "kernel", "labels": ["Gaussian", "Laplacian"]}
    keys = dict(x="label_noise", hue="kernel", band="none", legend=legend)
    ax = draw("line", df, y="train_error", **keys).fig.axes[0]
    under, over = ax.lines
    assert under.get_marker() != over.get_marker()  # shapes apart, hollow: both seen
    assert under.get_markerfacecolor() == over.get_markerfacecolor() == "none"
    assert under.get_linestyle() == "-" and over.get_linestyle() == "--"
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["Gaussian", "Laplacian", "Gaussian and Laplacian coincide"]
    apart = draw("line", df, y="test_error", **keys).fig.axes[0]
    assert [t.get_text() for t in apart.get_legend().get_texts()] == ["Gaussian", "Laplacian"]
    assert apart.lines[1].get_linestyle() == "-"


def test_a_few_grid_values_label_the_axis_themselves_both_ends_included():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    df = pd.DataFrame({"n_train": [250, 500, 1000, 2000, 4000], "norm": [13.0, 17, 23, 31, 40]})
    drawn = draw("line", df.assign(status="ok"), x="n_train", y="norm", logx=True, band="none")
    FigureCanvasAgg(drawn.fig).draw()
    ax = drawn.fig.axes[0]
    major = [t.get_text() for t in ax.get_xticklabels()]
    assert major == ["250", "500", "1000", "2000", "4000"]
    assert not any(t.get_text() for t in ax.get_xticklabels(minor=True))


def zhang_table1():
    models = [("mlp", "512", 38410), ("alexnet", "512", 278666)]
    models += [("mlp", "512x512x512", 563722), ("inception", "512", 1647674)]
    rows = [
        dict(model=m, hidden=h, n_params=n, label_noise=p, weight_decay=wd)
        | dict(train_acc=1.0 - p * i / 10, test_acc=0.97 - p * (0.88 + i / 100))
        for i, (m, h, n) in enumerate(models)
        for p in (0.0, 1.0)
        for wd in (0.0, 0.0005)
    ]
    return pd.DataFrame(rows).assign(status="ok")


def test_heatmap_rows_read_as_models_and_each_cell_shows_its_value():
    df = zhang_table1()
    pivot = {"idx": "n_params", "col": "label_noise", "val": "train_acc"}
    drawn = draw("heatmap", df, pivot=pivot, row_names="architecture", where={"weight_decay": 0.0})
    ax = drawn.fig.axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows == ["MLP 1×512 (38k)", "AlexNet (0.28M)", "MLP 3×512 (0.56M)", "Inception (1.6M)"]
    cells = {(t.get_position(), t.get_text()) for t in ax.texts}
    assert cells == {
        ((col, row), f"{1.0 - p * i / 10:.2f}")
        for row, i in enumerate(range(4))
        for col, p in enumerate((0.0, 1.0))
    }
    wrong = df.assign(architecture=["a", "b"] * 8)  # a row of two names
    with pytest.raises(PlotError, match="n_params = 38410 has rows named a, b") as e:
        draw("heatmap", wrong, pivot=pivot, row_names="architecture")
    assert e.value.key == "row_names"
    cells = pd.DataFrame([dict(a=a, b=b, v=a * b) for a in range(9) for b in range(9)])
    big = draw("heatmap", cells.assign(status="ok"), pivot={"idx": "a", "col": "b", "val": "v"})
    assert not big.fig.axes[0].texts  # 81 cells: no values written unless asked
    assert not draw("heatmap", df, pivot=pivot, annotate=False).fig.axes[0].texts


def latex_grid(tex: str) -> list:
    """The header rows of a tabular as cells, one per column: a \\multicolumn{n} fills n cells
    (its text in each); checks that every row has as many cells as the tabular has columns."""
    import re

    spec = re.search(r"\\begin\{tabular\}\{(\w+)\}", tex).group(1)
    head = tex.split("\\toprule")[1].split("\\midrule")[0]
    rows = []
    for line in head.split("\\\\"):
        line = re.sub(r"\\cmidrule\(lr\)\{\d+-\d+\}", "", line).strip()
        if not line:
            continue
        cells = []
        for cell in re.split(r"(?<!\\)&", line):
            span = re.fullmatch(r"\s*\\multicolumn\{(\d+)\}\{c\}\{(.*)\}\s*", cell)
            cells += [span.group(2)] * int(span.group(1)) if span else [cell.strip()]
        assert len(cells) == len(spec), (line, spec)
        rows.append(cells)
    return rows


def test_table_latex_puts_every_header_over_its_own_column():
    drawn = draw(
        "table",
        zhang_table1(),
        index=["architecture", "weight_decay"],
        columns="label_noise",
        values=["train_acc", "test_acc"],
    )
    tex = drawn.texts["tex"]
    assert "\\begin{tabular}{llrrrr}" in tex
    metrics, names = latex_grid(tex)
    assert metrics == ["", ""] + ["train accuracy"] * 2 + ["test accuracy"] * 2
    assert names == ["model (parameters)", "weight decay"] + ["$p$ = 0.0", "$p$ = 1.0"] * 2
    assert "\\cmidrule(lr){3-4} \\cmidrule(lr){5-6}" in tex
    body = tex.split("\\midrule")[1].split("\\bottomrule")[0].strip().splitlines()
    assert body[0].split(" & ")[:2] == ["AlexNet (0.28M)", "0.0"]
    assert body[1].split(" & ")[:2] == ["", "0.0005"]  # the same model: not repeated
    assert body[4].startswith("MLP 1$\\times$512 (38k) & 0.0 & 1.000 & 1.000 & 0.970 & 0.090")


def test_wall_clock_seconds_say_they_depend_on_the_machine_and_its_load():
    df = pd.DataFrame({"p": [0.0, 0.5, 1.0], "interp_time": [3.0, 9.0, 30.0]})
    df = df.assign(interp_epoch=[7, 30, 99], status="ok")
    timed = draw("line", df, x="p", y="interp_time", band="none").fig.axes[0]
    notes = [t.get_text() for t in timed.texts]
    assert notes == [
        "wall-clock time: set by the machine and\nits load, which the results do not record"
    ]
    assert not draw("line", df, x="p", y="interp_epoch", band="none").fig.axes[0].texts


def test_no_experiment_draws_wall_clock_seconds_by_default():
    from pathlib import Path

    for path in sorted(Path(plot.__file__).parent.glob("experiments/*.json")):
        for cfg in json.loads(path.read_text()).get("plots", []):
            for key in ("x", "y"):
                column = cfg.get(key)
                assert not (column and measures.is_wall_clock(column)), (path.name, cfg["name"])
