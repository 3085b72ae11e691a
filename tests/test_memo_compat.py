"""patrickfinke/memo's files mean here what they meant there: its datasets (built from
tiny fakes of the official files), its trial name, and its metric columns."""

import hashlib
import json
import shutil
import time
import types
from pathlib import Path

import numpy as np
import pytest

import algorithm
import run
from memo import datasets
from memo.datasets import memo_compat
from memo.run.spec import load_spec
from memo.store.records import Store
from test_datasets import fake_cifar10, mnist_blobs, serve
from trials import memorize

PROJECT = Path(__file__).resolve().parent.parent
# SHA-256 of memo's experiment files at patrickfinke/memo eafe5e5 (2024-12-06): shipped unchanged.
MEMO_FILES = {
    "mnist": "b9e8491d73329ec015ce5e6b7c71a52a0db3fb974a339466d10f70931c848f31",
    "mnist_ext_bias": "94ba6fe8d1956da0a2a74c00c21ca4997601a4b9dc01ed752164aa684243e52a",
    "mnist_ext_iter": "a7d0540b61e797d4eb39ae6e878785b2536dfee5f96a9eaddb8880c075645b3e",
    "mnist_1vs8_size": "46e9911cfcd7198555263e93682b6261d041d084d2dc65396a491d9b9a40339d",
    "mnist_1vs9_size": "eb507e6aa476759dc3b3d740e222cef1bf338272dba740a1a0a680db2a8249b6",
    "cifar10": "7ecd840d3a5599fd4847db02adee1829cbe4c3ae7e914b46218c0ded975b830a",
    "cifar10_ext_bias": "51d035de969e100ff689706697fe221ce07eb091e706c45de54113a77a85a27a",
    "cifar10_ext_iter": "b9a57a7e7f8169a54c00ded8e34985f05d446dd9bda74c2bf75c5f21f1202d81",
}


@pytest.fixture
def store(tmp_path, monkeypatch):
    """An empty dataset cache."""
    monkeypatch.setenv("MEMO_DATASETS", str(tmp_path / "datasets"))
    datasets.load_dataset.cache_clear()
    yield tmp_path / "datasets"
    datasets.load_dataset.cache_clear()


def fake_mnist(monkeypatch, tmp_path):
    """Official-format MNIST files of 200 + 50 images (digits cycling 0..9), parsed."""
    blobs, (X, y, X_test, y_test) = mnist_blobs(200, 50)
    serve(monkeypatch, tmp_path, "mnist", blobs)
    datasets.prepare("mnist", download=True, log=lambda msg: None)
    return np.concatenate([X, X_test]), np.concatenate([y, y_test])


def scaled(X):
    """X / 255 scaled to largest norm 1, in float32 as memo."""
    X = X.astype(np.float32) / np.float32(255)
    return X / np.linalg.norm(X.reshape(len(X), -1), axis=1).max()


def radius(X):
    return np.linalg.norm(np.asarray(X, dtype=np.float64).reshape(len(X), -1), axis=1).max()


# Datasets


def test_memo_mnist_is_all_70000_images_scaled_to_max_norm_1(store, tmp_path, monkeypatch):
    X, y = fake_mnist(monkeypatch, tmp_path)
    ds = datasets.load_dataset("memo_mnist")
    assert ds.X_test is None and ds.X.dtype == np.float32
    np.testing.assert_allclose(ds.X, scaled(X), rtol=1e-6)
    np.testing.assert_array_equal(ds.y, y)
    assert radius(ds.X) == pytest.approx(1.0, abs=1e-6)
    original = datasets.load_dataset("mnist_original")  # memo's dataset_images draw these
    np.testing.assert_allclose(original.X, X / 255, rtol=1e-6)
    np.testing.assert_array_equal(original.y, y)
    declared = datasets.entry("memo_mnist").shape[0]
    assert declared == (70000, 28, 28, 1)  # the official 60,000 + 10,000


