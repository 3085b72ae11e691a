"""Sun/Son of/Univa Grid Engine: an array job through qsub, followed with qstat.

The job script is rendered from ``sge.sh`` in the project root (see cluster.py for the
whole flow). Each task's threads come from its slots: ``-- -pe smp 4`` gives NSLOTS=4.
"""

import re

from memo.backends.cluster import ClusterBackend, scheduler
from memo.backends.scheduler_options import qsub_option


class SGEBackend(ClusterBackend):
    """``--tasks N`` array tasks (-1: one per point); words after ``--`` go to qsub."""

    name = "sge"
    submit_command = "qsub"
    submit_flags = ("-terse",)  # print only the job id
    cancel_command = "qdel"
    template = "sge.sh"
    forbidden = {
        "-t": "memo sets the array from --tasks",
        "-sync": "run.py waits by itself (and --no-wait returns at once)",
        "-b": "memo submits a job script; -b y would skip its #$ options",
    }

    # What qsub takes glued to each forbidden option: -t1-3, -by, -syncy.
    attached = {"-t": r"\d", "-sync": r"", "-b": r"(?i)(y|n|yes|no|true|false)$"}

    def __init__(self, tasks: int, args: list, scheduler: str | None = None):
        super().__init__(tasks, args, scheduler)
        self.errors: dict = {}  # job id -> why its tasks are in the error state, last seen

    def sets_option(self, word: str) -> str | None:
        return qsub_option(word, self.attached)

    def parse_job_id(self, stdout: str) -> str | None:
        """``-terse`` prints ``123`` or, for an array, ``123.1-4:1``.

        >>> SGEBackend(1, []).parse_job_id("123.1-4:1\\n")
        '123'
        """
        match = re.match(r"\s*(\d+)", stdout)
        return match.group(1) if match else None

    def in_queue(self, job_id: str) -> bool | None:
        result = scheduler("qstat", "-j", job_id)
        if result.returncode == 0:
            self.errors[job_id] = error_state(result.stdout)
            return True
        if "do not exist" in result.stdout + result.stderr:
            return False
        return None

    def stuck(self, job_id: str, logs) -> str | None:
        """Tasks in the error state (Eqw) never leave the queue by themselves."""
        reason = self.errors.get(job_id)
        if reason is None:
            return None
        return (
            f"has tasks in the error state (qstat -j {job_id}): {reason}; fix it and run "
            f"qmod -cj {job_id}, or qdel {job_id} and rerun"
        )

    def task_failures(self, job_id: str) -> list:
        result = scheduler("qacct", "-j", job_id)
        if result.returncode != 0:
            return []
        failures = []
        for block in result.stdout.split("=" * 10):
            fields = dict(re.findall(r"^(taskid|failed|exit_status)\s+(.*?)\s*$", block, re.M))
            failed = fields.get("failed", "0").split()[0]
            status = fields.get("exit_status", "0").split()[0]
            if "taskid" in fields and (failed != "0" or status != "0"):
                failures.append(
                    f"qacct: task {fields['taskid']}: failed {fields['failed']}, "
                    f"exit status {fields['exit_status']}"
                )
        return failures


def error_state(text: str) -> str | None:
    """Why ``qstat -j`` output shows tasks in the error state, or None.

    >>> error_state("job_number: 7\\nerror reason    1:      11/22/2026 19:00:05 [0:14029]: "
    ...             "error: can't open output file")
    "error: can't open output file"
    >>> error_state("job_number: 7\\njob_state    1:    Eqw"), error_state("job_number: 7")
    ('task 1 is in state Eqw', None)
    """
    for line in text.splitlines():
        if line.startswith("error reason"):
            # "error reason    1:      11/22/2026 19:00:05 [0:14029]: error: can't open ..."
            return re.sub(r"^error reason[^:]*:\s*(\S+ \S+ \[[^\]]*\]:\s*)?", "", line)
        state = re.match(r"job_state\s+(\d+):\s+(\w*E\w*)", line)
        if state:
            return f"task {state[1]} is in state {state[2]}"
    return None
