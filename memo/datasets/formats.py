"""Official download files: where they live, how to check them, how to parse them.

SHA-256 sums come from tensorflow-datasets' ``url_checksums`` (MNIST, SVHN, with sizes)
and from keras' ``datasets/cifar10.py`` / ``cifar100.py`` (the CIFAR python tarballs,
whose sizes are those the official server reports). MNIST's home page (yann.lecun.com)
often refuses downloads, so two long-standing mirrors of the same files follow it; a
URL whose bytes fail the checksum is skipped for the next one. Raw files
are kept in ``datasets/_downloads/``: a user without internet on the cluster can
copy them there by hand and run ``python data.py --name NAME``.
"""

import gzip
import hashlib
import os
import pickle
import tarfile
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memo.store import paths
from memo.datasets.cache import DatasetError


@dataclass(frozen=True)
class RawFile:
    name: str  # file name, also its name in datasets/_downloads/
    urls: tuple[str, ...]  # tried in order
    size: int  # bytes
    sha256: str


def _mnist(name, size, sha256):
    mirrors = (
        "http://yann.lecun.com/exdb/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    )
    return RawFile(name, tuple(m + name for m in mirrors), size, sha256)


_CIFAR = "https://www.cs.toronto.edu/~kriz/"
_SVHN = "http://ufldl.stanford.edu/housenumbers/"

# The files each downloaded dataset needs.
FILES = {
    "mnist": [
        _mnist(
            "train-images-idx3-ubyte.gz",
            9912422,
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        ),
        _mnist(
            "train-labels-idx1-ubyte.gz",
            28881,
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        ),
        _mnist(
            "t10k-images-idx3-ubyte.gz",
            1648877,
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        ),
        _mnist(
            "t10k-labels-idx1-ubyte.gz",
            4542,
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ),
    ],
    "cifar10": [
        RawFile(
            "cifar-10-python.tar.gz",
            (_CIFAR + "cifar-10-python.tar.gz",),
            170498071,
            "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
        )
    ],
    "cifar100": [
        RawFile(
            "cifar-100-python.tar.gz",
            (_CIFAR + "cifar-100-python.tar.gz",),
            169001437,
            "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
        )
    ],
    "svhn": [
        RawFile(
            "train_32x32.mat",
            (_SVHN + "train_32x32.mat",),
            182040794,
            "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8",
        ),
        RawFile(
            "test_32x32.mat",
            (_SVHN + "test_32x32.mat",),
            64275384,
            "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b",
        ),
    ],
}


def downloads_dir() -> Path:
    return paths.datasets_dir() / "_downloads"


def have_files(name: str) -> bool:
    """Whether every raw file of a downloaded dataset is on disk (unchecked)."""
    return all((downloads_dir() / f.name).is_file() for f in FILES[name])


def fetch(raw: RawFile, download: bool, log=print) -> Path:
    """The verified local copy of a raw file, downloading it first if asked to."""
    path = downloads_dir() / raw.name
    if path.is_file():
        problem = verify(path, raw)
        if problem:
            raise DatasetError(f"{path} {problem}; delete it and download it again")
        return path
    if not download:
        raise DatasetError(f"{path} is missing")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(prefix=f".{raw.name}.", dir=path.parent)
    os.close(fd)
    try:
        try:
            _download(raw, Path(part), log)
        except DatasetError as error:
            raise DatasetError(f"{error}; or copy the official file to {path}") from None
        os.replace(part, path)  # only a verified file gets the real name
    finally:
        if os.path.exists(part):
            os.remove(part)
    return path


def _download(raw: RawFile, part: Path, log) -> None:
    """Fill part from the first URL that serves the expected bytes."""
    errors = []
    for url in raw.urls:
        log(f"downloading {url} ({raw.size / 1e6:.1f} MB)")
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
        except OSError as error:  # URLError, HTTPError and timeouts are OSErrors
            errors.append(f"{url}: {error}")
            continue
        problem = verify(part, raw)
        if not problem:
            return
        errors.append(f"{url}: the download {problem}")
    raise DatasetError(f"could not download {raw.name} ({'; '.join(errors)})")


def verify(path: Path, raw: RawFile) -> str:
    """'' if the file has the expected size and SHA-256, else what is wrong with it."""
    size = path.stat().st_size
    if size != raw.size:
        return f"has {size} bytes, expected {raw.size} (checksum mismatch)"
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != raw.sha256:
        return f"has SHA-256 {digest.hexdigest()}, expected {raw.sha256} (checksum mismatch)"
    return ""


# Each parser takes the verified raw files and returns (X, y, X_test, y_test) with
# images as (N, H, W, C) uint8 and labels as integers.


def parse_mnist(train_images, train_labels, test_images, test_labels):
    """The four gzipped IDX files of MNIST."""
    X, y = read_idx(train_images, 3), read_idx(train_labels, 1)
    X_test, y_test = read_idx(test_images, 3), read_idx(test_labels, 1)
    for images, labels, path in ((X, y, train_images), (X_test, y_test, test_images)):
        if len(images) != len(labels):
            raise DatasetError(f"{path} and its label file differ in length (corrupt file)")
    return X[..., None], y, X_test[..., None], y_test


def read_idx(path, ndim: int) -> np.ndarray:
    """An unsigned-byte IDX array of ndim dimensions (LeCun's MNIST format) from a gzip file.

    The header is the magic number 0x0000080<ndim> (0x08: unsigned bytes), then each
    dimension as a big-endian int32: 0x00000803 for images, 0x00000801 for labels.
    """
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"{path} is not a readable gzip file: {error}") from None
    if data[:4] != bytes([0, 0, 8, ndim]):
        raise DatasetError(f"{path} lacks the IDX magic number 0x0000080{ndim} (corrupt file)")
    start = 4 + 4 * ndim
    if len(data) < start:
        raise DatasetError(f"{path} ends inside its header (truncated or corrupt)")
    shape = tuple(int(n) for n in np.frombuffer(data[4:start], ">i4", count=ndim))
    if len(data) != start + int(np.prod(shape)):
        raise DatasetError(f"{path} holds the wrong number of bytes (truncated or corrupt)")
    return np.frombuffer(data, np.uint8, offset=start).reshape(shape)