@pytest.mark.parametrize("negative", [9, 8])
def test_memo_pair_subsets_are_seeded_nested_and_scaled_once_over_the_pairs(
    store, tmp_path, monkeypatch, negative
):
    X, y = fake_mnist(monkeypatch, tmp_path)
    pairs = np.isin(y, (1, negative))
    whole = datasets.load_dataset(f"memo_mnist_1v{negative}_size_100")
    # Every pair of the 250 images (training and test), digit 1 as label 1, scaled once.
    want = {(row.tobytes(), int(label == 1)) for row, label in zip(scaled(X[pairs]), y[pairs])}
    assert {(r.tobytes(), int(label)) for r, label in zip(whole.X, whole.y)} == want
    assert radius(whole.X) == pytest.approx(1.0, abs=1e-6)
    sizes = memo_compat.pair_sizes(pairs.sum())
    assert sizes == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]  # int(p / 100 * 50)
    for percent, size in zip(memo_compat.PERCENTS, sizes):
        part = datasets.load_dataset(f"memo_mnist_1v{negative}_size_{percent}")
        assert len(part.y) == size
        np.testing.assert_array_equal(part.X, whole.X[:size])  # nested, same scale
        assert abs(part.y.sum() - size / 2) <= 1  # stratified: the pairs are half 1s
    shutil.rmtree(store / f"memo_mnist_1v{negative}_size_100")
    datasets.load_dataset.cache_clear()
    again = datasets.load_dataset(f"memo_mnist_1v{negative}_size_100")
    np.testing.assert_array_equal(again.X, whole.X)  # seeded: the same order on every build


def test_memo_pair_sizes_are_memos_on_the_real_mnist():
    # 7,877 ones, 6,958 nines and 6,825 eights among the 70,000 images.
    assert datasets.entry("memo_mnist_1v9_size_10").shape[0][0] == 1483
    assert datasets.entry("memo_mnist_1v9_size_100").shape[0][0] == 14835
    assert datasets.entry("memo_mnist_1v8_size_50").shape[0][0] == 7351


def test_memo_cifar10_is_all_60000_images_scaled_to_max_norm_1(store, tmp_path, monkeypatch):
    train, test = fake_cifar10(monkeypatch, tmp_path)
    X = np.concatenate([b[0] for b in train] + [test[0]])
    y = np.concatenate([b[1] for b in train] + [test[1]])
    ds = datasets.load_dataset("memo_cifar10")
    assert ds.X.shape == (23, 32, 32, 3) and ds.X_test is None
    np.testing.assert_allclose(ds.X, scaled(X), rtol=1e-6)
    np.testing.assert_array_equal(ds.y, y)
    np.testing.assert_allclose(datasets.load_dataset("cifar10_original").X, X / 255, rtol=1e-6)


def test_missing_downloads_are_named_once_with_the_command(store):
    names = ["memo_mnist_1v9_size_10", "memo_mnist_1v9_size_20", "memo_cifar10", "moons"]
    with pytest.raises(datasets.DatasetError) as e:
        datasets.check_available(*names)
    assert str(e.value) == (
        "datasets memo_mnist_1v9_size_{10,20} need 'mnist', which is not downloaded yet; "
        "dataset 'memo_cifar10' needs 'cifar10', which is not downloaded yet; "
        "run: python data.py --name mnist cifar10"
    )


# What a memo file's params mean


def test_memo_params_give_memos_data():
    assert memo_compat.memo_params({"dataset": "mnist_1v8_size_30", "n_iter": 5}) == {
        "dataset": "memo_mnist_1v8_size_30",
        "n_iter": 5,
    }
    assert memo_compat.memo_params({"dataset": "cifar10"})["dataset"] == "memo_cifar10"
    for same in ["moons", "moons_size_100k", "lines", "mnist_original", "memo_mnist"]:
        assert memo_compat.memo_params({"dataset": same}) == {"dataset": same}
    # memo scaled every dataset it fitted: others too, unless the file says otherwise.
    assert memo_compat.memo_params({"dataset": "digits"})["preprocess"] == "maxnorm"
    mine = {"dataset": "digits", "preprocess": "div255"}
    assert memo_compat.memo_params(mine) == mine


