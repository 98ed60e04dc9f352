"""Evaluations and the processes they start, as users meet them: programs a run starts, stops
by signal, a problem that imports only where the search starts, runs that exit or return
something odd, and bad output paths. Searches run as real command lines (local pool or
mpirun) in a session of their own, so a guard can kill everything they started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hpsearch import load_results
from hpsearch.evaluation import CANCELLED, DONE, FAILED, MAX_TEXT, Job, evaluate, interpret

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBLEMS = os.path.join(ROOT, "tests", "problem_files")
SPAWNER = os.path.join(PROBLEMS, "spawner.py")
WORKER_IMPORT = os.path.join(PROBLEMS, "worker_import.py")
FAULTY = os.path.join(PROBLEMS, "faulty.py")
MPIRUN = os.path.join(os.path.dirname(sys.executable), "mpirun")
needs_mpirun = pytest.mark.skipif(not os.path.exists(MPIRUN), reason="mpirun is not installed")


def start(*args, env=None, ranks=0, method="rs"):
    """``python -m hpsearch.<method> ARGS`` (under ``mpirun -n ranks`` when ranks > 0), in a
    session of its own, output captured."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "MPI_", "HYDRA"))}
    command = [sys.executable, "-m", f"hpsearch.{method}", *map(str, args)]
    if ranks:
        command = [MPIRUN, "-n", str(ranks), *command]
    return subprocess.Popen(
        command, cwd=ROOT, env={**environ, **(env or {})}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def finish(proc, timeout=90):
    """Wait for ``proc``; on expiry kill its session's process group and fail."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the search did not end (and close its output) within {timeout} s:\n{err}")
    return proc.returncode, out, err


def wait_until(ready, limit=60.0):
    end = time.monotonic() + limit
    while not ready():
        assert time.monotonic() < end, f"not ready after {limit:g} s"
        time.sleep(0.1)


def journal(out):
    path = os.path.join(out, "submitted.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line)["job_id"] for line in f if line.endswith("\n")]


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` in the process tree."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def ignores(mask: str, sig: signal.Signals) -> bool:
    return bool(int(mask, 16) >> (sig - 1) & 1)


@pytest.fixture
def spawned(tmp_path):
    """Directory the spawner problem records its programs in; returns ``{pid: SigIgn}``
    through ``spawned.read()``. Programs still running at the end are killed."""
    directory = tmp_path / "spawned"
    directory.mkdir()

    class Spawned:
        path = str(directory)

        @staticmethod
        def read() -> dict[int, str]:
            records = [p.read_text().split() for p in directory.iterdir() if p.suffix != ".tmp"]
            return {int(pid): mask for pid, mask in records}

    yield Spawned
    for pid in Spawned.read():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# ---- what an evaluation starts ends with it, and can be signalled ---------------------------
def test_a_timeout_kills_the_programs_the_evaluation_started(tmp_path, spawned):
    out = tmp_path / "out"
    proc = start(
        "--problem", SPAWNER, "--max-evals", 2, "--workers", 1, "--eval-timeout", 2,
        "--output", out, env={"HPSEARCH_SPAWNER_DIR": spawned.path, "HPSEARCH_SPAWNER_HANG": "1"},
    )  # fmt: skip
    code, _, err = finish(proc, timeout=60)  # a program left running keeps stdout open
    assert code == 0, err
    assert list(load_results(str(out))["status"]) == ["TIMEOUT", "TIMEOUT"]
    programs = spawned.read()
    assert len(programs) == 2
    assert not [pid for pid in programs if alive(pid)]
    for mask in programs.values():  # the evaluation gave them default dispositions
        assert not ignores(mask, signal.SIGINT) and not ignores(mask, signal.SIGTERM), mask


def test_a_stop_kills_the_programs_of_the_evaluations_it_cancels(tmp_path, spawned):
    out = tmp_path / "out"
    proc = start(
        "--problem", SPAWNER, "--max-evals", 10, "--workers", 2, "--grace", 0.2,
        "--output", out, env={"HPSEARCH_SPAWNER_DIR": spawned.path, "HPSEARCH_SPAWNER_HANG": "1"},
    )  # fmt: skip
    wait_until(lambda: len(spawned.read()) == 2)
    proc.send_signal(signal.SIGTERM)  # to the search alone, as `kill PID` does
    code, stdout, err = finish(proc, timeout=60)
    assert code == 0, err
    assert "stopped by SIGTERM" in stdout
    assert list(load_results(str(out))["status"]) == ["CANCELLED", "CANCELLED"]
    assert not [pid for pid in spawned.read() if alive(pid)]


@pytest.mark.parametrize("to", ["group", "every process"])
def test_sigterm_to_the_whole_job_cancels_and_hands_out_nothing_more(tmp_path, to):
    # `timeout`, `kill -- -PGID` signal the group; a batch system signals every process
    out = tmp_path / "out"
    proc = start(
        "--problem", "problems.ackley", "--max-evals", 20, "--workers", 2, "--grace", 0.2,
        "--output", out, env={"HPSEARCH_ACKLEY_SLEEP": "6,6"},
    )  # fmt: skip
    wait_until(lambda: len(journal(out)) == 2)  # both workers busy for the next 6 s
    time.sleep(3)  # the evaluations are most likely running (a stop may find them starting)
    if to == "group":
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        everyone = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGTERM)
        for pid in everyone:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    code, stdout, err = finish(proc, timeout=60)
    assert code == 0, err
    assert "stopped by SIGTERM" in stdout
    df = load_results(str(out))
    assert journal(out) == [0, 1]  # nothing was handed out after the signal
    assert sorted(df["job_id"]) == [0, 1]
    assert list(df["status"]) == ["CANCELLED", "CANCELLED"], df["error"].tolist()


@needs_mpirun
@pytest.mark.parametrize("isolation", [[], ["--no-isolation"]], ids=["isolated", "in-process"])
def test_programs_started_under_mpirun_do_not_ignore_sigterm(tmp_path, spawned, isolation):
    out = tmp_path / "out"
    proc = start(
        "--problem", SPAWNER, "--max-evals", 2, "--output", out, *isolation, ranks=2,
        env={"HPSEARCH_SPAWNER_DIR": spawned.path},
    )  # fmt: skip
    code, _, err = finish(proc, timeout=120)
    assert code == 0, err
    masks = list(spawned.read().values())
    assert len(masks) == 2
    for mask in masks:
        assert not ignores(mask, signal.SIGTERM) and not ignores(mask, signal.SIGINT), mask


# ---- a problem that does not import on the workers ------------------------------------------
def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if "error:" in line]


def test_a_problem_that_does_not_import_on_the_workers_stops_the_search(tmp_path):
    out = tmp_path / "out"
    args = ["--problem", WORKER_IMPORT, "--max-evals", 6, "--workers", 2, "--output", out]
    t0 = time.monotonic()
    code, _, err = finish(start(*args, env={"HPSEARCH_WORKER_IMPORT": "fail"}))
    assert code == 1, err
    (line,) = error_lines(err)
    assert line.startswith("hpsearch.rs: error: worker ") and "only_on_the_login_node" in line
    assert time.monotonic() - t0 < 60
    assert len(load_results(str(out))) == 0  # nothing recorded as finished
    handed_out = journal(out)
    assert handed_out

    code, _, err = finish(start(*args, "--resume"))  # the nodes are fixed
    assert code == 0, err
    df = load_results(str(out))
    assert len(df) == 6 and (df["status"] == DONE).all()
    assert set(handed_out) <= set(df["job_id"])  # the jobs that never ran were run


def test_an_import_that_hangs_on_the_workers_is_bounded_by_the_eval_timeout(tmp_path):
    out = tmp_path / "out"
    t0 = time.monotonic()
    proc = start(
        "--problem", WORKER_IMPORT, "--max-evals", 4, "--workers", 1, "--eval-timeout", 3,
        "--output", out, env={"HPSEARCH_WORKER_IMPORT": "hang"},
    )  # fmt: skip
    code, _, err = finish(proc)
    assert code == 1, err
    (line,) = error_lines(err)
    assert "worker 0: importing the problem took longer than --eval-timeout 3 s" in line
    assert time.monotonic() - t0 < 45
    assert len(load_results(str(out))) == 0


@needs_mpirun
@pytest.mark.parametrize("isolation", [[], ["--no-isolation"]], ids=["isolated", "in-process"])
def test_a_problem_that_does_not_import_on_the_worker_ranks_stops_mpirun(tmp_path, isolation):
    out = tmp_path / "out"
    proc = start(
        "--problem", WORKER_IMPORT, "--max-evals", 20, "--output", out, *isolation, ranks=3,
        env={"HPSEARCH_WORKER_IMPORT": "fail"},
    )  # fmt: skip
    code, _, err = finish(proc, timeout=120)
    assert code == 1, err
    (line,) = error_lines(err)
    assert line.startswith("hpsearch.rs: error: worker ") and "only_on_the_login_node" in line
    assert len(load_results(str(out))) == 0


# ---- runs that exit, and stops without isolation ---------------------------------------------
def test_a_run_calling_sys_exit_is_a_failed_row_without_isolation(tmp_path):
    out = tmp_path / "out"
    proc = start(
        "--problem", FAULTY, "--max-evals", 6, "--seed", 0, "--no-isolation",
        "--output", out, env={"HPSEARCH_FAULTY_MODES": "ok,exit"},
    )  # fmt: skip
    code, stdout, err = finish(proc)
    assert code == 0, err
    assert "stopped by max-evals" in stdout
    df = load_results(str(out))
    assert len(df) == 6 and set(df["p:mode"]) == {"ok", "exit"}
    exits = df[df["p:mode"] == "exit"]
    assert (exits["status"] == FAILED).all()
    assert exits["error"].str.startswith("run() called sys.exit(3)").all()


def test_a_run_calling_sys_exit_is_a_failed_row_in_its_own_process():
    outcome = evaluate(lambda config: sys.exit("bye"), Job(0, {}))
    assert outcome.status == FAILED and outcome.error.startswith("run() called sys.exit('bye')")


def test_keyboard_interrupt_in_a_run_is_not_a_failure():
    def run(config):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate(run, Job(0, {}))


@needs_mpirun
def test_a_stop_under_mpirun_without_isolation_does_not_wait_for_a_cancel_answer(tmp_path):
    out = tmp_path / "out"
    proc = start(
        "--problem", "problems.ackley", "--max-evals", 20, "--grace", 0.5, "--no-isolation",
        "--output", out, ranks=3, env={"HPSEARCH_ACKLEY_SLEEP": "5,5"},
    )  # fmt: skip
    wait_until(lambda: len(journal(out)) == 2, limit=90)
    time.sleep(0.5)
    t_stop = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code, stdout, err = finish(proc, timeout=90)
    # the grace, then the rest of the running evaluations (5 s at most): no 30 s wait for
    # workers that cannot answer before their run returns
    assert time.monotonic() - t_stop < 15
    assert code == 0, err
    assert "stopped by SIGTERM" in stdout
    df = load_results(str(out))
    assert sorted(df["job_id"]) == [0, 1] and (df["status"] == CANCELLED).all()


def test_help_says_what_a_stop_costs_without_isolation():
    proc = subprocess.run(
        [sys.executable, "-m", "hpsearch.rs", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    text = " ".join(proc.stdout.split())
    assert "a stop cannot interrupt a running evaluation" in text


# ---- objectives and the size of what a row holds ----------------------------------------------
@pytest.mark.parametrize(
    ("returned", "type_name"),
    [("3.5", "str"), (b"2", "bytes"), (True, "bool"), (np.bool_(True), "bool"),
     ({"objective": "1"}, "str"), ([1.0, "2"], "str"), (None, "NoneType")],
)  # fmt: skip
def test_only_real_numbers_are_objectives(returned, type_name):
    outcome = interpret(returned)
    assert outcome.status == FAILED and outcome.objective is None
    assert f"of type {type_name}" in outcome.error and "not a real number" in outcome.error


@pytest.mark.parametrize(
    "returned", [3, 2.5, np.float32(0.5), np.int64(4), np.array(1.5), np.array([1.0, 2])]
)
def test_real_numbers_are_objectives(returned):
    outcome = interpret(returned)
    assert outcome.status == DONE
    assert np.allclose(outcome.objective, np.asarray(returned, dtype=float).tolist())


def test_text_objectives_from_a_search_are_failed_rows(tmp_path):
    out = tmp_path / "out"
    proc = start(
        "--problem", FAULTY, "--max-evals", 8, "--seed", 1, "--workers", 2,
        "--output", out, env={"HPSEARCH_FAULTY_MODES": "text,bytes,bool"},
    )  # fmt: skip
    code, _, err = finish(proc)
    assert code == 0, err
    df = load_results(str(out))
    assert len(df) == 8 and (df["status"] == FAILED).all() and df["objective"].isna().all()
    for mode, name in {"text": "str", "bytes": "bytes", "bool": "bool"}.items():
        errors = df.loc[df["p:mode"] == mode, "error"]
        assert errors.str.contains(f"objective of type {name}, not a real number").all()


@pytest.mark.parametrize("isolation", [[], ["--no-isolation"]], ids=["isolated", "in-process"])
def test_a_huge_error_is_cut_in_the_row_and_kept_whole_in_the_log(tmp_path, isolation):
    out = tmp_path / "out"
    proc = start(
        "--problem", FAULTY, "--max-evals", 2, "--workers", 1, "--output", out,
        *isolation, env={"HPSEARCH_FAULTY_MODES": "huge"},
    )  # fmt: skip
    code, _, err = finish(proc)
    assert code == 0, err
    assert os.path.getsize(out / "results.csv") < 10 * MAX_TEXT
    df = load_results(str(out))
    for job_id, error in zip(df["job_id"], df["error"], strict=True):
        assert len(error) <= MAX_TEXT
        assert error.startswith("ValueError: xxx")
        assert error.endswith(f"characters cut, full traceback in logs/{job_id}.log]")
        log = (out / "logs" / f"{job_id}.log").read_text()
        assert log.startswith("Traceback") and "x" * 4_000_000 in log


def test_huge_text_metrics_are_cut():
    outcome = interpret({"objective": 1.0, "note": "y" * 100_000, "n": 3})
    assert outcome.status == DONE and outcome.metrics["n"] == 3
    assert len(outcome.metrics["note"]) <= MAX_TEXT and "characters cut" in outcome.metrics["note"]


# ---- output paths and errors that are not usage errors ----------------------------------------
@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("README.md/out", "--output 'README.md/out' is under "),
        ("/proc/hpsearch-out", "--output '/proc/hpsearch-out' cannot be created in '/proc'"),
        ("", "--output is empty"),
    ],
)
def test_unusable_output_paths_exit_2_with_one_line(output, message):
    code, _, err = finish(start("--problem", "problems.ackley", "--output", output))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err


def test_a_value_error_from_a_bug_during_the_search_is_not_a_usage_error(tmp_path):
    problem = tmp_path / "buggy.py"
    problem.write_text(
        "from hpsearch import Problem\n\n"
        "STARTED = []\n\n"
        "class Buggy(Problem):\n"
        "    @property\n"
        "    def sign(self):\n"
        "        if STARTED:\n"
        "            raise ValueError('a bug in the problem')\n"
        "        return 1.0\n\n"
        "problem = Buggy('buggy', direction='minimize')\n"
        "problem.add_hyperparameter('x', (0.0, 1.0))\n\n"
        "def run(config):\n"
        "    STARTED.append(1)\n"
        "    return config['x']\n"
    )
    code, _, err = finish(
        start("--problem", problem, "--max-evals", 3, "--no-isolation", "--output", tmp_path / "o")
    )
    assert code == 1, err
    assert "Traceback" in err and "ValueError: a bug in the problem" in err
    assert "error: a bug in the problem" not in err
