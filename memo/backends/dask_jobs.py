"""Dask workers started as scheduler jobs by dask-jobqueue: ``--backend dask-sge``,
``dask-slurm``, ``dask-pbs`` or ``dask-lsf``.

They are configured as dask-jobqueue is: the user's ``jobqueue.yaml`` (in
``~/.config/dask/``; section ``jobqueue.sge``, ``jobqueue.slurm``, ...: queue, cores,
memory, walltime, job-extra-directives, ...), with overrides after ``--`` as KEY=VALUE,
VALUE read as YAML: ``-- queue=all.q memory=4GB 'job_extra_directives=["-l gpu=1"]'``.
``--tasks N`` is the most workers at once: the cluster adapts between none and N to
the points left, so a small grid or the tail of a big one holds no idle jobs.

memo adds, where the configuration does not say otherwise:

- each worker process runs one point at a time (``--nthreads 1``), with
  cores/processes BLAS threads;
- a lifetime shorter than the walltime (:func:`retirement`): a worker retires before
  the scheduler would kill it, its point runs again on another (without counting as a
  death), and new jobs replace it. A point must take less than the lifetime;
- the job script enters the project folder and exports MEMO_ROOT and MEMO_DATASETS, so
  that workers import memo and read the shared, memory-mapped dataset cache;
- worker logs go to ``results/NAME/_dask_logs/``;
- one worker job is submitted and cancelled before the run (:meth:`JobqueueBackend.probe`).
"""

import contextlib
import inspect
import os
import re
import shlex
import shutil
import sys
import threading

from memo.store import paths
from memo.backends.base import BackendError
from memo.backends.dask_points import ENV
from memo.backends.dask_pool import SCHEDULER, DaskBackend, needs
from memo.store.records import Store

LOGS = "_dask_logs"  # under results/NAME/; "_": not a record name
WAIT_NOTE_S = 120.0  # no worker after this long: say where to look