def parse_cifar(tar_path, train_members, test_members, label_key):
    """The python-pickle CIFAR tarball: batches of b"data" (N, 3072) and labels."""
    try:
        with tarfile.open(tar_path, "r:gz") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            X, y = _cifar_batches(tar, members, train_members, label_key)
            X_test, y_test = _cifar_batches(tar, members, test_members, label_key)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"{tar_path} is not a readable tar.gz file: {error}") from None
    return X, y, X_test, y_test


def _cifar_batches(tar, members, wanted, label_key):
    images, labels = [], []
    for name in wanted:
        if name not in members:
            raise DatasetError(f"{tar.name} has no member {name!r} (corrupt file)")
        try:
            # Safe to unpickle: the archive's SHA-256 was checked against the official one.
            batch = pickle.load(tar.extractfile(members[name]), encoding="bytes")
            data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            label = np.asarray(batch[label_key], dtype=np.int64)
        except (pickle.UnpicklingError, KeyError, ValueError, TypeError, EOFError) as e:
            raise DatasetError(f"{tar.name}: batch {name!r} is unreadable ({e!r})") from None
        if len(data) != len(label):
            raise DatasetError(
                f"{tar.name}: batch {name!r} has {len(data)} images, {len(label)} labels"
            )
        images.append(data.transpose(0, 2, 3, 1))  # channels last
        labels.append(label)
    return np.concatenate(images), np.concatenate(labels)


def parse_svhn(train_mat, test_mat):
    """The cropped-digit .mat files: X (32, 32, 3, N), y (N, 1) with the digit 0 stored as 10."""
    return (*_read_svhn(train_mat), *_read_svhn(test_mat))


def _read_svhn(path):
    from scipy.io import loadmat  # scipy.io is slow to import; only SVHN needs it

    try:
        mat = loadmat(path)
        X = np.asarray(mat["X"], dtype=np.uint8).transpose(3, 0, 1, 2)
        y = np.asarray(mat["y"], dtype=np.int64).ravel()
    except Exception as error:  # scipy raises many kinds on damaged files
        raise DatasetError(f"{path} is not a readable SVHN .mat file ({error!r})") from None
    if X.shape[1:] != (32, 32, 3) or len(X) != len(y):
        raise DatasetError(f"{path} has X {X.shape} and y {y.shape} (corrupt file)")
    return X, y % 10  # label 10 means the digit 0


PARSERS = {
    "mnist": parse_mnist,
    "cifar10": lambda path: parse_cifar(
        path,
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        b"labels",
    ),
    "cifar100": lambda path: parse_cifar(path, ["train"], ["test"], b"fine_labels"),
    "svhn": parse_svhn,
}
