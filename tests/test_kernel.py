"""trials/kernel.py and memo/kernels: exact interpolation, agreement with scipy, mixed precision,
CG, the in-place factor, bad input (spec errors and error records), run.py end to end."""

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist

import run
from conftest import records as stored
from memo import kernels
from memo.kernels import blocked, build, memory, solve
from memo.plots import validate
from memo.run.spec import SpecError, load_spec
from trials.kernel import METRICS, Params, trial

PROJECT = Path(__file__).resolve().parent.parent
GAMMA = {"gaussian": 0.5, "laplacian": 0.5, "arccos": 1.0}  # on points in [0, 1]^8
SMALL = dict(dataset="mnist5k", n_train=300, seed=0)  # one solve: ~0.1 s


def points(n=120, d=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, d)), np.eye(classes)[rng.integers(classes, size=n)]


def dense(X, kind, gamma):
    """The kernel matrix written out from its formula, with scipy's distances."""
    if kind == "gaussian":
        return np.exp(-gamma * cdist(X, X, "sqeuclidean"))
    if kind == "laplacian":
        return np.exp(-gamma * cdist(X, X))
    norms = np.linalg.norm(X, axis=1)
    cos = np.clip(X @ X.T / np.outer(norms, norms), -1, 1)
    theta = np.arccos(cos)
    return gamma * np.outer(norms, norms) * (np.sin(theta) + (np.pi - theta) * cos) / np.pi


