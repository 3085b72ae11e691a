"""Datasets by name: ``load_dataset("moons")`` -> Dataset(name, X, y, X_test, y_test).

Modules: ``cache`` (Dataset, DatasetError, atomic on-disk folders, read without following
links), ``verify`` (what a folder must hold, and the check), ``digests`` (the files of
each offline dataset's fresh build), ``registry`` (every name and how it is built),
``formats`` (official downloads: URLs, checksums, parsers), ``transforms`` (preprocessing
and corruptions).
"""

from memo.datasets import cache, registry
from memo.datasets.cache import Dataset, DatasetDamaged, DatasetError
from memo.datasets.registry import (
    check_available,
    dataset_names,
    describe,
    entry,
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
    "DatasetDamaged",
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


def load_dataset(name: str) -> Dataset:
    """The named dataset (built on first use, verified, then kept per process; arrays are
    read-only, memory maps if large), its files checked to be unchanged since verified:
    DatasetDamaged if not.

    What trials call before each point, so a file damaged during a run stops the run
    instead of giving results computed on zeros.
    """
    dataset = registry.load_dataset(name)
    cache.recheck(dataset)
    return dataset


load_dataset.cache_clear = registry.forget  # as tests use it
