"""Slurm: an array job through sbatch, followed with squeue.

The job script is rendered from ``slurm.sh`` in the project root (see cluster.py for the
whole flow). Each task's threads come from ``-- --cpus-per-task 4`` (SLURM_CPUS_PER_TASK).
"""

import re

from memo.backends.cluster import ClusterBackend, scheduler
from memo.backends.scheduler_options import getopt_option


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
        # Without -t, squeue lists only pending, running and completing tasks.
        result = scheduler("squeue", "--noheader", "--jobs", job_id, "--format", "%T")
        if result.returncode == 0:
            return bool(result.stdout.strip())
        if "Invalid job id" in result.stderr:  # already purged from the controller
            return False
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
