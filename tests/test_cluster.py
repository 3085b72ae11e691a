"""The cluster backends (sge, slurm): manifest, job script, array tasks, waiting.

Most tests fake the scheduler: FAKE_SCHEDULER below is installed as qsub, qstat, qdel,
qacct, sbatch, squeue, scancel and sacct, first on PATH. It records every call, and
"runs" a submitted array in a detached process that starts each task's job script with
bash, a bare environment and the scheduler's variables, as a compute node would.

The tests marked ``sge`` and ``slurm`` use a real scheduler on this machine, started by
``bash .ci/cluster.sh sge|slurm``; they are skipped unless MEMO_TEST_SGE=1 /
MEMO_TEST_SLURM=1. Golden job scripts live in tests/golden/ (MEMO_UPDATE_GOLDEN=1 rewrites
them).
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REAL, records, start_runner

import run
from memo.backends import task
from memo.backends.cluster import new_outcomes, record_stamps
from memo.backends.run_files import new_run_id, read_manifest, share, write_manifest
from memo.run.spec import load_spec
from memo.store.records import Store
from memo.run.worker import Job, make_record

PROJECT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
KINDS = ("sge", "slurm")
SUBMIT = {"sge": "qsub", "slurm": "sbatch"}
CANCEL = {"sge": "qdel", "slurm": "scancel"}

FAKE_SCHEDULER = r'''
import json, os, re, subprocess, sys, time
from pathlib import Path

STATE = Path(os.environ["FAKE_SCHED"])
PROG = Path(sys.argv[0]).name


def log(args):
    with open(STATE / "calls.jsonl", "a") as f:
        f.write(json.dumps({"prog": PROG, "args": args}) + "\n")


def state(job):
    path = STATE / "jobs" / f"{job}.state"
    return path.read_text() if path.exists() else None


def set_tasks(job, states):  # {task: squeue's state of it}, as set_state writes
    temp = STATE / "jobs" / f"{job}.tasks.tmp"
    temp.write_text(json.dumps(states))
    os.replace(temp, STATE / "jobs" / f"{job}.tasks")


def set_state(job, value):  # atomically: a qstat meanwhile must not read it empty (= gone)
    temp = STATE / "jobs" / f"{job}.state.tmp"
    temp.write_text(value)
    os.replace(temp, STATE / "jobs" / f"{job}.state")


def submit(kind, args):
    if os.environ.get("FAKE_REFUSE"):
        print(os.environ["FAKE_REFUSE"], file=sys.stderr)
        return 1
    script = Path(args[-1])
    text = script.read_text()
    prefix = "#$" if kind == "sge" else "#SBATCH"
    words = [w for line in text.splitlines() if line.startswith(prefix) for w in line.split()[1:]]
    words = [p for w in words for p in w.split("=", 1)] + args[:-1]

    def option(*names):  # the last value given, as schedulers take it
        found = [words[i + 1] for i in range(len(words) - 1) if words[i] in names]
        return found[-1] if found else None

    tasks = int(option("-t", "--array").split("-")[1])
    if kind == "sge":
        out, err = option("-o"), option("-e")
        pe = [args[i + 2] for i in range(len(args) - 2) if args[i] == "-pe"]
        extra = {"NSLOTS": pe[0] if pe else "1"}
    else:
        out, err = option("--output", "-o"), option("--error", "-e")
        cpus = option("--cpus-per-task", "-c")
        extra = {"SLURM_CPUS_PER_TASK": cpus} if cpus else {}
    (STATE / "jobs").mkdir(exist_ok=True)
    counter = STATE / "next_id"
    job = int(counter.read_text()) if counter.exists() else 100
    counter.write_text(str(job + 1))
    set_state(job, "queued")
    set_tasks(job, {i: "PENDING" for i in range(1, tasks + 1)})
    spec = dict(kind=kind, job=job, script=str(script), tasks=tasks, out=out, err=err, extra=extra)
    subprocess.Popen(
        [sys.executable, os.path.realpath(__file__), json.dumps(spec)], start_new_session=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    print(f"{job}.1-{tasks}:1" if kind == "sge" else str(job))
    return 0


def log_path(pattern, kind, job, i):
    if kind == "sge":
        return pattern.replace("$JOB_ID", str(job)).replace("$TASK_ID", str(i))
    return pattern.replace("%A", str(job)).replace("%a", str(i))


def execute(spec):
    """The array job: wait while held, then run every task's script at once, as nodes."""
    kind, job = spec["kind"], spec["job"]
    held_until = time.monotonic() + 600  # a test that never releases it has failed already
    while (STATE / "hold").exists() and time.monotonic() < held_until:
        time.sleep(0.05)
    set_state(job, "running")
    lost = os.environ.get("FAKE_LOSE_TASKS", "").split(",")
    unstarted = os.environ.get("FAKE_NOLOG_TASKS", "").split(",")
    procs, codes, states = {}, {}, {}
    for i in range(1, spec["tasks"] + 1):
        if str(i) in lost:  # the node died before the task wrote anything
            codes[i], states[i] = 137, "NODE_FAIL"
            continue
        if str(i) in unstarted:  # the scheduler could not start its script: no log
            codes[i], states[i] = 1, "FAILED"
            continue
        states[i] = "RUNNING"
        variables = {"JOB_ID": str(job), "SGE_TASK_ID": str(i)} if kind == "sge" else {
            "SLURM_JOB_ID": str(job), "SLURM_ARRAY_JOB_ID": str(job), "SLURM_ARRAY_TASK_ID": str(i)}
        env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **variables, **spec["extra"]}
        out = open(log_path(spec["out"], kind, job, i), "w")
        err = open(log_path(spec["err"], kind, job, i), "w")
        procs[i] = subprocess.Popen(
            ["bash", spec["script"]], env=env, stdout=out, stderr=err, cwd="/"
        )
    set_tasks(job, states)
    for i, proc in procs.items():
        codes[i] = proc.wait()
        states[i] = "COMPLETED" if codes[i] == 0 else "FAILED"
        set_tasks(job, states)
    (STATE / "jobs" / f"{job}.acct").write_text(json.dumps(codes))
    set_state(job, "done")


