"""Measurements taken while or after a network trains (trials/train.py's probes).

None of them changes the training run: they evaluate in eval mode (no dropout draw, no
batch-norm update), take their own gradients, and draw no random numbers from the data
generator, so a run gives the same curves with or without them.
"""

import math
import time

import numpy as np
import torch

from memo.datasets.tensordata import Inputs
from memo.training.loop import evaluate


def oscillation(previous: torch.Tensor, current: torch.Tensor) -> tuple:
    """(share correct in both epochs, share correct in either) from two (N,) bool masks.

    >>> a, b = torch.tensor([True, True, False, False]), torch.tensor([True, False, True, False])
    >>> oscillation(a, b)
    (0.25, 0.75)
    """
    both = (previous & current).float().mean().item()
    either = (previous | current).float().mean().item()
    return both, either


class AlignmentProbe:
    """Mehta et al.'s in-class alignment, every ``every`` steps, on a fixed training subsample.

    Records into ``history``: ``align_step`` (the optimizer step), ``align_repr`` (alignment
    of the penultimate representations) and ``align_grad_<layer>`` (of the per-example
    gradients of each layer, and of the logits), from memo.training.alignment; None where it is
    undefined (all gradients zero, as hinge-loss ones once every margin is met). ``seconds``
    is the time spent here, to report the probe's overhead.
    """

    def __init__(self, model, loss_fn, inputs: Inputs, y, samples: int, seed: int, history):
        rng = np.random.default_rng([seed, 2])  # not the data generator: training is unchanged
        idx = np.sort(rng.choice(len(y), size=min(samples, len(y)), replace=False))
        idx = torch.as_tensor(idx, device=y.device)
        self.x, self.y = inputs.take(idx), y.index_select(0, idx)
        self.model, self.loss_fn, self.history = model, loss_fn, history
        self.seconds = 0.0

    def __call__(self, step: int) -> None:
        from memo.training import alignment

        start = time.perf_counter()
        was_training = self.model.training
        self.model.eval()
        try:
            values = {"align_repr": alignment.representation_alignment(self.model, self.x, self.y)}
            grads = alignment.gradient_alignment(self.model, self.loss_fn, self.x, self.y)
        finally:
            self.model.train(was_training)
        for name, value in grads.items():
            values[f"align_grad_{name.replace('.', '_')}"] = value
        self.history.setdefault("align_step", []).append(step)
        for key, value in values.items():  # NaN is stored as None: records are JSON
            value = float(value)
            self.history.setdefault(key, []).append(value if math.isfinite(value) else None)
        self.seconds += time.perf_counter() - start


def noise_ramp(
    model,
    parts: dict,
    loss_fn,
    levels: int,
    log_alpha: float,
    factor: float,
    passes: int,
    batch_size: int,
) -> dict:
    """Accuracy of a trained network under growing multiplicative weight noise.

    Freezes the weights, puts log-normal noise on every Linear and Conv weight (Kingma et
    al. 2015) starting at ln α = ``log_alpha``, and multiplies α by ``factor`` from level to
    level. At each level every part ``{name: (inputs, labels)}`` is evaluated ``passes``
    times with fresh noise and the accuracies averaged. A network that stores more
    information in its weights (Achille & Soatto 2018: random labels) should lose accuracy
    at smaller α. Returns lists per level: ``noise_log_alpha``, ``noise_info`` (the bound
    −½ mean ln α) and ``noise_<name>_acc``. The model keeps the noise afterwards.
    """
    from memo.nets import add_weight_noise, information_bound, scale_alpha

    for p in model.parameters():
        p.requires_grad_(False)
    add_weight_noise(model, log_alpha, learnable=False)
    out = {"noise_log_alpha": [], "noise_info": []}
    for level in range(levels):
        if level:
            scale_alpha(model, factor)
        out["noise_log_alpha"].append(log_alpha + level * math.log(factor))
        out["noise_info"].append(information_bound(model).item())
        for name, (inputs, y) in parts.items():
            accs = [evaluate(model, inputs, y, loss_fn, batch_size).acc for _ in range(passes)]
            out.setdefault(f"noise_{name}_acc", []).append(sum(accs) / passes)
    return out
