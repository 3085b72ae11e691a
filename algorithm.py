"""The constructive memorization algorithm: the network, its reference form and pruning.

Dirksen, Finke, Genzel: "Memorization with neural nets: going beyond the worst case",
JMLR 2024 (arXiv 2310.00327), Algorithm 2. Comments in [brackets] point at its lines.

The network has three layers:

1. ``h(x) = σ(W x + b)``: n random units, ``W ~ N(0, 1)``, ``b ~ U[-λ, λ]`` [Line 1].
2. For one class c, neurons ``σ(m - <u, h(x)>)`` added greedily until every point of c
   is covered or has been tried [Lines 2-11]. A neuron fires exactly on the points whose
   ``<u, h(x)>`` is below m, and m is chosen so that no point of another class does.
3. The OR of those neurons: the class network fires iff one of them does [Line 12].

σ is the threshold (Heaviside with σ(0) = 0) or ReLU. With two labels one network
covers the larger label, and a point is predicted as that label iff it fires. With
three or more labels there is one network per label (one-vs-rest) on a shared first
layer; a point is predicted as the one label whose network fires, and as -1 when no
network or several fire, so such a point always counts as wrong.

On the training data no class network fires on a point of another class, so the
training score is 1 exactly when every point of every covered class is covered.

Two forms build the same network for the same seed. ``method="reference"`` is the
readable one: it loops over candidates one by one and keeps the (N, n) float32
first-layer activations of the training set in memory. ``method="fast"`` keeps threshold
activations as bits and counts ``<u, h(x)>`` with compiled popcounts (memo/memorize/bitset.py); for
ReLU, or on a GPU through torch when asked, it evaluates blocks of candidates with one
matrix product each (memo/memorize/fast.py). Both draw the candidates of a class
in one random permutation, skipping points already covered: given what happened so
far, the next uncovered point of a uniform permutation is uniform among the untried
uncovered points, so this is the paper's "draw uniformly at random" [Line 4].

``prune`` drops neurons that later ones make redundant and first-layer units that
separate nothing, keeping the predictions on the training set.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np

from memo.memorize import bitset
from memo.memorize import fast

ACTIVATIONS = ("thres", "relu")
METHODS = ("fast", "reference")
BLOCK = 2**20  # values in an (rows, n) block of first-layer activations: 4 MiB of float32


@dataclass
class Network:
    """A fitted network; see the module docstring for what each layer computes."""

    W: np.ndarray  # (n, d) float32, first-layer weights
    b: np.ndarray  # (n,) float32, first-layer biases
    activation: str  # "thres" | "relu"
    labels: np.ndarray  # every label seen in training, sorted
    classes: list  # the label each class network covers: [larger label] if binary, else all labels
    U: list  # per class network: (K_c, n) bool, the units each neuron sums (weights -u)
    m: list  # per class network: (K_c,) float32, the neurons' thresholds (biases)
    centers: list  # per class network: (K_c,) int, the training point each neuron was made from
    tried: list  # per class network: candidates drawn
    rejected: list  # per class network: candidates drawn that gave no neuron (m <= 0)
    covered: list = dataclasses.field(default_factory=list)  # per class: its points covered

    def training_score(self, y, largest_wins: bool = False) -> float:
        """``score(X, y)`` on the training data, known from fitting without evaluating.

        No class network fires on another class's training point (m is the minimum over
        them), so a training point is right iff a neuron of its class covers it, or its
        label has no class network (the smaller label of two).

        ``largest_wins``: memo's score. memo predicts with scikit-learn's OneVsRestClassifier,
        which before version 1.8 (memo's published results) gave a point that no class
        network claims the largest label: with three or more labels the uncovered points of
        that label count as right. (memo's published MNIST table bottoms out at 0.0994: the
        6,958 nines of 70,000.)
        """
        if len(self.covered) != len(self.classes):
            raise ValueError("training_score needs a network made by fit (it counts coverage)")
        y = np.asarray(y)
        wrong = sum(int((y == c).sum()) - k for c, k in zip(self.classes, self.covered))
        if largest_wins and len(self.labels) > 2:  # classes are the sorted labels
            wrong -= int((y == self.classes[-1]).sum()) - self.covered[-1]
        return (len(y) - wrong) / len(y)

    @property
    def K(self) -> list:
        """Neurons per class network (0 if a class got none; it then never fires)."""
        return [len(m) for m in self.m]

    @property
    def n_params(self) -> int:
        """Weights and biases: ``n(d+1) + Σ_c K_c(n+1) + Σ_c (K_c+1)``.

        Layer 1 has n units with d weights and a bias each; every layer-2 neuron has n
        weights (its mask u) and a bias (m); each class network's OR output has a weight
        per neuron and a bias.
        """
        n, d = self.W.shape
        return n * (d + 1) + sum(k * (n + 1) + k + 1 for k in self.K)

    def hidden(self, X) -> np.ndarray:
        """First-layer activations ``σ(W x + b)`` of every row of X: (N, n) float32."""
        X = _as_2d(X, self.W.shape[1])
        H = np.empty((len(X), len(self.W)), dtype=np.float32)
        for rows, block in self.hidden_blocks(X):
            H[rows] = block
        return H

    def hidden_blocks(self, X):
        """(row slice, activations) per block of rows of X, always the same blocks for X.

        Every computation of the training activations goes through here, so fit and
        later calls get the same bits (a matrix product's rounding may depend on its shape).
        """
        for rows, Z in self.preactivation_blocks(X):
            yield rows, _sigma(Z, self.activation)

    def preactivation_blocks(self, X):
        """(row slice, ``W x + b``) per block of rows of X, as hidden_blocks."""
        X = _as_2d(X, self.W.shape[1])
        for rows in _blocks(len(X), len(self.W)):
            Z = X[rows] @ self.W.T
            Z += self.b
            yield rows, Z

    def neurons(self, X, i) -> np.ndarray:
        """Layer-2 pre-activations ``m - <u, h(x)>`` of class network i: (N, K_i) float32."""
        X = _as_2d(X, self.W.shape[1])
        out = np.empty((len(X), self.K[i]), dtype=np.float32)
        for rows, H in self.hidden_blocks(X):
            out[rows] = self.m[i] - _inner(H, self.U[i])
        return out

    def fires(self, X) -> np.ndarray:
        """Whether each class network fires on each row of X: (N, len(classes)) bool."""
        X = _as_2d(X, self.W.shape[1])
        out = np.empty((len(X), len(self.classes)), dtype=bool)
        # The neurons of all classes in few products per block (BLOCK values each).
        U, m = np.concatenate(self.U), np.concatenate(self.m)
        network = np.repeat(np.arange(len(self.classes)), self.K)
        for rows, H in self.hidden_blocks(X):
            out[rows] = False
            step = max(1, BLOCK // len(H))
            for part in (slice(k, k + step) for k in range(0, len(m), step)):
                on = fast.below(H, U[part], m[part], self.activation == "thres", _inner)
                for i in np.unique(network[part]):
                    # [Line 12] OR: σ(t) > 0 iff t > 0 for both activations.
                    out[rows, i] |= on[:, network[part] == i].any(axis=1)
        return out

    def predict(self, X, fires=None) -> np.ndarray:
        """Predicted labels; with three or more labels, -1 where no or several networks fire.

        fires: ``self.fires(X)`` if already computed.
        """
        fires = self.fires(X) if fires is None else fires
        if len(self.labels) == 2:
            return np.where(fires[:, 0], self.labels[1], self.labels[0])
        # -1 must fit, also when the labels are unsigned (e.g. uint8 images' labels).
        dtype = np.promote_types(self.labels.dtype, np.int8)
        out = np.full(len(fires), -1, dtype=dtype)
        one = fires.sum(axis=1) == 1
        out[one] = self.labels[fires[one].argmax(axis=1)]
        return out

    def score(self, X, y) -> float:
        """Accuracy; a point that no or several class networks claim is always wrong."""
        y = np.asarray(y)
        fires = self.fires(X)
        correct = self.predict(X, fires) == y
        if len(self.labels) > 2:
            # predict's -1 would match a true label -1.
            correct &= fires.sum(axis=1) == 1
        return float(correct.mean())


def uses_bitset(method: str, activation: str, device: str) -> bool:
    """Whether :func:`fit` covers with memo/memorize/bitset.py's compiled kernels: the fast method's
    threshold units on the CPU (the caller may load them first: memo.memorize.bitset.load)."""
    return method == "fast" and activation == "thres" and fast.torch_device(device) is None


def fit(
    X,
    y,
    n_iter,
    max_bias,
    activation="thres",
    seed=0,
    method="fast",
    device="auto",
    max_tried=None,
) -> Network:
    """Build a network that memorizes (X, y).

    X: (N, d) points; y: (N,) labels, at least two distinct ones. n_iter: width n of the
    first layer. max_bias: λ, the first-layer biases are uniform in [-λ, λ].
    activation: "thres" or "relu". seed: an int or anything numpy's SeedSequence takes.
    method: "fast" or "reference"; both give the same network for the same seed.
    device (fast only): "auto" (a CUDA GPU through torch if there is one, else "cpu"),
    "cpu" (numba kernels for the threshold, numpy for ReLU), "cuda" or "torch-cpu" (torch
    on the CPU); the same network on each.
    max_tried: stop each class after this many candidates (to time a prefix of a long
    fit; the network then need not memorize); None runs to the end.

    The random numbers come from independent streams of ``SeedSequence(seed)``: the
    first for layer 1, then one per class network in label order, so adding a class
    never changes layer 1.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not (isinstance(n_iter, (int, np.integer)) and n_iter >= 1):
        raise ValueError(
            f"n_iter (the first layer's width) must be an integer >= 1, got {n_iter!r}"
        )
    if not max_bias >= 0:
        raise ValueError(f"max_bias must be >= 0, got {max_bias!r}")
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    if X.ndim != 2 or y.shape != (len(X),):
        raise ValueError(f"need X of shape (N, d) and y of shape (N,), got {X.shape} and {y.shape}")
    labels = np.unique(y)
    if len(labels) < 2:
        got = f"only label {labels[0]}" if len(labels) else "no points"
        raise ValueError(f"fit needs at least two classes, got {got}")
    classes = labels[1:].tolist() if len(labels) == 2 else labels.tolist()
    layer1, *streams = np.random.SeedSequence(seed).spawn(1 + len(classes))

    # [Line 1] The random first layer.
    rng = np.random.default_rng(layer1)
    W = rng.standard_normal((n_iter, X.shape[1]), dtype=np.float32)
    b = rng.uniform(-max_bias, max_bias, n_iter).astype(np.float32)

    net = Network(W, b, activation, labels, classes, U=[], m=[], centers=[], tried=[], rejected=[])
    if method == "reference":
        H = net.hidden(X)
        cover = lambda in_class, rng: _cover(H, in_class, rng, max_tried)  # noqa: E731
    elif uses_bitset(method, activation, device):
        cover = bitset.covering(net.preactivation_blocks(X), y, n_iter, max_tried)
    else:
        where = fast.torch_device(device)
        # The threshold needs only the sign of W x + b: skip making σ's float 0/1s.
        blocks = net.preactivation_blocks(X) if activation == "thres" else net.hidden_blocks(X)
        acts = fast.Activations(blocks, len(X), n_iter, activation, y, where)
        cover = lambda in_class, rng: fast.cover(  # noqa: E731
            acts, in_class, rng, _inner, max_tried
        )
    for c, stream in zip(classes, streams):
        U, m, centers, tried, rejected, covered = cover(y == c, np.random.default_rng(stream))
        net.U.append(U)
        net.m.append(m)
        net.centers.append(centers)
        net.tried.append(tried)
        net.rejected.append(rejected)
        net.covered.append(covered)
    return net


def prune(net: Network, X, y) -> Network:
    """A smaller network that makes the same predictions on its training data (X, y).

    Second layer: going from the last neuron of a class network back to the first, a
    neuron is dropped when the kept later ones already cover every training point it
    covers (the OR then fires on the same points). First layer: a unit is dropped when
    no kept neuron sums it (u_i = 0 in every mask), and, with the threshold, when it is
    active on no training point (it adds 0 to every training sum). With ReLU units of
    the second kind stay: dropping zeros changes how a float sum is rounded.

    The pruned network's predictions on X are checked against the original's; if
    dropping units changed any (a matrix product may round differently at another
    shape), only the neurons are dropped. ``tried``, ``rejected`` and ``covered`` stay.
    """
    X = _as_2d(X, net.W.shape[1])
    y = np.asarray(y)
    exact = net.activation == "thres"
    # Which neuron covers which of its class's points, on the fit's blocks of rows.
    covers = [[] for _ in net.classes]
    active = np.zeros(len(net.W), dtype=bool)
    for rows, H in net.hidden_blocks(X):
        active |= (H > 0).any(axis=0)
        for i, c in enumerate(net.classes):
            own = y[rows] == c
            covers[i].append(fast.below(H[own], net.U[i], net.m[i], exact, _inner))
    keep = []
    for cov in covers:
        cov = np.concatenate(cov)
        kept = np.zeros(cov.shape[1], dtype=bool)
        done = np.zeros(len(cov), dtype=bool)
        for k in reversed(range(cov.shape[1])):
            if (cov[:, k] & ~done).any():
                kept[k] = True
                done |= cov[:, k]
        keep.append(kept)
    fewer = dataclasses.replace(
        net,
        U=[U[k] for U, k in zip(net.U, keep)],
        m=[m[k] for m, k in zip(net.m, keep)],
        centers=[c[k] for c, k in zip(net.centers, keep)],
    )
    used = np.concatenate(fewer.U).any(axis=0)
    units = used & active if exact else used
    if not units.any():  # no neuron left to sum anything: keep the layer as it is
        return fewer
    narrow = dataclasses.replace(
        fewer,
        W=net.W[units],
        b=net.b[units],
        U=[U[:, units] for U in fewer.U],
    )
    return narrow if np.array_equal(narrow.fires(X), fewer.fires(X)) else fewer


def _cover(H, in_class, rng, max_tried=None):
    """[Lines 2-11] Greedy random covering of one class against all other points.

    H: (N, n) first-layer activations of the training points; in_class: (N,) bool;
    max_tried: stop after so many candidates (None: when none is left). Returns U (K, n)
    bool, m (K,) float32, centers (K,) int, tried, rejected, and the number of the
    class's points covered.
    """
    own = np.flatnonzero(in_class)
    other = ~in_class
    # [Line 2] No neurons yet; every point of the class is a candidate.
    U, m, centers = [], [], []
    covered = np.zeros(len(own), dtype=bool)
    tried = rejected = 0
    # [Lines 3-4] Draw untried uncovered candidates uniformly at random, until none is
    # left: go through one random permutation of the class, skipping covered points
    # (see the module docstring).
    for k in rng.permutation(len(own)):
        if covered[k]:
            continue
        if tried == max_tried:
            break
        tried += 1
        # [Line 5] u marks the units inactive at the candidate; m is the smallest
        # <u, h(x)> over the other classes, so the neuron σ(m - <u, h(x)>) never fires there.
        u = H[own[k]] == 0
        s = _inner(H, u[None])[:, 0]
        m_k = s[other].min()
        # [Line 6] The candidate has <u, h> = 0, so it is covered iff m > 0.
        if m_k > 0:
            # [Lines 7-8] Add the neuron; it covers every point of the class with <u, h(x)> < m.
            U.append(u)
            m.append(m_k)
            centers.append(own[k])
            covered |= s[own] < m_k
        else:
            rejected += 1
    # [Line 11] The second layer of this class.
    n = H.shape[1]
    return (
        np.array(U, dtype=bool).reshape(len(U), n),
        np.array(m, dtype=np.float32),
        np.array(centers, dtype=np.int64),
        tried,
        rejected,
        int(covered.sum()),
    )


def _inner(H, U) -> np.ndarray:
    """``<u, h>`` for every row h of H and every mask u in U: (len(H), len(U)) float32.

    Each value is numpy's (pairwise) sum along one row of ``H[:, u]``, made C-contiguous
    first, so it depends on that row and u only, never on the other rows or masks. fit needs this: m is the minimum of
    these sums over the other classes, and a later call on the training points must
    reproduce them bit for bit, or with ReLU (non-integer sums; BLAS may sum in any
    order) the point at the minimum could fire. With the threshold the sums are
    integers below 2**24, exact in float32 in any order, so a matrix product gives the
    same bits; memo/memorize/fast.py uses that, and for ReLU falls back on this sum near m.
    """
    out = np.empty((len(H), len(U)), dtype=np.float32)
    for k, u in enumerate(U):
        # compress copies in C order, so numpy sums each row on its own (pairwise). H[:, u]
        # would copy in Fortran order: rows summed left to right, but a single row pairwise.
        out[:, k] = np.compress(u, H, axis=1).sum(axis=1)
    return out


def _sigma(z, activation) -> np.ndarray:
    if activation == "thres":
        return (z > 0).astype(np.float32)  # Heaviside with σ(0) = 0
    return np.maximum(z, 0, out=z)


def _blocks(N, n):
    """Row slices with at most BLOCK values in an (rows, n) block."""
    step = max(1, BLOCK // n)
    return [slice(start, start + step) for start in range(0, N, step)]


def _as_2d(X, d) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != d:
        raise ValueError(f"need X of shape (N, {d}), got {X.shape}")
    return X
