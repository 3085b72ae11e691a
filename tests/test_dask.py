"""The dask backends: a LocalCluster started here, a cluster the user runs, and workers
started as scheduler jobs by dask-jobqueue (tests marked sge / slurm use the real Grid
Engine and Slurm of ``.ci/cluster.sh``)."""

import concurrent.futures
import contextlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import joblib
import psutil
import pytest
from conftest import PROJECT, REAL, Journal, records, start_runner, tail

from memo.store import claims as memo_claims
from memo.run import worker
from memo.backends import make_backend
from memo.run.spec import load_spec
from memo.run.worker import Job

PROGRESS = re.compile(r"\d+/\d+ points, \d+ failed, ")  # run.py's progress lines off a terminal
VOLATILE = ("wall_time", "cpu_time", "started", "finished", "pid", "backend", "host", "git")


def grid(n, *extra, **defaults):
    """x = 0..n-1 with ``defaults``, then the ``extra`` grids (lists of dicts of lists)."""
    first = {"x": list(range(n)), **{k: [v] for k, v in defaults.items()}}
    return {"trial": "synthetic", "param_grid": [first, *extra]}


def stamps(root, name="exp") -> dict:
    """{point: when its record was written}: a point recorded again has a new time."""
    from memo.store.records import Store

    return Store(name, root / "results").rows().stamps()


def watch_records(runner, root, limit=300.0) -> tuple:
    """({point: the times it was recorded}, stdout, stderr) of a runner, watched until it
    exits (at most ``limit`` seconds): a point recorded twice has two times."""
    try:
        written = Journal(root).watch([runner], after_s=0.5, limit_s=limit)
    except AssertionError:
        give_up(runner, f"still running after {limit:g} s")
    return (written, *ended(runner))


def wait_for(condition, runner, what, limit=120.0):
    """condition()'s first true value, looked for while the runner runs, for at most
    ``limit`` seconds; else the test fails with what the runner said."""
    end = time.monotonic() + limit
    while not (found := condition()):
        if runner.poll() is not None:
            give_up(runner, f"exited with {runner.returncode} before {what}")
        if time.monotonic() > end:
            give_up(runner, f"no {what} after {limit:g} s")
        time.sleep(0.02)
    return found


def ended(runner, limit=120.0) -> tuple:
    """(stdout, stderr) of the runner once it exits, within ``limit`` seconds or the test
    fails with what it said."""
    try:
        return runner.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        give_up(runner, f"still running {limit:g} s after it was told to stop")


