"""M MLPs of one shape as one model: stacked weights, per-model optimizer updates and losses.

Model m is slice [m] of every tensor: a layer's weights are (M, out, in) as torch.nn.Linear holds
them, a batch is (M, B, D), and a layer is one batched product over the M models (``Linear``).
The models never mix: the loss trained on is the sum of the models' own mean losses, so model
m's gradient is its own loss's gradient, and the optimizer updates each slice with that model's
lr, momentum and weight decay as torch's SGD or Adam would update the model alone: the same
arithmetic, only the order of float sums within a product differs.
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from memo.nets import weight_layers
from memo.nets.models import Sin
from memo.training.loop import Evaluation

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


# Weights are stacked as the models hold them, (M, out, in); biases as (M, 1, out) in hidden
# layers and (M, K, 1) in the head, whose logits are computed transposed (see Linear).
BIAS_LAYOUTS = {
    "row": (lambda t: t.unsqueeze(0), lambda s, m: s[m, 0]),
    "column": (lambda t: t.unsqueeze(-1), lambda s, m: s[m, :, 0]),
}
LAYOUTS = {"weight": (lambda t: t, lambda s, m: s[m]), **BIAS_LAYOUTS}


def stack(tensors: list, layout: str) -> torch.Tensor:
    """One stacked tensor from the models' own, stored as ``layout`` says."""
    store = LAYOUTS[layout][0]
    return torch.stack([store(t.detach()) for t in tensors]).contiguous()


def unstack(stacked: torch.Tensor, m: int, layout: str) -> torch.Tensor:
    """Model m's tensor, in its own shape (a view)."""
    return LAYOUTS[layout][1](stacked, m)


class Linear(torch.autograd.Function):
    """One layer of M models, x (M, B, in) -> x Wᵀ + b with W (M, out, in), b (M, 1, out) or,
    for the head, b (M, K, 1), whose logits are computed as (W xᵀ)ᵀ. Written out because the
    orientation of each batched product decides its speed on the CPU (MKL, one thread): with
    K = 10 classes as the product's columns (x Wᵀ, or the gradient xᵀ g that autograd takes of
    it) it ran 4-8x slower than with K as its rows. Every gradient comes out contiguous (a
    transposed one, as autograd gives through a transposed view, made the activation's
    backward several times slower)."""

    @staticmethod
    def forward(ctx, x, W, b, head: bool):
        ctx.save_for_backward(x, W)
        ctx.bias = None if b is None else "column" if head else "row"
        if head:
            xT = x.transpose(1, 2)
            logits = torch.bmm(W, xT) if b is None else torch.baddbmm(b, W, xT)
            return logits.transpose(1, 2).contiguous()  # small; the loss and argmax read rows
        WT = W.transpose(1, 2)
        return torch.bmm(x, WT) if b is None else torch.baddbmm(b, x, WT)

    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        grad_x = torch.bmm(g, W) if ctx.needs_input_grad[0] else None
        grad_W = torch.bmm(g.transpose(1, 2), x)
        grad_b = None
        if ctx.bias:
            grad_b = g.sum(1, keepdim=True)
            grad_b = grad_b.transpose(1, 2) if ctx.bias == "column" else grad_b
        return grad_x, grad_W, grad_b, None


IN_PLACE = {nn.ReLU: torch.relu_, nn.Tanh: torch.tanh_, nn.Sigmoid: torch.sigmoid_, Sin: torch.sin_}


