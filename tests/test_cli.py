import json
import os
import subprocess
import sys

import pytest

from hpsearch import load_results


def hpsearch(*args, cwd, env=None, timeout=120):
    """Run ``python -m hpsearch.rs ARGS`` as a user would, in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "hpsearch.rs", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--problem", "problems.nonexistent"],
            "cannot import problem module 'problems.nonexistent'",
        ),
        (["--problem", "json"], "must define `problem = hpsearch.Problem(...)`"),
        (
            ["--problem", "problems.ackley", "--max-evals", "-3"],
            "argument --max-evals: must be >= 0, got -3",
        ),
        (["--problem", "problems.ackley", "--workers", "0"], "argument --workers: must be >= 1"),
        (
            ["--problem", "problems.ackley", "--eval-timeout", "0"],
            "argument --eval-timeout: must be > 0",
        ),
        (
            ["--problem", "problems.ackley", "--output", "README.md"],
            "--output 'README.md' is a file",
        ),
        (
            ["--problem", "problems.ackley", "--resume", "--output", "nowhere"],
            "--resume: there is no nowhere/results.csv",
        ),
        (["--problem", "missing_file.py"], "problem file 'missing_file.py' does not exist"),
        (["--max-evals", "3"], "the following arguments are required: --problem"),
    ],
)
def test_bad_command_lines_exit_2_with_one_line(repo_root, args, message):
    proc = hpsearch(*args, cwd=repo_root)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not os.path.exists(os.path.join(repo_root, "nowhere"))


def test_problem_without_run_is_reported(tmp_path):
    (tmp_path / "norun.py").write_text(
        "from hpsearch import Problem\nproblem = Problem('x')\nproblem.add_hyperparameter('a', (0.0, 1.0))\n"
    )
    proc = hpsearch("--problem", "norun", cwd=tmp_path)
    assert proc.returncode == 2 and "must define a function `run(config)`" in proc.stderr


def test_existing_results_are_never_overwritten(repo_root, tmp_path):
    out = tmp_path / "out"
    assert (
        hpsearch(
            "--problem", "problems.ackley", "--max-evals", "2", "--output", out, cwd=repo_root
        ).returncode
        == 0
    )
    proc = hpsearch(
        "--problem", "problems.ackley", "--max-evals", "2", "--output", out, cwd=repo_root
    )
    assert proc.returncode == 2 and "exists: pass --resume" in proc.stderr
    assert len(load_results(str(out))) == 2


def test_search_on_ackley_in_the_process_pool_then_resume(repo_root, tmp_path):
    out = tmp_path / "out"
    common = ["--problem", "problems.ackley", "--output", out, "--workers", "2", "--seed", "3"]
    proc = hpsearch(*common, "--max-evals", "20", cwd=repo_root)
    assert proc.returncode == 0, proc.stderr
    assert "[20/20] best" in proc.stderr  # the progress line
    assert f"results written to {out}/results.csv" in proc.stdout
    df = load_results(str(out))
    assert len(df) == 20 and sorted(df["job_id"]) == list(range(20))
    assert (df["status"] == "DONE").all() and set(df["worker"]) <= {0, 1}
    assert (df["t_start"] >= df["t_submit"]).all() and (df["t_end"] >= df["t_start"]).all()
    best = json.loads((out / "best.json").read_text())
    assert best["objective"] == pytest.approx(df["objective"].min())

    proc = hpsearch(*common, "--max-evals", "30", "--resume", cwd=repo_root)
    assert proc.returncode == 0, proc.stderr
    df = load_results(str(out))
    assert sorted(df["job_id"]) == list(range(30))
    configs = {tuple(row) for row in df.filter(like="p:").itertuples(index=False)}
    assert len(configs) == 30  # the resumed search knew what had been evaluated


def test_failures_are_recorded_and_the_search_goes_on(repo_root, tmp_path, faulty_problem):
    out = tmp_path / "out"
    proc = hpsearch(
        "--problem", faulty_problem, "--max-evals", "14", "--output", out,
        "--workers", "2", "--eval-timeout", "1", "--seed", "0",
        cwd=repo_root, env={"HPSEARCH_FAULTY_MODES": "ok,raise,nan,abort,hang"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    df = load_results(str(out))
    assert len(df) == 14
    by_mode = df.groupby("p:mode")["status"].agg(set).to_dict()
    expected = {
        "ok": {"DONE"},
        "raise": {"FAILED"},
        "nan": {"FAILED"},
        "abort": {"FAILED"},
        "hang": {"TIMEOUT"},
    }
    assert by_mode == {m: s for m, s in expected.items() if m in by_mode}
    assert len(by_mode) >= 4
    assert (df.loc[df["status"] != "DONE", "error"] != "").all()
    assert df.loc[df["status"] == "DONE", "objective"].notna().all()


def test_no_isolation_runs_in_process(repo_root, tmp_path):
    out = tmp_path / "out"
    proc = hpsearch(
        "--problem",
        "problems.ackley",
        "--max-evals",
        "5",
        "--output",
        out,
        "--no-isolation",
        cwd=repo_root,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(load_results(str(out))) == 5