def give_up(runner, why: str):
    """Stop the runner, its workers with it, and fail the test with what it said."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(runner.pid, signal.SIGKILL)
    try:
        out, err = runner.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        out, err = "", "(nothing: its output stays open, held by a process it started)"
    pytest.fail(f"run.py {why}; it said:\n{tail(out)}\n{tail(err)}")


def test_a_local_cluster_records_every_point_as_joblib_does(write_spec, root, cli):
    write_spec("exp", grid(6, {"x": [99], "fail": [True]}, duration=0.05))
    result = cli("--name", "exp", "--backend", "dask", "--tasks", "2")
    assert result.returncode == 1, result.stderr  # the failing point
    assert "dask: 2 workers here" in result.stdout and "dashboard http://" in result.stdout
    assert "exp: 7 points: 6 ok, 1 error, 0 timeout, 0 pending" in result.stdout
    assert "Traceback" not in result.stderr and " - WARNING - " not in result.stderr
    by_dask = records(root)
    assert {r["backend"] for r in by_dask.values()} == {"dask"}
    (failed,) = [r for r in by_dask.values() if r["status"] == "error"]
    assert "RuntimeError: failing on purpose at x=99" in failed["error"]

    (root / "results" / "exp.csv").unlink()
    shutil.rmtree(root / "results" / "exp")
    assert cli("--name", "exp", "--tasks", "2").returncode == 1
    by_joblib = records(root)
    assert by_joblib.keys() == by_dask.keys()
    for point, record in by_dask.items():  # same ids, seeds, params, metrics, threads
        same = {k: v for k, v in record.items() if k not in VOLATILE and k != "error"}
        assert same == {k: v for k, v in by_joblib[point].items() if k in same}
        assert record["threads"] == max(1, joblib.cpu_count() // 2)


def test_dask_workers_run_groups_with_a_record_and_an_error_per_point(write_spec, root, cli):
    """Points that share work (memo.run.groups) go to a dask worker as one unit."""
    write_spec("exp", grid(6, {"x": [99], "fail": [True], "group": [True]}, group=True))
    result = cli("--name", "exp", "--backend", "dask", "--tasks", "2")
    assert result.returncode == 1, result.stderr  # the failing point
    assert "exp: 7 points: 6 ok, 1 error, 0 timeout, 0 pending" in result.stdout
    recs = records(root)
    assert sorted(r.get("group") for r in recs.values()) == [3, 3, 3, 4, 4, 4, 4]
    (failed,) = [r for r in recs.values() if r["status"] == "error"]
    assert "RuntimeError: failing on purpose at x=99" in failed["error"]


def test_timeout_holds_on_dask_workers_whose_points_run_outside_the_main_thread(
    write_spec, root, cli
):
    write_spec("exp", grid(1, {"x": [1], "duration": [1.5]}))
    result = cli("--name", "exp", "--backend", "dask", "--timeout", "0.5")
    assert result.returncode == 1 and "1 ok, 0 error, 1 timeout" in result.stdout
    (late,) = [r for r in records(root).values() if r["status"] == "timeout"]
    assert late["params"]["duration"] == 1.5
    assert late["error"] == "PointTimeout: no result within 0.5 s"


def test_a_point_in_a_thread_is_stopped_at_its_time_limit():
    def spin():
        end = time.monotonic() + 5
        with worker.time_limit(0.2):
            while time.monotonic() < end:  # Python lines: the exception comes at the next one
                pass

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        start = time.monotonic()
        with pytest.raises(worker.PointTimeout):
            pool.submit(spin).result()
    assert time.monotonic() - start < 4


def test_a_worker_killed_mid_run_loses_nothing(write_spec, root):
    """One worker is killed from outside while it runs a point: the point runs again on
    another worker; a point that kills every worker it runs on gets a WorkerDied record
    after three deaths; each point is recorded once and the grid goes on."""
    write_spec("exp", grid(6, {"x": [99], "die": [True]}, duration=0.8))
    dying = load_spec("exp").points()[-1].id
    claims = root / "results" / "exp" / "_running"
    runner = start_runner("--name", "exp", "--backend", "dask", "--tasks", "2")

    def running_point():
        for path in claims.glob("*.json") if claims.exists() else []:
            if path.stem != dying and path.stat().st_size:
                return path.stem, json.loads(path.read_text())["pid"]
        return None

    victim, pid = wait_for(running_point, runner, "point running")
    os.kill(pid, signal.SIGKILL)
    seen, out, err = watch_records(runner, root)
    assert runner.returncode == 1, err
    assert "exp: 7 points: 6 ok, 1 error, 0 timeout, 0 pending" in out, out + err
    recs = records(root)
    assert recs[victim]["status"] == "ok" and recs[victim]["pid"] != pid
    assert recs[dying]["error"].startswith("WorkerDied: the process running this point died")
    assert "3 dask workers in turn died running it" in recs[dying]["error"]
    assert all(len(found) == 1 for found in seen.values()), seen
    assert memo_claims.running(root / "results" / "exp") == ({}, 1)  # the dying point's, stale


def test_quick_points_go_in_chunks_and_a_chunk_that_kills_its_workers_is_split(write_spec, root):
    """Points of no time go a few to a task; when one of them kills every worker, its
    chunk runs again point by point: it gets a WorkerDied record, the others theirs."""
    write_spec("exp", grid(150, {"x": [1000], "die": [True]}, {"x": list(range(150, 300))}))
    dying = [p.id for p in load_spec("exp").points() if p.params["die"]]
    runner = start_runner("--name", "exp", "--backend", "dask", "--tasks", "2")
    seen, out, err = watch_records(runner, root)
    assert "exp: 301 points: 300 ok, 1 error, 0 timeout, 0 pending" in out, out + err
    recs = records(root)
    assert "3 dask workers in turn died running it" in recs[dying[0]]["error"]
    twice = [point for point, found in seen.items() if len(found) > 1]
    assert not twice and len(seen) == 301, (twice, len(seen))


def slow_restarts(root, monkeypatch, sleep_s: float) -> None:
    """Make the first restart of a dask worker (its second start) take ``sleep_s`` seconds
    more, as a start on a loaded machine may: a worker preload that sleeps then."""
    starts = root / "starts"
    preload = root / "slow_restart.py"
    preload.write_text(
        "import pathlib, time\n\n\ndef dask_setup(worker):\n"
        f"    starts = pathlib.Path({str(starts)!r})\n"
        "    with starts.open('a') as f:\n"
        "        f.write('.')\n"
        "    if len(starts.read_text()) == 2:\n"
        f"        time.sleep({sleep_s})\n"
    )
    monkeypatch.setenv("DASK_DISTRIBUTED__WORKER__PRELOAD", json.dumps([str(preload)]))


def test_a_worker_that_restarts_slower_than_dask_gives_it_is_waited_for(
    write_spec, root, cli, monkeypatch
):
    """dask's LocalCluster closes a worker not back within 15 s of its death and starts
    none in its place: the only worker here then never came back and the run waited for
    good. memo's cluster keeps its place: the run goes on once it is back."""
    slow_restarts(root, monkeypatch, 20)
    write_spec("exp", grid(3, {"x": [1000], "die": [True]}))
    result = cli("--name", "exp", "--backend", "dask", "--tasks", "1", timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "exp: 4 points: 3 ok, 1 error, 0 timeout, 0 pending" in result.stdout, result.stdout
    assert "3 dask workers in turn died running it" in result.stderr


def test_a_run_whose_workers_do_not_come_back_stops_with_the_rest_pending(
    write_spec, root, cli, monkeypatch
):
    """The only worker dies under a point and its restart hangs (as a start stuck on a
    loaded machine might): once no worker has been alive for MEMO_NO_WORKER_S seconds,
    the run says so in one line and stops, each point recorded or pending."""
    slow_restarts(root, monkeypatch, 3600)
    monkeypatch.setenv("MEMO_NO_WORKER_S", "2")
    write_spec("exp", grid(5, {"x": [1000], "die": [True]}))
    dying = [p.id for p in load_spec("exp").points() if p.params["die"]]
    result = cli("--name", "exp", "--backend", "dask", "--tasks", "1", timeout=300)
    said = [
        line for line in result.stderr.splitlines() if line.strip() and not PROGRESS.match(line)
    ]
    assert result.returncode == 1 and len(said) == 1, result.stdout + result.stderr
    assert said[0].startswith("error: no dask worker has been alive for 2 s (they died and did")
    assert "stopped; the points without a record stay pending" in said[0]
    recs = records(root)
    assert dying[0] not in recs and {r["status"] for r in recs.values()} <= {"ok"}
    summary = f"exp: 6 points: {len(recs)} ok, 0 error, 0 timeout, {6 - len(recs)} pending"
    assert summary in result.stdout, result.stdout


def test_a_bad_no_worker_wait_is_one_line(write_spec, root, cli, monkeypatch):
    monkeypatch.setenv("MEMO_NO_WORKER_S", "soon")
    write_spec("exp", grid(2))
    result = cli("--name", "exp", "--backend", "dask")
    assert result.returncode == 2 and not records(root)
    assert result.stderr == "error: MEMO_NO_WORKER_S='soon': give a number of seconds > 0\n"


@pytest.mark.parametrize("to", ["run.py", "its process group"])
def test_ctrl_c_cancels_the_rest_and_stops_the_workers(write_spec, root, cli, to):
    """Ctrl-C in a terminal signals the whole process group, memo's workers here too:
    they leave it to run.py, which says its note alone."""
    write_spec("exp", grid(12, duration=0.5))
    runner = start_runner("--name", "exp", "--backend", "dask", "--tasks", "2")
    wait_for(lambda: records(root), runner, "record")
    workers = psutil.Process(runner.pid).children(recursive=True)
    assert workers
    (os.kill if to == "run.py" else os.killpg)(runner.pid, signal.SIGINT)
    out, err = ended(runner)
    said = [line for line in err.splitlines() if line.strip() and not PROGRESS.match(line)]
    assert runner.returncode == 130 and len(said) == 1, err
    assert said[0].startswith("interrupted: ") and "rerun the same command to resume" in said[0]
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
    before = stamps(root)
    assert 0 < len(before) < 12 and all(r["status"] == "ok" for r in records(root).values())
    result = cli("--name", "exp", "--backend", "dask", "--tasks", "2")
    assert result.returncode == 0 and f"running {12 - len(before)} of 12 points" in result.stdout
    after = stamps(root)
    assert len(after) == 12 and all(after[p] == written for p, written in before.items())


@pytest.mark.parametrize("how", ["--scheduler", "DASK_SCHEDULER_ADDRESS"])
def test_a_cluster_the_user_runs_is_used_and_left_running(write_spec, root, cli, monkeypatch, how):
    from distributed import Client, LocalCluster

    write_spec("exp", grid(4))
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0"
    ) as cluster:
        address = cluster.scheduler_address
        if how == "--scheduler":
            result = cli("--name", "exp", "--backend", "dask", "--scheduler", address)
        else:
            monkeypatch.setenv(how, address)
            result = cli("--name", "exp", "--backend", "dask")
        assert result.returncode == 0, result.stderr
        assert f"dask: the cluster at {address}" in result.stdout
        with Client(cluster) as client:
            assert len(client.scheduler_info()["workers"]) == 1  # not shut down
    recs = records(root)
    assert len(recs) == 4 and {r["status"] for r in recs.values()} == {"ok"}
    assert {r["threads"] for r in recs.values()} == {max(1, joblib.cpu_count() // 2)}


@pytest.fixture
def strangers():
    """Ports on 127.0.0.1 where no dask scheduler listens: a web server's, and a silent
    listener's (it accepts a connection, and says nothing)."""

    class Web(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # not into the test's output
            pass

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Web)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        yield {"web": web.server_address[1], "silent": silent.getsockname()[1]}
    finally:
        web.shutdown()
        web.server_close()
        silent.close()


@pytest.mark.parametrize(
    "address",
    [
        "tcp://127.0.0.1:{web}",
        "tcp://127.0.0.1:{silent}",
        "tls://127.0.0.1:{silent}",
        "ucx://127.0.0.1:{silent}",
        "foo://127.0.0.1:8786",
    ],
)
def test_a_scheduler_address_without_a_dask_scheduler_is_one_line(
    write_spec, root, cli, strangers, address
):
    address = address.format(**strangers)
    write_spec("exp", grid(2))
    result = cli("--name", "exp", "--backend", "dask", "--scheduler", address, timeout=90)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ") and address in result.stderr
    assert not records(root)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "dask", "--", "-q", "all.q"], "the dask backend takes no scheduler"),
        (["--backend", "dask", "--scheduler", "host"], "give it as tcp://HOST:PORT"),
        (["--scheduler", "tcp://host:8786"], "it is for --backend dask, not joblib"),
        (["--backend", "dask-slurm", "--", "queue"], "'queue' after --: give settings as KEY="),
        (["--backend", "dask-slurm", "--", "quue=debug"], "'quue' after -- is not a dask-job"),
        (["--backend", "dask-sge", "--", "memory=1GB"], "dask-sge needs the cores of each job"),
        (
            ["--backend", "dask-pbs", "--", "cores=1", "memory=1GB", "walltime=soon"],
            "walltime 'soon': give it as HH:MM:SS",
        ),
        (
            ["--backend", "dask-lsf", "--", "cores=1", "memory=1GB"],
            "dask-lsf submits its workers with bsub: not on PATH here",
        ),
        (  # the fake sbatch refuses every job, as a real one refuses a queue it has not
            ["--backend", "dask-slurm", "--", "cores=1", "memory=1GB", "queue=gpu"],
            "the scheduler refused a worker job: sbatch: error: invalid partition specified",
        ),
    ],
)
def test_bad_dask_options_exit_2_with_one_line(write_spec, root, cli, monkeypatch, args, message):
    monkeypatch.setenv("DASK_CONFIG", str(root))  # no user's jobqueue.yaml
    monkeypatch.setenv("PATH", fake_commands(root, "qsub", "sbatch"))
    write_spec("exp", grid(2))
    result = cli("--name", "exp", *args)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not records(root)