class StackedMLP:
    """The memo.nets MLPs ``models`` (one shape) as one model. ``params``: leaf tensors in the
    models' parameter order (each layer's weight, then its bias when the MLP has biases)."""

    def __init__(self, models: list):
        layers = [weight_layers(model) for model in models]
        body = models[0].body
        activation = body[1] if len(body) else None  # the same module between all layers
        # In place (the activations are the largest tensors of a step), in training only
        # where the backward reads the output, not the input (sin's reads the input).
        self.eval_activation = IN_PLACE.get(type(activation), activation)
        self.train_activation = activation if isinstance(activation, Sin) else self.eval_activation
        self.bias = layers[0][0].bias is not None
        self.params, self.layouts = [], []
        for j in range(len(layers[0])):
            bias = "column" if j == len(layers[0]) - 1 else "row"
            for name, layout in (("weight", "weight"), ("bias", bias)):
                if name == "weight" or self.bias:
                    self.params.append(stack([getattr(ls[j], name) for ls in layers], layout))
                    self.layouts.append(layout)
        for p in self.params:
            p.requires_grad_()

    def __len__(self):
        return len(self.params[0])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (M, B, K) of inputs (M, B, D), model m on x[m]."""
        weights = self.params[0::2] if self.bias else self.params
        biases = self.params[1::2] if self.bias else [None] * len(weights)
        inference = torch.is_inference_mode_enabled()
        activation = self.eval_activation if inference else self.train_activation
        for w, b in zip(weights[:-1], biases[:-1]):
            x = activation(Linear.apply(x, w, b, False))
        return Linear.apply(x, weights[-1], biases[-1], True)

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
            for own, p, layout in zip(model.parameters(), self.params, self.layouts):
                own.copy_(unstack(p, m, layout))

    def layers(self) -> list:
        """[(W (M, out, in), b (M, out) or None)] per layer, detached views."""
        weights = self.params[0::2] if self.bias else self.params
        biases = self.params[1::2] if self.bias else [None] * len(weights)
        flat = lambda b: None if b is None else b.detach().flatten(1)  # (M, 1, out) or (M, K, 1)
        return [(w.detach(), flat(b)) for w, b in zip(weights, biases)]

    def grad_norms(self) -> torch.Tensor:
        """(M,) each model's gradient L2 norm over all its parameters."""
        squares = [p.grad.square().sum((1, 2)) for p in self.params]
        return torch.stack(squares).sum(0).sqrt()


def evaluate(model: StackedMLP, inputs: list, Y: torch.Tensor, loss_fn, batch_size: int) -> list:
    """Each model's :class:`memo.training.Evaluation` on its inputs (memo.datasets.tensordata.Inputs, one
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
        """One update of every model with the gradients in ``.grad``; ``lr`` (M, 1, 1). In
        place, without temporaries the size of the weights (they cost more than the update)."""
        descent = -lr
        if self.kind == "adam":
            self.steps += 1
            b1, b2 = self.BETAS
            step_size = (descent.double() / (1 - b1**self.steps)).float()
            correction = (1 - b2**self.steps).sqrt().float()
        for j, p in enumerate(self.model.params):
            g = p.grad  # ours to change: the next backward sets a new one
            if self.decay:
                g.addcmul_(p, self.weight_decay)
            if self.kind == "adam":
                m, v = self.state["exp_avg"][j], self.state["exp_avg_sq"][j]
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                p.addcdiv_(m, v.sqrt().div_(correction).add_(self.EPS).div_(step_size))
                continue
            if self.state:
                buf = self.state["momentum_buffer"][j]
                torch.addcmul(g, buf, self.momentum, out=buf)  # one pass: g + momentum·buf
                g = g.addcmul_(buf, self.momentum) if self.nesterov else buf
            p.addcmul_(g, descent)

    def keep(self, index: torch.Tensor) -> None:
        """Keep the models at ``index``, as :meth:`StackedMLP.keep` (call both)."""
        self.momentum, self.weight_decay = self.momentum[index], self.weight_decay[index]
        self.steps = self.steps[index]
        self.state = {k: [t.index_select(0, index) for t in ts] for k, ts in self.state.items()}

    def export(self, m: int, optimizer) -> None:
        """Model m's state into ``optimizer``, torch's optimizer of model m alone (same
        hyperparameters), so that its ``state_dict`` is the one training alone would save."""
        for j, p in enumerate(optimizer.param_groups[0]["params"]):
            layout = self.model.layouts[j]
            # Contiguous: torch's fused kernels read a buffer in the parameter's memory order.
            own = lambda t: unstack(t, m, layout).clone(memory_format=torch.contiguous_format)
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
                        unstack(ts[j], m, self.model.layouts[j]).copy_(saved[k])
            if "step" in saved:
                self.steps[m] = float(saved["step"])
