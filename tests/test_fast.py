"""The fast form (memo/memorize/fast.py), pruning, R and δ, and the trial's new params."""

import os
import subprocess
import sys
import tracemalloc
import types

import numpy as np
import pytest

import algorithm
from memo.memorize import bitset
from memo.memorize import fast
from memo.run.point import make_point
from memo.run.trial_lookup import trial_fields

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data(n_classes, N=150, d=4, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    X = (scale * rng.standard_normal((N, d))).astype(np.float32)
    return X, rng.permutation(np.arange(N) % n_classes)


def same(a, b):
    """Whether two fitted networks are identical, bit for bit."""
    pairs = [(a.W, b.W), (a.b, b.b), *zip(a.U, b.U), *zip(a.m, b.m), *zip(a.centers, b.centers)]
    return (
        len(a.U) == len(b.U)
        and all(p.shape == q.shape and np.array_equal(p, q) for p, q in pairs)
        and (a.tried, a.rejected, a.covered) == (b.tried, b.rejected, b.covered)
    )


CASES = [
    pytest.param(k, act, n, lam, id=f"{k}cls-{act}-n{n}-λ{lam}")
    for k in (2, 4)
    for act in ("thres", "relu")
    for n, lam in ((150, 1.0), (12, 0.3))
]


@pytest.mark.parametrize("device", ["cpu", "torch-cpu"])
@pytest.mark.parametrize("n_classes, activation, n_iter, max_bias", CASES)
def test_fast_network_is_the_reference_network(n_classes, activation, n_iter, max_bias, device):
    X, y = data(n_classes)
    for seed in range(2):
        ref = algorithm.fit(X, y, n_iter, max_bias, activation, seed, method="reference")
        net = algorithm.fit(X, y, n_iter, max_bias, activation, seed, device=device)
        assert same(ref, net)
        # The guarantee: no class network fires on another class's training point, and
        # the point that set each m sits exactly at 0.
        fires = net.fires(X)
        for i, c in enumerate(net.classes):
            assert not fires[y != c, i].any()
            if net.K[i]:
                assert (net.neurons(X, i)[y != c].max(axis=0) == 0).all()
        assert net.training_score(y) == net.score(X, y)
    # Both outcomes occur among the cases: some interpolate, some do not.
    assert (net.score(X, y) == 1.0) == (n_iter == 150)


@pytest.mark.parametrize(
    "device, module, setting",
    [
        ("cpu", "bitset", {"FIRST_BLOCK": 1, "MAX_BLOCK": 1}),  # one candidate at a time
        ("cpu", "bitset", {"FIRST_BLOCK": 64}),
        ("cpu", "bitset", {"BLOCK_BYTES": 1}),  # wide masks: blocks of one
        ("torch-cpu", "fast", {"FIRST_BLOCK": 1, "MAX_BLOCK": 8}),  # small blocks
        ("torch-cpu", "fast", {"FIRST_BLOCK": 64}),
    ],
)
def test_block_sizes_and_twins_give_one_network(monkeypatch, device, module, setting):
    """The compiled covering (threshold on the CPU) and the products (torch), any blocks."""
    X, y = data(3, N=300, d=2)
    X = np.concatenate([X, X[:40]])  # twins: same pattern, some in another class
    y = np.concatenate([y, (y[:40] + np.arange(40) % 2) % 3])
    for n in (40, 130):  # one word of bits; three, the last one partly used
        ref = algorithm.fit(X, y, n, 0.5, "thres", 3, method="reference")
        assert sum(ref.rejected) > 0  # twins in other classes make candidates fail
        with monkeypatch.context() as patch:
            for name, value in setting.items():
                patch.setattr({"bitset": bitset, "fast": fast}[module], name, value)
            assert same(ref, algorithm.fit(X, y, n, 0.5, "thres", 3, device=device))


def test_patterns_are_grouped_exactly_even_when_hashes_collide(monkeypatch):
    X, y = data(2, N=400, d=2)
    # n = 6 units in 2-D: few distinct patterns, many points per pattern.
    ref = algorithm.fit(X, y, 6, 0.5, "thres", 0, method="reference")
    acts = fast.Activations(ref.preactivation_blocks(X), len(X), 6, "thres", y)
    assert acts.P < len(X) / 4
    monkeypatch.setattr(fast, "_hash", lambda bits: np.zeros(len(bits), dtype=np.uint64))
    acts = fast.Activations(ref.preactivation_blocks(X), len(X), 6, "thres", y)
    assert acts.P == len(np.unique(np.packbits(ref.hidden(X) > 0, axis=1), axis=0))
    assert same(ref, algorithm.fit(X, y, 6, 0.5, "thres", 0))


def test_relu_decisions_are_the_canonical_sums_even_where_products_round_otherwise():
    rng = np.random.default_rng(0)
    # Values of very different sizes: float32 products and numpy's pairwise sums differ.
    H = (rng.random((300, 400)) * 10.0 ** rng.integers(-3, 4, (300, 400))).astype(np.float32)
    H[rng.random(H.shape) < 0.3] = 0
    U = rng.random((50, 400)) < 0.5
    canonical = algorithm._inner(H, U)
    product = H @ U.T.astype(np.float32)
    assert (product != canonical).mean() > 0.3  # the case the band exists for
    # Thresholds exactly at, one step below and one step above canonical sums.
    for m in (canonical[7], np.nextafter(canonical[7], 0), np.nextafter(canonical[7], np.inf)):
        got = fast.below(H, U, m.astype(np.float32), False, algorithm._inner)
        assert np.array_equal(got, m - canonical > 0)
        # ... and on a torch device through Activations.
        blocks = [(slice(0, len(H)), H)]
        acts = fast.Activations(blocks, len(H), 400, "relu", np.zeros(len(H)), "cpu")
        rows = np.arange(len(H))
        want = (m - canonical > 0).any(axis=1)
        assert np.array_equal(acts.any_below(acts.at[rows], U, m, algorithm._inner), want)
    mins = canonical.min(axis=0)
    acts = fast.Activations([(slice(0, len(H)), H)], len(H), 400, "relu", np.zeros(len(H)))
    assert np.array_equal(acts.min_over(np.arange(len(H)), U, algorithm._inner), mins)


def test_a_sum_does_not_depend_on_the_other_rows():
    """numpy sums a Fortran-ordered H[:, u] left to right, but one row pairwise; _inner
    must give a row the same sum alone as in a block (fit and predict block differently)."""
    rng = np.random.default_rng(1)
    H = np.maximum(rng.standard_normal((64, 300)), 0).astype(np.float32) * 100
    U = rng.random((5, 300)) < 0.5
    whole = algorithm._inner(H, U)
    for r in range(len(H)):
        assert np.array_equal(algorithm._inner(H[r : r + 1], U)[0], whole[r])
    assert np.array_equal(algorithm._inner(H[::3], U), whole[::3])


def uniform_draw_cover(H, in_class, rng):
    """The paper's Lines 3-4 literally: draw uniformly among untried uncovered points."""
    own, other = np.flatnonzero(in_class), ~in_class
    untried = np.ones(len(own), dtype=bool)
    covered = np.zeros(len(own), dtype=bool)
    K = 0
    while (candidates := np.flatnonzero(untried & ~covered)).size:
        k = rng.choice(candidates)
        untried[k] = False
        s = algorithm._inner(H, (H[own[k]] == 0)[None])[:, 0]
        if (m := s[other].min()) > 0:
            K += 1
            covered |= s[own] < m
    return K, covered.all()


def test_drawing_from_one_permutation_has_the_uniform_draws_distribution():
    """Over many seeds (first layer and draws), mean K and interpolation rate agree."""
    X, y = data(2, N=40, d=2, seed=5)
    in_class = y == 1
    perm_K, perm_all, draw_K, draw_all = [], [], [], []
    for s in range(300):
        H = algorithm.fit(X, y, 150, 1.0, seed=s, max_tried=0).hidden(X)
        r = algorithm._cover(H, in_class, np.random.default_rng(s))
        perm_K.append(len(r[1]))
        perm_all.append(r[5] == in_class.sum())
        k, everything = uniform_draw_cover(H, in_class, np.random.default_rng(10_000 + s))
        draw_K.append(k)
        draw_all.append(everything)
    perm_K, draw_K = np.array(perm_K), np.array(draw_K)
    perm_all, draw_all = np.array(perm_all), np.array(draw_all)
    assert perm_K.std() > 0.5 and 0.2 < draw_all.mean() < 0.8  # outcomes vary: a real test
    se = np.sqrt((perm_K.var() + draw_K.var()) / len(perm_K))
    assert abs(perm_K.mean() - draw_K.mean()) < 4 * se
    se = np.sqrt((perm_all.var() + draw_all.var()) / len(perm_all))
    assert abs(perm_all.mean() - draw_all.mean()) < 4 * se


@pytest.mark.parametrize("activation", ["thres", "relu"])
def test_pruning_keeps_the_training_predictions(activation):
    rng = np.random.default_rng(2)
    X = (0.2 * rng.standard_normal((400, 2))).astype(np.float32)  # radius ~0.7 < λ = 2
    y = (X[:, 0] * X[:, 1] > 0).astype(int) + 2 * (X[:, 0] > 0.2)
    net = algorithm.fit(X, y, 300, 2.0, activation, seed=1)
    small = algorithm.prune(net, X, y)
    assert np.array_equal(small.fires(X), net.fires(X))
    assert small.score(X, y) == net.score(X, y) > 0.8
    assert sum(small.K) < sum(net.K)
    assert len(small.W) < len(net.W)  # units constant on the data are dropped
    assert small.n_params < net.n_params
    kept = [np.isin(s, c) for s, c in zip(small.centers, net.centers)]
    assert all(k.all() for k in kept)  # the kept neurons are the original ones
    # Every kept unit is summed by a kept neuron; with the threshold it is also active
    # on some training point (ReLU keeps inactive ones: see prune).
    assert np.concatenate(small.U).any(axis=0).all()
    active = (small.hidden(X) > 0).any(axis=0)
    assert active.all() if activation == "thres" else not active.all()


def test_pruning_drops_neurons_that_later_ones_make_redundant():
    # d = 1, n = 2: units x > 0 and x < 0. Class 1 is x > 0; two neurons cover it.
    net = algorithm.Network(
        W=np.array([[1.0], [-1.0]], dtype=np.float32),
        b=np.zeros(2, dtype=np.float32),
        activation="thres",
        labels=np.array([0, 1]),
        classes=[1],
        U=[np.array([[False, True], [False, True]])],
        m=[np.array([1.0, 1.0], dtype=np.float32)],
        centers=[np.array([2, 3])],
        tried=[2],
        rejected=[0],
    )
    X = np.array([[-1.0], [-2.0], [1.0], [2.0]], dtype=np.float32)
    y = np.array([0, 0, 1, 1])
    small = algorithm.prune(net, X, y)
    assert small.K == [1] and small.centers[0].tolist() == [3]  # the later one stays
    assert small.W.tolist() == [[-1.0]]  # unit x > 0: no neuron sums it
    assert np.array_equal(small.predict(X), net.predict(X))


def brute_separation(X, y):
    X = X.astype(np.float64)
    D = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=2))
    return D[y[:, None] != y[None, :]].min()


