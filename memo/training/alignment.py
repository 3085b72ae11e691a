"""Alignment of representations and per-example gradients (Mehta et al., "Extreme Memorization
via Scale of Initialization", ICLR 2021).

The alignment of vectors v_1..v_n is their mean pairwise inner product after dividing each by
the mean norm, u_i = v_i / mean_j ||v_j||:

    Omega = sum_{i != j} <u_i, u_j> / (n (n - 1))
          = (||sum_i u_i||^2 - sum_i ||u_i||^2) / (n (n - 1))

so identical vectors give 1, orthogonal ones 0 and opposite pairs -1. It is computed within each
class and averaged over the classes (unweighted). The second form needs only per-class sums of
the vectors, of their norms and of their squared norms, never an n x n Gram matrix of
d-vectors, and those sums accumulate chunk by chunk: the per-example gradients of a subsample
are never all in memory at once.

A class is skipped when Omega is undefined for it: fewer than 2 examples, or all its vectors
zero (e.g. hinge-loss gradients once every margin is met). With no class left the result is
nan.

Per-example gradients come from torch.func (vmap over grad of a functional_call) for conv and
noisy layers. A plain Linear layer's per-example weight gradient is the outer product of its
output gradient and its input, so it is kept as those two factors: forming it would cost
n * in * out floats, 1.6 GB for 256 examples on a 3072-512 layer, and made the call some 80x
slower there. Everything runs on the model's device, in eval mode (see
:func:`gradient_alignment`), and leaves the model as it found it.
"""

import contextlib
import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn.utils import parametrize

from memo.nets.models import weight_layers

# The automatic chunk size keeps the per-example pieces of a chunk (gradients of conv and
# noisy layers, factors of Linear ones; 4 bytes a number) near this budget. On CPU (one
# thread), 1 GiB chunks of ConvNet gradients ran some 20% slower than ~100 MB ones. On a GPU,
# bigger chunks mean fewer kernel launches (a guess: not measured).
CHUNK_BYTES = {"cpu": 2**27}
CHUNK_BYTES_OTHER = 2**30


class _ClassSums:
    """Per-class running sums of vectors, of their norms and of their squared norms."""

    def __init__(self, num_classes: int, dim: int, like: torch.Tensor):
        self.total = like.new_zeros(num_classes, dim)  # (K, d): sum_i v_i per class
        self.norms = like.new_zeros(num_classes)  # sum_i ||v_i||
        self.squares = like.new_zeros(num_classes)  # sum_i ||v_i||^2

    def add(self, vectors: torch.Tensor, onehot: torch.Tensor) -> None:
        """Add the rows of ``vectors`` (B, d) to their classes, ``onehot`` (B, K)."""
        # A matmul with the one-hot matrix sums each class's rows; faster than index_add_.
        self.total.addmm_(onehot.T, vectors)
        norms = torch.linalg.vector_norm(vectors, dim=1)  # (B,)
        self.norms += onehot.T @ norms
        self.squares += onehot.T @ norms.square()

    def omega(self, counts: torch.Tensor) -> float:
        total = torch.linalg.vector_norm(self.total, dim=1).double().square()  # ||sum_i v_i||^2
        return _omega(total - self.squares.double(), self.norms, counts)


def _omega(pairs: torch.Tensor, norms: torch.Tensor, counts: torch.Tensor) -> float:
    """Mean over the classes where it is defined of Omega, from each class's sum over pairs
    i != j of <v_i, v_j>, sum of norms and count; nan if it is defined for no class."""
    pairs, norms, counts = pairs.double(), norms.double(), counts.double()
    mean_norm = norms / counts.clamp(min=1)
    ok = (counts >= 2) & (mean_norm > 0)
    if not ok.any():
        return math.nan
    # u_i = v_i / mean_norm scales every inner product by 1 / mean_norm^2.
    omega = pairs[ok] / mean_norm[ok].square() / (counts[ok] * (counts[ok] - 1))
    return float(omega.mean())


def _class_index(labels: torch.Tensor) -> tuple:
    """(index (n,) in 0..K-1, K) for any label values, e.g. a subsample lacking some class."""
    classes, index = torch.unique(labels, return_inverse=True)
    return index, len(classes)


