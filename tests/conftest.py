import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A fresh MEMO_ROOT with an experiments/ folder; the dataset cache stays shared."""
    (tmp_path / "experiments").mkdir()
    monkeypatch.setenv("MEMO_ROOT", str(tmp_path))
    monkeypatch.setenv("MEMO_DATASETS", os.environ.get("MEMO_DATASETS", str(PROJECT / "datasets")))
    return tmp_path


@pytest.fixture
def write_spec(root):
    """write_spec(name, dict or raw text) -> path of experiments/NAME.json under root."""

    def write(name, spec):
        path = root / "experiments" / f"{name}.json"
        path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
        return path

    return write


@pytest.fixture
def cli(root):
    """cli(*args) runs run.py in a subprocess under root; returns CompletedProcess."""

    def run(*args, timeout=120, script="run.py"):
        return subprocess.run(
            [sys.executable, str(PROJECT / script), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(os.environ),
        )

    return run
