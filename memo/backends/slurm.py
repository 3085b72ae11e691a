"""Slurm: an array job through sbatch, followed with squeue.

The job script is rendered from ``slurm.sh`` in the project root (see cluster.py for the
whole flow). Each task's threads come from ``-- --cpus-per-task 4`` (SLURM_CPUS_PER_TASK).
"""

import re
from pathlib import Path

from memo.backends.cluster import ClusterBackend, scheduler
from memo.backends.scheduler_options import getopt_option

# squeue's states of a task that has ended, and of one that ended before its script ran.
END_STATES = {
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
    "PREEMPTED", "REVOKED", "TIMEOUT",
}  # fmt: skip
START_FAILURES = {"BOOT_FAIL", "FAILED", "NODE_FAIL"}


class SlurmBackend(ClusterBackend):
    """``--tasks N`` array tasks (-1: one per point); words after ``--`` go to sbatch."""

    name = "slurm"
    submit_command = "sbatch"
    submit_flags = ("--parsable",)  # print only the job id
    cancel_command = "scancel"
    template = "slurm.sh"
    forbidden = {
        "--array": "memo sets the array from --tasks",
        "-a": "memo sets the array from --tasks",
        "--wrap": "memo submits its own job script",
        "--wait": "run.py waits by itself (and --no-wait returns at once)",
        "-W": "run.py waits by itself (and --no-wait returns at once)",
    }

    def __init__(self, tasks: int, args: list, scheduler: str | None = None):
        super().__init__(tasks, args, scheduler)
        self.failed: dict = {}  # job id -> [(task, state)] that ended failed, last seen

    def sets_option(self, word: str) -> str | None:
        return getopt_option(word, self.forbidden)

    def parse_job_id(self, stdout: str) -> str | None:
        """``--parsable`` prints ``123`` or ``123;cluster``.

        >>> SlurmBackend(1, []).parse_job_id("123;gpu\\n")
        '123'
        """
        match = re.match(r"\s*(\d+)", stdout)
        return match.group(1) if match else None

    def in_queue(self, job_id: str) -> bool | None:
        # With --states all, squeue also lists tasks that ended lately (MinJobAge, 300 s by
        # default), each with its end state; the array is in the queue while one has none.
        result = scheduler(
            "squeue", "--noheader", "--array", "--states", "all", "--jobs", job_id,
            "--format", "%i|%T",
        )  # fmt: skip
        if result.returncode == 0:
            states = [line.strip().partition("|")[::2] for line in result.stdout.splitlines()]
            self.failed[job_id] = [(t, s) for t, s in states if s in START_FAILURES]
            return any(s not in END_STATES for _, s in states if s)
        if "Invalid job id" in result.stderr:  # already purged from the controller
            return False
        return None

    def stuck(self, job_id: str, logs: Path) -> str | None:
        """A task that ended failed without a log never ran the job script: Slurm could not
        start it (a log path the nodes cannot write?); its point would stay pending on every
        submission without a word. Where the words after ``--`` send the logs elsewhere,
        they cannot be looked for: None."""
        if any(getopt_option(w, ("--output", "-o", "--error", "-e")) for w in self.args):
            return None
        for task, state in self.failed.get(job_id, []):
            index = task.rpartition("_")[2]
            log = logs / f"{job_id}.{index}.err"
            if not any(log.with_suffix(s).exists() for s in (".out", ".err")):
                return (
                    f"task {index} ended {state} without a log ({log}): Slurm could not start "
                    f"its job script (can the nodes write {logs}?); scancel {job_id} and rerun"
                )
        return None

    def task_failures(self, job_id: str) -> list:
        result = scheduler(
            "sacct",
            "--noheader",
            "--parsable2",
            "--allocations",
            "--jobs",
            job_id,
            "--format",
            "JobID,State,ExitCode",
        )
        if result.returncode != 0:
            return []
        failures = []
        for line in result.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) == 3 and parts[1] != "COMPLETED":
                failures.append(f"sacct: {parts[0]} {parts[1]}, exit code {parts[2]}")
        return failures