def test_trial_algorithm_maps_datasets_and_memorize_does_not(write_spec):
    grid = {"dataset": ["mnist", "moons", "digits"], "n_iter": [10]}
    write_spec("as_memo", {"trial": "algorithm", "param_grid": grid})
    write_spec("as_ours", {"trial": "memorize", "param_grid": grid})
    memo, ours = load_spec("as_memo").points(), load_spec("as_ours").points()
    assert [p.params["dataset"] for p in memo] == ["memo_mnist", "moons", "digits"]
    assert [p.params["preprocess"] for p in memo] == ["", "", "maxnorm"]
    assert [p.params["dataset"] for p in ours] == ["mnist", "moons", "digits"]
    assert [p.params["preprocess"] for p in ours] == ["", "", ""]
    # Other data, other points; the same data (moons), the same point and seed.
    assert [a.id == b.id for a, b in zip(memo, ours)] == [False, True, False]


def test_memo_format_file_fits_data_of_radius_1(write_spec, root, store):
    grid = {"dataset": ["moons", "digits"], "n_iter": [20], "max_bias": [1.0]}
    for name, trial in (("memo_format", "algorithm"), ("ours", "memorize")):
        # memo's form: its trial name, list values, no preprocess key.
        write_spec(name, {"trial": trial, "param_grid": {**grid, "activation": ["thres"]}})
        assert run.main(["--name", name]) == 0
    got = {}
    for name in ("memo_format", "ours"):
        for record in Store(name, root / "results").records():
            got[name, record["params"]["dataset"]] = record["metrics"]["radius"]
    assert got["memo_format", "moons"] == pytest.approx(1.0)
    assert got["memo_format", "digits"] == pytest.approx(1.0)
    assert got["ours", "digits"] > 16  # digits' pixels are 0..16


def test_memos_shipped_files_are_unchanged_and_dry_run_on_memos_data(root, store, capsys):
    for name, sha in MEMO_FILES.items():
        path = PROJECT / "experiments" / f"{name}.json"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha, f"{path} is not memo's"
        shutil.copy(path, root / "experiments")
    expected = {
        "mnist": ("memo_mnist", "dataset 'memo_mnist' needs 'mnist'", "mnist"),
        "cifar10": ("memo_cifar10", "dataset 'memo_cifar10' needs 'cifar10'", "cifar10"),
        "mnist_1vs9_size": (
            "memo_mnist_1v9_size_10",
            "datasets memo_mnist_1v9_size_{10,20,30,40,50,60,70,80,90,100} need 'mnist'",
            "mnist",
        ),
    }
    for name, (first, needs, download) in expected.items():
        assert load_spec(name).points()[0].params["dataset"] == first
        assert run.main(["--name", name, "--dry-run"]) == 0
        note = capsys.readouterr().out.splitlines()[-1]
        assert note == (
            f"note: {needs}, which is not downloaded yet; run: python data.py --name {download}"
        )
    assert run.main(["--name", "mnist_1vs9_size"]) == 2  # nothing runs without the data
    assert "run: python data.py --name mnist" in capsys.readouterr().err
    images_plot = json.loads((root / "experiments" / "mnist.json").read_text())["plots"][0]
    assert datasets.entry(images_plot["dataset"]) is datasets.entry("mnist_original")


# Metric columns


def net_on(n_classes, n_iter, max_bias, labels=None, N=90, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, 3)).astype(np.float32)
    labels = np.arange(n_classes) if labels is None else np.asarray(labels)
    y = rng.permutation(labels[np.arange(N) % n_classes])
    return X, y, algorithm.fit(X, y, n_iter, max_bias, seed=seed)


