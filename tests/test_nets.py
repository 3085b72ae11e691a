"""Models, init schemes and weight noise (memo/nets/)."""

import math

import pytest
import torch
from torch import nn

from memo.nets import (
    add_weight_noise,
    count_params,
    information_bound,
    make_model,
    scale_alpha,
    set_log_alpha,
)

CROP, CIFAR = (3, 28, 28), (3, 32, 32)  # Zhang et al. train on 28x28 crops of CIFAR-10

# name, input_shape, options, the count the paper reports
PUBLISHED = [
    ("mlp", CROP, {"hidden": "512"}, 1_209_866),  # Zhang et al. 2017, Table 1
    ("mlp", CROP, {"hidden": "512x512x512"}, 1_735_178),
    ("alexnet", CROP, {}, 1_387_786),
    ("inception", CROP, {}, 1_649_402),
    ("inception", CROP, {"batch_norm": False}, 1_649_402),
    ("wrn", CIFAR, {"depth": 28, "width": 1}, 369_498),  # Zagoruyko & Komodakis 2016
    ("convnet", CIFAR, {}, 1_703_370),  # Mehta et al. 2021
]
ids = [f"{name}-{'-'.join(map(str, opts.values()))}" for name, _, opts, _ in PUBLISHED]

# Every model on a small batch: name, input_shape, options, feature width.
SHAPES = [
    ("mlp", (5,), {"hidden": ""}, 5),  # linear: the features are the input
    ("mlp", (2, 4, 4), {"hidden": "7x3", "activation": "tanh"}, 3),
    ("convnet", (1, 20, 24), {"activation": "sin"}, 1024),
    ("alexnet", CROP, {}, 192),
    ("inception", CROP, {"batch_norm": False}, 336),
    ("inception", (3, 16, 16), {}, 336),
    ("wrn", (3, 16, 16), {"depth": 10, "width": 2, "dropout": 0.3}, 128),
]


@pytest.mark.parametrize("name, shape, opts, published", PUBLISHED, ids=ids)
def test_published_parameter_counts(name, shape, opts, published):
    assert count_params(make_model(name, shape, 10, **opts)) == published


@pytest.mark.parametrize("name, shape, opts, width", SHAPES)
def test_forward_shapes_and_features_feed_the_head(name, shape, opts, width):
    torch.manual_seed(0)
    model = make_model(name, shape, 7, **opts).eval()  # eval: dropout off, BN deterministic
    x = torch.randn(3, *shape)
    feats = model.features(x)
    assert feats.shape == (3, width)
    assert isinstance(model.head, nn.Linear) and model.head.in_features == width
    assert model(x).shape == (3, 7)
    torch.testing.assert_close(model(x), model.head(feats))


def test_channels_last_input_gives_the_same_output():
    model = make_model("inception", CROP, 10).eval()
    x = torch.randn(2, *CROP)
    y = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(y, model(x), rtol=1e-4, atol=1e-5)


def test_inception_reaches_7x7_before_the_mean_pool():
    # Fig. 3 ends in a 7x7 mean pool: the two downsample modules halve 28 -> 14 -> 7.
    model = make_model("inception", CROP, 10)
    assert model.body(torch.randn(2, *CROP)).shape == (2, 336, 7, 7)


def test_alexnet_is_two_conv_pool_lrn_modules():
    # LRN has no parameters, so the pinned count cannot see it; pin the order instead.
    body = make_model("alexnet", CROP, 10).body
    kinds = [type(m).__name__ for m in body]
    assert kinds == ["Conv2d", "ReLU", "MaxPool2d", "LocalResponseNorm"] * 2
    assert (body[3].size, body[3].alpha, body[3].k) == (9, 0.001, 1.0)  # TF: radius 4, 0.001/9


@pytest.mark.parametrize("hidden", ["", "0", 0, []])
def test_empty_hidden_spec_is_a_linear_model(hidden):
    model = make_model("mlp", (3, 4, 4), 10, hidden=hidden)
    assert count_params(model) == 48 * 10 + 10 and len(model.body) == 0


def test_wrn_depth_sets_the_number_of_blocks():
    assert len(make_model("wrn", CIFAR, 10, depth=16).blocks) == 6
    assert len(make_model("wrn", CIFAR, 10, depth=28.0).blocks) == 12  # specs store floats


def test_he_init_std_is_sqrt_2_over_fan_in():
    torch.manual_seed(0)
    model = make_model("mlp", (1000,), 10, hidden="2000", init="he")
    w = model.body[0].weight
    assert w.std().item() == pytest.approx(math.sqrt(2 / 1000), rel=0.01)
    assert model.body[0].bias.abs().sum() == 0


def test_glorot_init_is_uniform_within_the_bound():
    torch.manual_seed(0)
    model = make_model("convnet", CIFAR, 10, init="glorot")
    w = model.conv2.weight  # fan_in 32*25, fan_out 64*25
    bound = math.sqrt(6 / (32 * 25 + 64 * 25))
    assert w.abs().max().item() <= bound
    assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)


def test_mehta_init_sets_sigma_on_the_first_layer_only():
    torch.manual_seed(0)
    model = make_model("mlp", (784,), 10, hidden="1000x1000", init="mehta", init_std=0.5)
    first, second = model.body[0].weight, model.body[2].weight
    assert first.std().item() == pytest.approx(0.5, rel=0.01)
    assert second.std().item() == pytest.approx(math.sqrt(2 / 2000), rel=0.01)  # glorot
    conv = make_model("convnet", CIFAR, 10, init="mehta", init_std=3.0)
    assert conv.conv1.weight.std().item() == pytest.approx(3.0, rel=0.1)
    assert conv.conv2.weight.abs().max().item() < 0.1


