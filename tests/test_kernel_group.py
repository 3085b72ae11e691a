"""Grouped kernel points (trials/kernel.py trial_group, memo/kernels/group.py): one K and one
factor for points that differ in their labels or in a prefix n_train, with the metrics each
point gets alone; per-point and shared errors; the memory check of a group."""

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from memo import kernels
from memo.datasets import preprocess
from memo.datasets.transforms import PER_EXAMPLE, PREPROCESS
from memo.kernels import memory, solve
from memo.run.spec import load_spec
from trials.kernel import group_key, trial, trial_group

BASE = dict(dataset="mnist5k", n_train=300, precision="float64", seed=0)
SHARED = {"build_time", "solve_time", "predict_time", "memory_needed", "peak_memory"}


def assert_same(got: dict, want: dict) -> None:
    """Every metric but times and memory within 1e-10 relative; ``residual`` (already
    relative: max |(K + ridge·I)α − Y| / max |Y|, at rounding level) within 1e-10."""
    assert set(got) == set(want)
    for name, value in want.items():
        if name in SHARED:
            continue
        if name == "residual":
            assert abs(got[name] - value) <= 1e-10, name
        elif isinstance(value, float):
            assert abs(got[name] - value) <= 1e-10 * abs(value), (name, got[name], value)
        else:
            assert got[name] == value, name


def run_group(points) -> dict:
    """{index: result} from trial_group, checking each index comes exactly once."""
    answers = list(trial_group(points))
    assert sorted(i for i, _ in answers) == list(range(len(points)))
    return dict(answers)


@pytest.fixture
def factors(monkeypatch):
    """How many Cholesky factors were made."""
    made = []
    factor = solve._factor

    def counting(K, *args, **kwargs):
        made.append(len(K))
        return factor(K, *args, **kwargs)

    monkeypatch.setattr(solve, "_factor", counting)
    return made


def test_noise_grid_shares_one_factor_and_equals_each_point_alone(factors):
    points = [{**BASE, "label_noise": p, "seed": s} for p in (0.0, 0.3, 1.0) for s in (0, 1)]
    points += [{**BASE, "label_noise": 0.5, "label_noise_test": 0.5, "targets": "centered"}]
    points += [{**BASE, "label_noise_test": 1.0}]
    assert len({group_key(q) for q in points}) == 1
    alone = [trial(q) for q in points]
    assert len(factors) == len(points)
    grouped = run_group(points)
    assert factors[len(points) :] == [300]  # one factor for the whole grid
    for i, want in enumerate(alone):
        assert_same(grouped[i], want)
    norms = {round(r["norm"], 6) for r in alone}
    assert len(norms) == len(points) - 2  # label noise 0: the seed changes no label


@pytest.mark.parametrize("precision", ["float64", "mixed"])
@pytest.mark.parametrize("kernel, gamma", [("gaussian", 0.02), ("laplacian", 0.1)])
def test_nested_n_train_shares_the_largest_factor(kernel, gamma, precision, factors):
    points = [
        {**BASE, "kernel": kernel, "gamma": gamma, "precision": precision, "n_train": n}
        | {"label_noise": p, "seed": s}
        for n in (100, 200, 300)
        for p, s in ((0.0, 0), (0.2, 1))
    ]
    alone = [trial(q) for q in points]
    grouped = run_group(points)
    assert factors[len(points) :] == [300]
    for i, want in enumerate(alone):
        assert_same(grouped[i], want)
    if precision == "mixed":
        assert all(r["iterations"] >= 1 for r in alone)


def test_mixed_refines_every_point_in_the_same_passes(monkeypatch):
    passes = []
    matvec = solve.matvec
    monkeypatch.setattr(
        solve, "matvec", lambda X, V, *a: passes.append(V.shape[1]) or matvec(X, V, *a)
    )
    points = [{**BASE, "precision": "mixed", "label_noise": p} for p in (0.0, 0.5, 1.0)]
    grouped = run_group(points)
    steps = [grouped[i]["iterations"] for i in range(3)]
    assert len(passes) == 1 + max(steps)  # K α once, then one pass per refinement step
    assert passes[0] == 30  # every point's 10 columns at once


