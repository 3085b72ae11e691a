"""boundary_2d: what the constructive algorithm's network does on a 2-D dataset, each
second-layer neuron's region, the decision boundary and the neurons' centres.

It fits the network here (``fit_model``, through algorithm.py: tests replace it with a
fake) on the points of memo.plots.dataset, after checking the work fits a budget.
"""

import itertools

import numpy as np

from memo.plots._core import AXES, LEGEND_ON, REQUIRED, Drawn, PlotError, Sub, plot_type
from memo.plots.axes import contour, finish, new_axes
from memo.plots import dataset

MODEL = Sub({"n_iter": REQUIRED, "max_bias": REQUIRED, "activation": "thres", "seed": 0})
# boundary_2d's sizes, checked before any work: grid points (resolution²), and first-layer
# units times the points they are evaluated on, fit and grid (moons, n_iter 2000 at resolution
# 150: 4.7e7, ~5 s on 2 busy cores; the budget takes ~1 min)
MAX_GRID = 1000**2
MAX_UNIT_EVALUATIONS = 5e8


# Marker and colour per class, in label order: memo's red circles and blue triangles first.
def fit_model(X, y, model: dict):
    """The network ``algorithm.fit`` builds on (X, y) with the ``model`` keys."""
    try:
        from algorithm import fit
    except ImportError as e:
        raise PlotError("model", f"algorithm.py is not importable ({e})") from None
    try:
        return fit(
            X,
            y,
            model["n_iter"],
            model["max_bias"],
            activation=model["activation"],
            seed=model["seed"],
        )
    except ValueError as e:
        raise PlotError("model", str(e)) from None


@plot_type(
    "boundary_2d",
    dataset=REQUIRED,
    model=MODEL,
    markersize=2.0,
    samples_on_top=False,
    outline=False,
    resolution=150,
    legend=LEGEND_ON,
    **AXES,
)
def boundary_2d(cfg: dict, df=None) -> Drawn:
    """A network fitted on a 2-D dataset: each second-layer neuron's region, the decision
    boundary (dashed) and each neuron's centre point (star), over the data.

    Keys: dataset; model {n_iter, max_bias, activation ("thres"), seed (0)}: passed to
    algorithm.fit; markersize (2; centres are 6x); samples_on_top: draw the points over
    the centres' stars too, as memo does (false: the stars cover the points they sit
    on; the points are always drawn over the regions and the boundary); outline: a
    dashed grey frame to highlight the panel (false); resolution: grid points per axis
    (150, at most 1000; n_iter × (points + resolution²) at most MAX_UNIT_EVALUATIONS: a
    bigger plot is a PlotError before the fit); legend: true/false (true) or {title,
    labels}; xlim, ylim; xticks, yticks; plus name, figsize, xlabel, ylabel, title.
    data: ``boundary_data``'s dict plus "X" and "y".
    """
    X, y = dataset._points(cfg["dataset"])
    _check_sizes(cfg, len(X))
    net = fit_model(X, y, cfg["model"])
    fig, ax = new_axes(cfg)
    dataset._draw_classes(ax, X, y, cfg["markersize"])
    ax.set_aspect("equal")
    finish(ax, cfg, extra=_boundary_marks(cfg["markersize"]) if cfg["legend"] else ())
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    data = boundary_data(net, X, xlim, ylim, cfg["resolution"])
    gx, gy = data["grid_x"], data["grid_y"]
    for region, color in zip(data["regions"], itertools.cycle(_cycle_colors())):
        mask = region["mask"].astype(float)
        contour(ax, gx, gy, mask, levels=[0.5, 1.5], colors=[color], alpha=0.5, filled=True)
        contour(ax, gx, gy, mask, levels=[0.5], colors=[color], linewidths=0.75)
    values = np.unique(data["prediction"])
    codes = np.searchsorted(values, data["prediction"])
    contour(
        ax,
        gx,
        gy,
        codes,
        levels=np.arange(len(values) - 1) + 0.5,
        colors="black",
        linestyles="dashed",
        linewidths=1,
    )
    dataset._draw_classes(ax, X, y, cfg["markersize"], labels=False)  # over regions and boundary
    for region, color in zip(data["regions"], itertools.cycle(_cycle_colors())):
        cx, cy = region["center"]
        star = {"markerfacecolor": color, "markeredgecolor": "black", "markeredgewidth": 1.0}
        ax.plot(cx, cy, "*", markersize=6 * cfg["markersize"], **star)
    if cfg["samples_on_top"]:
        dataset._draw_classes(ax, X, y, cfg["markersize"], labels=False)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    if cfg["outline"]:
        for spine in ax.spines.values():
            spine.set(visible=True, edgecolor="0.45", linestyle="--", linewidth=1.2)
    return Drawn(fig, {**data, "X": X, "y": y})


def _check_sizes(cfg: dict, points: int) -> None:
    """PlotError naming resolution or model.n_iter when the fit and the grid would take more
    than MAX_GRID grid points or MAX_UNIT_EVALUATIONS first-layer unit evaluations."""
    grid = cfg["resolution"] ** 2
    if grid > MAX_GRID:
        raise PlotError(
            "resolution",
            f"{cfg['resolution']}² = {grid:,} grid points; at most {MAX_GRID:,} "
            f"(resolution {int(MAX_GRID**0.5)})",
        )
    n_iter = cfg["model"]["n_iter"]
    work = n_iter * (points + grid)
    if work > MAX_UNIT_EVALUATIONS:
        raise PlotError(
            "model.n_iter",
            f"{n_iter:,} units on {points:,} points and {grid:,} grid points are {work:.2g} "
            f"unit evaluations, over the {MAX_UNIT_EVALUATIONS:.0e} this plot allows: at most "
            f"n_iter {int(MAX_UNIT_EVALUATIONS // (points + grid)):,} here (or a lower resolution)",
        )


def _boundary_marks(markersize: float) -> list:
    """Legend entries for the decision boundary and the neurons' centres."""
    from matplotlib.lines import Line2D

    line = Line2D([], [], color="black", linestyle="dashed", linewidth=1)
    star = Line2D([], [], linestyle="", marker="*", markersize=3 * markersize, color="0.6")
    star.set_markeredgecolor("black")
    return [(line, "decision boundary"), (star, "neuron centre")]


def _cycle_colors() -> list:
    from matplotlib import rcParams

    return rcParams["axes.prop_cycle"].by_key()["color"]


def boundary_data(net, X, xlim, ylim, resolution: int) -> dict:
    """What boundary_2d draws, on a resolution × resolution grid over xlim × ylim.

    Returns {"grid_x", "grid_y": the grid; "prediction": net.predict on it; "regions":
    per class network i and neuron k, {"network", "label", "neuron", "center": the
    neuron's centre point X[net.centers[i][k]], "mask": where its pre-activation > 0}}.
    """
    gx, gy = np.meshgrid(np.linspace(*xlim, resolution), np.linspace(*ylim, resolution))
    grid = np.column_stack([gx.ravel(), gy.ravel()]).astype(
        X.dtype if X.dtype.kind == "f" else np.float32
    )
    regions = []
    for i, label in enumerate(net.classes):
        active = np.asarray(net.neurons(grid, i)) > 0
        for k, center in enumerate(np.asarray(net.centers[i], dtype=int)):
            mask = active[:, k].reshape(gx.shape)
            regions.append(
                {"network": i, "label": label, "neuron": k, "center": X[center], "mask": mask}
            )
    prediction = np.asarray(net.predict(grid)).reshape(gx.shape)
    return {"grid_x": gx, "grid_y": gy, "prediction": prediction, "regions": regions}