@pytest.mark.parametrize("name", ["mlp", "wrn"])
def test_init_scale_multiplies_the_default_weights_and_biases(name):
    torch.manual_seed(1)
    base = make_model(name, (3, 8, 8), 10)
    torch.manual_seed(1)
    scaled = make_model(name, (3, 8, 8), 10, init_scale=3.0)
    for a, b in zip(base.modules(), scaled.modules()):
        factor = 3.0 if isinstance(a, (torch.nn.Linear, torch.nn.Conv2d)) else 1.0  # not BN
        for p, q in zip(a.parameters(recurse=False), b.parameters(recurse=False)):
            torch.testing.assert_close(q, factor * p)


def test_sin_activation_is_applied():
    model = make_model("mlp", (4,), 2, hidden="6", activation="sin")
    x = torch.randn(5, 4)
    layer = model.body[0]
    torch.testing.assert_close(model.features(x), torch.sin(layer(x)))


def test_bias_off_leaves_no_bias_parameters():
    mlp = make_model("mlp", (12,), 10, hidden="5x5", bias=False)
    convnet = make_model("convnet", CIFAR, 10, bias=False)
    for model in (mlp, convnet):
        assert not [k for k, _ in model.named_parameters() if "bias" in k]
    assert count_params(mlp) == 12 * 5 + 5 * 5 + 5 * 10


def test_weight_noise_is_unbiased_with_the_right_variance_and_fresh_each_forward():
    torch.manual_seed(0)
    alpha = 0.5
    layer = add_weight_noise(nn.Linear(100, 100), math.log(alpha))
    clean = layer.parametrizations.weight.original
    ratios = torch.stack([layer.weight / clean for _ in range(200)])  # (draws, 100, 100)
    assert ratios.mean().item() == pytest.approx(1.0, abs=0.005)  # E[noisy w] = w
    assert ratios.mean(0).sub(1).abs().max().item() < 0.3  # per weight, over 200 draws
    assert ratios.var().item() == pytest.approx(math.exp(alpha) - 1, rel=0.03)
    x = torch.randn(2, 100)
    assert not torch.equal(layer(x), layer(x))


def test_zero_alpha_leaves_outputs_unchanged():
    torch.manual_seed(0)
    model = make_model("convnet", (3, 16, 16), 10)
    x = torch.randn(2, 3, 16, 16)
    clean = model(x)
    add_weight_noise(model, log_alpha_init=float("-inf"))
    assert torch.equal(model(x), clean)
    set_log_alpha(model, 0.0)
    assert not torch.allclose(model(x), clean)


def test_information_bound_and_noise_ramp():
    model = add_weight_noise(make_model("mlp", (6,), 3, hidden="4"), log_alpha_init=-4.0)
    # 6*4 + 4*3 weights, one log alpha each; biases stay clean.
    assert count_params(model) == count_params(make_model("mlp", (6,), 3, hidden="4")) + 36
    assert information_bound(model).item() == pytest.approx(2.0)
    scale_alpha(model, math.e**2)  # alpha *= e^2: log alpha -4 -> -2
    assert information_bound(model).item() == pytest.approx(1.0)
    information_bound(model).backward()  # learnable: the bound has a gradient
    assert model.head.parametrizations.weight[0].log_alpha.grad is not None
    fixed = add_weight_noise(nn.Conv2d(2, 3, 3), -1.0, learnable=False)
    assert count_params(fixed) == 2 * 3 * 9 + 3
    with pytest.raises(ValueError, match="already has a weight parametrization"):
        add_weight_noise(fixed, -1.0)
    with pytest.raises(ValueError, match="no weight noise"):
        information_bound(nn.Linear(2, 2))


@pytest.mark.parametrize(
    "name, shape, opts, match",
    [
        ("resnet", CIFAR, {}, r"unknown model 'resnet'; valid: mlp, convnet, alexnet, inception"),
        ("mlp", CIFAR, {"width": 3}, r"unknown option 'width' for model 'mlp'; valid: hidden, "),
        ("wrn", CIFAR, {"activation": "sin"}, r"unknown option 'activation' .*valid: depth"),
        ("mlp", CIFAR, {"activation": "gelu"}, r"unknown activation 'gelu'; valid: relu, sin"),
        ("mlp", CIFAR, {"hidden": "512-512"}, r"bad hidden spec '512-512'"),
        ("mlp", CIFAR, {"init": "lecun"}, r"unknown init 'lecun'; valid: default, glorot"),
        ("mlp", CIFAR, {"init": "he", "init_std": 0.1}, r"init_std .* init='mehta'"),
        ("mlp", CIFAR, {"init": "mehta"}, r"init_std .* init='mehta'"),
        ("wrn", CIFAR, {"depth": 20}, r"wrn depth must be 6n \+ 4"),
        ("alexnet", (784,), {}, r"needs input_shape \(C, H, W\)"),
        ("convnet", (3, 8, 8), {}, r"at least 15x15"),
    ],
)
def test_bad_names_and_options_raise_one_line(name, shape, opts, match):
    with pytest.raises(ValueError, match=match) as info:
        make_model(name, shape, 10, **opts)
    assert "\n" not in str(info.value)
