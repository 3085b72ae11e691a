"""What a cluster run keeps on disk: its run folder and manifest, the job script, the logs.

See memo/backends/cluster.py for the whole flow.
"""

import dataclasses
import json
import os
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path

from memo import paths
from memo.backends.base import BackendError
from memo.spec import Point
from memo.store import write_atomic
from memo.worker import Job

RUNS = "_runs"  # results/NAME/_runs/RUN/: one folder per submission; "_" keeps it out of records
MANIFEST_VERSION = 1


def logs_dir(experiment: str) -> Path:
    """Where array tasks write ``JOBID.TASK.out`` and ``.err``: logs/NAME under the root."""
    return paths.root().resolve() / "logs" / experiment


def write_manifest(path: Path, job: Job, points: list, tasks: int, backend: str) -> None:
    """Write the run's manifest once, atomically: everything an array task needs."""
    # The task runs with the submitter's locations, whatever the node's environment says.
    env = {"MEMO_ROOT": str(paths.root().resolve())}
    if "MEMO_DATASETS" in os.environ:
        env["MEMO_DATASETS"] = os.environ["MEMO_DATASETS"]
    manifest = {
        "version": MANIFEST_VERSION,
        "backend": backend,
        "created": now_iso(),
        "tasks": tasks,
        "env": env,
        "job": dataclasses.asdict(job),
        "points": [dataclasses.asdict(p) for p in points],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(manifest, indent=1).encode())


def read_manifest(path) -> dict:
    """The manifest with ``job`` as a Job and ``points`` as Points; ValueError if unusable."""
    manifest = json.loads(Path(path).read_text())
    if manifest.get("version") != MANIFEST_VERSION:
        raise ValueError(
            f"manifest version {manifest.get('version')!r}, expected {MANIFEST_VERSION}"
        )
    manifest["job"] = Job(**manifest["job"])
    manifest["points"] = [Point(**p) for p in manifest["points"]]
    return manifest


def share(points: list, task: int, tasks: int) -> list:
    """The points array task ``task`` (1-based) of ``tasks`` runs: every tasks-th from task-1.

    >>> [share(list("abcdefg"), i, 3) for i in (1, 2, 3)]
    [['a', 'd', 'g'], ['b', 'e'], ['c', 'f']]
    """
    return points[task - 1 :: tasks]


def new_run_id() -> str:
    """A sortable, unique run folder name: UTC time and a random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def render(template: str, **values: str) -> str:
    """The template file from the project root with each ``{{key}}`` replaced.

    Values go into ``#$``/``#SBATCH`` lines as they are, so paths there must not hold
    spaces; the shell lines get quoted values.
    """
    text = (paths.PROJECT / template).read_text()
    for key, value in values.items():
        blank = re.search(r"\s", value) if key in ("logs", "name") else None
        if blank:
            what = {" ": "a space", "\n": "a newline", "\t": "a tab"}.get(blank[0], "a blank")
            raise BackendError(
                f"{key} {value!r} has {what}, which job script options cannot hold; "
                f"use a MEMO_ROOT and experiment name without blanks"
            )
        text = text.replace("{{" + key + "}}", value)
    left = re.findall(r"\{\{\w+\}\}", text)
    if left:
        raise BackendError(f"{template}: no value for {', '.join(sorted(set(left)))}")
    return text


def job_name(experiment: str) -> str:
    """A job name schedulers accept: letters, digits, ``_.-``; not starting with a digit.

    >>> job_name("mnist"), job_name("2layers/v1")
    ('mnist', 'm2layers_v1')
    """
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", experiment)
    return name if name[:1].isalpha() else "m" + name
