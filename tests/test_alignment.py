"""Alignment of vectors, representations and per-example gradients (memo/training/alignment.py)."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import memo.training.alignment
from memo.training.alignment import (
    _evaluating,
    _gradient_chunks,
    alignment,
    gradient_alignment,
    representation_alignment,
)
from memo.nets import add_weight_noise, make_model, set_log_alpha


def brute_force(vectors, labels):
    """Omega from its definition: every pair i != j, class by class, in float64."""
    per_class = []
    for c in labels.unique():
        v = vectors[labels == c].double()
        n = len(v)
        if n < 2:
            continue
        u = v / v.norm(dim=1).mean()
        pairs = sum(u[i] @ u[j] for i in range(n) for j in range(n) if i != j)
        per_class.append(float(pairs) / (n * (n - 1)))
    return sum(per_class) / len(per_class)


def unequal_classes(seed=0, d=40):
    """Vectors sharing a class direction plus noise; classes 7, 2, 11, 5 of 2, 5, 9, 13 rows."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([7] * 2 + [2] * 5 + [11] * 9 + [5] * 13)
    labels = labels[torch.randperm(len(labels), generator=g)]
    means = {c: torch.randn(d, generator=g) for c in (7, 2, 11, 5)}
    vectors = torch.stack([means[int(c)] for c in labels])
    vectors = vectors + 1.5 * torch.randn(len(labels), d, generator=g, dtype=torch.float32)
    vectors = vectors * torch.rand(len(labels), 1, generator=g) * 3  # unequal norms
    return vectors.double(), labels


# ---------------------------------------------------------------------------------------------
# alignment()


def test_alignment_matches_the_pairwise_definition():
    vectors, labels = unequal_classes()
    omega = alignment(vectors, labels)
    assert omega == pytest.approx(brute_force(vectors, labels), rel=1e-10)
    assert 0.05 < omega < 0.95  # a nontrivial value, not a limiting case


def test_alignment_in_float32_and_high_dimension_matches_float64():
    vectors, labels = unequal_classes(seed=1, d=2000)
    expected = brute_force(vectors, labels)
    assert alignment(vectors.float(), labels) == pytest.approx(expected, rel=1e-4)


def test_identical_vectors_give_one():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(3, 10, generator=g, dtype=torch.float64) * torch.tensor([[0.1], [1], [50]])
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    assert alignment(v[labels], labels) == pytest.approx(1.0, abs=1e-12)


