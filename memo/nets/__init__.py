"""Networks for memorization experiments, built by name: ``make_model(name, input_shape, K)``.

Images are (B, C, H, W) float32 tensors and ``input_shape`` is (C, H, W); channels-last memory
format is fine. MLPs flatten any input, so their ``input_shape`` may be anything. Every model
is a :class:`Net`: ``model.features(x)`` is the penultimate representation (B, F) and
``model.head`` the last linear layer, with ``model(x) == model.head(model.features(x))``.

Models (options are the builder's keyword arguments; see each builder):
    mlp        hidden layers from a spec string, "512x512"; "" or "0" is a linear model
    convnet    Mehta et al. 2021's ConvNet (1,703,370 params on CIFAR-10)
    alexnet    Zhang et al. 2017's small AlexNet (1,387,786 params on 28x28x3 crops)
    inception  Zhang et al. 2017's small Inception, Fig. 3 (1,649,402 with or without BN)
    wrn        Wide ResNet (Zagoruyko & Komodakis 2016); WRN-28-1 has 369,498 params

Every model also takes the init options of :func:`init_weights`. The weight-noise probe
(:func:`add_weight_noise`) wraps the Linear and Conv layers of any model.
"""

import inspect

import torch
from torch import nn

from memo.nets.models import (
    Net,
    _as_int,
    alexnet,
    convnet,
    inception,
    mlp,
    parse_hidden,
    weight_layers,
    wrn,
)
from memo.nets.noise import (
    LogNormalNoise,
    add_weight_noise,
    information_bound,
    noise_modules,
    scale_alpha,
    set_log_alpha,
)

__all__ = [
    "MODELS", "Net", "make_model", "options", "count_params", "init_weights", "parse_hidden",
    "LogNormalNoise", "add_weight_noise", "information_bound", "noise_modules", "scale_alpha",
    "set_log_alpha",
]  # fmt: skip

INITS = ("default", "glorot", "he", "mehta")


def init_weights(model, init="default", init_scale=1.0, init_std=None):
    """Re-initialize the Linear and Conv weights of ``model`` in place; BN is left alone.

    ``init``: "default" keeps torch's init; "glorot" (uniform) and "he" (normal, fan_in, std
    sqrt(2/fan_in)) zero the biases, as Keras does; "mehta" draws the first layer from
    N(0, init_std^2) and the rest glorot (Mehta et al. 2021). ``init_scale`` then multiplies
    every weight and bias: the whole initial parameter vector of those layers is scaled.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITS)}")
    if (init == "mehta") != (init_std is not None):
        raise ValueError(
            "init_std (the first layer's sigma) goes with init='mehta', and only there"
        )
    layers = weight_layers(model)
    with torch.no_grad():
        for i, layer in enumerate(layers):
            if init == "he":
                nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            elif init == "mehta" and i == 0:
                nn.init.normal_(layer.weight, 0.0, float(init_std))
            elif init in ("glorot", "mehta"):
                nn.init.xavier_uniform_(layer.weight)
            if init != "default" and layer.bias is not None:
                layer.bias.zero_()
            layer.weight.mul_(float(init_scale))
            if layer.bias is not None:
                layer.bias.mul_(float(init_scale))
    return model


MODELS = {"mlp": mlp, "convnet": convnet, "alexnet": alexnet, "inception": inception, "wrn": wrn}
INIT_OPTIONS = ("init", "init_scale", "init_std")


def options(name: str) -> list:
    """The options ``make_model(name, ...)`` accepts.

    >>> options("wrn")
    ['depth', 'width', 'dropout', 'init', 'init_scale', 'init_std']
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")
    return list(inspect.signature(MODELS[name]).parameters)[2:] + list(INIT_OPTIONS)


def make_model(name: str, input_shape: tuple, num_classes: int, **opts) -> nn.Module:
    """Build model ``name`` for inputs of ``input_shape`` ((C, H, W) for conv nets).

    ``opts`` are the builder's keywords plus ``init``, ``init_scale``, ``init_std``.
    """
    valid = options(name)
    unknown = sorted(set(opts) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown option {unknown[0]!r} for model {name!r}; valid: {', '.join(valid)}"
        )
    num_classes = _as_int("num_classes", num_classes)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    init = {k: opts.pop(k) for k in INIT_OPTIONS if k in opts}
    model = MODELS[name](tuple(input_shape), num_classes, **opts)
    return init_weights(model, **init)


def count_params(model: nn.Module) -> int:
    """Number of scalar parameters, trainable or not (noise log-alphas included once added).

    >>> count_params(nn.Linear(3, 2))
    8
    """
    return sum(p.numel() for p in model.parameters())
