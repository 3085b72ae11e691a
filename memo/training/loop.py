"""The training loop behind trials/train.py: losses, optimizers, schedules, epochs, evaluation.

Built for small models, where a ``DataLoader`` loop spends most of its time in Python per
example (indexing a ``TensorDataset`` one example at a time, then collating): here the whole
split is one tensor on the device (memo.datasets.tensordata), a batch is one ``index_select`` with
indices from a per-epoch permutation, augmentation runs batched on the device, and the loop
reads nothing back from the device before the end of the epoch (one sync per epoch).
Evaluation runs in large batches under ``torch.inference_mode``. Checkpoints and TensorBoard
events are in memo.training.checkpoints.

Determinism: the data order and the augmentation draw from a ``torch.Generator`` seeded
with the point's seed, the init and dropout from torch's global generator seeded with it
too; both are saved in checkpoints, so a resumed run continues bit for bit on the CPU.
"""

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from memo.datasets.tensordata import Inputs, augment

# ---------------------------------------------------------------------------------------------
# Losses: logits z (B, K), labels y (B,) -> mean over the batch. Written with comparisons
# against arange(K) rather than one_hot/scatter so torch.func.vmap can take per-example
# gradients of them (the alignment probe).


def cross_entropy(z, y):
    return F.cross_entropy(z, y)


def multiclass_hinge(z, y):
    """Σ_{j≠y} max(0, 1 + z_j − z_y) (Weston & Watkins), averaged over the batch.

    >>> multiclass_hinge(torch.tensor([[2.0, 0.5, 1.5]]), torch.tensor([0])).item()
    0.5
    """
    z_y = z.gather(-1, y.unsqueeze(-1))  # (B, 1)
    others = torch.arange(z.shape[-1], device=z.device) != y.unsqueeze(-1)  # (B, K)
    return ((1 + z - z_y).clamp_min(0) * others).sum(-1).mean()


def squared_loss(z, y):
    """(z − onehot(y))², averaged over the classes and the batch.

    >>> squared_loss(torch.tensor([[1.0, 2.0]]), torch.tensor([0])).item()
    2.0
    """
    target = (torch.arange(z.shape[-1], device=z.device) == y.unsqueeze(-1)).to(z.dtype)
    return (z - target).square().mean()


LOSSES = {"ce": cross_entropy, "hinge": multiclass_hinge, "squared": squared_loss}


# ---------------------------------------------------------------------------------------------
# Optimizers and learning-rate schedules


def make_optimizer(
    parameters, name: str, lr: float, momentum=0.9, nesterov=False, weight_decay=0.0
):
    """SGD (momentum, nesterov, weight decay) or Adam, with torch's fused kernels.

    Fused: one kernel per step instead of several per parameter list; on a small MLP on the
    CPU the step took 30 µs instead of 70-100 µs (foreach or per-parameter loops).
    """
    if name == "sgd":
        return torch.optim.SGD(
            parameters,
            lr,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            fused=True,
        )
    if name == "adam":
        return torch.optim.Adam(parameters, lr, weight_decay=weight_decay, fused=True)
    raise ValueError(f"unknown optimizer {name!r}; valid: sgd, adam")


def learning_rate(epoch: int, lr: float, schedule: str, epochs: int, milestones=(), factor=None):
    """The learning rate during epoch ``epoch`` (0-based) of ``epochs``.

    constant; step: times ``factor`` (0.1) after each milestone epoch; exponential: times
    ``factor`` (0.95, Zhang et al.) per epoch; cosine: from lr to 0 over ``epochs``.

    >>> [learning_rate(e, 1.0, "step", 10, (2, 4)) for e in range(5)]
    [1.0, 1.0, 0.1, 0.1, 0.010000000000000002]
    >>> learning_rate(2, 1.0, "exponential", 10, factor=0.5), learning_rate(5, 1.0, "cosine", 10)
    (0.25, 0.5)
    """
    if schedule == "constant":
        return lr
    if schedule == "step":
        return lr * (0.1 if factor is None else factor) ** sum(epoch >= m for m in milestones)
    if schedule == "exponential":
        return lr * (0.95 if factor is None else factor) ** epoch
    if schedule == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * min(epoch, epochs) / epochs))
    raise ValueError(
        f"unknown lr schedule {schedule!r}; valid: constant, step, exponential, cosine"
    )


# ---------------------------------------------------------------------------------------------
# Training and evaluation


