"""Plots of a dataset itself: dataset_2d (points by class) and dataset_images (a grid of
images per class).

They need no run.py results, so plot.py draws them even before an experiment has run.
``load_dataset`` is the only place they reach memo.datasets; tests replace it with a fake.
"""

import itertools

import numpy as np
from matplotlib.figure import Figure

from memo.plots._core import AXES, LEGEND, REQUIRED, Drawn, PlotError, plot_type
from memo.plots.axes import finish, fmt, new_axes

CLASS_STYLES = [
    ("o", "r"),
    ("^", "b"),
    ("s", "tab:green"),
    ("D", "tab:orange"),
    ("v", "tab:purple"),
    ("P", "tab:brown"),
]


def load_dataset(name: str):
    """``(X, y)`` of dataset ``name`` as numpy arrays; errors name the ``dataset`` key."""
    try:
        from memo.datasets import DatasetError, load_dataset as load
    except ImportError as e:
        raise PlotError("dataset", f"memo.datasets is not available ({e})") from None
    try:
        ds = load(name)
    except (DatasetError, LookupError, ValueError, OSError) as e:
        raise PlotError("dataset", f"cannot load {name!r}: {e}") from None
    return np.asarray(ds.X), np.asarray(ds.y)


def _points(name: str):
    X, y = load_dataset(name)
    X = X.reshape(len(X), -1)
    if X.shape[1] != 2:
        raise PlotError(
            "dataset", f"{name!r} has {X.shape[1]} features; this plot needs 2-D points"
        )
    return X, y


def _draw_classes(ax, X, y, markersize: float, labels: bool = True) -> None:
    for label, (marker, color) in zip(np.unique(y), itertools.cycle(CLASS_STYLES)):
        pts = X[y == label]
        name = rf"$y = {fmt(label)}$" if labels else None
        ax.plot(
            pts[:, 0],
            pts[:, 1],
            marker,
            color=color,
            markersize=markersize,
            linestyle="none",
            label=name,
        )


@plot_type("dataset_2d", dataset=REQUIRED, markersize=2.0, legend=LEGEND, **AXES)
def dataset_2d(cfg: dict, df=None) -> Drawn:
    """The points of a 2-D dataset, one marker and colour per class, equal axis scales.

    Keys: dataset: a name memo.datasets.load_dataset knows; markersize (2); legend:
    true/false (false) or {title, labels}, default labels "$y = <label>$"; xlim, ylim;
    xticks, yticks; plus name, figsize, xlabel, ylabel, title.
    data: {"X": the points, "y": their labels}.
    """
    X, y = _points(cfg["dataset"])
    fig, ax = new_axes(cfg)
    _draw_classes(ax, X, y, cfg["markersize"])
    ax.set_aspect("equal")
    finish(ax, cfg)
    return Drawn(fig, {"X": X, "y": y})


@plot_type(
    "dataset_images",
    dataset=REQUIRED,
    rows=REQUIRED,
    cols=REQUIRED,
    classes=REQUIRED,
    img_width=REQUIRED,
    img_height=REQUIRED,
    img_channels=1,
)
def dataset_images(cfg: dict, df=None) -> Drawn:
    """The first image of each class in ``classes``, on a rows × cols grid.

    Keys: dataset; rows, cols; classes: labels, one image each, row by row; img_width,
    img_height, img_channels (1): the shape each row of X is reshaped to (height, width,
    channels); plus name, figsize ([2.5, 1]), xlabel, ylabel, title (for the whole
    figure). Images with values outside [0, 1] (standardized data) are min-max scaled.
    data: {"index": the row of X shown per class, "images": the arrays drawn}.
    """
    X, y = load_dataset(cfg["dataset"])
    h, w, c = cfg["img_height"], cfg["img_width"], cfg["img_channels"]
    per_image = int(np.prod(X.shape[1:]))
    if per_image != h * w * c:
        raise PlotError(
            "img_width",
            f"{h}x{w}x{c} = {h * w * c} values per image, but {cfg['dataset']!r} has {per_image}",
        )
    classes = cfg["classes"]
    if len(classes) > cfg["rows"] * cfg["cols"]:
        raise PlotError(
            "classes", f"{len(classes)} classes do not fit on {cfg['rows']} x {cfg['cols']} images"
        )
    fig = Figure(figsize=cfg["figsize"] or [2.5, 1.0])
    axes = fig.subplots(
        cfg["rows"], cfg["cols"], squeeze=False, gridspec_kw={"wspace": 0.1, "hspace": 0.1}
    )
    index, images = [], []
    for ax, label in zip(axes.flat, classes):
        hits = np.flatnonzero(y == label)
        if len(hits) == 0:
            have = ", ".join(fmt(v) for v in np.unique(y))
            raise PlotError(
                "classes", f"no image of class {label!r} in {cfg['dataset']!r} (classes: {have})"
            )
        img = X[hits[0]].reshape((h, w) if c == 1 else (h, w, c)).astype(float)
        low, high = img.min(), img.max()
        if low < 0 or high > 1:
            img = (img - low) / ((high - low) or 1.0)
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        index.append(int(hits[0]))
        images.append(img)
    for ax in axes.flat:
        ax.axis("off")
    for text, put in (
        (cfg["title"], fig.suptitle),
        (cfg["xlabel"], fig.supxlabel),
        (cfg["ylabel"], fig.supylabel),
    ):
        if text:
            put(text)
    return Drawn(fig, {"index": index, "images": images})
