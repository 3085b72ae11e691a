"""What a cluster run keeps on disk: its run folder and manifest, the job script, the logs.

See memo/backends/cluster.py for the whole flow.
"""

import dataclasses
import json
import os
import re
import stat
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from memo.store import paths
from memo.backends.base import BackendError
from memo.store.files import read_regular
from memo.run.point import Point
from memo.store.records import write_atomic
from memo.run.worker import Job

RUNS = "_runs"  # results/NAME/_runs/RUN/: one folder per submission; "_" keeps it out of records
MANIFEST_VERSION = 1
STAMP_CAP, MANIFEST_CAP = 1 << 16, 1 << 30  # bytes read at most of submitted.json, manifest


@dataclass(frozen=True)
class SubmittedRun:
    """A submission of an experiment, as its run folder says (results/NAME/_runs/RUN)."""

    folder: Path
    job_id: str
    submitted: str  # when, ISO time
    backend: str  # the backend's name: sge, slurm
    tasks: int
    point_ids: list  # the manifest's points, in order
    ended: bool  # seen to leave the queue (ended.json)


def submitted_runs(records: Path) -> list:
    """The runs submitted for the experiment whose records are in ``records``, oldest
    first. A run folder that is a link, or whose files are links, too large or not what
    memo wrote (a shared results tree, damaged), is left out."""
    folder = Path(records) / RUNS
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return []
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    runs = []
    for name in names:
        run_dir = folder / name
        try:
            if not stat.S_ISDIR(os.lstat(run_dir).st_mode):
                continue
            stamp = json.loads(read_regular(run_dir / "submitted.json", STAMP_CAP))
            manifest = json.loads(read_regular(run_dir / "manifest.json", MANIFEST_CAP))
            run = SubmittedRun(
                run_dir,
                str(stamp["job_id"]),
                str(stamp.get("submitted", "?")),
                str(manifest["backend"]),
                int(manifest["tasks"]),
                [str(p["id"]) for p in manifest["points"]],
                os.path.lexists(run_dir / "ended.json"),
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
        runs.append(run)
    return runs


def mark_ended(run: SubmittedRun, seen_by: str) -> None:
    """Note that the run's job has left the queue, as ``seen_by`` found (ended.json)."""
    stamp = {"ended": now_iso(), "seen_gone_by": seen_by}
    write_atomic(run.folder / "ended.json", json.dumps(stamp).encode())


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
    manifest = json.loads(read_regular(path, MANIFEST_CAP))
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
    """A unique run folder name that sorts in the order of submission: UTC time to the
    microsecond (two submissions in one second sorted at random by their suffix alone)
    and a random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f-") + uuid.uuid4().hex[:6]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def render(template: str, **values: str) -> str:
    """The template file from the project root with each ``{{key}}`` replaced.

    Values go into ``#$``/``#SBATCH`` lines as they are, where qsub and sbatch split at
    blanks, take quotes and backslashes as quoting and ``$``/``%`` as their own fields,
    so paths there must hold none (experiment names cannot: memo.paths); the shell lines
    get quoted values.
    """
    text = (paths.PROJECT / template).read_text()
    for key, value in values.items():
        odd = re.search(r"[\s'\"\\$%]", value) if key in ("logs", "name") else None
        if odd:
            names = {" ": "a space", "\n": "a newline", "\t": "a tab", "'": "a quote"}
            what = names.get(odd[0], "a blank" if odd[0].isspace() else repr(odd[0]))
            raise BackendError(
                f"{key} {value!r} has {what}, which job script options cannot hold; "
                f"use a MEMO_ROOT without blanks, quotes, '\\', '$' or '%'"
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
