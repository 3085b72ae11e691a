"""The constructive memorization algorithm, reference form.

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

This is the readable form (``method="reference"`` once a fast form joins it as
``method="fast"``): it loops over candidates and neurons one by one. It keeps the
(N, n) first-layer activations of the training set in memory while fitting; elsewhere
it works on blocks of rows.
"""

from dataclasses import dataclass

import numpy as np

ACTIVATIONS = ("thres", "relu")
BLOCK = 2**22  # values in an (rows, n) block of first-layer activations: 16 MiB of float32


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
        for rows in _blocks(len(X), len(self.W)):
            H[rows] = _sigma(X[rows] @ self.W.T + self.b, self.activation)
        return H

    def neurons(self, X, i) -> np.ndarray:
        """Layer-2 pre-activations ``m - <u, h(x)>`` of class network i: (N, K_i) float32."""
        X = _as_2d(X, self.W.shape[1])
        out = np.empty((len(X), self.K[i]), dtype=np.float32)
        for rows in _blocks(len(X), len(self.W)):
            out[rows] = self.m[i] - _inner(self.hidden(X[rows]), self.U[i])
        return out

    def fires(self, X) -> np.ndarray:
        """Whether each class network fires on each row of X: (N, len(classes)) bool."""
        X = _as_2d(X, self.W.shape[1])
        out = np.empty((len(X), len(self.classes)), dtype=bool)
        for rows in _blocks(len(X), len(self.W)):
            H = self.hidden(X[rows])
            for i, (U, m) in enumerate(zip(self.U, self.m)):
                # [Line 12] OR: σ(t) > 0 iff t > 0 for both activations.
                out[rows, i] = (m - _inner(H, U) > 0).any(axis=1)
        return out

    def predict(self, X) -> np.ndarray:
        """Predicted labels; with three or more labels, -1 where no or several networks fire."""
        fires = self.fires(X)
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
        correct = self.predict(X) == y
        if len(self.labels) > 2:
            # predict's -1 would match a true label -1.
            correct &= self.fires(X).sum(axis=1) == 1
        return float(correct.mean())


def fit(X, y, n_iter, max_bias, activation="thres", seed=0) -> Network:
    """Build a network that memorizes (X, y).

    X: (N, d) points; y: (N,) labels, at least two distinct ones. n_iter: width n of the
    first layer. max_bias: λ, the first-layer biases are uniform in [-λ, λ].
    activation: "thres" or "relu". seed: an int or anything numpy's SeedSequence takes.

    The random numbers come from independent streams of ``SeedSequence(seed)``: the
    first for layer 1, then one per class network in label order, so adding a class
    never changes layer 1.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
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
    H = net.hidden(X)
    for c, stream in zip(classes, streams):
        U, m, centers, tried, rejected = _cover(H, y == c, np.random.default_rng(stream))
        net.U.append(U)
        net.m.append(m)
        net.centers.append(centers)
        net.tried.append(tried)
        net.rejected.append(rejected)
    return net


def _cover(H, in_class, rng):
    """[Lines 2-11] Greedy random covering of one class against all other points.

    H: (N, n) first-layer activations of the training points; in_class: (N,) bool.
    Returns U (K, n) bool, m (K,) float32, centers (K,) int, tried, rejected.
    """
    own = np.flatnonzero(in_class)
    other = ~in_class
    # [Line 2] No neurons yet; every point of the class is a candidate.
    U, m, centers = [], [], []
    untried = np.ones(len(own), dtype=bool)
    covered = np.zeros(len(own), dtype=bool)
    tried = rejected = 0
    # [Line 3] Go on while an untried point of the class is not covered yet.
    while (candidates := np.flatnonzero(untried & ~covered)).size:
        # [Line 4] Draw a candidate uniformly at random and remove it from the candidates.
        k = rng.choice(candidates)
        untried[k] = False
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
    )


def _inner(H, U) -> np.ndarray:
    """``<u, h>`` for every row h of H and every mask u in U: (len(H), len(U)) float32.

    Each value is numpy's sum along one row of ``H[:, u]``, so it depends on that row
    and u only, never on the other rows or masks. fit needs this: m is the minimum of
    these sums over the other classes, and a later call on the training points must
    reproduce them bit for bit, or with ReLU (non-integer sums; BLAS may sum in any
    order) the point at the minimum could fire.
    """
    out = np.empty((len(H), len(U)), dtype=np.float32)
    for k, u in enumerate(U):
        out[:, k] = H[:, u].sum(axis=1)
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
