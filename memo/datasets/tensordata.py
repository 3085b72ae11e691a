"""Datasets as tensors on the device: loading with corruptions, the model's layout, augmentation.

The training loop (memo.training.loop) keeps a whole split as one tensor on the device and takes
a batch with one ``index_select``: for small models a ``DataLoader`` over a
``TensorDataset`` spends most of its time indexing one example at a time and collating.
Augmentation runs batched on the device, drawing from the loop's ``torch.Generator``.
"""

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Data:
    """A dataset's arrays after corruption and preprocessing, ready for :class:`Inputs`."""

    X: np.ndarray  # (N, D) or (N, H, W, C) float32
    y: np.ndarray  # (N,) labels as trained on (label noise applied)
    X_test: np.ndarray | None
    y_test: np.ndarray | None  # as evaluated (test label noise applied)
    y_test_true: np.ndarray | None  # before test label noise
    num_classes: int
    rates: dict  # realised corruption: share of changed train labels, test labels, images


HOLDOUT_SEED = 0  # the held-out split is the same for every seed, as a dataset's own test split


def load_data(
    name: str,
    preprocess: str = "",
    n_train: int | None = None,
    holdout: float = 0.0,
    label_noise: float = 0.0,
    label_noise_test: float = 0.0,
    corruption: str = "none",
    corruption_p: float = 1.0,
    seed: int = 0,
) -> Data:
    """Load dataset ``name``, hold out a test split if it has none, corrupt, preprocess.

    Order: hold out ``holdout`` of the examples (fixed split) when the dataset has no test
    split; keep the first ``n_train`` training examples; corrupt the images of both splits
    (Zhang et al.; statistics from the training split); redraw labels with probability
    ``label_noise`` (train) and ``label_noise_test`` (test), independently; preprocess
    (statistics from the training split). Corruptions are seeded by ``seed``.
    """
    from memo.datasets import corrupt, load_dataset
    from memo.datasets import preprocess as apply_preprocess

    ds = load_dataset(name)
    num_classes = ds.num_classes
    if ds.X_test is None and holdout > 0:
        order = np.random.default_rng(HOLDOUT_SEED).permutation(len(ds.y))
        n_test = int(round(holdout * len(ds.y)))
        if n_test < 1 or n_test >= len(ds.y):
            raise ValueError(f"holdout {holdout} of {len(ds.y)} examples leaves an empty split")
        test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
        ds = replace(ds, X=ds.X[train], y=ds.y[train], X_test=ds.X[test], y_test=ds.y[test])
    if n_train is not None:
        if n_train > len(ds.y):
            raise ValueError(f"n_train {n_train}: {name!r} has only {len(ds.y)} training examples")
        ds = replace(ds, X=ds.X[:n_train], y=ds.y[:n_train])
    # Separate streams for images and labels, so the same examples are not picked for both.
    image_seed, label_seed = np.random.SeedSequence(seed).generate_state(2).tolist()
    rates = {}
    if corruption != "none":
        ds, rate = corrupt(ds, corruption, corruption_p, image_seed)
        rates["images"] = rate["train"]
    y_test_true = ds.y_test
    if label_noise_test > 0:
        if ds.X_test is None:
            raise ValueError(f"label_noise_test: dataset {name!r} has no test split")
        noisy, rate = corrupt(ds, "labels", label_noise_test, label_seed)
        ds, rates["test_labels"] = replace(ds, y_test=noisy.y_test), rate["test"]
    if label_noise > 0:
        noisy, rate = corrupt(ds, "labels", label_noise, label_seed, test=False)
        ds, rates["labels"] = replace(ds, y=noisy.y), rate["train"]
    X, X_test = apply_preprocess(ds.X, ds.X_test, preprocess)
    # Copies: the cache's memory maps are read-only, and torch wants writable arrays.
    as_labels = lambda a: None if a is None else np.array(a, dtype=np.int64)
    return Data(
        X, as_labels(ds.y), X_test, as_labels(ds.y_test), as_labels(y_test_true), num_classes, rates
    )


def pick_device(name: str) -> torch.device:
    """The device for a ``device`` param: "auto" (CUDA when torch sees a GPU, else the CPU),
    "cpu" or "cuda"."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: torch sees no CUDA GPU here; use 'auto' or 'cpu'")
    return torch.device(name)


class Inputs:
    """A split's examples on the device, laid out as the model reads them.

    MLPs get (N, D) rows; conv nets (N, C, H, W), channels-last on CUDA (tensor cores). On
    the CPU plain NCHW: oneDNN trained Mehta's ConvNet 1.5x slower channels-last there.
    ``image`` is (H, W, C) for image data (augmentation needs it), else None.
    """

    def __init__(self, X: np.ndarray, conv: bool, device: torch.device):
        self.image = tuple(X.shape[1:]) if X.ndim == 4 else None
        if conv and self.image is None:
            raise ValueError(f"conv nets need images (N, H, W, C), got data of shape {X.shape}")
        X = torch.as_tensor(np.array(X, dtype=np.float32, copy=True))  # memmaps are read-only
        self.conv = conv
        self.channels_last = conv and device.type == "cuda"
        if conv:
            X = X.permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
            fmt = torch.channels_last if self.channels_last else torch.contiguous_format
            X = X.contiguous(memory_format=fmt)
        else:
            X = X.reshape(len(X), -1)  # (N, D)
        self.X = X.to(device)

    def __len__(self):
        return len(self.X)

    def take(self, idx) -> torch.Tensor:
        """The examples at ``idx`` (a device tensor), in the model's layout."""
        xb = self.X.index_select(0, idx)  # dense NCHW even from channels-last
        return xb.contiguous(memory_format=torch.channels_last) if self.channels_last else xb

    def chunks(self, size: int):
        """Consecutive slices of at most ``size`` examples, for evaluation."""
        for start in range(0, len(self.X), size):
            yield self.X[start : start + size]


def augment(xb, inputs: Inputs, padding: int, flip: bool, generator) -> torch.Tensor:
    """Random crop (zero padding ``padding`` per side) and/or horizontal flip, per example."""
    B = len(xb)
    x = xb if inputs.conv else xb.view(B, *inputs.image).permute(0, 3, 1, 2)  # (B, C, H, W)
    _, C, H, W = x.shape
    dev = x.device
    if flip:
        mirror = torch.rand(B, generator=generator, device=dev) < 0.5
        x = torch.where(mirror[:, None, None, None], x.flip(3), x)
    if padding:
        padded = F.pad(x, (padding,) * 4)  # (B, C, H + 2p, W + 2p)
        dy, dx = torch.randint(0, 2 * padding + 1, (2, B), generator=generator, device=dev)
        rows = (dy[:, None] + torch.arange(H, device=dev))[:, None, :, None]  # (B, 1, H, 1)
        cols = (dx[:, None] + torch.arange(W, device=dev))[:, None, None, :]  # (B, 1, 1, W)
        b = torch.arange(B, device=dev)[:, None, None, None]
        c = torch.arange(C, device=dev)[None, :, None, None]
        x = padded[b, c, rows, cols]  # (B, C, H, W)
    if not inputs.conv:
        return x.permute(0, 2, 3, 1).reshape(B, -1)  # back to (B, H*W*C) rows
    fmt = torch.channels_last if inputs.channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt)