def main():
    if PROG == "fake_scheduler.py":
        return execute(json.loads(sys.argv[1]))
    args = sys.argv[1:]
    log(args)
    if PROG in ("qsub", "sbatch"):
        return submit("sge" if PROG == "qsub" else "slurm", args)
    if PROG == "qstat":
        job = args[args.index("-j") + 1]
        if state(job) in ("queued", "running"):
            print(f"job_number:                 {job}")
            if os.environ.get("FAKE_EQW"):
                stamp = "11/22/2026 19:00:05 [0:14029]"
                print(f"error reason    1:      {stamp}: {os.environ['FAKE_EQW']}")
            return 0
        print(f"Following jobs do not exist: \n{job}", file=sys.stderr)
        return 1
    if PROG == "squeue":
        job = args[args.index("--jobs") + 1]
        tasks = STATE / "jobs" / f"{job}.tasks"
        if "--states" not in args:  # pending and running ones only
            if state(job) in ("queued", "running"):
                print("PENDING" if state(job) == "queued" else "RUNNING")
            return 0
        # --states all --array: tasks that ended too, each on a line with its state
        for i, task_state in json.loads(tasks.read_text()).items() if tasks.exists() else []:
            print(f"{job}_{i}|{task_state}")
        return 0
    if PROG in ("qacct", "sacct"):
        job = args[args.index("-j" if PROG == "qacct" else "--jobs") + 1]
        acct = STATE / "jobs" / f"{job}.acct"
        if not acct.exists():
            print(f"error: job id {job} not found", file=sys.stderr)
            return 1
        for i, code in json.loads(acct.read_text()).items():
            if PROG == "qacct":
                print("=" * 62 + f"\nqname all.q\ntaskid {i}\nfailed 0\nexit_status {code}")
            else:
                print(f"{job}_{i}|{'COMPLETED' if code == 0 else 'NODE_FAIL'}|{code}:0")
        return 0
    return 0  # qdel, scancel: only recorded