def fake_commands(root, *names) -> str:
    """A PATH of scheduler commands that refuse every job, as sbatch refuses a bad queue."""
    folder = root / "bin"
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_text(
            "#!/bin/sh\necho 'sbatch: error: invalid partition specified' >&2\nexit 1\n"
        )
        (folder / name).chmod(0o755)
    return str(folder)


def test_a_timeout_longer_than_the_workers_lifetime_is_refused_before_any_job(
    write_spec, root, cli, monkeypatch
):
    monkeypatch.setenv("PATH", fake_commands(root, "sbatch"))
    write_spec("exp", grid(2))
    settings = ["--", "cores=1", "memory=1GB", "walltime=01:00:00"]
    result = cli("--name", "exp", "--backend", "dask-slurm", "--timeout", "3000", *settings)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--timeout 3000 s: the workers retire after 2880 s (80 % of walltime 01:00:00)" in (
        result.stderr
    )
    assert not records(root)


def test_worker_jobs_that_do_not_start_are_said_once_with_where_to_look(root, monkeypatch, capsys):
    class Scheduler:
        def __init__(self, workers):
            self.workers = workers

        def scheduler_info(self):
            return {"workers": self.workers}

    monkeypatch.setenv("PATH", fake_commands(root, "sbatch"))
    backend = make_backend("dask-slurm", 2, ["cores=1", "memory=1GB"])
    backend.logs = str(root / "results" / "exp" / "_dask_logs")
    backend.waiting_note(Scheduler({"tcp://node7:4242": {}}))
    assert capsys.readouterr().err == ""
    backend.waiting_note(Scheduler({}))
    err = capsys.readouterr().err
    assert "no worker has started in 120 s: the slurm jobs may be waiting in the queue" in err
    assert f"(their logs: {backend.logs})" in err


