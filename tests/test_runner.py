"""run.py end to end on the synthetic trial: resume, failures, timeouts, signals, reports."""

import json
import os
import signal
import time

import joblib
import pandas as pd
import pytest

import run
from conftest import Journal, records, start_runner
from memo.run import steps
from memo.store.records import Store, load_results

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def grid_spec(n=6, **defaults):
    return {"trial": "synthetic", "param_grid": {"x": list(range(n))}, "defaults": defaults}


def test_run_writes_records_and_table_then_resumes(write_spec, root, capsys):
    write_spec("exp", grid_spec(6))
    assert run.main(["--name", "exp"]) == 0
    recs = records(root)
    assert len(recs) == 6 and all(r["status"] == "ok" for r in recs.values())
    table = pd.read_csv(root / "results" / "exp.csv")
    assert list(table["_index"]) == list(range(6))
    assert list(table["value"]) == [float(x) for x in range(6)]
    assert {"id", "x", "y", "seed", "status", "value", "wall_time"} <= set(table.columns)
    assert "curve" not in table.columns  # lists stay in the records
    parquet = root / "results" / "exp" / "records.parquet"
    written, stamp = Store("exp").rows().stamps(), parquet.stat().st_mtime_ns
    capsys.readouterr()
    assert run.main(["--name", "exp"]) == 0
    assert "running 0 of 6 points" in capsys.readouterr().out
    assert Store("exp").rows().stamps() == written and parquet.stat().st_mtime_ns == stamp


def test_record_holds_provenance(write_spec, root):
    write_spec("exp", grid_spec(1))
    run.main(["--name", "exp"])
    (record,) = records(root).values()
    assert record["params"]["seed"] == record["seed"] == record["metrics"]["seed_used"]
    assert record["_index"] == 0 and record["trial"] == "synthetic"
    assert record["wall_time"] >= 0 and record["cpu_time"] >= 0 and record["host"]
    assert record["versions"]["numpy"] and record["versions"]["python"]
    assert "torch" in record["versions"] and "scikit-learn" in record["versions"]
    assert set(record["git"]) == {"commit", "dirty"} and record["backend"] == "joblib"


def test_failures_are_isolated_and_exit_1(write_spec, root, capsys):
    spec = {"trial": "synthetic", "param_grid": {"x": [0, 1, 2, 3], "fail": [False, True]}}
    write_spec("exp", spec)
    assert run.main(["--name", "exp", "--tasks", "2"]) == 1
    recs = records(root).values()
    assert sorted(r["status"] for r in recs) == ["error"] * 4 + ["ok"] * 4
    failed = [r for r in recs if r["status"] == "error"]
    assert all("RuntimeError: failing on purpose" in r["error"] for r in failed)
    assert all("Traceback" in r["error"] for r in failed)
    assert "exp: 8 points: 4 ok, 4 error, 0 timeout, 0 pending" in capsys.readouterr().out


def test_a_point_that_kills_its_worker_is_an_error_record_and_the_rest_run(write_spec, root):
    grid = [{"x": list(range(6)), "duration": [0.3]}, {"x": [99], "die": [True]}]
    write_spec("exp", {"trial": "synthetic", "param_grid": grid})
    assert run.main(["--name", "exp", "--tasks", "2"]) == 1
    by_x = {r["params"]["x"]: r for r in records(root).values()}
    assert sorted(by_x) == [0, 1, 2, 3, 4, 5, 99]
    assert all(by_x[x]["status"] == "ok" for x in range(6))  # those killed with it ran again
    assert by_x[99]["status"] == "error"
    assert by_x[99]["error"].startswith("WorkerDied: the process running this point died")
    assert "SIGKILL" in by_x[99]["error"]
    assert run.main(["--name", "exp", "--tasks", "2"]) == 1  # not run again, still failed


