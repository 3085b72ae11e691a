"""The architectures, one class and one builder each; build them with memo.nets.make_model.

A builder's keyword arguments are the model's options: make_model lists them in its errors.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    """A classifier split as ``head(features(x))``; subclasses define ``features`` and ``head``."""

    def forward(self, x):
        return self.head(self.features(x))


class Sin(nn.Module):
    def forward(self, x):
        return torch.sin(x)


ACTIVATIONS = {"relu": nn.ReLU, "sin": Sin, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def _as_int(key: str, value) -> int:
    """Specs store numbers as floats (28.0); accept those when they are whole."""
    if isinstance(value, bool) or not float(value).is_integer():
        raise ValueError(f"option {key}={value!r} must be a whole number")
    return int(value)


def _image_shape(name: str, input_shape: tuple) -> tuple:
    if len(input_shape) != 3:
        raise ValueError(f"model {name!r} needs input_shape (C, H, W), got {tuple(input_shape)}")
    return tuple(_as_int("input_shape", n) for n in input_shape)


def weight_layers(model: nn.Module) -> list:
    """The Linear and Conv layers of a model, in the order they were built (= applied)."""
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]


# ---------------------------------------------------------------------------------------------
# MLP


def parse_hidden(spec) -> list:
    """Hidden widths from "512x512x512", an int or a list; "" and "0" mean none (linear model).

    >>> parse_hidden("512x512"), parse_hidden(""), parse_hidden("0"), parse_hidden(256)
    ([512, 512], [], [], [256])
    """
    if isinstance(spec, str):
        parts = [p for p in spec.lower().replace(" ", "").split("x") if p]
        try:
            widths = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"bad hidden spec {spec!r}; write widths joined by x, e.g. '512x512'")
    elif isinstance(spec, (list, tuple)):
        widths = [_as_int("hidden", w) for w in spec]
    else:
        widths = [_as_int("hidden", spec)]
    if widths == [0]:
        return []
    if any(w <= 0 for w in widths):
        raise ValueError(f"bad hidden spec {spec!r}; widths must be positive ('0' alone = linear)")
    return widths


class MLP(Net):
    def __init__(self, in_features, num_classes, hidden=(), bias=True, activation="relu"):
        super().__init__()
        layers, width = [], in_features
        for h in hidden:
            layers += [nn.Linear(width, h, bias=bias), _activation(activation)]
            width = h
        self.body = nn.Sequential(*layers)  # empty for a linear model: features are the input
        self.head = nn.Linear(width, num_classes, bias=bias)

    def features(self, x):
        return self.body(x.flatten(1))  # (B, *) -> (B, in_features) -> (B, hidden[-1])


def mlp(input_shape, num_classes, hidden="512", bias=True, activation="relu"):
    """MLP; ``hidden`` "512x512" (or int/list; "" or "0" = linear), ``bias``, ``activation``
    relu | sin | sigmoid | tanh."""
    in_features = math.prod(_as_int("input_shape", n) for n in input_shape)
    return MLP(in_features, num_classes, parse_hidden(hidden), bool(bias), activation)


# ---------------------------------------------------------------------------------------------
# Mehta et al. 2021's ConvNet


class ConvNet(Net):
    def __init__(self, input_shape, num_classes, bias=True, activation="relu"):
        super().__init__()
        c, h, w = input_shape
        # Pools are 'valid' (TF's default): 32 -> pool 15 -> conv 11 -> pool 5, and 64*5*5 = 1600
        # inputs to fc1 give the published 1,703,370 parameters on CIFAR-10.
        side = lambda n: ((n - 3) // 2 + 1 - 4 - 3) // 2 + 1
        if side(h) < 1 or side(w) < 1:
            raise ValueError(f"convnet needs images of at least 15x15, got {h}x{w}")
        self.conv1 = nn.Conv2d(c, 32, 5, padding=2, bias=bias)  # 'same'
        self.conv2 = nn.Conv2d(32, 64, 5, bias=bias)  # 'valid'
        self.fc1 = nn.Linear(64 * side(h) * side(w), 1024, bias=bias)
        self.head = nn.Linear(1024, num_classes, bias=bias)
        self.act = _activation(activation)

    def features(self, x):
        x = F.max_pool2d(self.act(self.conv1(x)), 3, 2)  # (B, 32, H, W) -> (B, 32, H', W')
        x = F.max_pool2d(self.act(self.conv2(x)), 3, 2)  # (B, 64, H'-4, W'-4) -> (B, 64, h, w)
        return self.act(self.fc1(x.flatten(1)))  # (B, 1024)


def convnet(input_shape, num_classes, bias=True, activation="relu"):
    """Mehta et al.'s ConvNet: conv 32@5x5 same, maxpool 3/2, conv 64@5x5 valid, maxpool 3/2,
    fc 1024, fc K; ``bias``, ``activation`` as for mlp."""
    return ConvNet(_image_shape("convnet", input_shape), num_classes, bool(bias), activation)


# ---------------------------------------------------------------------------------------------
# Zhang et al. 2017's small AlexNet and small Inception (Appendix A, Fig. 3)


class AlexNet(Net):
    def __init__(self, input_shape, num_classes):
        super().__init__()
        c, h, w = input_shape
        # The TF CIFAR-10 tutorial's LRN (depth_radius 4, alpha 0.001/9) in torch's terms, which
        # divide alpha by the window size. Pools are 3/2 'same': 28 -> 14 -> 7.
        lrn = lambda: nn.LocalResponseNorm(9, alpha=0.001, beta=0.75, k=1.0)
        self.body = nn.Sequential(
            nn.Conv2d(c, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, padding=1), lrn(),
            nn.Conv2d(64, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, padding=1), lrn(),
        )  # fmt: skip
        side = lambda n: math.ceil(math.ceil(n / 2) / 2)
        self.fc1 = nn.Linear(64 * side(h) * side(w), 384)
        self.fc2 = nn.Linear(384, 192)
        self.head = nn.Linear(192, num_classes)

    def features(self, x):
        x = self.body(x).flatten(1)  # (B, 64, H/4, W/4) -> (B, 64*H/4*W/4)
        return F.relu(self.fc2(F.relu(self.fc1(x))))  # (B, 384) -> (B, 192)


def alexnet(input_shape, num_classes):
    """Zhang et al.'s small AlexNet: 2 x [conv 64@5x5, maxpool 3/2, LRN], fc 384, fc 192, fc K."""
    return AlexNet(_image_shape("alexnet", input_shape), num_classes)


