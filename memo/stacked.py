"""M MLPs of one shape as one model: stacked weights, per-model optimizer updates and losses.

Model m is slice [m] of every tensor: a layer's weights are (M, in, out), its biases (M, 1, out),
a batch is (M, B, D), and a layer is one ``torch.baddbmm`` over the M models. The models never
mix: the loss trained on is the sum of the models' own mean losses, so model m's gradient is
its own loss's gradient, and the optimizer updates each slice with that model's lr, momentum
and weight decay, as torch's SGD or Adam would update the model alone (the same arithmetic;
only the order of float sums within a matmul differs). Weights are stored (in, out): on the
CPU (MKL, one thread) ``bmm`` of (M, B, H) by (M, H, 10) ran 4x slower than the same product
against transposed (M, 10, H) weights, and the stored layout decides the backward's products
too; (in, out) was the fastest of the layouts tried for 64-256-10 and 784-512-10.
"""

import copy

import torch
import torch.nn.functional as F

from memo.nets import weight_layers
from memo.training import Evaluation

# ---------------------------------------------------------------------------------------------
# Losses of M models at once: logits z (M, B, K), labels y (M, B) -> (M,) each model's mean.
# The definitions of memo.training.LOSSES with the mean taken per model (a test checks them).


def cross_entropy(z, y):
    M, B, K = z.shape
    return F.cross_entropy(z.reshape(M * B, K), y.reshape(-1), reduction="none").view(M, B).mean(1)


def multiclass_hinge(z, y):
    z_y = z.gather(-1, y.unsqueeze(-1))  # (M, B, 1)
    others = torch.arange(z.shape[-1], device=z.device) != y.unsqueeze(-1)  # (M, B, K)
    return ((1 + z - z_y).clamp_min(0) * others).sum(-1).mean(-1)


def squared_loss(z, y):
    target = (torch.arange(z.shape[-1], device=z.device) == y.unsqueeze(-1)).to(z.dtype)
    return (z - target).square().mean((1, 2))


LOSSES = {"ce": cross_entropy, "hinge": multiclass_hinge, "squared": squared_loss}


# ---------------------------------------------------------------------------------------------
# The model


def stack(tensors: list, weight: bool) -> torch.Tensor:
    """One stacked tensor from the models' own: weights (out, in) -> (M, in, out), biases
    (out,) -> (M, 1, out)."""
    if weight:
        return torch.stack([t.detach().t() for t in tensors]).contiguous()
    return torch.stack([t.detach() for t in tensors]).unsqueeze(1).contiguous()


def unstack(stacked: torch.Tensor, m: int, weight: bool) -> torch.Tensor:
    """Model m's tensor in its own layout (the inverse of :func:`stack`)."""
    return stacked[m].t() if weight else stacked[m, 0]


class StackedMLP:
    """The memo.nets MLPs ``models`` (one shape) as one model. ``params``: leaf tensors in the
    models' parameter order (each layer's weight, then its bias when the MLP has biases)."""

    def __init__(self, models: list):
        layers = [weight_layers(model) for model in models]
        body = models[0].body
        self.activation = body[1] if len(body) else None  # the same module between all layers
        self.bias = layers[0][0].bias is not None
        self.params = []
        for j in range(len(layers[0])):
            self.params.append(stack([ls[j].weight for ls in layers], True))
            if self.bias:
                self.params.append(stack([ls[j].bias for ls in layers], False))
        self.is_weight = [not self.bias or j % 2 == 0 for j in range(len(self.params))]
        for p in self.params:
            p.requires_grad_()

    def __len__(self):
        return len(self.params[0])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (M, B, K) of inputs (M, B, D), model m on x[m]."""
        weights = self.params[0::2] if self.bias else self.params
        biases = self.params[1::2] if self.bias else [None] * len(weights)
        for j, (w, b) in enumerate(zip(weights, biases)):
            x = torch.bmm(x, w) if b is None else torch.baddbmm(b, x, w)
            if j < len(weights) - 1:
                x = self.activation(x)
        return x

    def keep(self, index: torch.Tensor) -> None:
        """Keep the models at ``index`` (a long tensor), in that order."""
        with torch.no_grad():
            self.params = [p.index_select(0, index).requires_grad_() for p in self.params]

    def subset(self, index: torch.Tensor) -> "StackedMLP":
        """The models at ``index`` as a model of their own, to evaluate (no gradients)."""
        sub = copy.copy(self)
        sub.params = [p.detach().index_select(0, index) for p in self.params]
        return sub

    def copy_to(self, m: int, model) -> None:
        """Write model m's weights into ``model``, a memo.nets MLP of the same shape."""
        with torch.no_grad():
            for own, p, weight in zip(model.parameters(), self.params, self.is_weight):
                own.copy_(unstack(p, m, weight))

    def grad_norms(self) -> torch.Tensor:
        """(M,) each model's gradient L2 norm over all its parameters."""
        squares = [p.grad.square().sum((1, 2)) for p in self.params]
        return torch.stack(squares).sum(0).sqrt()


