"""Whether a network fits its training set, decided exactly from a few examples in most epochs.

With ``stop_at_interpolation`` and nothing else reading the per-epoch evaluation of the
training set (no curves, oscillation, forgetting or ``interp_loss``), an epoch only needs two
answers from it: is its loss finite, and is every example right (train accuracy >=
``interp_acc``)? Both must be the full evaluation's. The examples found wrong at the last
check are mostly wrong again: evaluated first, a few of them show that the network does not
fit yet, and only when they cannot show it does the full evaluation run (and decide). For an
MLP 784-512-10 on 4,000 examples that evaluation was a quarter of an epoch's time.

Exact, not just likely: the full evaluation computes each example in other batches, where a
product may sum its terms in another order, so an example counts as wrong here (evaluated in
float64) only where it is wrong by more than the rounding of this evaluation and of any float
evaluation in the model's dtype can move it: Higham's bound |fl(x·w) − x·w| <= γ_n |x|·|w|,
γ_n = nu / (1 − nu), carried through the layers (ReLU is exact and 1-Lipschitz). Its loss is finite for every training example where the norms of the
weights bound every logit (||W||_F ||x|| + ||b|| per layer) far below float overflow. Where
either falls short, the full evaluation decides, as before. ReLU (and linear) MLPs only:
other activations round as their library does, with no bound to rely on.
"""

import math

import torch
from torch import nn

# Off: every check is the full evaluation (the tests compare the two).
ENABLED = True

# Suspects evaluated at a model's first round of a check (then 4x as many each round, up to
# all), beyond the errors interp_acc allows; and the most suspects kept.
CHUNK, SUSPECTS = 8, 256

# A logit bound below which every loss of memo.training.LOSSES, summed over the training set,
# stays finite in float32 (max 3.4e38), with room for the rounding of that sum.
LOSS_SUM_LIMIT = 1e36


def allowed_errors(n: int, interp_acc: float) -> int:
    """The most wrong examples of ``n`` at which the accuracy, computed as the full evaluation
    computes it ((n − wrong) / n), is still >= ``interp_acc``.

    >>> allowed_errors(4000, 1.0), allowed_errors(4000, 0.99), allowed_errors(3, 0.6)
    (0, 40, 1)
    """
    wrong = min(n, max(0, int((1 - interp_acc) * n)))
    while wrong > 0 and (n - wrong) / n < interp_acc:
        wrong -= 1
    while wrong < n and (n - wrong - 1) / n >= interp_acc:
        wrong += 1
    return wrong


def applies(p, model) -> bool:
    """Whether the trial's params ``p`` read nothing but the fit from the per-epoch
    evaluation and ``model`` is an MLP this module bounds (ReLU or linear, float32 or float64
    products at full precision)."""
    reads_more = p.curves or p.oscillation or p.forgetting or p.interp_loss is not None
    if not ENABLED or not p.stop_at_interpolation or reads_more or p.model != "mlp":
        return False
    if any(not isinstance(m, (nn.Linear, nn.ReLU)) for m in model.body):
        return False
    dtypes = {q.dtype for q in model.parameters()}
    return dtypes <= {torch.float32, torch.float64} and full_precision()


def full_precision() -> bool:
    """Float32 products in float32 (TF32 or bfloat16 round more than the bound allows)."""
    return torch.get_float32_matmul_precision() == "highest"


def mlp_layers(model) -> list:
    """[(W (1, out, in), b (1, out) or None)] of a memo.nets MLP, views of its parameters."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return [
        (m.weight.detach()[None], None if m.bias is None else m.bias.detach()[None]) for m in layers
    ]


class FitCheck:
    """One model's state between checks: its training inputs and labels, and its suspects:
    the examples found wrong at recent checks, the latest first (None until a full evaluation
    has shown them). Near the end a few examples take turns being wrong: the ones wrong a few
    epochs ago are as likely to be wrong now as the ones wrong at the last check."""

    def __init__(self, inputs, y: torch.Tensor, interp_acc: float):
        self.inputs, self.y = inputs, y
        self.allowed = allowed_errors(len(y), interp_acc)
        norms = torch.linalg.vector_norm(inputs.X.flatten(1), dim=1)
        rounding = 1 + 2 * inputs.X[0].numel() * torch.finfo(inputs.X.dtype).eps
        self.max_norm = norms.max().item() * rounding
        self.suspects = None

    def saw(self, pred: torch.Tensor) -> None:
        """A full evaluation's predictions: its wrong examples become the first suspects."""
        wrong = (pred != self.y).nonzero().flatten()
        self.keep(wrong, self.suspects)

    def keep(self, first: torch.Tensor, then: torch.Tensor | None) -> None:
        if then is not None:
            first = torch.cat([first, then[~torch.isin(then, first)]])
        self.suspects = first[: SUSPECTS + 2 * self.allowed]

    def may_rule_out(self) -> bool:
        return self.suspects is not None and len(self.suspects) > self.allowed


