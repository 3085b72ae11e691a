"""The constructive algorithm (algorithm.py) and its trial (trials/memorize.py)."""

import types

import numpy as np
import pytest

import algorithm


def data(n_classes, N=120, d=4, seed=0, labels=None):
    """Gaussian points with random labels: no structure to exploit."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, d)).astype(np.float32)
    labels = np.arange(n_classes) if labels is None else np.asarray(labels)
    y = labels[np.arange(N) % n_classes]
    return X, rng.permutation(y)


def covered(net, X, y):
    """Whether each point of a covered class is covered by a neuron of its class.

    Recomputed in float64 from the parameters, apart from Network's own methods.
    """
    H = X.astype(np.float64) @ net.W.T.astype(np.float64) + net.b
    H = (H > 0).astype(np.float64) if net.activation == "thres" else np.maximum(H, 0)
    out = {}
    for c, U, m in zip(net.classes, net.U, net.m):
        own = np.flatnonzero(y == c)
        out[c] = (H[own] @ U.T.astype(np.float64) < m).any(axis=1)
    return out


# Interpolating settings (wide first layer) and ones that are not (λ = 0, n = 2: all
# points in one of four cones share their hidden pattern, whatever their class).
SETTINGS = [
    pytest.param(
        n_classes,
        activation,
        n_iter,
        max_bias,
        id=f"{n_classes}cls-{activation}-n{n_iter}-λ{max_bias}",
    )
    for n_classes in (2, 3, 4)
    for activation in ("thres", "relu")
    for n_iter, max_bias in ((200, 1.0), (2, 0.0))
]


@pytest.mark.parametrize("n_classes, activation, n_iter, max_bias", SETTINGS)
def test_no_class_network_fires_on_other_classes(n_classes, activation, n_iter, max_bias):
    X, y = data(n_classes)
    net = algorithm.fit(X, y, n_iter, max_bias, activation, seed=1)
    fires = net.fires(X)
    assert fires.shape == (len(X), len(net.classes))
    for i, c in enumerate(net.classes):
        assert not fires[y != c, i].any()
        # The largest pre-activation on other classes is exactly 0 at the point that set m.
        if net.K[i]:
            assert net.neurons(X, i)[y != c].max(axis=0).tolist() == [0.0] * net.K[i]


@pytest.mark.parametrize("n_classes, activation, n_iter, max_bias", SETTINGS)
def test_score_is_one_iff_every_point_is_covered(n_classes, activation, n_iter, max_bias):
    X, y = data(n_classes)
    net = algorithm.fit(X, y, n_iter, max_bias, activation, seed=2)
    cov = covered(net, X, y)
    all_covered = all(c.all() for c in cov.values())
    score = net.score(X, y)
    assert (score == 1.0) == all_covered
    # Each uncovered point costs exactly one point of accuracy: the others are right.
    n_uncovered = sum(int((~c).sum()) for c in cov.values())
    assert score == pytest.approx(1 - n_uncovered / len(X))
    # The wide settings interpolate, the narrow ones do not: both directions are checked.
    assert all_covered == (n_iter == 200)
    # Every uncovered point was drawn and rejected: the covering stops only when no
    # untried uncovered candidate is left.
    for i, c in enumerate(net.classes):
        assert (~cov[c]).sum() <= net.rejected[i]
        assert net.tried[i] - net.rejected[i] == net.K[i]


def test_covering_matches_fires_on_the_covered_class():
    X, y = data(3)
    net = algorithm.fit(X, y, 8, 0.5, "relu", seed=0)
    cov = covered(net, X, y)
    fires = net.fires(X)
    assert not all(c.all() for c in cov.values())  # some points are left out
    for i, c in enumerate(net.classes):
        assert (fires[y == c, i] == cov[c]).all()


@pytest.mark.parametrize("activation", ["thres", "relu"])
def test_each_neuron_fires_at_its_center(activation):
    X, y = data(3)
    net = algorithm.fit(X, y, 50, 1.0, activation, seed=3)
    for i, c in enumerate(net.classes):
        assert (y[net.centers[i]] == c).all()
        # u is where h(center) is 0, so <u, h(center)> = 0 and the pre-activation is m.
        at_centers = net.neurons(X, i)[net.centers[i]]
        assert np.diag(at_centers).tolist() == net.m[i].tolist()


@pytest.mark.parametrize("activation", ["thres", "relu"])
def test_first_layer_activation(activation):
    net = hand_made([5, 7, 9])
    net.activation, net.b = activation, np.zeros(2, dtype=np.float32)
    # σ(0) = 0 for the threshold too: the origin activates no unit.
    on = (
        [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]
        if activation == "thres"
        else [[2.0, 0.0], [0.0, 0.0], [0.0, 3.0]]
    )
    assert net.hidden([[2.0], [0.0], [-3.0]]).tolist() == on


def test_binary_covers_the_larger_label():
    X, y = data(2, labels=[7, -3])
    net = algorithm.fit(X, y, 200, 1.0, seed=0)
    assert net.classes == [7]
    assert net.labels.tolist() == [-3, 7]
    assert len(net.U) == 1
    pred = net.predict(X)
    assert set(pred.tolist()) == {-3, 7}
    assert (pred == y).all()


def hand_made(labels):
    """d = 1, n = 2: h(x) = [x > -0.5, x < 0.5]. Networks: first fires iff x <= -0.5,
    second and third iff x >= 0.5 (so both claim x = 1). No network claims x = 0."""
    return algorithm.Network(
        W=np.array([[1.0], [-1.0]], dtype=np.float32),
        b=np.array([0.5, 0.5], dtype=np.float32),
        activation="thres",
        labels=np.array(labels),
        classes=list(labels),
        U=[np.array([[True, False]]), np.array([[False, True]]), np.array([[False, True]])],
        m=[np.array([1.0], dtype=np.float32)] * 3,
        centers=[np.array([0])] * 3,
        tried=[1, 1, 1],
        rejected=[0, 0, 0],
    )


def test_unclaimed_and_ambiguous_points_are_predicted_minus_one():
    net = hand_made([5, 7, 9])
    X = np.array([[-1.0], [0.0], [1.0]])
    assert net.fires(X).tolist() == [
        [True, False, False],
        [False, False, False],
        [False, True, True],
    ]
    assert net.predict(X).tolist() == [5, -1, -1]
    assert net.score(X, [5, 7, 9]) == pytest.approx(1 / 3)


def test_minus_one_is_wrong_even_when_it_is_a_label():
    net = hand_made([-1, 7, 9])
    X = np.array([[-1.0], [0.0], [1.0]])
    assert net.score(X, [-1, -1, 7]) == pytest.approx(1 / 3)


def test_predict_makes_room_for_minus_one_with_unsigned_labels():
    X, y = data(3, labels=np.array([0, 1, 255], dtype=np.uint8))
    net = algorithm.fit(X, y, 2, 0.0, seed=0)
    pred = net.predict(X)
    assert -1 in pred.tolist()
    assert set(pred.tolist()) <= {-1, 0, 1, 255}


def test_single_class_is_rejected():
    X, _ = data(2)
    with pytest.raises(ValueError, match="needs at least two classes, got only label 3"):
        algorithm.fit(X, np.full(len(X), 3), 10, 1.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"activation": "sigmoid"}, "activation must be one of thres, relu"),
        ({"n_iter": 0}, "n_iter"),
        ({"max_bias": -1.0}, "max_bias must be >= 0"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    X, y = data(2)
    with pytest.raises(ValueError, match=message):
        algorithm.fit(X, y, **{"n_iter": 10, "max_bias": 1.0, **kwargs})


def same(a, b):
    return (
        np.array_equal(a.W, b.W)
        and np.array_equal(a.b, b.b)
        and len(a.U) == len(b.U)
        and all(np.array_equal(p, q) for p, q in zip(a.U, b.U))
        and all(np.array_equal(p, q) for p, q in zip(a.m, b.m))
        and all(np.array_equal(p, q) for p, q in zip(a.centers, b.centers))
    )


@pytest.mark.parametrize("activation", ["thres", "relu"])
def test_same_seed_same_network_other_seed_other_network(activation):
    X, y = data(3)
    first = algorithm.fit(X, y, 30, 1.0, activation, seed=11)
    assert same(first, algorithm.fit(X, y, 30, 1.0, activation, seed=11))
    other = algorithm.fit(X, y, 30, 1.0, activation, seed=12)
    assert not np.array_equal(first.W, other.W)
    assert not same(first, other)


def test_layer_one_does_not_change_when_a_class_is_added():
    X, y = data(4)
    nets = [algorithm.fit(X[y < k], y[y < k], 20, 1.0, seed=5) for k in (2, 3, 4)]
    assert [len(net.classes) for net in nets] == [1, 3, 4]
    for net in nets[1:]:
        assert np.array_equal(net.W, nets[0].W)
        assert np.array_equal(net.b, nets[0].b)


def test_first_layer_draws():
    X, y = data(2)
    net = algorithm.fit(X, y, 1000, 0.25, seed=0)
    assert net.W.shape == (1000, X.shape[1]) and net.W.dtype == np.float32
    assert net.b.shape == (1000,) and net.b.dtype == np.float32
    assert np.abs(net.b).max() <= 0.25 and np.abs(net.b).max() > 0.2
    assert abs(net.W.std() - 1) < 0.05
    assert algorithm.fit(X, y, 10, 0.0).b.tolist() == [0.0] * 10


def test_n_params():
    net = hand_made([5, 7, 9])
    net.U[2], net.m[2] = np.zeros((0, 2), dtype=bool), np.zeros(0, dtype=np.float32)
    # layer 1: 2 units * (1 weight + bias); layer 2: 2 neurons * (2 + 1);
    # outputs: (1 + 1) + (1 + 1) + (0 + 1)
    assert net.K == [1, 1, 0]
    assert net.n_params == 4 + 6 + 5
    X, y = data(3)
    net = algorithm.fit(X, y, 20, 1.0, seed=0)
    arrays = [net.W, net.b, *net.U, *net.m]
    assert net.n_params == sum(a.size for a in arrays) + sum(k + 1 for k in net.K)


def test_a_class_without_neurons_never_fires():
    # Class 2 sits on top of class 0 points, so none of its candidates can be accepted.
    X, y = data(2, N=40)
    X = np.concatenate([X, X[y == 0][:3]])
    y = np.concatenate([y, [2, 2, 2]])
    net = algorithm.fit(X, y, 50, 1.0, seed=0)
    assert net.K[2] == 0 and net.tried[2] == net.rejected[2] == 3
    assert net.U[2].shape == (0, 50) and net.m[2].shape == (0,)
    assert not net.fires(X)[:, 2].any()
    assert (net.predict(X)[y == 2] == -1).all()


def test_blocks_give_the_same_answer(monkeypatch):
    X, y = data(3, N=90)
    net = algorithm.fit(X, y, 40, 1.0, "relu", seed=0)
    whole = net.fires(X), net.neurons(X, 1), net.hidden(X)
    monkeypatch.setattr(algorithm, "BLOCK", 40 * 7)  # blocks of 7 rows
    assert [len(range(len(X))[s]) for s in algorithm._blocks(len(X), 40)][:2] == [7, 7]
    for a, b in zip(whole, (net.fires(X), net.neurons(X, 1), net.hidden(X))):
        assert np.array_equal(a, b)


# The trial, on a small synthetic dataset instead of memo.datasets.


def fake_dataset(with_test):
    X, y = data(3, N=60)
    X = X.reshape(60, 2, 2)  # images: the trial flattens them
    Xt, yt = data(3, N=30, seed=1)
    return types.SimpleNamespace(
        X=X,
        y=y,
        X_test=Xt.reshape(30, 2, 2) if with_test else None,
        y_test=yt if with_test else None,
    )


@pytest.mark.parametrize("with_test", [False, True])
def test_trial_returns_memo_columns_as_plain_numbers(monkeypatch, with_test):
    from trials import memorize

    asked = []
    monkeypatch.setattr(
        memorize, "load_dataset", lambda name: asked.append(name) or fake_dataset(with_test)
    )
    params = {
        "dataset": "fake",
        "n_iter": 30,
        "max_bias": 1.0,
        "activation": "relu",
        "seed": 4,
        "restart": 0,
    }
    result = memorize.trial(params)
    assert asked == ["fake"]
    expected = {
        "score",
        "score_strict",
        "fit_time",
        "fit_wall_time",
        "first_dim_in",
        "first_dim_out",
        "second_dim_in",
        "second_dim_in_0",
        "second_dim_in_1",
        "second_dim_in_2",
        "second_dim_out_0",
        "second_dim_out_1",
        "second_dim_out_2",
        "second_dim_out",
        "n_params",
        "candidates_tried",
        "candidates_rejected",
        "radius",
        "separation",
    } | ({"test_score"} if with_test else set())
    assert set(result) == expected
    for key, value in result.items():
        assert type(value) in (int, float), (key, type(value))
    assert result["first_dim_in"] == 4 and result["first_dim_out"] == 30
    assert result["second_dim_in"] == 90
    assert all(result[f"second_dim_in_{c}"] == 30 for c in range(3))
    assert result["second_dim_out"] == sum(result[f"second_dim_out_{c}"] for c in range(3))
    assert 0 <= result["score"] <= 1
    assert result["candidates_tried"] >= result["candidates_rejected"]
    # The trial's network is fit's network with the point's seed.
    ds = fake_dataset(with_test)
    net = algorithm.fit(ds.X.reshape(60, -1), ds.y, 30, 1.0, "relu", seed=4)
    assert result["n_params"] == net.n_params
    assert result["score_strict"] == net.score(ds.X.reshape(60, -1), ds.y)
    assert result["score"] == net.training_score(ds.y, largest_wins=True)
    assert all(result[k] == v for k, v in zip([f"second_dim_out_{c}" for c in range(3)], net.K))


@pytest.mark.parametrize("field, value", [("n_iter", 0), ("max_bias", -0.5)])
def test_trial_params_reject_bad_values(field, value):
    from trials import memorize

    with pytest.raises(ValueError, match=field):
        memorize.Params(**{field: value})
    memorize.Params()  # the defaults are valid