def test_same_direction_different_norms_is_below_one():
    # u_i = v_i / mean norm, not v_i / ||v_i||: Omega < 1 unless the norms are equal too.
    v = torch.tensor([[1.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    assert alignment(v, torch.tensor([0, 0])) == pytest.approx(3 / 4)  # (1 * 3) / 2^2


def test_orthogonal_unit_vectors_give_zero():
    labels = torch.tensor([0] * 6 + [1] * 4)
    v = torch.cat([torch.eye(10)[:6], torch.eye(10)[6:]]).double()
    assert alignment(v, labels) == pytest.approx(0.0, abs=1e-12)


def test_opposite_pairs_are_negative():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 8, generator=g, dtype=torch.float64)
    assert alignment(torch.stack([a, -a]), torch.tensor([0, 0])) == pytest.approx(-1.0)
    # Two opposite pairs in a class: of its 12 ordered pairs, 4 score -1 and 8 score a.b.
    v = torch.stack([a, -a, 3 * b, -3 * b])
    omega = alignment(v, torch.tensor([0, 0, 0, 0]))
    assert omega < 0
    assert omega == pytest.approx(brute_force(v, torch.zeros(4)))


@pytest.mark.parametrize("scale", [1e-6, 1e-2, 7.0, 1e5])
def test_invariant_to_a_global_scale(scale):
    vectors, labels = unequal_classes(seed=2)
    assert alignment(scale * vectors, labels) == pytest.approx(alignment(vectors, labels))


def test_singleton_and_zero_classes_are_skipped():
    vectors, labels = unequal_classes(seed=3)
    extra = torch.cat([torch.randn(1, vectors.shape[1]).double(), torch.zeros(3, vectors.shape[1])])
    with_extra = alignment(
        torch.cat([vectors, extra]), torch.cat([labels, torch.tensor([9, 8, 8, 8])])
    )
    assert with_extra == pytest.approx(alignment(vectors, labels), rel=1e-12)
    assert math.isnan(alignment(torch.randn(3, 4), torch.tensor([0, 1, 2])))  # nothing defined


def test_zero_gradients_of_some_examples_still_count():
    # An example with a zero vector (e.g. a met hinge margin) lowers its class's mean norm.
    v = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    assert alignment(v, torch.tensor([0, 0, 0])) == pytest.approx(brute_force(v, torch.zeros(3)))
    assert alignment(v, torch.tensor([0, 0, 0])) == pytest.approx(2 / 6 / (2 / 3) ** 2)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"vectors \(n, d\) and labels \(n,\), got \(4,\)"):
        alignment(torch.randn(4), torch.zeros(4))
    with pytest.raises(ValueError, match=r"got \(4, 3\) and \(5,\)"):
        alignment(torch.randn(4, 3), torch.zeros(5))


# ---------------------------------------------------------------------------------------------
# Models and losses


def multiclass_hinge(logits, targets):
    """Crammer-Singer style: sum over wrong classes of max(0, 1 + z_j - z_y), batch mean."""
    true = logits.gather(1, targets[:, None])
    margins = F.relu(1 + logits - true).scatter(1, targets[:, None], 0.0)
    return margins.sum(1).mean()


def squared_one_hot(logits, targets):
    """Squared loss to one-hot targets; F.one_hot cannot run inside vmap."""
    return (logits - F.one_hot(targets, logits.shape[1]).to(logits.dtype)).square().sum(1).mean()


LOSSES = {"ce": F.cross_entropy, "hinge": multiclass_hinge, "squared": squared_one_hot}

# name, input_shape, options, the layer names gradient_alignment reports before "logits"
MODELS = [
    ("mlp", (2, 3, 3), {"hidden": "7x5"}, ["body.0", "body.2", "head"]),
    ("convnet", (2, 15, 16), {}, ["conv1", "conv2", "fc1", "head"]),
    ("wrn", (3, 8, 8), {"depth": 10, "width": 1, "dropout": 0.3}, None),  # BN and dropout
]


def small_model(name, shape, opts, seed=0):
    torch.manual_seed(seed)
    model = make_model(name, shape, 4, **opts).double()
    if name == "wrn":  # running statistics away from the (0, 1) defaults
        with torch.no_grad():
            model(torch.randn(32, *shape).double())
    return model


def data(shape, n=10, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 0, 1, 0][:n])
    return x, y


def loop_gradients(model, loss_fn, x, y):
    """One ordinary backward pass per example, in eval mode: {layer: (n, numel), "logits"}.

    Works on a copy, with every parameter trainable, so the caller's model is left alone."""
    model = copy.deepcopy(model).eval().requires_grad_(True)
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    modules = dict(model.named_modules())
    rows = {name: [] for name in names + ["logits"]}
    for i in range(len(x)):
        model.zero_grad()
        logits = model(x[i : i + 1])
        logits.retain_grad()
        loss_fn(logits, y[i : i + 1]).backward()
        for name in names:
            rows[name].append(modules[name].weight.grad.flatten().clone())
        rows["logits"].append(logits.grad[0].clone())
    return {name: torch.stack(r) for name, r in rows.items()}


def collect(model, loss_fn, x, y, chunk_size):
    """Per-example gradients from _gradient_chunks, rank-one pieces multiplied out."""
    with _evaluating(model), torch.no_grad():
        chunks = list(_gradient_chunks(model, loss_fn, x, y, chunk_size))
    rows = lambda p: (
        torch.einsum("bo,bi->boi", p[1], p[0]).flatten(1) if isinstance(p, tuple) else p
    )
    return {k: torch.cat([rows(c[k]) for c in chunks]) for k in chunks[0]}


# ---------------------------------------------------------------------------------------------
# Per-example gradients


@pytest.mark.parametrize("name, shape, opts, layers", MODELS, ids=[m[0] for m in MODELS])
@pytest.mark.parametrize("chunk_size", [None, 3])  # 3: chunks of 3, 3, 3, 1
def test_per_example_gradients_equal_a_loop_of_backward_passes(
    name, shape, opts, layers, chunk_size
):
    model = small_model(name, shape, opts)
    x, y = data(shape)
    expected = loop_gradients(model, F.cross_entropy, x, y)
    got = collect(model, F.cross_entropy, x, y, chunk_size)
    assert list(got) == list(expected)
    if layers is not None:
        assert list(got) == layers + ["logits"]
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-9, atol=1e-12)
        assert expected[key].abs().max() > 1e-6  # not an all-zero comparison