def test_nan_metric_is_an_error(write_spec, root):
    write_spec("exp", {"trial": "synthetic", "param_grid": {"nan": [False, True]}})
    assert run.main(["--name", "exp"]) == 1
    bad = [r for r in records(root).values() if r["status"] == "error"]
    assert len(bad) == 1 and "metric 'value' is NaN" in bad[0]["error"]


@pytest.mark.parametrize("tasks", ["1", "2"])
def test_timeout_becomes_a_record_and_retry_failed_reruns_it(write_spec, root, tasks):
    spec = {"trial": "synthetic", "param_grid": {"x": [1, 2, 3], "duration": [0.0, 3.0]}}
    write_spec("exp", spec)
    start = time.monotonic()
    assert run.main(["--name", "exp", "--tasks", tasks, "--timeout", "0.5"]) == 1
    assert time.monotonic() - start < 8
    statuses = sorted(r["status"] for r in records(root).values())
    assert statuses == ["ok"] * 3 + ["timeout"] * 3
    # A plain rerun leaves failed points alone; --retry-failed runs exactly them again.
    assert run.main(["--name", "exp", "--tasks", tasks, "--timeout", "0.5"]) == 1
    spec["param_grid"]["duration"] = [0.0, 0.6]
    write_spec("exp", spec)  # new ids: a new grid; the old records stay as strays
    assert run.main(["--name", "exp", "--tasks", tasks]) == 0


def test_retry_failed_reruns_only_failed_points(write_spec, root, capsys):
    write_spec("exp", {"trial": "synthetic", "param_grid": {"x": [1, 2], "duration": [0.0, 1.0]}})
    assert run.main(["--name", "exp", "--timeout", "0.3"]) == 1
    ok_before = {i: r["finished"] for i, r in records(root).items() if r["status"] == "ok"}
    capsys.readouterr()
    assert run.main(["--name", "exp", "--retry-failed"]) == 0
    assert "running 2 of 4 points" in capsys.readouterr().out
    after = records(root)
    assert all(r["status"] == "ok" for r in after.values())
    assert all(after[i]["finished"] == f for i, f in ok_before.items())