def test_a_points_own_error_is_its_alone_and_the_others_go_on(factors):
    base = dict(dataset="digits", preprocess="none", holdout=0.0, n_train=200)
    points = [
        {**base, "label_noise": 0.1},
        {**base, "label_noise_test": 0.5},  # no test split here to put noise on: its error
        {**base, "label_noise": 2.0},  # bad params: no key, runs apart, its own error
        {**base, "solver": "iterative", "rank": 50, "tol": 1e-8},  # runs alone, as trial
        {**base, "label_noise": 0.3, "seed": 4},
    ]
    grouped = run_group(points)
    assert "has no test split" in str(grouped[1]) and isinstance(grouped[1], ValueError)
    assert "label_noise is a probability" in str(grouped[2])
    for i in (0, 3, 4):
        assert_same(grouped[i], trial(points[i]))
    assert grouped[3]["solver_used"] == "iterative"
    assert grouped[0]["test_size"] == 0 and grouped[0]["test_error"] is None


def test_a_failed_shared_factor_fails_every_point_of_the_group(factors):
    points = [{**BASE, "gamma": 1e-7, "precision": "float32", "seed": s} for s in range(3)]
    grouped = run_group(points)
    assert len(factors) == 1
    for result in grouped.values():
        assert isinstance(result, kernels.NotPositiveDefinite)
        assert "not positive definite in float32" in str(result)


def test_an_arccos_gamma_that_overflows_k_fails_each_point_before_any_factor(factors):
    points = [{**BASE, "kernel": "arccos", "gamma": 1e308, "seed": s} for s in range(2)]
    grouped = run_group(points)
    assert factors == []
    for result in grouped.values():
        assert isinstance(result, ValueError) and "use gamma 1" in str(result)


def test_a_factor_failing_at_row_r_fails_n_from_r_and_is_redone_for_the_rest():
    rng = np.random.default_rng(0)
    X = rng.random((300, 8))
    X[150:] = X[150] + 1e-4 * rng.random((150, 8))  # one point, 150 times: singular in float32
    Ys = [np.eye(3)[rng.integers(3, size=n)] for n in (100, 200, 120, 300)]
    got = dict(kernels.solve_group(X, None, Ys, "gaussian", 0.5, 0.0, "mixed"))
    row = got[3].row
    assert 150 < row <= 200
    for k in (1, 3):
        assert isinstance(got[k], kernels.NotPositiveDefinite)
        assert f"fails at row {row} of {len(Ys[k])}" in str(got[k])
    with pytest.raises(kernels.NotPositiveDefinite, match=f"fails at row {row} of 200"):
        solve.fit(X[:200], Ys[1], "gaussian", 0.5, 0.0, "cholesky", "mixed")  # as alone
    for k in (0, 2):
        n = len(Ys[k])
        want = solve.fit(X[:n], Ys[k], "gaussian", 0.5, 0.0, "cholesky", "mixed")
        assert np.abs(got[k][0].alpha - want.alpha).max() <= 1e-9 * np.abs(want.alpha).max()
    X[150] = X[10]  # an exact repeat with ridge 0: singular for n > 150, before any work
    got = dict(kernels.solve_group(X, None, Ys, "gaussian", 0.5, 0.0, "float64"))
    assert "singular: 1 training points repeat" in str(got[1])
    assert not isinstance(got[0], Exception)