@pytest.mark.parametrize("d", [2, 40])  # k-d tree and brute-force paths
@pytest.mark.parametrize("n_classes", [2, 3])
def test_radius_and_separation_match_brute_force(d, n_classes):
    from trials import memorize

    X, y = data(n_classes, N=300, d=d, seed=d)
    assert memorize.radius(X) == pytest.approx(np.linalg.norm(X.astype(float), axis=1).max())
    assert memorize.separation(X, y) == pytest.approx(brute_separation(X, y), rel=1e-6)
    X[5] = X[6]  # a duplicate across labels: δ = 0
    y[5], y[6] = 0, 1
    assert memorize.separation(X, y) == pytest.approx(0, abs=1e-6)


def test_threshold_activations_are_not_kept_as_float32():
    N, n = 40_000, 512  # the (N, n) float32 activations would take 82 MB
    X, _ = data(2, N=N, d=3)
    y = (X[:, 0] > 0).astype(int)
    tracemalloc.start()
    algorithm.fit(X, y, n, 0.5, "thres", seed=0)
    _, fast_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert fast_peak < N * n * 4 / 4
    tracemalloc.start()
    algorithm.fit(X, y, n, 0.5, "thres", seed=0, method="reference", max_tried=3)
    _, reference_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert reference_peak > N * n * 4  # what the test would catch


