"""Preprocessing and corruption of a dataset's arrays; pure functions that return new float32 arrays.

Images are (N, H, W, C); vector data (N, D) counts as images of D pixels and one channel.
"""

import dataclasses

import numpy as np

from memo.datasets.cache import Dataset, DatasetError


def _pixels(X: np.ndarray) -> np.ndarray:
    """View X as (N, pixels, channels)."""
    return X.reshape(len(X), -1, X.shape[-1] if X.ndim == 4 else 1)


def _both(f, X, X_test):
    return f(X), None if X_test is None else f(X_test)


def div255(X, X_test):
    """Map 8-bit pixel values to [0, 1]."""
    return _both(lambda A: A / 255, X, X_test)


def max_norm(X, X_test):
    """Scale so that the longest training example has Euclidean norm 1 (memo's moons)."""
    scale = np.linalg.norm(X.reshape(len(X), -1), axis=1).max()
    return _both(lambda A: A / scale, X, X_test)


def channel_std(X, X_test):
    """Subtract the per-channel mean and divide by the per-channel std, both from the training split."""
    mean = _pixels(X).mean(axis=(0, 1))
    std = _pixels(X).std(axis=(0, 1))
    std = np.where(std > 0, std, 1)
    return _both(lambda A: ((_pixels(A) - mean) / std).reshape(A.shape), X, X_test)


def image_std(X, X_test):
    """Standardize each image on its own: (x - mean) / max(std, 1/sqrt(D)), D values per image.

    As tf.image.per_image_standardization, used by Mehta et al.; the floor keeps blank images finite.
    """

    def standardize(A):
        flat = A.reshape(len(A), -1)
        mean = flat.mean(axis=1, keepdims=True)
        std = np.maximum(flat.std(axis=1, keepdims=True), 1 / np.sqrt(flat.shape[1]))
        return ((flat - mean) / std).reshape(A.shape)

    return _both(standardize, X, X_test)


def crop28(X, X_test):
    """Keep the central 28x28 pixels of each image (Zhang et al. crop CIFAR's 32x32 images)."""
    if X.ndim != 4 or min(X.shape[1:3]) < 28:
        raise DatasetError(f"crop28 needs images of at least 28x28 pixels, got shape {X.shape}")

    def crop(A):
        top, left = (A.shape[1] - 28) // 2, (A.shape[2] - 28) // 2
        return A[:, top : top + 28, left : left + 28]

    return _both(crop, X, X_test)


def flatten(X, X_test):
    """Turn images into vectors of H*W*C values."""
    return _both(lambda A: A.reshape(len(A), -1), X, X_test)


PREPROCESS = {
    "div255": div255,
    "maxnorm": max_norm,
    "channel_std": channel_std,
    "image_std": image_std,
    "crop28": crop28,
    "flatten": flatten,
}

# The steps that map each example on its own, with no statistics of the training split: the
# first n training examples come out the same whatever follows them (the kernel trial shares
# one factor between nested n_train only where every step is one of these).
PER_EXAMPLE = frozenset({"div255", "image_std", "crop28", "flatten"})


def preprocess(X, X_test=None, how: str = ""):
    """Apply the '+'-joined steps of PREPROCESS in order; "" or "none" keeps the data as it is.

    Statistics (maxnorm, channel_std) come from the training split X only.

    Example:
        >>> X = np.array([[[[0.0]], [[255.0]]]])  # one 2x1 image
        >>> preprocess(X, None, "div255+flatten")
        (array([[0., 1.]], dtype=float32), None)
        >>> preprocess(X, X, "maxnorm")[1].ravel().tolist()
        [0.0, 1.0]
    """
    try:
        steps = preprocess_steps(how)
    except ValueError as e:
        raise DatasetError(str(e)) from None
    X, X_test = _both(lambda A: np.asarray(A, dtype=np.float32), X, X_test)
    for step in steps:
        X, X_test = _both(lambda A: A.astype(np.float32), *PREPROCESS[step](X, X_test))
    return X, X_test


def preprocess_steps(how: str) -> list:
    """The steps of a preprocess param; ValueError naming an unknown one (trials' Params).

    >>> preprocess_steps("div255+flatten"), preprocess_steps("none")
    (['div255', 'flatten'], [])
    """
    steps = how.split("+") if how not in ("", "none") else []
    for step in steps:
        if step not in PREPROCESS:
            raise ValueError(
                f"preprocess {how!r}: unknown step {step!r}; "
                f"choose from {', '.join(PREPROCESS)} joined by '+', e.g. 'crop28+image_std'"
            )
    return steps