class JobqueueBackend(DaskBackend):
    """Workers as jobs of the scheduler named by ``config`` (see module doc)."""

    no_worker_s = None  # jobs may wait in the queue for long: the note of waiting_note only
    config: str  # the section of jobqueue.yaml, and dask-jobqueue's class prefix
    cluster_class: str

    def check(self) -> None:
        if self.tasks == 0 or self.tasks < -1:
            raise BackendError(
                f"--tasks {self.tasks}: give the most workers at once, or -1 for one per point"
            )
        needs("dask_jobqueue")  # importing it puts its defaults into dask.config
        import dask_jobqueue

        submit = getattr(dask_jobqueue, self.cluster_class).job_cls.submit_command.split()[0]
        if shutil.which(submit) is None:
            raise BackendError(f"{self.name} submits its workers with {submit}: not on PATH here")
        self.options = overrides(self.args, self.settings(), self.name)
        for key in ("cores", "memory"):
            if self.setting(key) is None:
                raise BackendError(
                    f"{self.name} needs the {key} of each job: set jobqueue.{self.config}.{key} "
                    f"in ~/.config/dask/jobqueue.yaml or give {key}=... after --"
                )
        self.retirement = retirement(self.setting("walltime"), self.setting("worker-extra-args"))

    def settings(self) -> dict:
        """The user's jobqueue configuration of this scheduler (dask.config)."""
        import dask

        return dask.config.get(f"jobqueue.{self.config}")

    def setting(self, key: str):
        """A setting as given after -- or else as configured."""
        return self.options.get(key.replace("-", "_"), self.settings().get(key))

    def workers(self, points: int) -> int:
        return points if self.tasks == -1 else min(self.tasks, points)

    def threads(self) -> int:
        from distributed.deploy.utils import nprocesses_nthreads

        cores = int(self.setting("cores"))
        processes = self.setting("processes") or nprocesses_nthreads(cores)[0]
        return max(1, cores // int(processes))

    @contextlib.contextmanager
    def connect(self, job, points: int):
        with super().connect(job, points) as client:
            timer = threading.Timer(WAIT_NOTE_S, self.waiting_note, [client])
            timer.daemon = True
            timer.start()
            try:
                yield client
            finally:
                timer.cancel()

    def waiting_note(self, client) -> None:
        """Say so, once, if no worker job has connected a while after the start: the jobs
        may wait in the queue, or die before their worker starts."""
        if not client.scheduler_info().get("workers"):
            print(
                f"\nnote: no worker has started in {WAIT_NOTE_S:.0f} s: the {self.config} jobs"
                f" may be waiting in the queue, or failing to start (their logs: {self.logs})",
                file=sys.stderr,
            )

    def settle(self, client, cluster) -> None:
        """Nothing: workers in jobs print into their logs, and a job still queued at the
        end must not hold the run up."""

    def start(self, job, points: int, stack):
        """The dask-jobqueue cluster adapting between none and the most workers, shut down
        with ``stack``: jobs are submitted as the points need them."""
        if self.retirement and job.timeout:
            earliest = self.retirement[0] - self.retirement[1]
            if job.timeout > earliest:
                raise BackendError(
                    f"--timeout {job.timeout:g} s: the workers retire after {earliest:.0f} s (80 %"
                    f" of walltime {self.setting('walltime')}), and a point they leave starts"
                    " again on the next: it would never end; give a longer walltime"
                )
        cluster = stack.enter_context(self.make_cluster(job))
        self.probe(cluster)
        workers = self.workers(points)
        cluster.adapt(minimum=0, maximum=workers)
        print(f"dask: up to {workers} workers as {self.config} jobs; their logs: {self.logs}")
        return cluster

    def make_cluster(self, job):
        """The dask-jobqueue cluster, its scheduler started here; no job submitted yet."""
        import dask
        import dask_jobqueue

        store = Store(job.experiment, job.results_dir)
        self.logs = self.setting("log-directory") or str(store.dir / LOGS)
        extra = list(self.setting("worker-extra-args") or [])
        if self.retirement:
            lifetime, stagger = self.retirement
            extra += ["--lifetime", f"{lifetime:.0f}s", "--lifetime-stagger", f"{stagger:.0f}s"]
        extra += ["--nthreads", "1"]
        self.job_options = {
            **self.options,
            "job_script_prologue": [
                *(self.setting("job-script-prologue") or []),
                f"cd {shlex.quote(str(paths.PROJECT))}",
                *(f"export {k}={shlex.quote(os.environ[k])}" for k in ENV if k in os.environ),
            ],
            "log_directory": self.logs,
            "worker_extra_args": extra,
        }
        with dask.config.set(SCHEDULER):
            try:
                return getattr(dask_jobqueue, self.cluster_class)(**self.job_options)
            except (TypeError, ValueError) as e:
                raise BackendError(f"{self.name}: {e}".splitlines()[0]) from None

    def probe(self, cluster) -> None:
        """Submit one worker job and cancel it at once: a scheduler that refuses the job
        script (a queue it does not have, more memory than a node) says so in one line now,
        where adaptive scaling would only log it and leave the points waiting."""
        from dask_jobqueue.core import Job

        takes = set(inspect.signature(Job).parameters) | set(
            inspect.signature(cluster.job_cls).parameters
        )
        options = {k: v for k, v in self.job_options.items() if k in takes}
        probe = cluster.job_cls(scheduler=cluster.scheduler_address, name="memo-probe", **options)
        try:
            cluster.sync(probe.start)
        except RuntimeError as e:  # dask-jobqueue's: the command, its exit code and output
            raise BackendError(
                f"{self.name}: the scheduler refused a worker job: {refusal(str(e))}"
            ) from None
        cluster.sync(probe.close)


def refusal(error: str) -> str:
    """The last line the submit command wrote to stderr, from dask-jobqueue's error.

    >>> refusal("Command exited with non-zero exit code.\\nExit code: 1\\nCommand:\\nqsub x.sh"
    ...     "\\nstdout:\\n\\nstderr:\\nUnable to run job: unknown queue \\"q\\".\\nExiting.\\n\\n")
    'Unable to run job: unknown queue "q".'
    """
    said = error.partition("stderr:")[2]
    lines = [line.strip() for line in said.splitlines() if line.strip() not in ("", "Exiting.")]
    if lines:
        return lines[-1]
    code = re.search(r"Exit code: (-?\d+)", error)
    return f"it exited with code {code.group(1)}" if code else error.strip().splitlines()[0]


def overrides(args: list, configured: dict, backend: str) -> dict:
    """The KEY=VALUE words after -- as dask-jobqueue keyword arguments; BackendError for
    a word that is not one or a KEY that is not a setting of this scheduler.

    >>> overrides(["queue=all.q", "cores=2", "job_extra_directives=['-l h=a']"],
    ...     {"queue": None, "cores": None, "job-extra-directives": []}, "dask-sge")
    {'queue': 'all.q', 'cores': 2, 'job_extra_directives': ['-l h=a']}
    """
    import yaml  # dask's own dependency, as its config files are YAML

    known = {key.replace("-", "_") for key in configured}
    options = {}
    for word in args:
        key, sep, raw = word.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise BackendError(f"{backend}: {word!r} after --: give settings as KEY=VALUE")
        if key not in known:
            raise BackendError(
                f"{backend}: {key!r} after -- is not a dask-jobqueue setting here;"
                f" known: {', '.join(sorted(known))}"
            )
        try:
            options[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            raise BackendError(f"{backend}: {word!r} after --: {e}".splitlines()[0]) from None
    return options


def seconds(walltime) -> float:
    """A walltime as the schedulers write it, in seconds: [D-]HH:MM:SS, HH:MM, or minutes.

    >>> seconds("01:00:00"), seconds("1-00:00:00"), seconds("02:30"), seconds(90)
    (3600.0, 86400.0, 9000.0, 5400.0)
    """
    text = str(walltime).strip()
    found = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not found:
        raise BackendError(f"walltime {text!r}: give it as HH:MM:SS")
    days, first, second, third = found.groups()
    if second is None:  # minutes
        total = int(first) * 60
    elif third is None:  # HH:MM
        total = int(first) * 3600 + int(second) * 60
    else:
        total = int(first) * 3600 + int(second) * 60 + int(third)
    return float(total + int(days or 0) * 86400)


def retirement(walltime, configured) -> tuple | None:
    """(lifetime, stagger) in seconds that retire a worker before its walltime, at 80-90 %
    of it: dask's ``--lifetime`` 90 % less a stagger of 5 % (at most 5 minutes, so that
    workers do not all leave at once); None if the configuration sets a lifetime, or there
    is no walltime.

    >>> retirement("01:00:00", []), retirement("01:00:00", ["--lifetime", "50m"])
    ((3060.0, 180.0), None)
    """
    if walltime is None or any(str(a).startswith("--lifetime") for a in configured or []):
        return None
    total = seconds(walltime)
    stagger = min(300.0, total / 20)
    return 0.9 * total - stagger, stagger


def backend(config: str, cluster_class: str) -> type:
    """The JobqueueBackend class for one scheduler."""
    return type(
        f"Dask{cluster_class}Backend",
        (JobqueueBackend,),
        {"name": f"dask-{config}", "config": config, "cluster_class": cluster_class},
    )


JOBQUEUE_BACKENDS = [
    backend(config, cls)
    for config, cls in (
        ("sge", "SGECluster"),
        ("slurm", "SLURMCluster"),
        ("pbs", "PBSCluster"),
        ("lsf", "LSFCluster"),
    )
]