@pytest.mark.parametrize("loss", ["hinge", "squared"])
def test_per_example_gradients_of_other_losses(loss):
    name, shape, opts, _ = MODELS[0]
    model = small_model(name, shape, opts)
    x, y = data(shape)
    expected = loop_gradients(model, LOSSES[loss], x, y)
    got = collect(model, LOSSES[loss], x, y, chunk_size=4)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name, shape, opts, layers", MODELS[:2], ids=[m[0] for m in MODELS[:2]])
@pytest.mark.parametrize("loss", list(LOSSES))
def test_gradient_alignment_is_alignment_of_the_loop_gradients(name, shape, opts, layers, loss):
    model = small_model(name, shape, opts)
    x, y = data(shape)
    expected = {k: alignment(v, y) for k, v in loop_gradients(model, LOSSES[loss], x, y).items()}
    got = gradient_alignment(model, LOSSES[loss], x, y, chunk_size=4)
    assert list(got) == layers + ["logits"]
    assert got == pytest.approx(expected, rel=1e-8, abs=1e-12)


@pytest.mark.parametrize("name, shape, opts, layers", MODELS[:2], ids=[m[0] for m in MODELS[:2]])
def test_rank_one_linear_gradients_equal_vmap_ones(monkeypatch, name, shape, opts, layers):
    model = small_model(name, shape, opts)
    x, y = data(shape)
    with _evaluating(model), torch.no_grad():
        pieces = next(_gradient_chunks(model, F.cross_entropy, x, y))
    assert isinstance(pieces["head"], tuple)  # the Linear layers take the rank-one path
    fast = gradient_alignment(model, F.cross_entropy, x, y)
    monkeypatch.setattr(memo.training.alignment, "_factorable", lambda module: False)
    with _evaluating(model), torch.no_grad():
        pieces = next(_gradient_chunks(model, F.cross_entropy, x, y))
    assert not any(isinstance(p, tuple) for p in pieces.values())  # everything through vmap
    assert gradient_alignment(model, F.cross_entropy, x, y) == pytest.approx(fast, rel=1e-9)


class Odd(nn.Module):
    """A Linear on (B, T, in), an in-place ReLU and a Linear called twice."""

    def __init__(self):
        super().__init__()
        self.mix = nn.Linear(4, 6)
        self.fc = nn.Linear(6, 5)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Linear(5, 4)

    def forward(self, x):
        h = self.mix(x.view(len(x), 3, 4)).mean(1)  # (B, 3, 4) -> (B, 3, 6) -> (B, 6)
        h = self.relu(self.fc(h))
        return self.head(h) + 0.5 * self.head(-h)  # head shared: not rank one either


def test_sequence_inputs_shared_layers_and_in_place_ops_are_handled():
    torch.manual_seed(0)
    model = Odd().double()
    x, y = data((12,))
    got = collect(model, F.cross_entropy, x, y, chunk_size=4)
    expected = loop_gradients(model, F.cross_entropy, x, y)
    assert list(got) == ["mix", "fc", "head", "logits"]
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-9, atol=1e-12)
    assert (expected["fc"] == 0).any() and (expected["fc"] != 0).any()  # ReLU masks some


def test_frozen_layers_still_get_gradients():
    # Alignment is a probe: a layer with requires_grad False is measured all the same.
    name, shape, opts, _ = MODELS[0]
    model = small_model(name, shape, opts)
    model.body[0].requires_grad_(False)
    x, y = data(shape)
    got = collect(model, F.cross_entropy, x, y, chunk_size=None)
    expected = loop_gradients(model, F.cross_entropy, x, y)
    torch.testing.assert_close(got["body.0"], expected["body.0"], rtol=1e-9, atol=1e-12)
    assert not model.body[0].weight.requires_grad


def test_logits_gradient_of_cross_entropy_is_softmax_minus_onehot():
    name, shape, opts, _ = MODELS[1]
    model = small_model(name, shape, opts)
    x, y = data(shape)
    with torch.no_grad():
        expected = model(x).softmax(1) - F.one_hot(y, 4)
    got = collect(model, F.cross_entropy, x, y, chunk_size=None)["logits"]
    torch.testing.assert_close(got, expected)
    omega = gradient_alignment(model, F.cross_entropy, x, y)["logits"]
    assert omega == pytest.approx(alignment(expected, y))