class BatchNormShift(nn.BatchNorm2d):
    """Batch norm with a learned shift but no scale, TF-Slim's default (center=True,
    scale=False): a ReLU and the next conv absorb the scale, and it keeps Zhang et al.'s
    count of 1,649,402 the same with and without BN (the shift replaces the conv bias)."""

    def __init__(self, channels):
        super().__init__(channels, affine=False)
        self.shift = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return super().forward(x) + self.shift[:, None, None]


class ConvModule(nn.Sequential):
    """conv -> (BN) -> ReLU, Fig. 3's conv module; padding 1 keeps 3x3 'same'."""

    def __init__(self, cin, cout, k, stride=1, batch_norm=True):
        conv = nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=not batch_norm)
        super().__init__(conv, *([BatchNormShift(cout)] if batch_norm else []), nn.ReLU())


class InceptionModule(nn.Module):
    def __init__(self, cin, c1, c3, batch_norm):
        super().__init__()
        self.b1 = ConvModule(cin, c1, 1, batch_norm=batch_norm)
        self.b3 = ConvModule(cin, c3, 3, batch_norm=batch_norm)

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x)], 1)  # (B, c1 + c3, H, W)


class DownsampleModule(nn.Module):
    def __init__(self, cin, c3, batch_norm):
        super().__init__()
        self.conv = ConvModule(cin, c3, 3, stride=2, batch_norm=batch_norm)

    def forward(self, x):
        pool = F.max_pool2d(x, 3, 2, padding=1)  # 'same': 28 -> 14 -> 7, as in Fig. 3
        return torch.cat([self.conv(x), pool], 1)  # (B, c3 + cin, H/2, W/2)


