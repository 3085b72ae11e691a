import json
import os
import subprocess
import sys
import time
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


def start_runner(*args) -> subprocess.Popen:
    """run.py in a session of its own (so that a test can signal it with its workers)."""
    return subprocess.Popen(
        [sys.executable, str(PROJECT / "run.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@pytest.fixture
def one_torch_thread():
    """One torch thread: the same sums in every test, and no spinning on a shared machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def records(root, name="exp") -> dict:
    """{point id: its record}, one a point, as the store reads them."""
    from memo.store.records import Store

    return {r["id"]: r for r in Store(name, root / "results").records()}


class Journal:
    """Every record written into an experiment, compacted away or not: a hard link is kept
    to each journal segment as soon as it appears (compaction removes the segment, not the
    link). ``written()`` then says how often each point was recorded."""

    def __init__(self, root, name="exp"):
        self.folder = root / "results" / name
        self.kept = root / f"kept-journal-{name}"
        self.kept.mkdir(exist_ok=True)

    def look(self) -> None:
        segments = self.folder / "_journal"
        for path in segments.glob("*.jsonl") if segments.is_dir() else []:
            if not (self.kept / path.name).exists():
                try:
                    os.link(path, self.kept / path.name)
                except FileNotFoundError:  # compacted away since the listing
                    pass

    def written(self) -> dict:
        """{point id: [when each of its records was written]}: in the segments seen and in
        records.parquet (a record written twice has two times)."""
        import pandas as pd

        from memo.store import journal

        found = {}
        for path in self.kept.glob("*.jsonl"):
            for line in path.read_bytes().split(b"\n")[:-1]:
                written, record = journal.decode(line, path)
                found.setdefault(record["id"], set()).add(written)
        parquet = self.folder / "records.parquet"
        if parquet.exists():
            table = pd.read_parquet(parquet, columns=["id", "_written"])
            for point_id, written in zip(table["id"], table["_written"]):
                found.setdefault(point_id, set()).add(written)
        return {point_id: sorted(times) for point_id, times in found.items()}

    def watch(self, procs, until=None, after_s=1.0, limit_s=300.0) -> dict:
        """Keep links while ``procs`` run and ``after_s`` more; stop early once ``until``
        points are recorded; fail if the processes still run after ``limit_s``. Returns
        written()."""
        end, deadline = None, time.monotonic() + limit_s
        while end is None or time.monotonic() < end:
            assert time.monotonic() < deadline, f"still running after {limit_s:g} s"
            if end is None and all(p.poll() is not None for p in procs):
                end = time.monotonic() + after_s
            self.look()
            if until is not None and len(self.written()) >= until:
                break
            time.sleep(0.01)
        return self.written()


GOLDEN_LEGACY = PROJECT / "tests" / "golden" / "legacy"  # written by memo at 10e9a17


def legacy(root) -> dict:
    """results/exp/ as memo before the journal left it, one file a point (8 points of the
    synthetic trial, 4 failed), with experiments/exp.json; its records by id."""
    import shutil

    shutil.copytree(GOLDEN_LEGACY / "exp", root / "results" / "exp")
    shutil.copy(GOLDEN_LEGACY / "exp.json", root / "experiments" / "exp.json")
    return {p.stem: json.loads(p.read_text()) for p in (GOLDEN_LEGACY / "exp").glob("*.json")}