def test_the_cpu_path_does_not_import_torch():
    code = (
        "import sys, numpy as np, algorithm\n"
        "X = np.random.default_rng(0).standard_normal((50, 3))\n"
        "for act in ('thres', 'relu'):\n"
        "    for device in ('cpu', 'auto'):\n"
        "        algorithm.fit(X, np.arange(50) % 2, 20, 1.0, act, device=device)\n"
        "print('torch' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=PROJECT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    has_gpu_driver = os.path.exists("/proc/driver/nvidia/version")
    assert out.stdout.strip() == str(has_gpu_driver), out.stderr


def test_device_names():
    assert fast.torch_device("cpu") is None and fast.torch_device("torch-cpu") == "cpu"
    with pytest.raises(ValueError, match="device must be"):
        fast.torch_device("gpu")
    with pytest.raises(ValueError, match="method must be one of fast, reference"):
        algorithm.fit(*data(2), 10, 1.0, method="quick")
    if not fast._cuda_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            algorithm.fit(*data(2), 10, 1.0, device="cuda")


def test_max_tried_stops_both_forms_at_the_same_prefix():
    X, y = data(3, N=200)
    for k in (1, 7):
        ref = algorithm.fit(X, y, 50, 1.0, "relu", 4, method="reference", max_tried=k)
        assert ref.tried == [k, k, k]
        assert same(ref, algorithm.fit(X, y, 50, 1.0, "relu", 4, max_tried=k))


# The trial's new params.


def fake_dataset(N=80, with_test=True):
    X, y = data(2, N=N, d=4, seed=3, scale=50.0)  # radius ~150 before "maxnorm"
    Xt, yt = data(2, N=40, d=4, seed=4, scale=50.0)
    return types.SimpleNamespace(
        X=X, y=y, X_test=Xt if with_test else None, y_test=yt if with_test else None
    )


def test_new_params_at_their_defaults_keep_point_ids():
    fields = trial_fields("memorize")
    old = {"dataset": "mnist", "n_iter": 20, "max_bias": 0.5, "activation": "thres"}
    new = {**old, "method": "fast", "device": "auto", "preprocess": "", "prune": False}
    assert make_point("memorize", fields, {**new, "verify": False}, 0).id == (
        make_point("memorize", fields, old, 0).id
    )
    assert make_point("memorize", fields, {**old, "prune": True}, 0).id != (
        make_point("memorize", fields, old, 0).id
    )


def test_trial_params_check_preprocess():
    from trials import memorize

    memorize.Params(preprocess="div255+maxnorm")
    with pytest.raises(ValueError, match="unknown step 'max_norm'"):
        memorize.Params(preprocess="max_norm")


def test_trial_reports_pruned_sizes_geometry_and_the_same_result_either_method(monkeypatch):
    from trials import memorize

    ds = fake_dataset()
    monkeypatch.setattr(memorize, "load_dataset", lambda name: ds)
    params = {"dataset": "fake", "n_iter": 60, "max_bias": 1.0, "seed": 3, "restart": 0}
    base = memorize.trial({**params, "preprocess": "maxnorm", "prune": True, "verify": True})
    ref = memorize.trial({**params, "preprocess": "maxnorm", "method": "reference"})
    timing = {"fit_time", "fit_wall_time", "score_time", "prune_time"}
    assert {k: v for k, v in base.items() if k in ref and k not in timing} == {
        k: v for k, v in ref.items() if k not in timing
    }
    assert base["radius"] == pytest.approx(1.0)  # maxnorm scales the radius to 1
    assert base["separation"] > 0
    assert base["second_dim_out_pruned"] <= base["second_dim_out"]
    assert base["first_dim_out_pruned"] <= base["first_dim_out"]
    assert base["n_params_pruned"] < base["n_params"]
    assert 0 <= base["test_score_pruned"] <= 1
    raw = memorize.trial(params)  # no preprocessing: the radius is the data's
    assert raw["radius"] == pytest.approx(np.linalg.norm(ds.X.astype(float), axis=1).max())
    assert "second_dim_out_pruned" not in raw