def test_jobqueue_workers_run_one_point_each_in_the_project_and_retire_in_time(root, monkeypatch):
    monkeypatch.setenv("PATH", fake_commands(root, "sbatch"))  # no job is submitted
    args = ["cores=2", "processes=1", "memory=1GB", "walltime=01:00:00", "queue=debug"]
    backend = make_backend("dask-slurm", 3, args)
    assert backend.threads() == 2 and backend.workers(100) == 3 and backend.workers(2) == 2
    cluster = backend.make_cluster(Job("exp", "synthetic", str(root / "results"), None, 2, {}))
    with cluster:
        script = cluster.job_script()
    assert "#SBATCH -p debug" in script and "#SBATCH -t 01:00:00" in script
    assert f"cd {PROJECT}\n" in script and f"export MEMO_ROOT={root}\n" in script
    command = script.strip().splitlines()[-1]
    assert command.endswith("--lifetime 3060s --lifetime-stagger 180s --nthreads 1")
    assert "_dask_logs/dask-worker-%J.err" in script and str(root / "results" / "exp") in script


REAL_OPTIONS = {  # one-core workers that fit the one small node of .ci/cluster.sh
    "sge": ["queue=all.q", "cores=1", "memory=500MB", "walltime=00:10:00"],
    "slurm": ["queue=debug", "cores=1", "memory=500MB", "walltime=00:10:00"],
}


