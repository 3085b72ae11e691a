"""Every location memo reads or writes, built from the project root.

``MEMO_ROOT`` moves experiments/, results/ and plots/ (tests use it); ``MEMO_DATASETS``
moves the dataset cache, e.g. to a cluster's scratch disk.
"""

import os
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent  # where the code lives


def root() -> Path:
    """The project root: the folder holding run.py, or ``$MEMO_ROOT``."""
    return Path(os.environ.get("MEMO_ROOT", PROJECT))


def experiments_dir() -> Path:
    return root() / "experiments"


def results_dir() -> Path:
    return root() / "results"


def plots_dir() -> Path:
    return root() / "plots"


def datasets_dir() -> Path:
    return Path(os.environ.get("MEMO_DATASETS", root() / "datasets"))
