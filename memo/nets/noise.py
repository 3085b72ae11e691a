"""Multiplicative log-normal weight noise (Kingma et al. 2015; Achille & Soatto 2018).

For the noise probe: add noise to a trained model, freeze its clean weights, and ramp alpha
up (:func:`scale_alpha`) while reading accuracy and :func:`information_bound`.
"""

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from memo.nets.models import weight_layers


class LogNormalNoise(nn.Module):
    """Parametrization w -> w * exp(-alpha/2 + sqrt(alpha) * eps), eps ~ N(0, 1) fresh at every
    forward, so E[noisy w] = w and Var = w^2 (e^alpha - 1); one log alpha per weight."""

    def __init__(self, shape, log_alpha_init, learnable=True):
        super().__init__()
        log_alpha = torch.full(shape, float(log_alpha_init))
        if learnable:
            self.log_alpha = nn.Parameter(log_alpha)
        else:
            self.register_buffer("log_alpha", log_alpha)

    def forward(self, w):
        # exp(log_alpha / 2) rather than sqrt(alpha): finite gradient at alpha = 0 (-inf).
        eps = torch.randn_like(w)
        return w * torch.exp(-0.5 * self.log_alpha.exp() + (0.5 * self.log_alpha).exp() * eps)


def add_weight_noise(model, log_alpha_init=-8.0, learnable=True):
    """Put :class:`LogNormalNoise` on the weight of every Linear and Conv layer, in place.

    ``learnable`` makes each log alpha a parameter, else a buffer. ``-inf`` means alpha = 0,
    which leaves outputs unchanged. The clean weight stays at
    ``layer.parametrizations.weight.original`` (freeze it there for the probe).
    """
    for layer in weight_layers(model):
        if parametrize.is_parametrized(layer, "weight"):
            raise ValueError(f"{type(layer).__name__} already has a weight parametrization")
        noise = LogNormalNoise(layer.weight.shape, log_alpha_init, learnable)
        parametrize.register_parametrization(layer, "weight", noise.to(layer.weight.device))
    return model


def noise_modules(model) -> list:
    return [m for m in model.modules() if isinstance(m, LogNormalNoise)]


def information_bound(model) -> torch.Tensor:
    """-0.5 * mean(log alpha) over every noisy weight (Achille & Soatto 2018); differentiable."""
    mods = noise_modules(model)
    if not mods:
        raise ValueError("model has no weight noise; call add_weight_noise(model, ...) first")
    return -0.5 * torch.cat([m.log_alpha.flatten() for m in mods]).mean()


def set_log_alpha(model, value: float) -> None:
    """Set every log alpha to ``value`` (-inf for no noise)."""
    with torch.no_grad():
        for m in noise_modules(model):
            m.log_alpha.fill_(float(value))


def scale_alpha(model, factor: float) -> None:
    """Multiply every alpha by ``factor``: one step of the noise ramp."""
    with torch.no_grad():
        for m in noise_modules(model):
            m.log_alpha.add_(math.log(factor))