class Inception(Net):
    # Fig. 3, top to bottom: ("conv", C) | ("inception", C1x1, C3x3) | ("down", C3x3).
    LAYOUT = (
        ("conv", 96),
        ("inception", 32, 32), ("inception", 32, 48), ("down", 80),
        ("inception", 112, 48), ("inception", 96, 64), ("inception", 80, 80),
        ("inception", 48, 96), ("down", 96),
        ("inception", 176, 160), ("inception", 176, 160),
    )  # fmt: skip

    def __init__(self, input_shape, num_classes, batch_norm=True):
        super().__init__()
        layers, c = [], input_shape[0]
        for kind, *widths in self.LAYOUT:
            if kind == "conv":
                layers.append(ConvModule(c, widths[0], 3, batch_norm=batch_norm))
            elif kind == "inception":
                layers.append(InceptionModule(c, *widths, batch_norm))
            else:
                layers.append(DownsampleModule(c, *widths, batch_norm))
            c = sum(widths) + (c if kind == "down" else 0)
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c, num_classes)

    def features(self, x):
        return self.body(x).mean((2, 3))  # (B, 336, 7, 7) -> (B, 336), the 7x7 mean pool


def inception(input_shape, num_classes, batch_norm=True):
    """Zhang et al.'s small Inception; ``batch_norm`` False drops BN from every conv module."""
    return Inception(_image_shape("inception", input_shape), num_classes, bool(batch_norm))


# ---------------------------------------------------------------------------------------------
# Wide ResNet


class WideBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv3x3-dropout-BN-ReLU-conv3x3, 1x1 conv shortcut when
    the shape changes."""

    def __init__(self, cin, cout, stride, dropout):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        o = F.relu(self.bn1(x))
        # The projection reads the activated input, as in the authors' code.
        skip = x if self.shortcut is None else self.shortcut(o)
        o = self.conv1(o)  # (B, cout, H/stride, W/stride)
        o = self.conv2(self.dropout(F.relu(self.bn2(o))))
        return o + skip


class WideResNet(Net):
    def __init__(self, input_shape, num_classes, depth=28, width=1, dropout=0.0):
        super().__init__()
        n = (depth - 4) // 6  # blocks per group; 2 convs each, plus the stem and the head
        widths = [16, 16 * width, 32 * width, 64 * width]
        self.stem = nn.Conv2d(input_shape[0], 16, 3, padding=1, bias=False)
        blocks = []
        for g, stride in enumerate((1, 2, 2)):
            for i in range(n):
                cin = widths[g] if i == 0 else widths[g + 1]
                blocks.append(WideBlock(cin, widths[g + 1], stride if i == 0 else 1, dropout))
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(widths[3])
        self.head = nn.Linear(widths[3], num_classes)

    def features(self, x):
        x = self.blocks(self.stem(x))  # (B, 16, H, W) -> (B, 64*width, H/4, W/4)
        return F.relu(self.bn(x)).mean((2, 3))  # (B, 64*width)


def wrn(input_shape, num_classes, depth=28, width=1, dropout=0.0):
    """WRN-depth-width; ``depth`` = 6n + 4, ``dropout`` between the convs of each block."""
    depth, width = _as_int("depth", depth), _as_int("width", width)
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"wrn depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...), got {depth}")
    shape = _image_shape("wrn", input_shape)
    return WideResNet(shape, num_classes, depth, width, float(dropout))
