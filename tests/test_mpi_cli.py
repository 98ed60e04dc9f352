"""End-to-end searches under a real ``mpirun``, as a user launches them in a batch job.

Each launch has its own wall-clock guard: on expiry the whole process group is killed and
the test fails instead of hanging.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from hpsearch import load_results
from tests.killing import finish

BIN = os.path.dirname(sys.executable)
MPIRUN = os.path.join(BIN, "mpirun")
GUARD = 120  # seconds any one mpirun may take
pytestmark = pytest.mark.skipif(not os.path.exists(MPIRUN), reason="mpirun is not installed")


def launch(n, *args, cwd, env=None, method="rs", program=None):
    """``mpirun -n N python -m hpsearch.METHOD ARGS`` (``program``: a list run by Python
    instead of ``-m hpsearch.METHOD``)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "MPI_", "HYDRA"))}
    environ.update(env or {})
    program = program or ["-m", f"hpsearch.{method}"]
    return subprocess.Popen(
        [MPIRUN, "-n", str(n), sys.executable, *program, *map(str, args)],
        cwd=cwd,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the guard can kill mpirun and every rank at once
    )


def rank_pids(rank, marker):
    """PIDs of the processes of MPI rank ``rank`` whose command line contains ``marker``."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        if marker in cmdline and f"PMI_RANK={rank}".encode() in environ and "mpirun" not in cmdline:
            pids.append(int(pid))
    return pids


def wait_for_rows(path, n, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path) and len(load_results(path)) >= n:
            return
        time.sleep(0.2)
    pytest.fail(f"{path} did not reach {n} rows in {timeout} s")


def journal_ids(out):
    with open(os.path.join(out, "submitted.jsonl")) as f:
        return [json.loads(line)["job_id"] for line in f]


def test_failures_are_recorded_and_every_rank_lives_on(repo_root, tmp_path, faulty_problem):
    out = tmp_path / "out"
    proc = launch(
        4, "--problem", faulty_problem, "--max-evals", 16, "--output", out, "--eval-timeout", 1,
        "--seed", 1, cwd=repo_root, env={"HPSEARCH_FAULTY_MODES": "ok,raise,nan,abort,hang"},
    )  # fmt: skip
    code, _, err = finish(proc, GUARD)
    assert code == 0, err
    df = load_results(str(out))
    assert len(df) == 16 and df["job_id"].is_unique
    expected = {
        "ok": "DONE",
        "raise": "FAILED",
        "nan": "FAILED",
        "abort": "FAILED",
        "hang": "TIMEOUT",
    }
    assert all(expected[m] == s for m, s in zip(df["p:mode"], df["status"], strict=True))
    assert "killed by signal SIGABRT" in " ".join(df.loc[df["p:mode"] == "abort", "error"])
    assert set(df["worker"]) == {1, 2, 3}
    assert set(df["host"]) == {os.uname().nodename}


def test_sigterm_stops_cleanly_with_every_row_written(repo_root, tmp_path):
    out = tmp_path / "out"
    proc = launch(
        5, "--problem", "problems.ackley", "--max-evals", 500, "--output", out, "--grace", 0.3,
        cwd=repo_root, env={"HPSEARCH_ACKLEY_SLEEP": "0.2,0.8"},
    )  # fmt: skip
    wait_for_rows(out / "results.csv", 6)
    proc.send_signal(signal.SIGTERM)  # what a batch system does at the walltime
    code, stdout, err = finish(proc, timeout=60)
    assert code == 0, err
    assert "stopped by SIGTERM" in stdout
    df = load_results(str(out))
    assert sorted(df["job_id"]) == sorted(journal_ids(out))  # every handed-out job has its row
    assert df["job_id"].is_unique and set(df["status"]) <= {"DONE", "CANCELLED"}
    assert (df["status"] == "DONE").sum() >= 6


def test_resume_after_the_master_was_killed(repo_root, tmp_path):
    out = tmp_path / "out"
    args = ["--problem", "problems.ackley", "--max-evals", 40, "--output", out, "--seed", 2]
    env = {"HPSEARCH_ACKLEY_SLEEP": "0.1,0.4"}
    proc = launch(5, *args, cwd=repo_root, env=env)
    wait_for_rows(out / "results.csv", 8)
    masters = rank_pids(0, str(out))  # this run only: other searches may be running
    assert len(masters) == 1
    os.kill(masters[0], signal.SIGKILL)
    code, _, _ = finish(proc, timeout=60)  # the launcher takes the other ranks down
    assert code != 0
    before = load_results(str(out))
    assert len(before) < 40

    code, _, err = finish(launch(5, *args, "--resume", cwd=repo_root, env=env))
    assert code == 0, err
    df = load_results(str(out))
    finished = df[df["status"] == "DONE"]
    assert len(finished) == 40 and finished["job_id"].is_unique
    assert sorted(finished["job_id"]) == sorted(set(journal_ids(out)))
    # rows written before the kill are kept as they were
    assert df.head(len(before)).equals(before)


def test_a_second_search_on_a_running_ones_output_exits_2(repo_root, tmp_path):
    out = tmp_path / "out"
    args = ["--problem", "problems.ackley", "--output", out, "--seed", 4]
    env = {"HPSEARCH_ACKLEY_SLEEP": "0.1,0.3"}
    first = launch(3, *args, "--max-evals", 500, cwd=repo_root, env=env)
    wait_for_rows(out / "results.csv", 4)
    (master,) = rank_pids(0, str(out))
    for extra in (["--resume"], []):
        second = launch(3, *args, "--max-evals", 500, *extra, cwd=repo_root, env=env)
        code, _, err = finish(second, timeout=60)
        assert code == 2, err
        assert f"--output {out} is in use by another search (pid {master} on host" in err
    os.kill(master, signal.SIGKILL)  # the lock goes with the master
    assert finish(first, timeout=60)[0] != 0
    n_before = len(load_results(str(out)))
    resumed = launch(3, *args, "--max-evals", n_before + 3, "--resume", cwd=repo_root, env=env)
    code, _, err = finish(resumed, GUARD)
    assert code == 0, err
    df = load_results(str(out))
    assert df["job_id"].is_unique and (df["status"] == "DONE").sum() >= n_before + 3


def test_timeout_ends_the_search_with_status_0(repo_root, tmp_path):
    out = tmp_path / "out"
    # 8 s: a worker's evaluation process takes up to 3 s to start on a slow 2-core machine,
    # and the hand-out latency needs some worker to finish a job and get the next.
    proc = launch(
        4, "--problem", "problems.ackley", "--max-evals", 1000, "--output", out, "--timeout", 8,
        "--grace", 0.2, cwd=repo_root, env={"HPSEARCH_ACKLEY_SLEEP": "0.3,0.6"}, method="ambs",
    )  # fmt: skip
    code, stdout, err = finish(proc, timeout=90)
    assert code == 0, err
    assert "stopped by timeout" in stdout
    assert "hand-out latency (report to next job): median" in stdout
    df = load_results(str(out))
    assert 0 < len(df) < 1000 and set(df["status"]) <= {"DONE", "CANCELLED"}


def test_bad_input_under_mpirun_exits_2_without_hanging(repo_root, tmp_path):
    (tmp_path / "results.csv").write_text("job_id\n")
    code, _, err = finish(
        launch(4, "--problem", "problems.ackley", "--output", tmp_path, cwd=repo_root), timeout=60
    )
    assert code == 2
    assert "exists: pass --resume" in err


@pytest.mark.parametrize("isolation", [[], ["--no-isolation"]], ids=["isolated", "in-process"])
def test_trials_report_and_checkpoint_under_mpirun(repo_root, tmp_path, isolation):
    out = tmp_path / "out"
    stepper = os.path.join(repo_root, "tests", "problem_files", "stepper.py")
    proc = launch(
        4, "--problem", stepper, "--max-evals", 9, "--output", out, "--seed", 0,
        "--keep-checkpoints", 2, *isolation, cwd=repo_root,
        env={"HPSEARCH_STEPPER_STEPS": "4", "HPSEARCH_STEPPER_SLEEP": "0.05"},
    )  # fmt: skip
    code, _, err = finish(proc, GUARD)
    assert code == 0, err
    df = load_results(str(out))
    steps = pd.read_csv(out / "steps.csv")
    assert len(df) == 9 and (df["status"] == "DONE").all() and set(df["worker"]) == {1, 2, 3}
    assert (df["step_end"] == 4).all() and not df["stopped"].any()
    assert sorted(steps.groupby("job_id")["step"].apply(list).tolist()) == [[1, 2, 3, 4]] * 9
    for job_id, rows in steps.groupby("job_id"):  # the last report is the result's value
        value = df.loc[df["job_id"] == job_id, "objective"].item()
        assert rows["objective"].iloc[-1] == pytest.approx(value)
    best_two = df.nsmallest(2, "objective")["job_id"].astype(str)
    assert sorted(os.listdir(out / "checkpoints")) == sorted(best_two)


def test_population_based_training_under_mpirun(repo_root, tmp_path):
    out = tmp_path / "out"
    stepper = os.path.join(repo_root, "tests", "problem_files", "stepper.py")
    proc = launch(
        4, "--problem", stepper, "--population", 6, "--interval", 2, "--max-steps", 8,
        "--output", out, "--seed", 0, cwd=repo_root, method="pbt",
        env={"HPSEARCH_STEPPER_SLEEP": "0.02"},
    )  # fmt: skip
    code, stdout, err = finish(proc, GUARD)
    assert code == 0, err
    assert "stopped by exhausted" in stdout
    df = load_results(str(out))
    assert (df["status"] == "DONE").all() and set(df["worker"]) == {1, 2, 3}
    assert (df.groupby("member")["step_end"].max() == 8).all()
    assert (df["step_end"] - df["step_start"] == 2).all()


def test_replica_exchange_under_mpirun(repo_root, tmp_path):
    out = tmp_path / "out"
    stepper = os.path.join(repo_root, "tests", "problem_files", "stepper.py")
    proc = launch(
        5, "--problem", stepper, "--replicas", 4, "--ladder", "rate=0.1:1:log",
        "--exchange-every", 2, "--max-steps", 6, "--output", out, "--seed", 0,
        cwd=repo_root, method="rex", env={"HPSEARCH_STEPPER_SLEEP": "0.02"},
    )  # fmt: skip
    code, stdout, err = finish(proc, GUARD)
    assert code == 0, err
    assert "stopped by exhausted" in stdout
    df = load_results(str(out))
    assert (df["status"] == "DONE").all() and set(df["worker"]) == {1, 2, 3, 4}
    assert (df.groupby("member")["step_end"].max() == 6).all()
    assert pd.read_csv(out / "exchanges.csv")["step"].tolist() == [2, 4]


def test_successive_halving_under_mpirun(repo_root, tmp_path):
    out = tmp_path / "out"
    curves = os.path.join(repo_root, "tests", "problem_files", "curves.py")
    proc = launch(
        5, "--problem", curves, "--max-evals", 24, "--stopper", "asha", "--max-steps", 9,
        "--output", out, "--seed", 0, cwd=repo_root, env={"HPSEARCH_CURVES_SLEEP": "0.02"},
    )  # fmt: skip
    code, _, err = finish(proc, GUARD)
    assert code == 0, err
    df = load_results(str(out))
    assert len(df) == 24 and (df["status"] == "DONE").all() and set(df["worker"]) == {1, 2, 3, 4}
    stopped, full = df[df["stopped"]], df[~df["stopped"]]
    assert (full["step_end"] == 9).all() and len(stopped) >= 12
    assert (stopped["step_end"] < 9).all() and set(df["rung"]) <= {0, 1}
    assert not df.loc[df["p:x"].idxmin(), "stopped"]


def test_the_master_holds_the_output_until_its_last_file(repo_root, tmp_path):
    from tests.lock_probe import HELD

    out = tmp_path / "out"
    probe = ["tests/lock_probe.py", out, "rs"]
    proc = launch(
        3, "--problem", "problems.ackley", "--max-evals", 4, "--output", out, cwd=repo_root,
        program=probe, env={"PYTHONPATH": repo_root},
    )  # fmt: skip
    code, stdout, err = finish(proc, timeout=90)
    assert code == 0, err
    assert f"{HELD}True" in stdout.splitlines()
    assert (out / "best.json").exists()


@pytest.mark.parametrize(
    ("method", "flags", "n_evals"),
    [("grid", ["--grid-points", 3], 15), ("optuna", ["--sampler", "tpe"], 10)],
)
def test_grid_and_optuna_searches_run_under_mpirun(repo_root, tmp_path, method, flags, n_evals):
    out = tmp_path / "out"
    problem = os.path.join(repo_root, "tests", "problem_files", "small_grid.py")
    proc = launch(
        3, "--problem", problem, "--max-evals", 10 if method == "optuna" else 100,
        "--output", out, "--seed", 5, *flags, cwd=repo_root, method=method,
    )  # fmt: skip
    code, stdout, err = finish(proc, GUARD)
    assert code == 0, err
    df = load_results(str(out))
    assert len(df) == n_evals and (df["status"] == "DONE").all()
    assert set(df["worker"]) == {1, 2}
    assert not df.duplicated(["p:x", "p:width", "p:act"]).any()
    if method == "grid":  # the whole grid once, then the search ends by itself
        assert "stopped by exhausted" in stdout