def test_threads_split_between_tasks(write_spec, root):
    write_spec("exp", grid_spec(2))
    run.main(["--name", "exp", "--tasks", "2"])
    cores = os.cpu_count()
    assert {r["threads"] for r in records(root).values()} == {max(1, cores // 2)}


def test_dry_run_status_and_collect(write_spec, root, capsys):
    write_spec("exp", {"trial": "synthetic", "param_grid": {"x": [0, 1, 2], "fail": [False, True]}})
    assert run.main(["--name", "exp", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "exp: 6 points: 0 ok, 0 error, 0 timeout, 6 pending" in out
    assert "would run 6 points now" in out and "fail=false x=0.0" in out
    assert not (root / "results" / "exp").exists()

    run.main(["--name", "exp"])
    capsys.readouterr()
    assert run.main(["--name", "exp", "--status"]) == 1  # as a run: not every point is ok
    out = capsys.readouterr().out
    assert "3 ok, 3 error, 0 timeout, 0 pending" in out
    assert "last failures:" in out and "RuntimeError: failing on purpose at x=" in out
    assert "slowest points:" in out

    (root / "results" / "exp.csv").unlink()
    assert run.main(["--name", "exp", "--collect"]) == 1  # some points failed
    assert len(pd.read_csv(root / "results" / "exp.csv")) == 6


def test_a_spec_given_by_path_says_where_its_results_go_and_status_collect_take_it(
    root, tmp_path, capsys
):
    spec = tmp_path / "elsewhere" / "tiny.json"
    spec.parent.mkdir()
    spec.write_text(json.dumps(grid_spec(3)))
    assert run.main(["--name", str(spec)]) == 0
    out = capsys.readouterr().out
    folder = root / "results" / "tiny"
    assert out.startswith(
        f"note: {spec} is experiment 'tiny': its records go to {folder}/, its table to"
        f" {folder}.csv (python plot.py {spec} draws it)\n"
    )
    assert len(records(root, "tiny")) == 3
    assert run.main(["--name", str(spec), "--status"]) == 0
    assert "tiny: 3 points: 3 ok, 0 error, 0 timeout, 0 pending" in capsys.readouterr().out
    (root / "results" / "tiny.csv").unlink()
    assert run.main([str(spec), "--collect"]) == 0  # the path as the positional name too
    assert len(pd.read_csv(root / "results" / "tiny.csv")) == 3


def test_the_experiment_may_be_positional_and_help_lists_the_experiments(write_spec, cli):
    write_spec("exp", grid_spec(2))
    write_spec("other", grid_spec(1))
    assert run.main(["exp", "--dry-run"]) == 0
    result = cli("--help")
    assert result.returncode == 0
    assert "experiments (" in result.stdout and "\n  exp, other\n" in result.stdout
    result = cli("exp", "--name", "other")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "run.py: error: the experiment given twice: exp and --name other"
    )
    result = cli()
    assert result.returncode == 2 and "NAME or --name NAME" in result.stderr.splitlines()[-1]
    result = cli("exp", "--", "-q", "all.q")  # words after -- stay the scheduler's
    assert (
        result.stderr == "error: the joblib backend takes no scheduler arguments, got: -q all.q\n"
    )


def test_records_outside_the_grid_are_kept_and_reported(write_spec, root, capsys):
    write_spec("exp", grid_spec(4))
    run.main(["--name", "exp"])
    write_spec("exp", grid_spec(2))
    capsys.readouterr()
    assert run.main(["--name", "exp", "--status"]) == 0
    assert "2 records are of points no longer in the grid (kept)" in capsys.readouterr().out
    assert len(records(root)) == 4
    run.main(["--name", "exp", "--collect"])
    assert len(pd.read_csv(root / "results" / "exp.csv")) == 2


def test_status_cache_follows_rewritten_records(write_spec, root):
    write_spec("exp", {"trial": "synthetic", "param_grid": {"x": [1], "duration": [0.0, 0.5]}})
    run.main(["--name", "exp", "--timeout", "0.2"])
    store = Store("exp")
    assert sorted(store.rows().status().values()) == ["ok", "timeout"]
    run.main(["--name", "exp", "--retry-failed"])
    assert sorted(store.rows().status().values()) == ["ok", "ok"]


def test_load_results_keeps_curves(write_spec, root):
    write_spec("exp", grid_spec(3))
    run.main(["--name", "exp"])
    frame = load_results("exp")
    assert len(frame) == 3
    assert sorted(map(tuple, frame["curve"])) == [(0.0, 0.0), (1.0, 0.5), (2.0, 1.0)]
    assert "curve" not in load_results("exp", curves=False).columns


def test_backend_mistakes_exit_2(write_spec, root, cli):
    write_spec("exp", grid_spec(1))
    result = cli("--name", "exp", "--", "-q", "all.q")
    assert result.returncode == 2
    assert (
        result.stderr == "error: the joblib backend takes no scheduler arguments, got: -q all.q\n"
    )
    result = cli("--name", "exp", "--tasks", "0")
    assert result.returncode == 2 and "--tasks 0" in result.stderr
    result = cli("--name", "exp", "--tasks", "100000000000")  # was: OverflowError traceback
    most = 16 * joblib.cpu_count()
    assert result.returncode == 2 and result.stderr == (
        f"error: --tasks 100000000000: at most {most} worker processes here (16 per core); "
        f"give fewer, or -1 for one per core\n"
    )
    for limit in ("nan", "inf", "-1"):
        result = cli("--name", "exp", "--timeout", limit)
        assert result.returncode == 2 and f"--timeout {limit}: give a positive" in result.stderr
    assert not (root / "results" / "exp").exists()


def test_a_results_folder_that_cannot_be_written_is_one_line_before_any_point_runs(
    write_spec, root, capsys, monkeypatch
):
    def refused(dir):  # as on a read-only disk (the tests run as root: chmod would not do)
        raise PermissionError(13, "Permission denied")

    write_spec("exp", grid_spec(2))
    monkeypatch.setattr(steps.tempfile, "TemporaryFile", refused)
    assert run.main(["--name", "exp"]) == 2
    out, err = capsys.readouterr()
    assert (
        err == f"error: cannot write records into {root / 'results' / 'exp'}: Permission denied\n"
    )
    assert "running" not in out and records(root) == {}


def test_ctrl_c_before_the_points_run_is_one_line(write_spec, root, capsys, monkeypatch):
    def interrupted(name):
        raise KeyboardInterrupt  # say, while a huge grid expands

    monkeypatch.setattr(run, "load_spec", interrupted)
    assert run.main(["--name", "exp"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"


def wait_for_records(root, count, proc, limit=60):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if len(records(root)) >= count:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("no records appeared")


def test_sigkill_mid_sweep_then_rerun_runs_every_point_exactly_once(write_spec, root, cli):
    write_spec("exp", grid_spec(40, duration=0.1))
    seen = Journal(root)
    proc = start_runner("--name", "exp", "--tasks", "2")
    seen.watch([proc], until=6)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its workers, as when a node dies
    proc.wait()
    done = len(records(root))
    assert 6 <= done < 40
    result = cli("--name", "exp", "--tasks", "2")
    assert result.returncode == 0, result.stderr
    assert f"running {40 - done} of 40 points" in result.stdout
    recs = records(root)
    assert len(recs) == 40 and all(r["status"] == "ok" for r in recs.values())
    seen.look()
    written = seen.written()
    assert len(written) == 40 and all(len(t) == 1 for t in written.values()), written


def test_a_second_run_of_a_running_experiment_is_refused(write_spec, root, cli):
    write_spec("exp", grid_spec(40, duration=0.5))  # 10 s: killed when the test is done
    proc = start_runner("--name", "exp", "--tasks", "2")
    try:
        wait_for_records(root, 2, proc)
        second = cli("--name", "exp", "--tasks", "2")
        assert second.returncode == 2 and "running" not in second.stdout
        assert second.stderr == (
            f"error: another run.py is running exp (pid {proc.pid}); wait for it, or follow it"
            " with --status\n"
        )
        assert cli("--name", "exp", "--status").returncode == 1  # reading is not refused
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_cleanly_and_keeps_finished_points(write_spec, root, cli, sig):
    write_spec("exp", grid_spec(40, duration=0.1))
    proc = start_runner("--name", "exp", "--tasks", "2")
    wait_for_records(root, 4, proc)
    os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted:" in err and "rerun the same command to resume" in err
    assert "Traceback" not in err
    kept = records(root)
    assert f"interrupted: {len(kept)} points finished and recorded in this run" in err
    assert all(r["status"] == "ok" for r in kept.values())
    result = cli("--name", "exp", "--tasks", "2")
    assert result.returncode == 0 and len(records(root)) == 40


def test_memo_moons_file_dry_runs_127500_points(write_spec, root, capsys):
    # patrickfinke/memo's experiments/moons.json grid, unchanged (plots left out).
    memo_moons = {
        "trial": "algorithm",
        "param_grid": {
            "restart": {"type_": "range", "stop": 50},
            "dataset": ["moons"],
            "n_iter": {"type_": "range", "start": 10, "stop": 510, "step": 10},
            "max_bias": {"type_": "range", "start": 0.0, "stop": 2.55, "step": 0.05},
            "activation": ["thres"],
        },
    }
    write_spec("memo_moons", memo_moons)
    assert run.main(["--name", "memo_moons", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "memo_moons: 127500 points: 0 ok, 0 error, 0 timeout, 127500 pending" in out
    from memo.run.spec import load_spec

    biases = sorted({p.params["max_bias"] for p in load_spec("memo_moons").points()})
    assert len(biases) == 51 and biases[3] == 0.15 and biases[-1] == 2.5
