"""Datasets by name: ``load_dataset("moons")`` -> Dataset(name, X, y, X_test, y_test).

Modules: ``cache`` (Dataset, DatasetError, atomic on-disk folders), ``registry``
(every name and how it is built), ``formats`` (official downloads: URLs, checksums,
parsers), ``transforms`` (preprocessing and corruptions).
"""

from memo.datasets.cache import Dataset, DatasetError
from memo.datasets.registry import (
    check_available,
    dataset_names,
    describe,
    entry,
    load_dataset,
    needs_download,
    prepare,
)
from memo.datasets.transforms import (
    CORRUPTIONS,
    PREPROCESS,
    corrupt,
    preprocess,
    preprocess_steps,
)

__all__ = [
    "CORRUPTIONS",
    "PREPROCESS",
    "Dataset",
    "DatasetError",
    "check_available",
    "corrupt",
    "dataset_names",
    "describe",
    "entry",
    "load_dataset",
    "needs_download",
    "prepare",
    "preprocess",
    "preprocess_steps",
]