def alignment(vectors: torch.Tensor, labels: torch.Tensor) -> float:
    """Omega of ``vectors`` (n, d) within each class of ``labels`` (n,), averaged over classes.

    Classes with fewer than 2 examples or only zero vectors are skipped; nan if none is left.

    >>> v = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, -3.0], [5.0, 5.0]])
    >>> round(alignment(v, torch.tensor([0, 0, 1, 1, 2])), 6)  # (8/9 - 3/4) / 2; no class 2
    0.069444
    """
    if vectors.dim() != 2 or labels.dim() != 1 or len(vectors) != len(labels):
        raise ValueError(
            f"alignment needs vectors (n, d) and labels (n,), got {tuple(vectors.shape)} and "
            f"{tuple(labels.shape)}; flatten each vector to a row"
        )
    if not vectors.is_floating_point():
        vectors = vectors.double()
    index, num_classes = _class_index(labels.to(vectors.device))
    sums = _ClassSums(num_classes, vectors.shape[1], vectors)
    onehot = F.one_hot(index, num_classes).to(vectors.dtype)
    sums.add(vectors, onehot)
    return sums.omega(onehot.sum(0))


@contextlib.contextmanager
def _evaluating(model: nn.Module):
    """Eval mode inside; each module's own train/eval flag restored on exit, errors included."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def representation_alignment(model, x, y) -> float:
    """Omega of the penultimate representations ``model.features(x)`` within classes ``y``.

    Eval mode (dropout off, batch norm on its running statistics), no grad.
    """
    device = _device(model)
    with _evaluating(model), torch.no_grad():
        features = model.features(x.to(device))  # (n, F)
    return alignment(features.flatten(1), y.to(device))


def _weight_names(model: nn.Module) -> dict:
    """{layer name: name of the parameter its weight gradient is taken for}.

    The layers are the Linear and Conv layers (memo.nets.models.weight_layers), the ones Mehta
    et al. report; biases and batch-norm scales are left out. A layer with weight noise
    (memo.nets.add_weight_noise) gets the gradient of its clean weight, the parameter that
    training updates.
    """
    wanted = {id(m) for m in weight_layers(model)}
    names = {}
    for name, module in model.named_modules():
        if id(module) in wanted:
            noisy = parametrize.is_parametrized(module, "weight")
            names[name] = f"{name}.parametrizations.weight.original" if noisy else f"{name}.weight"
    return names


def _factorable(module: nn.Module) -> bool:
    """Linear layers without a weight parametrization: their per-example gradient is rank one."""
    return isinstance(module, nn.Linear) and not parametrize.is_parametrized(module, "weight")


def _gradient_chunks(model, loss_fn, x, y, chunk_size=None):
    """Yield the per-example gradients of loss_fn(model(x_i), y_i), chunk by chunk, as
    {layer name: piece, ..., "logits": (B, K)}, layers in model order.

    A Linear layer's piece is the pair (a (B, in), b (B, out)) of its inputs and the gradients
    of its outputs: example i's weight gradient is the outer product b_i a_i^T, never formed.
    Any other layer's piece is (B, weight numel), the gradients themselves, from vmap(grad).
    Call it with the model in eval mode and under no_grad (as :func:`gradient_alignment` does).

    The loss is differentiated on the whole chunk, outside vmap (F.one_hot, for one, cannot run
    inside it): for a loss that is a mean of per-example terms, row i of B * d loss / d logits
    is example i's own g_i = d loss_i / d logits_i. Every weight gradient then follows by the
    chain rule as the gradient of <logits_i, g_i>, so one backward pass of the chunk gives each
    example's output gradients b_i; this relies on the examples not interacting, which eval
    mode ensures for memo's nets (batch norm on running statistics).
    """
    device = _device(model)
    x, y = x.to(device), y.to(device)
    modules = dict(model.named_modules())
    names = _weight_names(model)
    params = dict(model.named_parameters())
    linear = [n for n in names if _factorable(modules[n])]
    if chunk_size is None:
        budget = CHUNK_BYTES.get(device.type, CHUNK_BYTES_OTHER)
        per_example = sum(params[names[n]].numel() for n in names if n not in linear)
        per_example += sum(modules[n].in_features + modules[n].out_features for n in linear)
        chunk_size = max(1, budget // (4 * max(per_example, 1)))

    def dot_logits(weights, xi, gi):
        logits = functional_call(model, weights, (xi[None],))  # (1, K)
        return (logits[0] * gi).sum()  # its gradient is example i's loss gradient

    # randomness="same": a random op in the model draws once per chunk for all its examples,
    # as in a batched forward (weight noise does anyway: the weights are not batched).
    per_example_grad = vmap(grad(dot_logits), in_dims=(None, 0, 0), randomness="same")
    seen = {}

    def keep(name, module, inputs, output):
        # A layer called twice (shared) sums two outer products: not rank one, so None.
        seen[name] = None if name in seen else (inputs[0], output)
        return output.clone()  # so that an in-place op downstream cannot change ``output``

    for start in range(0, len(x), chunk_size):
        xb, yb = x[start : start + chunk_size], y[start : start + chunk_size]
        seen.clear()
        hooks = [modules[n].register_forward_hook(partial(keep, n)) for n in linear]
        try:
            with torch.enable_grad():  # an input that requires grad: frozen layers get a graph
                logits = model(xb.detach().requires_grad_(True))  # (B, K)
        finally:
            for hook in hooks:
                hook.remove()
        z = logits.detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(loss_fn(z, yb), z)
        g = g * len(xb)  # gradient of the mean over the chunk -> each example's own gradient
        # Rank one only for a Linear layer applied once, to (B, in); not to (B, T, in).
        rank_one = [n for n in linear if seen.get(n) is not None and seen[n][0].dim() == 2]
        outputs = [seen[n][1] for n in rank_one]
        out_grads = torch.autograd.grad(logits, outputs, g) if rank_one else []
        chunk = {n: (seen[n][0].detach(), b) for n, b in zip(rank_one, out_grads)}
        rest = [n for n in names if n not in chunk]
        if rest:
            grads = per_example_grad({names[n]: params[names[n]].detach() for n in rest}, xb, g)
            chunk.update({n: grads[names[n]].flatten(1) for n in rest})
        yield {**{n: chunk[n] for n in names}, "logits": g}


class _FactorSums:
    """Per-class pair sums and norms of outer products b_i a_i^T, kept as their factors."""

    def __init__(self):
        self.inputs, self.out_grads, self.index = [], [], []

    def add(self, a: torch.Tensor, b: torch.Tensor, index: torch.Tensor) -> None:
        self.inputs.append(a)  # (B, in), small: the outer products are never formed
        self.out_grads.append(b)  # (B, out)
        self.index.append(index)

    def omega(self, counts: torch.Tensor) -> float:
        a, b = torch.cat(self.inputs), torch.cat(self.out_grads)
        order = torch.argsort(torch.cat(self.index))
        pairs, norms = [], []
        for rows in torch.split(order, counts.long().tolist()):
            # <b_i a_i^T, b_j a_j^T> = (a_i . a_j)(b_i . b_j): Gram matrices of the factors,
            # n_c x n_c within one class, cost n_c^2 (in + out) instead of n_c * in * out.
            a_c, b_c = a[rows], b[rows]
            inner = (a_c @ a_c.T) * (b_c @ b_c.T)  # (n_c, n_c)
            diagonal = inner.diagonal()  # ||v_i||^2
            pairs.append(inner.sum() - diagonal.sum())
            norms.append(diagonal.sqrt().sum())
        return _omega(torch.stack(pairs), torch.stack(norms), counts)


def gradient_alignment(model, loss_fn, x, y, chunk_size=None) -> dict:
    """Omega of the per-example gradients of ``loss_fn(model(x_i), y_i)`` within classes ``y``.

    Returns {layer name: Omega of the weight gradients, ..., "logits": Omega of d loss / d
    logits}, layers in model order, named as in ``model.named_modules()`` ("body.0", "head").
    Layers are the Linear and Conv layers; a noisy layer's gradient is that of its clean weight.

    ``loss_fn(logits (B, K), targets (B,))`` returns the mean over the batch of per-example
    losses (cross-entropy, multiclass hinge, squared loss to one-hot); it is called on whole
    chunks, never inside vmap. The model runs in eval mode so that batch norm uses its running
    statistics and examples stay independent (in train mode the batch statistics would mix
    every example into every other's gradient) and dropout is off; each module's mode is
    restored afterwards. Parameters, their ``requires_grad`` and ``.grad`` are left untouched.
    With weight noise, each chunk's gradients come from two noise draws (one for the batched
    forward that gives the logits, one for vmap), so the result is itself noisy.

    Gradients of conv and noisy layers are computed per example with torch.func (vmap over
    grad of a functional_call), those of plain Linear layers from their rank-one factors (see
    :func:`_gradient_chunks`). ``chunk_size`` examples are taken at a time; by default as many
    as fit in about ``CHUNK_BYTES`` of per-example gradients (128 MiB on CPU, 1 GiB elsewhere).
    """
    device = _device(model)
    index, num_classes = _class_index(y.to(device))
    sums, counts = {}, torch.zeros(num_classes, device=device)
    with _evaluating(model), torch.no_grad():
        start = 0
        for chunk in _gradient_chunks(model, loss_fn, x, y, chunk_size):
            n = len(chunk["logits"])
            rows = index[start : start + n]
            onehot = F.one_hot(rows, num_classes).float()
            start += n
            counts += onehot.sum(0)
            for name, piece in chunk.items():
                if isinstance(piece, tuple):
                    sums.setdefault(name, _FactorSums()).add(*piece, rows)
                    continue
                if name not in sums:
                    sums[name] = _ClassSums(num_classes, piece.shape[1], piece)
                sums[name].add(piece, onehot.to(piece.dtype))
    return {name: s.omega(counts) for name, s in sums.items()}