def evaluate(model: StackedMLP, inputs: list, Y: torch.Tensor, loss_fn, batch_size: int) -> list:
    """Each model's :class:`memo.training.Evaluation` on its inputs (memo.tensordata.Inputs, one
    per model, the same object where they share them) and labels Y (M, N), in large batches."""
    M, N = Y.shape
    shared = all(x is inputs[0] for x in inputs)
    totals = torch.zeros(M, device=Y.device)
    preds = []
    with torch.inference_mode():
        for start in range(0, N, batch_size):
            if shared:  # one copy of the chunk, read by every model (stride 0)
                chunk = inputs[0].X[start : start + batch_size]
                xb = chunk.expand(M, *chunk.shape)
            else:
                xb = torch.stack([x.X[start : start + batch_size] for x in inputs])
            out = model(xb)
            yb = Y[:, start : start + batch_size]
            totals += loss_fn(out, yb) * yb.shape[1]
            preds.append(out.argmax(-1))
        pred = torch.cat(preds, 1)
        correct = (pred == Y).sum(1).tolist()
    return [
        Evaluation(t / N, c / N, pred[m]) for m, (t, c) in enumerate(zip(totals.tolist(), correct))
    ]


# ---------------------------------------------------------------------------------------------
# The optimizer


class StackedOptimizer:
    """torch's SGD (momentum, nesterov, coupled weight decay) or Adam (default betas and eps)
    on stacked parameters, each model with its own lr, momentum and weight decay.

    SGD's momentum buffer starts at zero rather than at the first gradient: momentum·0 + g is
    g exactly. Adam's step count is per model (models resumed from different checkpoints).
    """

    BETAS, EPS = (0.9, 0.999), 1e-8

    def __init__(
        self, model: StackedMLP, kind: str, momentum: list, weight_decay: list, nesterov=False
    ):
        if kind not in ("sgd", "adam"):
            raise ValueError(f"unknown optimizer {kind!r}; valid: sgd, adam")
        self.model, self.kind, self.nesterov = model, kind, nesterov
        device = model.params[0].device
        column = lambda v, dtype=torch.float32: torch.tensor(v, dtype=dtype, device=device).view(
            -1, 1, 1
        )
        self.momentum, self.weight_decay = column(momentum), column(weight_decay)
        self.decay = any(w != 0 for w in weight_decay)
        self.steps = column([0.0] * len(model), torch.float64)  # Adam's bias correction
        zeros = lambda: [torch.zeros_like(p) for p in model.params]
        names = ("momentum_buffer",) if kind == "sgd" else ("exp_avg", "exp_avg_sq")
        self.state = {name: zeros() for name in names}
        if kind == "sgd" and not any(momentum):
            self.state = {}

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> None:
        """One update of every model with the gradients in ``.grad``; ``lr`` (M, 1, 1)."""
        if self.kind == "adam":
            self.steps += 1
            b1, b2 = self.BETAS
            step_size = (lr.double() / (1 - b1**self.steps)).float()
            correction = (1 - b2**self.steps).sqrt().float()
        for j, p in enumerate(self.model.params):
            g = p.grad
            if self.decay:
                g = g.add(p * self.weight_decay)
            if self.kind == "adam":
                m, v = self.state["exp_avg"][j], self.state["exp_avg_sq"][j]
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                p.sub_(m / (v.sqrt() / correction + self.EPS) * step_size)
                continue
            if self.state:
                buf = self.state["momentum_buffer"][j]
                buf.mul_(self.momentum).add_(g)
                g = g.add(buf * self.momentum) if self.nesterov else buf
            p.sub_(lr * g)

    def keep(self, index: torch.Tensor) -> None:
        """Keep the models at ``index``, as :meth:`StackedMLP.keep` (call both)."""
        self.momentum, self.weight_decay = self.momentum[index], self.weight_decay[index]
        self.steps = self.steps[index]
        self.state = {k: [t.index_select(0, index) for t in ts] for k, ts in self.state.items()}

    def export(self, m: int, optimizer) -> None:
        """Model m's state into ``optimizer``, torch's optimizer of model m alone (same
        hyperparameters), so that its ``state_dict`` is the one training alone would save."""
        for j, p in enumerate(optimizer.param_groups[0]["params"]):
            weight = self.model.is_weight[j]
            # Contiguous: torch's fused kernels read a buffer in the parameter's memory order.
            own = lambda t: unstack(t, m, weight).clone(memory_format=torch.contiguous_format)
            state = {k: own(ts[j]) for k, ts in self.state.items()}
            if self.kind == "adam":
                state["step"] = torch.tensor(
                    self.steps[m].item(), dtype=torch.float32, device=p.device
                )
            optimizer.state[p] = state

    def load(self, m: int, optimizer) -> None:
        """Model m's state from torch's ``optimizer`` of model m alone (a checkpoint's)."""
        for j, p in enumerate(optimizer.param_groups[0]["params"]):
            saved = optimizer.state.get(p, {})
            with torch.no_grad():
                for k, ts in self.state.items():
                    if k in saved:
                        unstack(ts[j], m, self.model.is_weight[j]).copy_(saved[k])
            if "step" in saved:
                self.steps[m] = float(saved["step"])