def test_float32_gradient_alignment_matches_float64():
    name, shape, opts, _ = MODELS[1]
    model = small_model(name, shape, opts)
    x, y = data(shape)
    exact = gradient_alignment(model, F.cross_entropy, x, y)
    approx = gradient_alignment(model.float(), F.cross_entropy, x.float(), y)
    assert approx == pytest.approx(exact, rel=1e-4, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# Model state


def mixed_state_model():
    """A WRN with a mix of module modes, a frozen layer and existing .grad values."""
    model = small_model(*MODELS[2][:3])
    model.train()
    model.blocks[0].bn1.eval()  # e.g. a frozen BN
    model.stem.weight.requires_grad_(False)
    model.head.weight.grad = torch.full_like(model.head.weight, 3.0)
    return model


def state(model):
    return (
        [(n, m.training) for n, m in model.named_modules()],
        [
            (n, p.requires_grad, None if p.grad is None else p.grad.clone())
            for n, p in model.named_parameters()
        ],
        {k: v.clone() for k, v in model.state_dict().items()},
    )


def assert_same_state(a, b):
    assert a[0] == b[0]
    assert [x[:2] for x in a[1]] == [x[:2] for x in b[1]]
    for (_, _, g1), (_, _, g2) in zip(a[1], b[1]):
        assert (g1 is None) == (g2 is None)
        if g1 is not None:
            assert torch.equal(g1, g2)
    assert a[2].keys() == b[2].keys()
    assert all(torch.equal(a[2][k], b[2][k]) for k in a[2])  # BN running stats untouched


def test_model_state_is_restored():
    model = mixed_state_model()
    before = state(model)
    assert any(t for _, t in before[0]) and not all(t for _, t in before[0])
    x, y = data((3, 8, 8))
    gradient_alignment(model, F.cross_entropy, x, y)
    assert_same_state(state(model), before)
    representation_alignment(model, x, y)
    assert_same_state(state(model), before)


def test_model_state_is_restored_after_an_error():
    model = mixed_state_model()
    before = state(model)

    def broken_loss(logits, targets):
        raise RuntimeError("loss failed")

    x, y = data((3, 8, 8))
    with pytest.raises(RuntimeError, match="loss failed"):
        gradient_alignment(model, broken_loss, x, y)
    assert_same_state(state(model), before)


def test_gradients_are_taken_in_eval_mode():
    # In train mode dropout would make two calls differ and BN would couple the examples.
    model = mixed_state_model()
    x, y = data((3, 8, 8))
    first = gradient_alignment(model, F.cross_entropy, x, y, chunk_size=3)
    assert gradient_alignment(model, F.cross_entropy, x, y, chunk_size=10) == pytest.approx(first)
    expected = {k: alignment(v, y) for k, v in loop_gradients(model, F.cross_entropy, x, y).items()}
    assert first == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------
# Representations and weight noise


def test_representation_alignment_uses_eval_features():
    model = mixed_state_model()
    x, y = data((3, 8, 8))
    with torch.no_grad():
        expected = alignment(copy.deepcopy(model).eval().features(x), y)
    assert representation_alignment(model, x, y) == pytest.approx(expected, rel=1e-12)
    assert representation_alignment(model, x, y) == pytest.approx(expected, rel=1e-12)


def test_weight_noise_layers_keep_their_names_and_clean_gradients():
    name, shape, opts, layers = MODELS[1]
    clean = small_model(name, shape, opts)
    noisy = add_weight_noise(copy.deepcopy(clean), log_alpha_init=float("-inf"))
    x, y = data(shape)
    expected = gradient_alignment(clean, F.cross_entropy, x, y, chunk_size=4)
    got = gradient_alignment(noisy, F.cross_entropy, x, y, chunk_size=4)
    assert list(got) == layers + ["logits"]
    assert got == pytest.approx(expected, rel=1e-9)
    set_log_alpha(noisy, -1.0)  # real noise: still runs, and the values move
    torch.manual_seed(0)
    moved = gradient_alignment(noisy, F.cross_entropy, x, y, chunk_size=4)
    assert all(math.isfinite(v) for v in moved.values())
    assert moved != pytest.approx(expected, rel=1e-6)