@pytest.mark.parametrize("kind", [pytest.param(k, marks=REAL[k]) for k in REAL])
def test_real_scheduler_jobs_run_the_grid_as_dask_workers(write_spec, root, cli, kind):
    write_spec("exp", grid(6, {"x": [99], "fail": [True]}, duration=0.2))
    start = time.monotonic()
    command = ["--name", "exp", "--backend", f"dask-{kind}", "--tasks", "2"]
    result = cli(*command, "--", *REAL_OPTIONS[kind], timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "exp: 7 points: 6 ok, 1 error, 0 timeout, 0 pending" in result.stdout
    recs = records(root)
    assert {(r["backend"], r["threads"], r["host"]) for r in recs.values()} == {
        (f"dask-{kind}", 1, socket.gethostname())
    }
    assert list((root / "results" / "exp" / "_dask_logs").iterdir())  # the workers' logs
    print(f"dask-{kind}: 7 points took {time.monotonic() - start:.1f} s")


@pytest.mark.parametrize("kind", [pytest.param("slurm", marks=REAL["slurm"])])
def test_real_scheduler_workers_retire_at_their_lifetime_and_are_replaced(
    write_spec, root, cli, kind
):
    """A worker retiring mid-point (its lifetime, set short here) costs the point no try:
    it runs again on the job that adaptive scaling starts in its place."""
    write_spec("exp", grid(5, duration=1.0))
    short = 'worker_extra_args=["--lifetime", "2.5s", "--lifetime-stagger", "0s"]'
    command = ["--name", "exp", "--backend", f"dask-{kind}", "--tasks", "1"]
    result = cli(*command, "--", *REAL_OPTIONS[kind], short, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    recs = records(root)
    assert len(recs) == 5 and {r["status"] for r in recs.values()} == {"ok"}
    assert len({r["pid"] for r in recs.values()}) >= 2  # a second worker took over


def test_ctrl_c_still_interrupts_once_dask_jobqueue_is_loaded(root, monkeypatch):
    """Importing dask_jobqueue makes SIGINT a silent sys.exit(0); memo undoes that."""
    monkeypatch.setenv("PATH", fake_commands(root, "qsub"))
    check = (
        "import signal; from memo.backends import make_backend;"
        "make_backend('dask-sge', 1, ['cores=1', 'memory=1GB']);"
        "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler"
    )
    subprocess.run([sys.executable, "-c", check], check=True, cwd=PROJECT)


@pytest.mark.parametrize("kind", [pytest.param("slurm", marks=REAL["slurm"])])
def test_real_scheduler_ctrl_c_cancels_the_worker_jobs(write_spec, root, kind):
    write_spec("exp", grid(8, duration=1.0))
    command = ["--name", "exp", "--backend", f"dask-{kind}", "--tasks", "2", "--"]
    runner = start_runner(*command, *REAL_OPTIONS[kind])
    wait_for(lambda: records(root), runner, "record", limit=300)
    runner.send_signal(signal.SIGINT)
    out, err = ended(runner)
    assert runner.returncode == 130 and "rerun the same command to resume" in err
    jobs = subprocess.run(["squeue", "-h", "-n", "dask-worker"], capture_output=True, text=True)
    assert jobs.stdout.strip() == ""  # memo's worker jobs are cancelled