@pytest.mark.parametrize("precision", ["float64", "mixed"])
def test_group_memory_is_one_point_and_the_extra_right_hand_sides(precision):
    """Measured (tracemalloc) peaks: a group of 8 takes at most one point's peak plus what
    the memory check allows for 7 more points' labels, and reports that estimate."""
    points = [
        {**BASE, "n_train": 1000, "precision": precision, "label_noise": 0.1 * i, "seed": i}
        for i in range(8)
    ]
    trial(points[0])  # the dataset loaded and cached: not part of either peak

    def peak(run):
        tracemalloc.start()
        try:
            result = run()
            return tracemalloc.get_traced_memory()[1], result
        finally:
            tracemalloc.stop()

    single, alone = peak(lambda: trial(points[0]))
    together, grouped = peak(lambda: run_group(points))
    args = (1000, 784, 10, 1000, "cholesky", precision)
    per_point = memory.needed_bytes(*args, points=2) - memory.needed_bytes(*args)
    assert together - single <= 7 * per_point
    assert per_point >= 1000 * 10 * 8  # at least the point's own labels
    want = memory.needed_bytes(*args, points=8)
    assert grouped[0]["memory_needed"] == want > alone["memory_needed"]


def test_points_that_do_not_fit_together_split_into_groups_that_do(factors):
    one = memory.needed_bytes(300, 784, 10, 1000, "cholesky", "float64", points=3)
    points = [{**BASE, "label_noise": 0.1 * i, "memory_limit": one / 1e9} for i in range(7)]
    grouped = run_group(points)
    assert factors == [300, 300, 300]  # 3 + 3 + 1
    assert_same(grouped[6], trial(points[6]))


def test_group_key_names_what_may_share_a_factor():
    key = group_key(BASE)
    assert key is not None
    for same in ({"label_noise": 0.4}, {"label_noise_test": 0.1}, {"seed": 7}, {"n_train": 50}):
        assert group_key({**BASE, **same}) == key, same
    assert group_key({**BASE, "targets": "centered"}) == key
    for other in ({"gamma": 0.03}, {"kernel": "laplacian"}, {"ridge": 1e-3}, {"holdout": 0.1}):
        assert group_key({**BASE, **other}) != key, other
    assert group_key({**BASE, "precision": "mixed"}) != key
    # statistics of the training split: another n_train is other data
    stats = {**BASE, "preprocess": "div255+maxnorm"}
    assert group_key({**stats, "n_train": 50}) != group_key(stats)
    assert group_key({**BASE, "solver": "iterative"}) is None
    assert group_key({**BASE, "gamma": -1.0}) is None


def test_the_small_kernel_studies_make_two_groups_each(monkeypatch):
    """kernel_noise_small (66 points) and kernel_size_small (20, nested n_train): one group,
    so one factor, per kernel."""
    monkeypatch.setenv("MEMO_ROOT", str(Path(__file__).resolve().parent.parent))
    for name, size in (("kernel_noise_small", 66), ("kernel_size_small", 20)):
        points = [point.params for point in load_spec(name).points()]
        assert len(points) == size
        assert len({group_key(q) for q in points}) == 2, name


def test_per_example_steps_map_a_prefix_to_the_prefix():
    X = np.random.default_rng(0).integers(0, 256, size=(40, 32, 32, 3)).astype(np.float32)
    for step in PREPROCESS:
        whole, _ = preprocess(X, None, step)
        prefix, _ = preprocess(X[:10], None, step)
        assert np.array_equal(prefix, whole[:10]) == (step in PER_EXAMPLE), step


def test_torch_path_solves_nested_points_as_numpy():
    import torch

    rng = np.random.default_rng(1)
    X, X_test = rng.random((120, 8)), rng.random((9, 8))
    Ys = [np.eye(3)[rng.integers(3, size=n)] for n in (120, 70)]
    for precision in ("float64", "mixed"):
        want = dict(kernels.solve_group(X, X_test, Ys, "laplacian", 0.5, 0.0, precision))
        as_t = torch.as_tensor
        got = kernels.solve_group(
            as_t(X), as_t(X_test), [as_t(Y) for Y in Ys], "laplacian", 0.5, 0.0, precision
        )
        for k, (solution, scores, _) in got:
            assert np.abs(solution.alpha.numpy() - want[k][0].alpha).max() < 1e-8
            assert np.abs(scores.numpy() - want[k][1]).max() < 1e-8
            assert np.abs(solution.fitted.numpy() - Ys[k]).max() < 1e-8