@dataclass
class Evaluation:
    loss: float  # mean loss against the labels given
    acc: float
    pred: torch.Tensor  # (N,) predicted classes


def evaluate(model, inputs: Inputs, y, loss_fn, batch_size: int) -> Evaluation:
    """Loss and accuracy of ``model`` in eval mode, in large batches without autograd."""
    was_training = model.training
    model.eval()
    loss, preds, start = 0.0, [], 0
    with torch.inference_mode():
        total = torch.zeros((), device=y.device)
        for xb in inputs.chunks(batch_size):
            if inputs.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            out = model(xb)
            yb = y[start : start + len(xb)]
            total += loss_fn(out, yb) * len(xb)
            preds.append(out.argmax(1))
            start += len(xb)
        pred = torch.cat(preds)
        loss = total.item() / len(y)
        acc = (pred == y).sum().item() / len(y)  # a count: 9/10 is not 0.8999999
    model.train(was_training)
    return Evaluation(loss, acc, pred)


def weight_norm(model) -> float:
    """Euclidean norm of all parameters together."""
    with torch.no_grad():
        return torch.nn.utils.get_total_norm(list(model.parameters())).item()


class Trainer:
    """One pass over the training data per :meth:`epoch`: shuffled batches by index.

    ``on_step(step)`` runs every ``every`` optimizer steps (the alignment probe);
    ``grad_norm`` tracks the mean gradient norm of each epoch's steps and ``accuracy`` the
    running accuracy of the training batches (a few extra kernels per step, which cost 5-10%
    on small models, so only when the curves ask for them).
    """

    def __init__(
        self,
        model,
        optimizer,
        loss_fn,
        inputs: Inputs,
        y: torch.Tensor,
        batch_size: int,
        generator: torch.Generator,
        padding: int = 0,
        flip: bool = False,
        grad_norm: bool = False,
        accuracy: bool = False,
        on_step=None,
        every: int = 0,
        step: int = 0,
    ):
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.inputs, self.y, self.batch_size = inputs, y, batch_size
        self.generator, self.padding, self.flip = generator, padding, flip
        self.grad_norm, self.accuracy = grad_norm, accuracy
        self.on_step, self.every = on_step, every
        self.step = step  # optimizer steps taken so far, over every epoch
        self.params = [p for p in model.parameters() if p.requires_grad]
        norms = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)
        self.batch_norm = any(isinstance(m, norms) for m in model.modules())

    def epoch(self, lr: float) -> dict:
        """Train one epoch at ``lr``: {"loss", "acc", "grad_norm", "seconds"}, the means over
        the epoch's batches (acc and grad_norm None unless tracked)."""
        start_time = time.perf_counter()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        n, dev = len(self.y), self.y.device
        order = torch.randperm(n, generator=self.generator, device=dev)
        losses, correct, norms = [], [], []  # device scalars, summed once at the end
        augmenting = self.padding or self.flip
        # Batch norm cannot train on a last batch of one example: it is left out there.
        end = n - 1 if self.batch_norm and n % self.batch_size == 1 and n > 1 else n
        for start in range(0, end, self.batch_size):
            idx = order[start : start + self.batch_size]
            xb, yb = self.inputs.take(idx), self.y.index_select(0, idx)
            if augmenting:
                xb = augment(xb, self.inputs, self.padding, self.flip, self.generator)
            out = self.model(xb)
            loss = self.loss_fn(out, yb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.grad_norm:
                grads = [p.grad for p in self.params if p.grad is not None]
                norms.append(torch.nn.utils.get_total_norm(grads))
            self.optimizer.step()
            losses.append(loss.detach())
            if self.accuracy:
                with torch.no_grad():
                    correct.append((out.argmax(1) == yb).sum())
            self.step += 1
            if self.on_step is not None and self.every and self.step % self.every == 0:
                self.on_step(self.step)
        sizes = torch.full((len(losses),), float(self.batch_size), device=dev)
        sizes[-1] = end - self.batch_size * (len(losses) - 1)  # the last batch may be smaller
        return {
            "loss": (torch.stack(losses) @ sizes).item() / end,  # the one sync of the epoch
            "acc": torch.stack(correct).sum().item() / end if self.accuracy else None,
            "grad_norm": torch.stack(norms).mean().item() if self.grad_norm else None,
            "seconds": time.perf_counter() - start_time,
        }