def relative(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


# ---------------------------------------------------------------------------------------------
# memo.kernels


@pytest.mark.parametrize("kind", build.KERNELS)
def test_blocks_and_products_match_the_formulas(kind):
    X, Y = points(200)
    K = dense(X, kind, GAMMA[kind])
    sq = build.sq_norms(X)
    block = build.kernel_block(X[:50], X, sq[:50], sq, kind, GAMMA[kind])
    assert np.abs(block - K[:50]).max() < 1e-7  # laplacian: sqrt of a rounded 0 off the diagonal
    assert relative(build.matvec(X, Y, kind, GAMMA[kind]), K @ Y) < 1e-12
    lower = build.build_lower(X, kind, GAMMA[kind], ridge=0.25)
    assert np.abs(np.tril(lower) - np.tril(K + 0.25 * np.eye(200))).max() < 1e-7


@pytest.mark.parametrize("kind", build.KERNELS)
def test_cholesky_agrees_with_scipy_solve_and_interpolates(kind):
    X, Y = points()
    K = dense(X, kind, GAMMA[kind])
    got = solve.fit(X, Y, kind, GAMMA[kind], 0.0, "cholesky", "float64")
    assert relative(got.alpha, scipy.linalg.solve(K, Y)) < 1e-8
    assert np.abs(got.fitted - Y).max() < 1e-9  # train predictions are the labels
    assert got.iterations == 0


def test_ridge_solves_the_regularized_system():
    X, Y = points()
    K = dense(X, "gaussian", 0.5)
    got = solve.fit(X, Y, "gaussian", 0.5, 0.1, "cholesky", "float64")
    assert relative(got.alpha, scipy.linalg.solve(K + 0.1 * np.eye(len(X)), Y)) < 1e-10


def test_factor_is_in_place_on_the_fortran_ordered_matrix():
    X, _ = points()
    K = build.build_lower(X, "gaussian", 0.5)
    assert K.flags.f_contiguous
    L = solve._factor(K, X, "float64", 0.0)
    assert np.shares_memory(L, K)
    assert relative(np.tril(L) @ np.tril(L).T, dense(X, "gaussian", 0.5)) < 1e-12


@pytest.mark.parametrize("precision", ["float64", "mixed"])
def test_blocked_factor_past_lapacks_32_bit_limit_matches(precision, monkeypatch):
    """Past 46,340 rows the factor and solves run by blocks (scipy's LAPACK would overflow);
    the same code on a small n, with the limit lowered and blocks of 64."""
    X, Y = points(300)
    want = solve.fit(X, Y, "laplacian", 0.5, 0.0, "cholesky", precision)
    monkeypatch.setattr(blocked, "LAPACK_MAX", 100)
    monkeypatch.setattr(blocked, "BLOCK", 64)
    shares = []
    K = build.build_lower(X, "laplacian", 0.5)
    assert np.shares_memory(solve._factor(K, X, "float64", 0.0, shares.append), K)
    assert len(shares) == 5 and shares[-1] == 1.0
    got = solve.fit(X, Y, "laplacian", 0.5, 0.0, "cholesky", precision)
    assert relative(got.alpha, want.alpha) < 1e-10
    K = build.build_lower(X, "gaussian", 1e-7)
    with pytest.raises(solve.NotPositiveDefinite, match="fails at row"):
        solve._factor(K, X, "float64", 0.0)


def test_mixed_precision_reaches_the_float64_residual():
    X, Y = points(400)  # close points: condition number ~5e6, beyond float32
    assert np.linalg.cond(dense(X, "gaussian", 0.5)) > 1e5
    res = {}
    for precision in ("float64", "float32", "mixed"):
        got = solve.fit(X, Y, "gaussian", 0.5, 0.0, "cholesky", precision)
        res[precision] = np.abs(got.fitted - Y).max()
    assert res["float32"] > 1e-5  # float32 alone stays far off
    assert res["mixed"] <= 10 * res["float64"] + 1e-13
    assert solve.fit(X, Y, "gaussian", 0.5, 0.0, "cholesky", "mixed").iterations >= 1


@pytest.mark.parametrize("kind", ["gaussian", "laplacian"])
def test_conjugate_gradient_reaches_the_direct_solution_within_tol(kind):
    X, Y = points(300)
    direct = solve.fit(X, Y, kind, GAMMA[kind], 0.0, "cholesky", "float64")
    tol = 1e-8
    got = solve.fit(X, Y, kind, GAMMA[kind], 0.0, "iterative", "float64", tol=tol, rank=100)
    assert got.iterations > 0
    residual = np.linalg.norm(got.fitted - Y, axis=0) / np.linalg.norm(Y, axis=0)
    assert residual.max() <= 2 * tol  # the recursion's residual vs the recomputed one
    cond = np.linalg.cond(dense(X, kind, GAMMA[kind]))
    assert relative(got.alpha, direct.alpha) <= cond * tol


def test_conjugate_gradient_that_cannot_converge_is_an_error_naming_residual_and_tol(
    monkeypatch,
):
    X, Y = points()  # γ 1e-300: K is all ones, singular, and CG diverges
    with pytest.raises(solve.NotConverged, match=r"diverged: residual .* 1\.\de\+0[89] after"):
        solve.fit(X, Y, "gaussian", 1e-300, 0.0, "iterative", "float64", rank=50)
    X, Y = points(300)  # a slow solve: a rank-5 preconditioner needs ~1,100 iterations
    args = (X, Y, "gaussian", 0.5, 0.0, "iterative", "float64")
    with pytest.raises(solve.NotConverged, match=r"ran out of max_iter: .* after 10 .*tol 1e-08"):
        solve.fit(*args, tol=1e-8, rank=5, max_iter=10)
    monkeypatch.setattr(solve, "STALLED", 3)  # it goes 72 iterations without a new best
    with pytest.raises(solve.NotConverged, match=r"stalled: .* \(best 1, tol 1e-08\)"):
        solve.fit(*args, tol=1e-8, rank=5)


@pytest.mark.parametrize("kind", build.KERNELS)
def test_extreme_gamma_is_a_clean_result_or_one_error_without_warnings(kind):
    X, Y = points()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if kind == "arccos":  # γ scales K itself: inf, then NaN predictions
            with pytest.raises(ValueError, match=r"gamma 1e\+308 puts K\(x, x\) .* to inf"):
                solve.fit(X, Y, kind, 1e308, 0.0, "cholesky", "float64")
            with pytest.raises(ValueError, match=r"gamma 1e-100 puts K\(x, x\) = γ‖x‖² at 1"):
                solve.fit(X, Y, kind, 1e-100, 0.0, "iterative", "float64")
            return
        for solver in ("cholesky", "iterative"):  # K = I: every off-diagonal entry is 0
            got = solve.fit(X, Y, kind, 1e308, 0.0, solver, "float64")
            assert relative(got.fitted, Y) < 1e-12 and relative(got.alpha, Y) < 1e-12


@pytest.mark.parametrize(
    "solver, precision", [("cholesky", "float64"), ("cholesky", "mixed"), ("iterative", "float64")]
)
def test_torch_path_matches_numpy(solver, precision):
    """The CUDA path's code, run on torch CPU tensors (no GPU here)."""
    import torch

    X, Y = points()
    want = solve.fit(X, Y, "laplacian", 0.5, 0.0, solver, precision, tol=1e-10, rank=50)
    got = solve.fit(
        torch.as_tensor(X),
        torch.as_tensor(Y),
        "laplacian",
        0.5,
        0.0,
        solver,
        precision,
        tol=1e-10,
        rank=50,
    )
    assert relative(got.alpha.numpy(), want.alpha) < 1e-8
    assert np.abs(got.fitted.numpy() - Y).max() < 1e-8
    new = np.random.default_rng(1).random((7, X.shape[1]))
    test = build.cross(torch.as_tensor(new), torch.as_tensor(X), got.alpha, "laplacian", 0.5)
    assert relative(test.numpy(), build.cross(new, X, want.alpha, "laplacian", 0.5)) < 1e-8


def test_repeated_points_or_a_tiny_gamma_are_named_errors():
    X, Y = points()
    X[50] = X[60] = X[10]
    with pytest.raises(solve.NotPositiveDefinite, match="singular: 2 training points repeat"):
        solve.fit(X, Y, "gaussian", 0.5, 0.0, "cholesky", "float64")
    ok = solve.fit(X, Y, "gaussian", 0.5, 1e-3, "cholesky", "float64")  # the suggested fix
    assert np.isfinite(ok.alpha).all()
    X, Y = points()
    with pytest.raises(solve.NotPositiveDefinite, match="gamma is too small.*'float64' or ridge"):
        solve.fit(X, Y, "gaussian", 1e-7, 0.0, "cholesky", "float32")


def test_memory_choice_and_its_error_line():
    n, d = 60_000, 784
    assert kernels.choose(n, d, 10, 10_000, "auto", "auto", "cpu", 40e9, 1000) == (
        "cholesky",
        "float64",
    )
    assert kernels.choose(n, d, 10, 10_000, "auto", "auto", "cpu", 24e9, 1000)[1] == "mixed"
    assert kernels.choose(n, d, 10, 10_000, "auto", "auto", "cpu", 8e9, 1000)[0] == "iterative"
    with pytest.raises(MemoryError) as e:
        kernels.choose(n, d, 10, 10_000, "cholesky", "float64", "cpu", 24e9, 1000)
    message = str(e.value)
    assert "\n" not in message
    assert "needs 30.2 GB" in message and "24.0 GB are available" in message
    assert "precision 'mixed' or 'float32'" in message and "n_train <= 53," in message
    with pytest.raises(MemoryError, match=r"in mixed needs 15\.\d GB.*n_train <= 52,\d+ in mixed"):
        kernels.choose(n, d, 10, 10_000, "auto", "auto", "cpu", 12e9, 1000 * 1000)
    fits = memory.largest_n(24e9, d, 10, 10_000, "float64")
    assert memory.needed_bytes(fits, d, 10, 10_000, "cholesky", "float64") <= 24e9
    assert memory.needed_bytes(fits + 1, d, 10, 10_000, "cholesky", "float64") > 24e9


def test_available_memory_is_positive_and_below_the_total():
    total = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    assert 0 < kernels.available_bytes() <= total


# ---------------------------------------------------------------------------------------------
# trials/kernel.py


def test_trial_interpolates_mnist5k_and_reports_every_metric():
    result = trial(SMALL)
    assert set(result) == set(METRICS)
    assert result["train_error"] == 0.0 and result["residual"] < 1e-10
    assert result["test_error"] < 0.2 and result["test_true_error"] == result["test_error"]
    assert result["solver_used"] == "cholesky" and result["precision_used"] == "float64"
    assert result["train_size"] == 300 and result["test_size"] == 1000
    assert result["norm"] > 0 and result["peak_memory"] > 0 and result["memory_needed"] > 0
    json.dumps(result)  # JSON-ready


def test_trial_fits_random_labels_and_scores_true_test_labels():
    result = trial({**SMALL, "label_noise": 1.0, "label_noise_test": 0.5})
    assert result["train_error"] == 0.0  # an interpolant fits any labels
    assert 0.8 < result["label_noise_rate"] < 1.0 and result["label_noise_test_rate"] > 0.3
    assert result["test_true_error"] > 0.7  # nothing learnt about the true labels
    assert result["test_error"] != result["test_true_error"]
    clean = trial(SMALL)
    assert result["norm"] > 1.5 * clean["norm"]  # Belkin et al.: noise needs a larger norm


def test_trial_solvers_agree():
    base = trial({**SMALL, "precision": "float64"})
    for extra in ({"precision": "mixed"}, {"solver": "iterative", "tol": 1e-7, "rank": 100}):
        other = trial({**SMALL, **extra})
        assert other["test_error"] == base["test_error"] and other["train_error"] == 0.0
        assert abs(other["norm"] - base["norm"]) < 1e-4 * base["norm"]


def test_trial_binary_dataset_and_centered_targets():
    result = trial({"dataset": "mnist5k_1v9_size_50", "targets": "centered", "seed": 0})
    assert result["num_classes"] == 2 and result["train_error"] == 0.0
    assert result["test_error"] < 0.05  # ones against nines


def test_trial_memory_above_the_machine_is_one_line_before_any_work(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 10**6)
    monkeypatch.setattr(solve, "cholesky", lambda *a: pytest.fail("solved anyway"))
    with pytest.raises(MemoryError, match=r"needs 0\.\d GB, and 0\.0 GB are available"):
        trial({**SMALL, "solver": "cholesky"})


@pytest.mark.parametrize(
    "given, message",
    [
        ({"gamma": 0.0}, "gamma .* must be > 0"),
        ({"gamma": -1.0}, "gamma .* must be > 0"),
        ({"ridge": -0.1}, "ridge must be >= 0"),
        ({"n_train": 4001}, "n_train 4001: 'mnist5k' has only 4000 training examples"),
        ({"dataset": "digits", "n_train": 1500}, "'digits' has only 1438 training examples"),
        ({"tol": 0.0}, "tol is a relative residual"),
        ({"solver": "iterative", "precision": "mixed"}, "runs in float64"),
        ({"label_noise": 2.0}, "label_noise is a probability"),
        ({"preprocess": "div256"}, "unknown step 'div256'"),
    ],
)
def test_params_reject_bad_values(given, message):
    with pytest.raises(ValueError, match=message):
        Params(**given)


def test_bad_values_are_spec_errors_before_anything_runs(write_spec, root):
    spec = {"trial": "kernel", "defaults": {"dataset": "mnist5k"}, "param_grid": {}}
    write_spec("k", {**spec, "param_grid": {"gamma": [0.02, -0.02]}})
    with pytest.raises(SpecError, match=r"k\.json: point 1 .*gamma .* must be > 0, got -0\.02"):
        load_spec("k").points()
    write_spec("k", {**spec, "param_grid": {"n_train": [100, 5000]}})
    with pytest.raises(SpecError, match="n_train 5000: 'mnist5k' has only 4000"):
        load_spec("k").points()


@pytest.mark.parametrize("name", sorted(p.stem for p in (PROJECT / "experiments").glob("*.json")))
def test_every_kernel_experiment_validates(name, monkeypatch):
    monkeypatch.setenv("MEMO_ROOT", str(PROJECT))
    spec = load_spec(name)
    if spec.trial == "kernel":
        assert spec.points()
        for entry in spec.plots:
            validate(entry)


def test_run_py_end_to_end(write_spec, root, capsys):
    spec = {
        "trial": "kernel",
        "defaults": {"dataset": "mnist5k", "n_train": 200},
        "param_grid": [
            {"kernel": ["gaussian", "laplacian"], "gamma": [0.02]},
            {"memory_limit": [0.001]},  # 1 MB: the estimate says no, in one line
            {"gamma": [1e-300], "solver": ["iterative"]},  # K all ones: CG diverges
        ],
    }
    write_spec("kern", spec)
    assert run.main(["--name", "kern"]) == 1  # two points failed
    folder = root / "results" / "kern"
    records = list(stored(root, "kern").values())
    ok = [r for r in records if r["status"] == "ok"]
    errors = [r["error"].strip().splitlines()[-1] for r in records if r["status"] == "error"]
    memory_error, not_converged = sorted(errors)
    assert len(ok) == 2 and all(r["metrics"]["train_error"] == 0.0 for r in ok)
    assert all(r["metrics"] == {} for r in records if r["status"] == "error")
    assert memory_error.startswith("MemoryError: kernel: the cholesky")
    assert re.search(
        r"NotConverged: conjugate gradients diverged: residual .* tol 1e-06", not_converged
    )
    assert "0.0 GB are available" in capsys.readouterr().out + memory_error
    assert not list(folder.glob(".*"))  # no temp files left


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    cpu = trial({**SMALL, "device": "cpu"})
    for extra in ({}, {"precision": "mixed"}, {"solver": "iterative", "tol": 1e-8}):
        gpu = trial({**SMALL, "device": "cuda", **extra})
        assert gpu["device_used"] == "cuda" and gpu["train_error"] == 0.0
        assert gpu["test_error"] == cpu["test_error"]
        assert abs(gpu["norm"] - cpu["norm"]) < 1e-4 * cpu["norm"]
