"""Every location memo reads or writes, built from the project root.

``MEMO_ROOT`` moves experiments/, results/ and plots/ (tests use it); ``MEMO_DATASETS``
moves the dataset cache, e.g. to a cluster's scratch disk.
"""

import os
import re
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]  # where the code lives (memo/store/paths.py)
# What memo keeps in results/ besides experiments (the store's cache, the train trial's
# checkpoints and TensorBoard events), so no experiment may be named so; nor may names
# starting with "." or "_" (hidden or memo's, as results/NAME/_runs).
RESERVED_RESULTS = (".cache", "checkpoints", "tensorboard")
# The characters of an experiment name: the name goes into job scripts' option lines and
# log paths, where a quote, a blank or a "$" would be read by qsub/sbatch, not kept.
NAME_CHARACTERS = "A-Za-z0-9_.-"


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


def experiment_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an experiment (results/NAME/, results/NAME.csv), or None.

    >>> experiment_name_problem("mnist") is None
    True
    >>> experiment_name_problem("..")
    "'..' starts with a dot (results would go outside results/NAME/ or be hidden)"
    >>> experiment_name_problem("checkpoints")
    "'checkpoints' is reserved for memo's own folders in results/ (.cache, checkpoints, ...)"
    >>> print(experiment_name_problem("q'x"))
    "q'x" holds "'"; use only ASCII letters, digits, "_", "-" and "."
    """
    if not name or name.startswith("."):
        return f"{name!r} starts with a dot (results would go outside results/NAME/ or be hidden)"
    if name in RESERVED_RESULTS or name.startswith("_"):
        return f"{name!r} is reserved for memo's own folders in results/ (.cache, checkpoints, ...)"
    if name.endswith(".csv"):
        return f"{name!r} ends in .csv, as the table results/{name} of another experiment does"
    odd = re.search(f"[^{NAME_CHARACTERS}]", name)
    if odd:
        return f'{name!r} holds {odd[0]!r}; use only ASCII letters, digits, "_", "-" and "."'
    return None