def rule_out(checks: list, layers: list) -> list:
    """For each model m (``checks[m]``, slice m of ``layers``): True where it surely does not
    fit its training set and its training loss is surely finite, so that the full evaluation
    would find both. Its suspects are evaluated a chunk at a time until more of them are
    surely wrong than interp_acc allows; those come first at its next check. False: the full
    evaluation must decide (call :meth:`FitCheck.saw` with its predictions)."""
    out = [False] * len(checks)
    live = [m for m, check in enumerate(checks) if check.may_rule_out()]
    if not live:
        return out
    dtype = layers[0][0].dtype  # the full evaluation's
    layers = [(W.double(), None if b is None else b.double()) for W, b in layers]
    finite = logits_bounded(layers, [c.max_norm for c in checks], [len(c.y) for c in checks], dtype)
    live = [m for m in live if finite[m]]
    wrong = {m: [] for m in live}  # per model, the suspects found wrong so far
    done = dict.fromkeys(live, 0)  # per model, how many of its suspects were evaluated
    size = CHUNK
    while live:
        chunks = [
            checks[m].suspects[done[m] : done[m] + size + 2 * checks[m].allowed] for m in live
        ]
        found = evaluate_chunks([checks[m] for m in live], chunks, layers, live, dtype)
        for m, chunk, bad in zip(live, chunks, found):
            check = checks[m]
            done[m] += len(chunk)
            wrong[m].append(bad)
            bad = torch.cat(wrong[m])
            if len(bad) > check.allowed:
                out[m] = True
                # Then the suspects not evaluated, then those evaluated and not found wrong.
                unseen, seen = check.suspects[done[m] :], check.suspects[: done[m]]
                check.keep(bad, torch.cat([unseen, seen]))
        live = [m for m in live if not out[m] and done[m] < len(checks[m].suspects)]
        size *= 4
    return out


def evaluate_chunks(checks: list, chunks: list, layers: list, models: list, dtype) -> list:
    """The examples of each chunk (indices into checks[j]'s training set) that model
    models[j] surely gets wrong in ``dtype``."""
    size = max(len(chunk) for chunk in chunks)
    # Each chunk padded to one size with its first example (masked out below).
    idx = torch.stack([torch.cat([c, c[:1].expand(size - len(c))]) for c in chunks])  # (M', S)
    x = torch.stack([check.inputs.take(i) for check, i in zip(checks, idx)])
    y = torch.stack([check.y[i] for check, i in zip(checks, idx)])
    valid = torch.arange(size, device=idx.device) < torch.tensor(
        [len(c) for c in chunks], device=idx.device
    ).unsqueeze(1)
    layers = select(layers, models)
    wrong = surely_wrong(layers, x, y, dtype) & valid
    return [i[w] for i, w in zip(idx, wrong)]


def select(layers: list, models: list) -> list:
    """``layers`` ([(W (M, out, in), b (M, out) or None)], slice m: model m) of ``models`` alone."""
    if models == list(range(len(layers[0][0]))):
        return layers
    index = torch.tensor(models, device=layers[0][0].device)
    return [(W[index], None if b is None else b[index]) for W, b in layers]


def surely_wrong(layers: list, x: torch.Tensor, y: torch.Tensor, dtype=None) -> torch.Tensor:
    """(M, S): whether ReLU MLP m (slice m of ``layers``: W (M, out, in), b (M, out) or None)
    misclassifies x[m, s] (label y[m, s]) in every evaluation in ``dtype`` (default: the
    weights'), whatever the order of its sums: evaluated here in float64, another class's
    logit exceeds the label's by more than the rounding of this evaluation and of any other
    can close."""
    dtype = dtype or layers[0][0].dtype
    u = torch.finfo(dtype).eps / 2 + torch.finfo(torch.float64).eps / 2  # theirs + ours
    tiny = torch.finfo(dtype).tiny  # the absolute error of a product that underflows
    with torch.inference_mode():
        h, err = x.double(), None  # values; bound on |value − exact| + |theirs − exact|
        for j, (W, b) in enumerate(layers):
            n = W.shape[-1] + (b is not None)
            gamma = n * u / (1 - n * u)
            W = W.double()
            Wt, absWt = W.transpose(1, 2), W.abs().transpose(1, 2)
            z = torch.bmm(h, Wt)
            # |their input| <= |ours| + err, and our own rounding is bounded by that too.
            size = torch.bmm(h.abs() if err is None else h.abs() + err, absWt)
            if b is not None:
                z += b.double()[:, None]
                size += b.double().abs()[:, None]
            carried = 0 if err is None else torch.bmm(err, absWt)
            err = gamma * size + carried + n * tiny
            h = z.relu_() if j < len(layers) - 1 else z
        # The bound itself is computed in float64: a relative error of about n 1e-16 at most.
        slack = (err + err.gather(-1, y[..., None])) * (1 + 1e-6)
        margin = h - h.gather(-1, y[..., None]) - slack
        margin.scatter_(-1, y[..., None], -math.inf)
        return (margin > 0).any(-1)


def logits_bounded(layers: list, max_norms: list, sizes: list, dtype=None) -> list:
    """Per model: whether its logits on every input of norm <= max_norms[m] are so small that
    the training loss (any of memo.training.LOSSES), summed over sizes[m] examples, is finite
    in every evaluation in ``dtype`` (default: the weights'). False for non-finite weights."""
    dtype = dtype or layers[0][0].dtype
    bound = torch.tensor(max_norms, dtype=torch.float64)
    classes = layers[-1][0].shape[1]
    for W, b in layers:
        n = W.shape[-1] + (b is not None)
        grow = 1 + 2 * n * torch.finfo(dtype).eps  # the rounding of the products
        norm = torch.linalg.vector_norm(W.double(), dim=(1, 2)).cpu()
        add = 0 if b is None else torch.linalg.vector_norm(b.double(), dim=1).cpu()
        bound = (norm * bound + add) * grow
    # Cross-entropy <= 2B + ln K, hinge <= (K − 1)(1 + 2B), squared <= (B + 1)².
    loss = torch.maximum((bound + 1) ** 2, classes * (1 + 2 * bound))
    total = loss * torch.tensor(sizes, dtype=torch.float64)
    return (total < LOSS_SUM_LIMIT).tolist()  # NaN: False