def memo_predict(net, X):
    """scikit-learn's OneVsRestClassifier before 1.8 on the class networks' outputs: the
    last class whose network fires, the last class if none does."""
    fires = net.fires(X)
    if len(net.labels) == 2:
        return np.where(fires[:, 0], net.labels[1], net.labels[0])
    last = len(net.classes) - 1 - np.argmax(fires[:, ::-1], axis=1)
    return np.asarray(net.classes)[np.where(fires.any(axis=1), last, len(net.classes) - 1)]


@pytest.mark.parametrize("n_classes, n_iter", [(3, 2), (4, 3), (3, 200), (2, 2)])
def test_score_is_memos_training_accuracy(n_classes, n_iter):
    X, y, net = net_on(n_classes, n_iter, 0.0)
    assert net.training_score(y, largest_wins=True) == np.mean(memo_predict(net, X) == y)
    if n_classes == 2:
        assert net.training_score(y, largest_wins=True) == net.training_score(y)


def test_score_counts_unclaimed_points_of_the_largest_label_where_score_strict_does_not():
    X, y, net = net_on(3, 2, 0.0)
    unclaimed = ~net.fires(X).any(axis=1)
    assert (unclaimed & (y == 2)).any()  # the setting leaves points of label 2 uncovered
    gap = net.training_score(y, largest_wins=True) - net.training_score(y)
    assert gap == pytest.approx(np.mean(unclaimed & (y == 2)))


def fake(labels, N=60):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((N, 2)).astype(np.float32)
    return types.SimpleNamespace(X=X, y=np.asarray(labels)[np.arange(N) % 2], X_test=None)


def test_binary_columns_carry_memos_names(monkeypatch):
    ds = fake([3, 7])
    monkeypatch.setattr(memorize, "load_dataset", lambda name: ds)
    result = memorize.trial({"dataset": "two", "n_iter": 40, "max_bias": 1.0, "seed": 2})
    net = algorithm.fit(ds.X, ds.y, 40, 1.0, seed=2)
    assert net.classes == [7]  # one network, covering the larger label ...
    # ... named after the smaller one, as memo's OneVsRestClassifier's first class.
    assert result["second_dim_out_3"] == result["second_dim_out"] == net.K[0]
    assert result["second_dim_in_3"] == result["second_dim_in"] == 40
    assert not any(k.endswith("_7") for k in result)


def test_fit_time_is_cpu_time_and_score_time_comes_with_verify(monkeypatch):
    ds = fake([0, 1])
    monkeypatch.setattr(memorize, "load_dataset", lambda name: ds)
    fit = algorithm.fit

    def waiting_fit(*args, **kwargs):
        time.sleep(0.3)  # wall time without CPU time, as a loaded machine's waits
        return fit(*args, **kwargs)

    monkeypatch.setattr(memorize.algorithm, "fit", waiting_fit)
    params = {"dataset": "two", "n_iter": 30, "max_bias": 1.0, "seed": 0}
    result = memorize.trial(params)
    assert result["fit_wall_time"] >= 0.3 > result["fit_time"] + 0.1
    assert "score_time" not in result  # the score came from the fit: nothing was evaluated
    checked = memorize.trial({**params, "verify": True})
    assert checked["score_time"] >= 0 and checked["score"] == result["score"]


def test_metrics_declares_every_column_the_trial_returns(monkeypatch):
    X, y = net_on(3, 40, 1.0)[:2]
    ds = types.SimpleNamespace(X=X, y=y, X_test=X[:10], y_test=y[:10])
    monkeypatch.setattr(memorize, "load_dataset", lambda name: ds)
    params = {"dataset": "x", "n_iter": 40, "max_bias": 1.0, "seed": 0}
    result = memorize.trial({**params, "prune": True, "verify": True})
    declared = {k.replace("<label>", "") for k in memorize.METRICS}
    for key in result:
        stem = key.rstrip("0123456789")
        assert key in declared or stem in declared, key
    assert all(text.strip() for text in memorize.METRICS.values())
