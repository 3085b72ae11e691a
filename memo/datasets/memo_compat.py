"""patrickfinke/memo's datasets, and what its files' dataset names mean here.

memo's ``data.py`` builds every dataset it fits scaled to largest Euclidean norm 1, and
its experiment files have no preprocess key. Its definitions, built here from the
official downloads (``formats``):

- ``memo_mnist``: all 70,000 MNIST images (training then test split), pixels / 255,
  scaled to max norm 1; ``mnist_original``: the same images, pixels / 255 only (memo's
  ``dataset_images`` plots draw them).
- ``memo_cifar10``, ``cifar10_original``: the same for all 60,000 CIFAR-10 images.
- ``memo_mnist_1v{9,8}_size_{10..100}``: digit 1 -> label 1 and the other digit -> 0,
  from the 70,000 images, scaled once over the whole pair set; percent p is the first
  int(p / 100 * N) pairs of one nested order: ten stratified random draws, each from
  what the previous ones left (memo's ``generate_sizes``, seeded here: memo's was not).
- ``moons``, ``moons_size_*`` and ``lines`` are memo's definitions under this
  project's names already.

A spec whose trial is ``"algorithm"`` (memo's name) gets memo's data: :func:`memo_params`
replaces the names above by the ``memo_*`` ones, and scales any other dataset to max
norm 1 (``preprocess: "maxnorm"``) unless the spec sets ``preprocess``. Images stay
channels-last, (N, H, W, C): memo's rows were channels-first, which changes nothing a
fit measures (the first layer's Gaussian weights treat every feature alike).
"""

import numpy as np

from memo.datasets.cache import DatasetError

SEED = 0  # the nested order of the pair subsets
PERCENTS = range(10, 101, 10)  # memo's pair subsets, in percent of the pair set
PAIRS = (9, 8)  # digit 1 against each of these
# memo's names for datasets whose definition differs from this project's.
NAMES = {"mnist": "memo_mnist", "cifar10": "memo_cifar10"} | {
    f"mnist_1v{d}_size_{p}": f"memo_mnist_1v{d}_size_{p}" for d in PAIRS for p in PERCENTS
}
# memo's definitions that this project has under the same name.
SAME = ("moons", "lines", "mnist_original", "cifar10_original")


def memo_params(params: dict) -> dict:
    """A point's params with memo's data: what memo's ``trial`` fitted for these params.

    >>> memo_params({"dataset": "mnist", "n_iter": 10})
    {'dataset': 'memo_mnist', 'n_iter': 10}
    >>> memo_params({"dataset": "digits"})["preprocess"]
    'maxnorm'
    >>> memo_params({"dataset": "moons_size_1k"})
    {'dataset': 'moons_size_1k'}
    """
    name = params.get("dataset")
    if not isinstance(name, str):
        return params
    if name in NAMES:
        return {**params, "dataset": NAMES[name]}
    if is_memo_definition(name) or "preprocess" in params:
        return params
    return {**params, "preprocess": "maxnorm"}  # memo scaled every dataset it fitted


def is_memo_definition(name: str) -> bool:
    """Whether dataset ``name`` (a name of this project) is built as memo builds it."""
    return name in SAME or name.startswith(("memo_", "moons_size_"))


def pair_sizes(n: int) -> list:
    """memo's pair subset sizes: int(p / 100 * n) for p = 10, 20, ..., 100 (float maths).

    >>> pair_sizes(14835)[:3], pair_sizes(14835)[-1]
    ([1483, 2967, 4450], 14835)
    """
    return [pair_size(percent, n) for percent in PERCENTS]


def pair_size(percent: int, n: int) -> int:
    """memo's size of the percent% subset of n pairs."""
    return int(percent / 100 * n)


def nested_order(y: np.ndarray, sizes: list, seed: int = SEED) -> np.ndarray:
    """An order of range(len(y)) whose first sizes[i] entries are subset i, for each i.

    Each increment is a stratified random draw (scikit-learn's train_test_split) from
    the points the earlier draws left; an increment that takes all of them takes them in
    order, as memo's generate_sizes does.

    >>> order = nested_order(np.array([0] * 10 + [1] * 30), [4, 20, 40])
    >>> np.bincount(np.array([0] * 10 + [1] * 30)[order[:20]]).tolist()
    [5, 15]
    >>> sorted(order.tolist()) == list(range(40))
    True
    """
    from sklearn.model_selection import train_test_split

    rng = np.random.RandomState(seed)
    rest, parts = np.arange(len(y)), []
    for step in np.diff(sizes, prepend=0):
        if step >= len(rest):
            parts.append(rest)
            break
        if step > 0:
            take, rest = train_test_split(
                rest, train_size=int(step), stratify=y[rest], random_state=rng
            )
            parts.append(take)
    return np.concatenate(parts)


def _all_images(ds, scale: bool):
    """Training then test images of an official split, pixels / 255 in float32 as memo
    (which read them from OpenML in that order); scaled to max norm 1 if asked."""
    X = np.concatenate([ds.X, ds.X_test]).astype(np.float32, copy=False)
    X /= np.float32(255)
    if scale:
        X /= _largest_norm(X)
    return X, np.concatenate([ds.y, ds.y_test])


def _largest_norm(X) -> np.float32:
    norm = np.linalg.norm(X.reshape(len(X), -1), axis=1).max()
    if not norm > 0:
        raise DatasetError("cannot scale to max norm 1: every image is blank")
    return norm


def build_all(load_dataset, base: str, scale: bool):
    """Build function of memo_mnist / mnist_original (base "mnist") and the CIFAR pair;
    ``load_dataset``: the registry's loader (passed in: the registry imports this module)."""

    def build():
        X, y = _all_images(load_dataset(base), scale)
        return X, y, None, None

    return build


def build_pairs(load_dataset, negative: int):
    """Build function of memo_mnist_1v<negative>_size_100: every pair in the nested order;
    ``load_dataset`` as in :func:`build_all`."""

    def build():
        ds = load_dataset("mnist")
        y = np.concatenate([ds.y, ds.y_test])
        pairs = np.flatnonzero(np.isin(y, (1, negative)))
        X = np.concatenate([ds.X, ds.X_test])[pairs].astype(np.float32, copy=False)
        X /= np.float32(255)
        X /= _largest_norm(X)  # once over the pair set: the subsets keep this scale
        labels = (y[pairs] == 1).astype(np.int64)
        order = nested_order(labels, pair_sizes(len(labels)))
        return X[order], labels[order], None, None

    return build