# Corruptions (Zhang et al. 2017, "Understanding deep learning requires rethinking
# generalization"). Each picks every example with probability p and changes it.


def corrupt_labels(y, p, num_classes, rng):
    """Redraw each chosen label uniformly over all classes; returns (labels, fraction changed).

    A redrawn label can land on its old value, so about p * (1 - 1/num_classes) change.

    Example:
        >>> y = np.zeros(10_000, dtype=np.int64)
        >>> _, rate = corrupt_labels(y, 0.5, 10, np.random.default_rng(0))
        >>> round(rate, 2)
        0.45
    """
    chosen = rng.random(len(y)) < p
    new = np.array(y, dtype=np.int64)
    new[chosen] = rng.integers(num_classes, size=int(chosen.sum()))
    return new, float(np.mean(new != y)) if len(y) else 0.0


def shuffle_pixels(X, chosen, perm):
    """Move the pixels of the chosen images by one shared permutation."""
    out = np.array(X, dtype=np.float32)
    pixels = _pixels(out)
    pixels[chosen] = pixels[chosen][:, perm]
    return out


def random_pixels(X, chosen, rng):
    """Move the pixels of each chosen image by a permutation of its own."""
    out = np.array(X, dtype=np.float32)
    pixels = _pixels(out)
    picked = pixels[chosen]
    order = rng.permuted(np.tile(np.arange(picked.shape[1]), (len(picked), 1)), axis=1)
    pixels[chosen] = np.take_along_axis(picked, order[:, :, None], axis=1)
    return out


def gaussian(X, chosen, mean, std, rng):
    """Replace the chosen images by Gaussian noise with the given per-channel mean and std."""
    out = np.array(X, dtype=np.float32)
    pixels = _pixels(out)
    shape = (int(chosen.sum()),) + pixels.shape[1:]
    pixels[chosen] = rng.normal(mean, std, size=shape)
    return out


CORRUPTIONS = ("labels", "shuffled_pixels", "random_pixels", "gaussian")


def corrupt(ds: Dataset, how: str, p: float = 1.0, seed: int = 0, test: bool = True):
    """Corrupt a dataset once, deterministically in seed; returns (dataset, realised rates).

    how is one of CORRUPTIONS; each example is picked with probability p (Zhang et al.
    corrupt every image, p=1, and vary p for labels). The test split is corrupted too,
    by an independent draw, unless test=False. The rates are the fractions of examples
    actually changed (for labels: whose label differs), as {"train": r, "test": r or None}.
    The shuffled-pixels permutation and the Gaussian's per-channel mean and std are
    shared by both splits and taken from the training split.
    """
    if how not in CORRUPTIONS:
        raise DatasetError(f"unknown corruption {how!r}; choose from {', '.join(CORRUPTIONS)}")
    if not 0 <= p <= 1:
        raise DatasetError(f"corruption probability must be in [0, 1], got {p}")
    shared, *streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]
    perm = shared.permutation(_pixels(ds.X).shape[1])
    if how == "gaussian":  # only here: on CIFAR-10 the std alone takes a 600 MB temporary
        mean, std = _pixels(ds.X).mean(axis=(0, 1)), _pixels(ds.X).std(axis=(0, 1))

    def apply(X, y, rng):
        if how == "labels":
            y, rate = corrupt_labels(y, p, ds.num_classes, rng)
            return X, y, rate
        chosen = rng.random(len(X)) < p
        if how == "shuffled_pixels":
            X = shuffle_pixels(X, chosen, perm)
        elif how == "random_pixels":
            X = random_pixels(X, chosen, rng)
        else:
            X = gaussian(X, chosen, mean, std, rng)
        return X, y, float(chosen.mean()) if len(X) else 0.0

    X, y, rate = apply(ds.X, ds.y, streams[0])
    X_test, y_test, rate_test = ds.X_test, ds.y_test, None
    if ds.X_test is not None:
        rate_test = 0.0
        if test:
            X_test, y_test, rate_test = apply(ds.X_test, ds.y_test, streams[1])
    name = f"{ds.name}+{how}(p={p},seed={seed})"
    new = dataclasses.replace(ds, name=name, X=X, y=y, X_test=X_test, y_test=y_test)
    return new, {"train": rate, "test": rate_test}
