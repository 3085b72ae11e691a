import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent

REAL = {  # marks for `pytest -m sge|slurm`, registered in pyproject.toml
    kind: [
        getattr(pytest.mark, kind),
        pytest.mark.skipif(
            os.environ.get(f"MEMO_TEST_{kind.upper()}") != "1",
            reason=f"needs a real {kind} scheduler: start one with `bash .ci/cluster.sh "
            f"{kind}` (as root, on a throwaway machine), then set MEMO_TEST_{kind.upper()}=1",
        ),
    ]
    for kind in ("sge", "slurm")
}


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
        try:
            return subprocess.run(
                [sys.executable, str(PROJECT / script), *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=dict(os.environ),
            )
        except subprocess.TimeoutExpired as e:  # killed by now
            pytest.fail(
                f"{script} {' '.join(args)}: still running after {timeout} s; it said:\n"
                f"{tail(e.stdout)}\n{tail(e.stderr)}"
            )

    return run


def tail(output, lines=20) -> str:
    """The last lines of a process's output (bytes or text, None: nothing)."""
    if isinstance(output, bytes):
        output = output.decode(errors="replace")
    return "\n".join((output or "").splitlines()[-lines:])


@pytest.fixture
def one_torch_thread():
    """One torch thread: the same sums in every test, and no spinning on a shared machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