sys.exit(main())
'''


class Fake:
    """The fake scheduler's state folder: its calls, holding and releasing jobs."""

    def __init__(self, folder: Path):
        self.folder = folder

    def calls(self, prog=None) -> list:
        path = self.folder / "calls.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        calls = [json.loads(line) for line in lines]
        return [c["args"] for c in calls if prog is None or c["prog"] == prog]

    def hold(self):
        (self.folder / "hold").touch()

    def release(self):
        (self.folder / "hold").unlink(missing_ok=True)

    def wait_done(self, limit=60):
        deadline = time.monotonic() + limit
        for path in (self.folder / "jobs").glob("*.state"):
            while path.read_text() != "done":
                assert time.monotonic() < deadline, f"fake job {path.stem} did not finish"
                time.sleep(0.05)


@pytest.fixture
def fake(root, monkeypatch):
    """A fake qsub/sbatch & co. first on PATH, and quick polling."""
    bin_dir, state = root / "bin", root / "sched"
    bin_dir.mkdir()
    state.mkdir()
    script = bin_dir / "fake_scheduler.py"
    script.write_text(f"#!{sys.executable}\n{FAKE_SCHEDULER}")
    script.chmod(0o755)
    for prog in ("qsub", "qstat", "qdel", "qacct", "sbatch", "squeue", "scancel", "sacct"):
        (bin_dir / prog).symlink_to(script)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SCHED", str(state))
    monkeypatch.setenv("MEMO_POLL_RECORDS_S", "0.05")
    monkeypatch.setenv("MEMO_POLL_QUEUE_S", "0.1")
    monkeypatch.setenv("MEMO_GRACE_S", "0")
    fake = Fake(state)
    yield fake
    fake.release()  # no detached job outlives its test
    if (state / "jobs").exists():
        fake.wait_done()


def grid(n=6, **defaults):
    return {"trial": "synthetic", "param_grid": {"x": list(range(n))}, "defaults": defaults}


def run_dirs(root, name="exp") -> list:
    return sorted((root / "results" / name / "_runs").glob("*"))


def task_lines(root, name="exp") -> list:
    """Point ids in the 'memo: done ID #index: status' lines of every task log: who ran what."""
    logs = (root / "logs" / name).glob("*.out")
    return [
        m.group(1)
        for p in logs
        for m in re.finditer(r"^memo: done ([0-9a-f]{16}) #\d+: ", p.read_text(), re.M)
    ]


def only_run(root, name="exp") -> dict:
    (folder,) = run_dirs(root, name)
    return read_manifest(folder / "manifest.json") | {"folder": folder}


# -- the manifest and a task's share ----------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 7, 10, 23])
def test_task_shares_cover_every_point_exactly_once(count):
    points = list(range(count))
    for tasks in {1, 2, 3, count, count + 5}:
        size = min(tasks, count)  # the array size submit uses
        shares = [share(points, i, size) for i in range(1, size + 1)]
        assert sorted(p for s in shares for p in s) == points
        assert all(shares), "an empty task"
        assert max(map(len, shares)) - min(map(len, shares)) <= 1  # balanced


def test_run_folders_sort_in_the_order_of_submission_within_a_second():
    ids = [new_run_id() for _ in range(200)]  # a few microseconds apart
    assert sorted(ids) == ids and len(set(ids)) == 200


@pytest.mark.parametrize(("tasks", "size"), [("3", 3), ("50", 5), ("-1", 5)])
def test_array_size_is_tasks_capped_by_points(write_spec, root, fake, tasks, size):
    write_spec("exp", grid(5))
    assert run.main(["--name", "exp", "--backend", "sge", "--tasks", tasks]) == 0
    run_ = only_run(root)
    assert run_["tasks"] == size
    assert f"#$ -t 1-{size}\n" in (run_["folder"] / "job.sh").read_text()
    ran = task_lines(root)
    assert sorted(ran) == sorted(records(root)) and len(ran) == 5  # each point once


# -- the job script ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_job_script_matches_golden_file(write_spec, root, fake, kind, capsys):
    write_spec("exp", grid(3))
    fake.hold()
    assert run.main(["--name", "exp", "--backend", kind, "--tasks", "2", "--no-wait"]) == 0
    out = capsys.readouterr().out
    job_id = re.search(rf"submitted {kind} job (\d+)", out).group(1)
    assert f"cancel it with: {CANCEL[kind]} {job_id}" in out
    run_ = only_run(root)
    text = (run_["folder"] / "job.sh").read_text()
    for path, label in [
        (str(run_["folder"]), "<root>/results/exp/_runs/<run>"),
        (str(root.resolve()), "<root>"),
        (sys.executable, "<python>"),  # before <project>: a venv may live inside it
        (str(PROJECT), "<project>"),
    ]:
        text = text.replace(path, label)
    golden = GOLDEN / f"{kind}_job.sh"
    if os.environ.get("MEMO_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()
    submitted = json.loads((run_["folder"] / "submitted.json").read_text())
    assert submitted["job_id"] == job_id


@pytest.mark.parametrize("kind", KINDS)
def test_scheduler_args_pass_through_after_memos_own(write_spec, root, fake, kind):
    write_spec("exp", grid(2))
    args = {
        "sge": ["-q", "all.q", "-l", "h_rt=01:00:00", "-pe", "smp", "2"],
        "slurm": ["--partition", "debug", "--time=1:00:00", "-c", "2"],
    }[kind]
    assert run.main(["--name", "exp", "--backend", kind, "--", *args]) == 0
    (call,) = fake.calls(SUBMIT[kind])
    flag = {"sge": "-terse", "slurm": "--parsable"}[kind]
    assert call == [flag, *args, str(only_run(root)["folder"] / "job.sh")]
    # The allocation sets each task's threads, and every record says so.
    assert {r["threads"] for r in records(root).values()} == {2}
    assert {r["backend"] for r in records(root).values()} == {kind}


# -- what tasks run ---------------------------------------------------------------------------


def test_task_runs_its_share_and_skips_ok_records(write_spec, root, monkeypatch):
    for variable in task.THREAD_VARIABLES:  # main() sets them; give them back afterwards
        monkeypatch.setenv(variable, "1")
    monkeypatch.setenv("NSLOTS", "3")
    write_spec("exp", {"trial": "synthetic", "param_grid": {"x": [0, 1, 2, 3, 4]}})
    points = load_spec("exp").points()
    job = Job("exp", "synthetic", str(root / "results"), None, 1, {"backend": "sge"})
    manifest = root / "manifest.json"
    monkeypatch.setenv("MEMO_DATASETS", str(root / "data"))
    write_manifest(manifest, job, points, 2, "sge")
    # A node knows nothing of the submitter's locations; the manifest brings them.
    monkeypatch.delenv("MEMO_ROOT")
    monkeypatch.setenv("MEMO_DATASETS", "/node/scratch")
    failed = points[2]  # recorded as an error by an earlier run
    Store("exp", root / "results").write(make_record(job, failed, "error", {}, "RuntimeError"))
    assert task.main([str(manifest), "1"]) == 0
    assert os.environ["MEMO_ROOT"] == str(root) and os.environ["MEMO_DATASETS"] == str(
        root / "data"
    )
    assert os.environ["OMP_NUM_THREADS"] == "3"
    mine = {p.id for p in points[0::2]}
    assert set(records(root)) == mine
    assert {r["threads"] for r in records(root).values()} == {3}
    assert records(root)[failed.id]["status"] == "ok"  # the failed point ran again
    written = Store("exp", root / "results").rows().stamps()
    assert task.main([str(manifest), "1"]) == 0  # as when the scheduler reruns the task
    assert Store("exp", root / "results").rows().stamps() == written  # ok points did not
    assert task.main([str(manifest), "2"]) == 0
    assert set(records(root)) == {p.id for p in points}


def test_task_stops_at_a_damaged_dataset_leaving_its_points_pending(
    write_spec, root, monkeypatch, capsys
):
    import memo.run.groups
    from memo.datasets import DatasetDamaged

    for variable in task.THREAD_VARIABLES:
        monkeypatch.setenv(variable, "1")
    write_spec("exp", {"trial": "synthetic", "param_grid": {"x": [0, 1, 2]}})
    job = Job("exp", "synthetic", str(root / "results"), None, 1, {"backend": "sge"})
    write_manifest(root / "m.json", job, load_spec("exp").points(), 1, "sge")

    def damaged(job, point):
        raise DatasetDamaged("/data/lines/X.npy is damaged")

    monkeypatch.setattr(memo.run.groups, "run_point", damaged)  # what the task's units call
    assert task.main([str(root / "m.json"), "1"]) == 2
    out, err = capsys.readouterr()
    assert err == "error: /data/lines/X.npy is damaged; 3 points left pending\n"
    assert out.endswith("memo: running " + load_spec("exp").points()[0].id + " #0\n")
    assert records(root) == {}


def test_task_rejects_bad_arguments(root, capsys):
    assert task.main([str(root / "missing.json"), "1"]) == 2
    assert "cannot use manifest" in capsys.readouterr().err
    job = Job("exp", "synthetic", str(root / "results"), None, 1, {})
    write_manifest(root / "m.json", job, [], 2, "sge")
    assert task.main([str(root / "m.json"), "3"]) == 2
    assert "task index '3' is outside 1..2" in capsys.readouterr().err
    assert task.main(["only-one"]) == 2


def test_spec_edited_after_submission_does_not_change_the_work(write_spec, root, fake):
    write_spec("exp", grid(6))
    submitted = {p.id for p in load_spec("exp").points()}
    fake.hold()  # the array waits in the queue...
    assert run.main(["--name", "exp", "--backend", "sge", "--tasks", "2", "--no-wait"]) == 0
    # ...while the spec gains points in front, which would shift every task's slice.
    write_spec("exp", {"trial": "synthetic", "param_grid": {"x": [-3, -2, -1, *range(6)]}})
    fake.release()
    fake.wait_done()
    assert set(records(root)) == submitted
    assert sorted(task_lines(root)) == sorted(submitted)


# -- waiting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_ctrl_c_while_waiting_leaves_the_job_running(write_spec, root, fake, kind):
    write_spec("exp", grid(4))
    fake.hold()
    proc = start_runner("--name", "exp", "--backend", kind)
    deadline = time.monotonic() + 30
    while len(fake.calls({"sge": "qstat", "slurm": "squeue"}[kind])) < 2:  # it is waiting
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    job_id = re.search(rf"submitted {kind} job (\d+)", out).group(1)
    assert proc.returncode == 130, err
    assert f"stopped waiting; {kind} job {job_id} keeps running on the cluster" in err
    assert "python run.py --name exp --status" in err
    assert f"{CANCEL[kind]} {job_id}" in err and "Traceback" not in err
    assert fake.calls(CANCEL[kind]) == []
    status = subprocess.run(
        [sys.executable, str(PROJECT / "run.py"), "--name", "exp", "--status"],
        capture_output=True,
        text=True,
    ).stdout
    assert f"{kind} job {job_id} (submitted " in status
    assert "4 of its 4 points have no record yet" in status
    fake.release()
    fake.wait_done()
    assert len(records(root)) == 4  # the job ran to the end without us
    status = subprocess.run(
        [sys.executable, str(PROJECT / "run.py"), "--name", "exp", "--status"],
        capture_output=True,
        text=True,
    ).stdout
    assert "exp: 4 points: 4 ok" in status and f"job {job_id}" not in status


def test_waiting_reports_new_records_only(write_spec, root):
    write_spec("exp", grid(2))
    assert run.main(["--name", "exp"]) == 0  # two records, as from an earlier run
    folder = root / "results" / "exp"
    old = record_stamps(folder)
    write_spec("exp", grid(3))
    first, _, late = load_spec("exp").points()
    pending = set(old) | {late.id}
    assert new_outcomes(folder, pending, old) == []  # nothing new yet
    job = Job("exp", "synthetic", str(root / "results"), None, 1, {})
    error = "Traceback\nValueError: boom\n"
    Store("exp").write(make_record(job, first, "error", {}, error))  # the ok one stays
    Store("exp").write(make_record(job, late, "error", {}, error))
    (outcome,) = new_outcomes(folder, pending, old)
    assert (outcome.id, outcome.status, outcome.message) == (late.id, "error", "ValueError: boom")
    assert new_outcomes(folder, pending - {late.id}, old) == []  # no longer pending


def test_a_job_in_the_error_state_ends_the_waiting_with_one_line(
    write_spec, root, fake, cli, monkeypatch
):
    """Was: a task in Eqw (as a quote in a log path gave) never leaves the queue, and run.py
    waited for it forever."""
    write_spec("exp", grid(2))
    fake.hold()  # queued, as a task in Eqw stays
    monkeypatch.setenv("FAKE_EQW", 'error: can\'t open output file "/gone/x"')
    result = cli("--name", "exp", "--backend", "sge", timeout=30)
    assert result.returncode == 1 and "exp: 2 points: 0 ok, 0 error, 0 timeout, 2 pending" in (
        result.stdout
    )
    job_id = re.search(r"submitted sge job (\d+)", result.stdout).group(1)
    assert result.stderr == (
        f"sge job {job_id} has tasks in the error state (qstat -j {job_id}): "
        f'error: can\'t open output file "/gone/x"; fix it and run qmod -cj {job_id}, '
        f"or qdel {job_id} and rerun; stopped waiting, 2 points pending\n"
    )
    assert not (only_run(root)["folder"] / "ended.json").exists()  # it may run once fixed


def test_a_slurm_task_that_never_started_ends_the_waiting_with_one_line(
    write_spec, root, fake, cli, monkeypatch
):
    """Was: tasks that Slurm could not start (no log) left their points pending without a
    word, on every submission; the waiting went on while the rest of the array ran."""
    write_spec("exp", grid(2, duration=3.0))  # task 2 still runs when task 1 has failed
    monkeypatch.setenv("FAKE_NOLOG_TASKS", "1")
    result = cli("--name", "exp", "--backend", "slurm", "--tasks", "2", timeout=60)
    assert result.returncode == 1, result.stderr
    job_id = re.search(r"submitted slurm job (\d+)", result.stdout).group(1)
    log = root / "logs" / "exp" / f"{job_id}.1.err"
    assert result.stderr == (
        f"slurm job {job_id} task 1 ended FAILED without a log ({log}): Slurm could not start "
        f"its job script (can the nodes write {log.parent}?); scancel {job_id} and rerun; "
        f"stopped waiting, 2 points pending\n"
    )


def test_lost_task_leaves_points_pending_and_rerun_submits_only_those(
    write_spec, root, fake, cli, monkeypatch
):
    write_spec("exp", grid(6))
    monkeypatch.setenv("FAKE_LOSE_TASKS", "2")
    result = cli("--name", "exp", "--backend", "sge", "--tasks", "3", timeout=60)
    assert result.returncode == 1, result.stderr
    assert "exp: 6 points: 4 ok, 0 error, 0 timeout, 2 pending" in result.stdout
    job_id = re.search(r"submitted sge job (\d+)", result.stdout).group(1)
    assert f"sge job {job_id} has left the queue, but 2 of its points have no record" in (
        result.stderr
    )
    assert "qacct: task 2: failed 0, exit status 137" in result.stderr
    lost = set(only_run(root)["points"][i].id for i in (1, 4))
    assert lost.isdisjoint(records(root))
    monkeypatch.delenv("FAKE_LOSE_TASKS")
    result = cli("--name", "exp", "--backend", "sge", "--tasks", "3")
    assert result.returncode == 0, result.stderr
    assert "running 2 of 6 points" in result.stdout
    newest = read_manifest(run_dirs(root)[-1] / "manifest.json")
    assert {p.id for p in newest["points"]} == lost and newest["tasks"] == 2


@pytest.mark.parametrize("kind", KINDS)
def test_a_point_that_kills_its_task_is_named_then_recorded_at_its_second_death(
    write_spec, root, fake, cli, kind
):
    # The dying point comes first in the only task: its death takes the task's share with it.
    grid = [{"x": [1], "die": [True]}, {"x": [0, 2, 3]}]
    write_spec("exp", {"trial": "synthetic", "param_grid": grid})
    dying = load_spec("exp").points()[0]
    command = ["--name", "exp", "--backend", kind, "--tasks", "1"]
    result = cli(*command, timeout=60)
    assert result.returncode == 1
    assert "exp: 4 points: 0 ok, 0 error, 0 timeout, 4 pending" in result.stdout
    log = root / "logs" / "exp" / "100.1.out"
    named = f"point {dying.id} #0 died with {kind} job 100 task 1 (log {log}); it has no record"
    assert named in result.stderr
    status = cli("--name", "exp", "--status")
    assert named in status.stdout  # was: --status never named it
    # The rerun runs it last in its task, so the rest is done before it dies again; then
    # it is an error record, and no rerun gives it a third task.
    result = cli(*command, timeout=60)
    assert result.returncode == 1
    assert "exp: 4 points: 3 ok, 1 error, 0 timeout, 0 pending" in result.stdout
    error = records(root)[dying.id]["error"]
    assert error.startswith("WorkerDied: ") and "killed its array task 2 times" in error
    assert str(log) in error and str(log.with_name("101.1.out")) in error
    assert "running 0 of 4 points" in cli(*command).stdout


@pytest.mark.parametrize("kind", KINDS)
def test_no_wait_records_a_point_that_killed_its_task_twice_instead_of_submitting_it(
    write_spec, root, fake, cli, kind
):
    write_spec("exp", {"trial": "synthetic", "param_grid": [{"x": [1], "die": [True]}]})
    (dying,) = load_spec("exp").points()
    command = ["--name", "exp", "--backend", kind, "--no-wait"]
    for _ in range(2):  # nobody waits: each later submission finds the last one gone
        assert cli(*command, timeout=60).returncode == 0
        fake.wait_done()
    result = cli(*command, timeout=60)
    assert result.returncode == 1 and "nothing submitted" in result.stdout
    assert f"error: point {dying.id}: WorkerDied: " in result.stderr
    assert "killed its array task 2 times" in records(root)[dying.id]["error"]
    assert len(run_dirs(root)) == 2  # no third array


def test_rerun_submits_nothing_when_done_and_refuses_while_a_job_runs(write_spec, root, fake, cli):
    write_spec("exp", grid(3))
    fake.hold()
    assert cli("--name", "exp", "--backend", "slurm", "--no-wait").returncode == 0
    result = cli("--name", "exp", "--backend", "slurm")
    assert result.returncode == 2
    assert re.search(r"slurm job \d+ is still in the queue with 3 of these points", result.stderr)
    assert len(fake.calls("sbatch")) == 1
    fake.release()
    fake.wait_done()
    result = cli("--name", "exp", "--backend", "slurm")
    assert result.returncode == 0 and "running 0 of 3 points" in result.stdout
    assert len(fake.calls("sbatch")) == 1 and len(run_dirs(root)) == 1


# -- mistakes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_missing_submit_command_exits_2_with_one_line(write_spec, root, cli, monkeypatch, kind):
    write_spec("exp", grid(1))
    monkeypatch.setenv("PATH", str(root))  # nothing there
    result = cli("--name", "exp", "--backend", kind)
    assert result.returncode == 2
    assert result.stderr == (
        f"error: the {kind} backend needs {SUBMIT[kind]} on PATH; run on the cluster's login node\n"
    )


@pytest.mark.parametrize(
    ("kind", "args", "message"),
    [
        ("sge", ["-t", "1-5"], "scheduler option -t: memo sets the array from --tasks"),
        ("sge", ["-sync", "y"], "scheduler option -sync: run.py waits by itself"),
        ("slurm", ["--array=1-5"], "scheduler option --array=1-5: memo sets the array"),
        # Abbreviations the schedulers take: getopt_long prefixes and glued values.
        ("slurm", ["-a1-3"], "scheduler option -a1-3: memo sets the array"),
        ("slurm", ["--arr=1-3"], "scheduler option --arr=1-3 (that is --array): memo sets"),
        ("slurm", ["--wai"], "scheduler option --wai (that is --wait): run.py waits"),
        ("slurm", ["--wra=id"], "scheduler option --wra=id (that is --wrap): memo submits"),
        ("slurm", ["-vW"], "scheduler option -vW (that is -W): run.py waits"),
        ("sge", ["-t1-3"], "scheduler option -t1-3: memo sets the array from --tasks"),
        ("sge", ["-by"], "scheduler option -by: memo submits a job script"),
        ("slurm", ["--tasks", "0"], "--tasks 0: give the number of array tasks, or -1"),
    ],
)
def test_bad_options_exit_2_with_one_line(write_spec, root, fake, cli, kind, args, message):
    write_spec("exp", grid(1))
    if args[0] == "--tasks":
        result = cli("--name", "exp", "--backend", kind, *args)
    else:
        result = cli("--name", "exp", "--backend", kind, "--", *args)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {message}") and result.stderr.count("\n") == 1
    assert fake.calls(SUBMIT[kind]) == []


@pytest.mark.parametrize("kind", KINDS)
def test_options_that_only_look_like_forbidden_ones_pass(kind):
    from memo.backends import BACKENDS

    words = {
        "sge": ["-terse", "-binding", "-tc", "-q"],
        "slurm": ["-p", "-pa", "--wait-all-nodes=1"],
    }
    backend = BACKENDS[kind](1, [])
    assert [backend.sets_option(w) for w in words[kind]] == [None] * len(words[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_an_experiment_name_with_a_quote_is_refused_before_submitting(root, fake, cli, kind):
    """Was: `--name "specs/q'x.json"` gave SGE tasks in Eqw for good (run.py waited
    forever) and Slurm tasks that died without logs."""
    path = root / "specs" / "q'x.json"
    path.parent.mkdir()
    path.write_text(json.dumps(grid(1)))
    result = cli("--name", str(path), "--backend", kind)
    assert result.returncode == 2 and result.stderr == (
        f'error: {path}: experiment name "q\'x" holds "\'"; use only ASCII letters, digits, '
        '"_", "-" and "."; rename the file\n'
    )
    assert fake.calls(SUBMIT[kind]) == [] and not (root / "results").exists()


@pytest.mark.parametrize("odd", ["it's", "a\nb", "50%"])
def test_a_project_root_job_script_options_cannot_hold_is_named(root, fake, cli, monkeypatch, odd):
    project = root / odd
    (project / "experiments").mkdir(parents=True)
    (project / "experiments" / "exp.json").write_text(json.dumps(grid(1)))
    monkeypatch.setenv("MEMO_ROOT", str(project))
    result = cli("--name", "exp", "--backend", "sge")
    what = {"it's": "a quote", "a\nb": "a newline", "50%": "'%'"}[odd]
    assert result.returncode == 2 and result.stderr == (
        f"error: logs {str(project / 'logs' / 'exp')!r} has {what}, which job script options "
        f"cannot hold; use a MEMO_ROOT without blanks, quotes, '\\', '$' or '%'\n"
    )
    assert fake.calls("qsub") == []


def test_refused_submission_exits_2_with_the_schedulers_reason(
    write_spec, root, fake, cli, monkeypatch
):
    write_spec("exp", grid(1))
    reason = 'Unable to run job: Job was rejected because job requests unknown queue "nope".'
    monkeypatch.setenv("FAKE_REFUSE", reason)
    result = cli("--name", "exp", "--backend", "sge", "--", "-q", "nope")
    assert result.returncode == 2
    assert result.stderr == f"error: qsub refused the job: {reason}\n"


def test_no_wait_is_only_for_cluster_backends(write_spec, root, cli):
    write_spec("exp", grid(1))
    result = cli("--name", "exp", "--no-wait")
    assert result.returncode == 2
    assert result.stderr == "error: --no-wait is for the cluster backends, not joblib\n"


# -- a real scheduler -------------------------------------------------------------------------

REAL_ARGS = {
    "sge": ["-q", "all.q", "-pe", "smp", "2"],
    "slurm": ["--partition", "debug", "-c", "2"],
}


@pytest.mark.parametrize("kind", [pytest.param(k, marks=REAL[k]) for k in KINDS])
def test_real_scheduler_runs_every_point_once(write_spec, root, cli, monkeypatch, kind):
    monkeypatch.setenv("MEMO_POLL_RECORDS_S", "0.2")
    monkeypatch.setenv("MEMO_POLL_QUEUE_S", "1")
    monkeypatch.setenv("MEMO_GRACE_S", "5")
    spec = {
        "trial": "synthetic",
        "param_grid": [{"x": list(range(6)), "duration": [0.1]}, {"x": [99], "fail": [True]}],
    }
    write_spec("exp", spec)
    start = time.monotonic()
    result = cli("--name", "exp", "--backend", kind, "--tasks", "3", "--", *REAL_ARGS[kind])
    assert result.returncode == 1, result.stdout + result.stderr  # the failing point
    assert "exp: 7 points: 6 ok, 1 error, 0 timeout, 0 pending" in result.stdout
    recs = records(root)
    assert sorted(r["status"] for r in recs.values()) == ["error"] + ["ok"] * 6
    (failed,) = [r for r in recs.values() if r["status"] == "error"]
    assert "RuntimeError: failing on purpose at x=99" in failed["error"]
    assert {(r["backend"], r["threads"], r["host"]) for r in recs.values()} == {
        (kind, 2, socket.gethostname())
    }
    assert sorted(task_lines(root)) == sorted(recs)  # every point ran exactly once
    assert only_run(root)["tasks"] == 3
    print(f"{kind}: 7 points in 3 tasks took {time.monotonic() - start:.1f} s")

    result = cli("--name", "exp", "--backend", kind, "--tasks", "3", "--", *REAL_ARGS[kind])
    assert result.returncode == 1 and "running 0 of 7 points" in result.stdout
    assert len(run_dirs(root)) == 1  # nothing submitted


@pytest.mark.parametrize("kind", [pytest.param(k, marks=REAL[k]) for k in KINDS])
def test_real_scheduler_records_a_point_that_killed_its_task_twice(
    write_spec, root, cli, monkeypatch, kind
):
    monkeypatch.setenv("MEMO_POLL_RECORDS_S", "0.2")
    monkeypatch.setenv("MEMO_POLL_QUEUE_S", "1")
    monkeypatch.setenv("MEMO_GRACE_S", "5")
    grid = [{"x": [1], "die": [True]}, {"x": [0, 2]}]
    write_spec("exp", {"trial": "synthetic", "param_grid": grid})
    dying = load_spec("exp").points()[0]
    command = ["--name", "exp", "--backend", kind, "--tasks", "1", "--", *REAL_ARGS[kind]]
    result = cli(*command)
    assert result.returncode == 1 and "0 ok, 0 error, 0 timeout, 3 pending" in result.stdout
    assert re.search(rf"point {dying.id} #0 died with {kind} job \d+ task 1", result.stderr)
    assert f"point {dying.id} #0 died with" in cli("--name", "exp", "--status").stdout
    result = cli(*command)
    assert result.returncode == 1 and "2 ok, 1 error, 0 timeout, 0 pending" in result.stdout
    assert "killed its array task 2 times" in records(root)[dying.id]["error"]


@pytest.mark.parametrize("kind", [pytest.param(k, marks=REAL[k]) for k in KINDS])
def test_real_scheduler_runs_each_task_share_as_a_group(write_spec, root, cli, monkeypatch, kind):
    """Each array task groups the points of its share (memo/run/groups.py): one record per
    point, each once, with the size of its group."""
    monkeypatch.setenv("MEMO_POLL_RECORDS_S", "0.2")
    monkeypatch.setenv("MEMO_POLL_QUEUE_S", "1")
    monkeypatch.setenv("MEMO_GRACE_S", "5")
    grid = {"x": list(range(6)), "duration": [0.5], "group": [True]}
    write_spec("exp", {"trial": "synthetic", "param_grid": grid})
    result = cli("--name", "exp", "--backend", kind, "--tasks", "2", "--", *REAL_ARGS[kind])
    assert result.returncode == 0, result.stdout + result.stderr
    recs = records(root)
    assert sorted(r["group"] for r in recs.values()) == [3] * 6
    assert sorted(task_lines(root)) == sorted(recs)  # every point ran exactly once
