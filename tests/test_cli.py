import argparse
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta

import pytest

import hpsearch as hp
from hpsearch import load_results
from hpsearch.cli import main
from hpsearch.methods import get_method
from hpsearch.simulate import main as simulate_main
from hpsearch.stopping import add_arguments as add_stopping_arguments


def hpsearch(*args, cwd, env=None, timeout=120, method="rs"):
    """Run ``python -m hpsearch.<method> ARGS`` as a user would, in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", f"hpsearch.{method}", *args],
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
    # one name per figure: the wall-time share and the report's utilisation
    assert re.search(
        r"workers busy [\d.]+% of the wall time, [\d.]+% from the first start to the last "
        r"end \(the report's utilisation\)",
        proc.stdout,
    )
    df = load_results(str(out))
    assert len(df) == 20 and sorted(df["job_id"]) == list(range(20))
    assert (df["status"] == "DONE").all() and set(df["worker"]) <= {0, 1}
    assert (df["t_start"] >= df["t_submit"]).all() and (df["t_end"] >= df["t_start"]).all()
    best = json.loads((out / "best.json").read_text())
    assert best["objective"] == pytest.approx(df["objective"].min())

    proc = hpsearch(*common, "--max-evals", "30", "--resume", cwd=repo_root)
    assert proc.returncode == 0, proc.stderr
    # the progress line knows the earlier best and rates only this run's evaluations
    lines = re.findall(r"\[(\d+)/30\] best (\S+) .* ([\d.]+) evals/min  elapsed (\S+)", proc.stderr)
    assert lines and all(best != "-" for _, best, _, _ in lines)
    n, _, rate, elapsed = lines[-1]
    h, m, sec = map(int, elapsed.split(":"))
    assert n == "30" and float(rate) * (3600 * h + 60 * m + sec) / 60 <= 10
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


# ---- search.json, resume checks and best.json -------------------------------------------
SMALL_SPACE = [
    'problem.add_hyperparameter("x", (0.0, 1.0))',
    'problem.add_hyperparameter("lr", (1e-4, 1e-1, "log-uniform"))',
    'problem.add_hyperparameter("n", (1, 8))',
    'problem.add_hyperparameter("act", ["relu", "tanh"])',
    'problem.add_hyperparameter(Ordinal("units", choices=[16, 32], condition=RELU))',
]


def write_problem(path, direction="minimize", space=tuple(SMALL_SPACE)) -> str:
    """A small problem file: four kinds of hyperparameter, one of them conditional."""
    path.write_text(
        "from hpsearch import Categorical, Ordinal, Problem\n\n"
        "def RELU(config):\n    return config['act'] == 'relu'\n\n"
        f"problem = Problem('small', direction={direction!r})\n"
        + "".join(line + "\n" for line in space)
        + "\ndef run(config):\n    return config['x'] + config['lr'] * config['n']\n"
    )
    return str(path)


def only_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_search_json_records_the_search(tmp_path):
    problem_file = write_problem(tmp_path / "small.py")
    out = str(tmp_path / "out")
    argv = ["--problem", problem_file, "--max-evals", "3", "--output", out, "--no-isolation"]
    assert main("ambs", [*argv, "--seed", "5", "--kappa", "1.5", "--liar", "qUCB"]) == 0
    with open(os.path.join(out, "search.json")) as f:
        record = json.load(f)
    started = datetime.fromisoformat(record.pop("started_at"))
    conditional = [d.pop("conditional") for d in record["space"]]
    assert conditional == [False, False, False, False, True]
    assert started.utcoffset() == timedelta(0)
    assert abs(time.time() - started.timestamp()) < 300
    assert record == {
        "method": "ambs",
        "parameters": {
            "surrogate": "RF",
            "acq": "LCB",
            "kappa": 1.5,
            "xi": 0.01,
            "liar": "qUCB",
            "n_initial": 10,
            "initial": "lhs",
        },
        "problem": {"name": "small", "source": problem_file},
        "direction": "minimize",
        "space": [
            {"name": "x", "kind": "Real", "low": 0.0, "high": 1.0, "log": False},
            {"name": "lr", "kind": "Real", "low": 1e-4, "high": 0.1, "log": True},
            {"name": "n", "kind": "Integer", "low": 1, "high": 8, "log": False},
            {"name": "act", "kind": "Categorical", "choices": ["relu", "tanh"]},
            {"name": "units", "kind": "Ordinal", "choices": [16, 32]},
        ],
        "seed": 5,
        "hpsearch_version": hp.__version__,
        "resumed_at": [],
    }


@pytest.mark.parametrize(
    ("old", "new", "difference"),
    [
        ("(0.0, 1.0)", "(0.0, 2.0)", "has hyperparameter 'x' with high 1.0, not 2.0"),
        ('"log-uniform"', '"uniform"', "has hyperparameter 'lr' with log True, not False"),
        ("(1, 8)", "(1.0, 8.0)", "has hyperparameter 'n' with kind 'Integer', not 'Real'"),
        (
            '["relu", "tanh"]',
            '["relu", "elu"]',
            "has hyperparameter 'act' with choices ['relu', 'tanh'], not ['relu', 'elu']",
        ),
        (", condition=RELU", "", "has hyperparameter 'units' with conditional True, not False"),
        (
            "Ordinal(",
            "Categorical(",
            "has hyperparameter 'units' with kind 'Ordinal', not 'Categorical'",
        ),
        ('"n", (1, 8)', '"m", (1, 8)', "has hyperparameter 'n', which the problem no longer"),
    ],
)
def test_resume_refuses_another_space(tmp_path, capsys, old, new, difference):
    out = str(tmp_path / "out")
    argv = ["--problem", str(tmp_path / "small.py"), "--output", out, "--no-isolation"]
    write_problem(tmp_path / "small.py")
    assert main("rs", [*argv, "--max-evals", "2"]) == 0
    changed = [line.replace(old, new) for line in SMALL_SPACE]
    assert changed != SMALL_SPACE
    write_problem(tmp_path / "small.py", space=changed)
    before = {name: (tmp_path / "out" / name).read_text() for name in os.listdir(out)}
    capsys.readouterr()
    assert main("rs", [*argv, "--max-evals", "4", "--resume"]) == 2
    line = only_line(capsys.readouterr().err)
    assert line.startswith(f"hpsearch.rs: error: --resume: {out}/search.json {difference}"), line
    after = {name: (tmp_path / "out" / name).read_text() for name in os.listdir(out)}
    assert after == before  # refused before anything was written


def test_resume_refuses_another_direction(tmp_path, capsys):
    out = str(tmp_path / "out")
    argv = ["--problem", str(tmp_path / "small.py"), "--output", out, "--no-isolation"]
    write_problem(tmp_path / "small.py", direction="minimize")
    assert main("rs", [*argv, "--max-evals", "2"]) == 0
    write_problem(tmp_path / "small.py", direction="maximize")
    capsys.readouterr()
    assert main("rs", [*argv, "--max-evals", "4", "--resume"]) == 2
    assert only_line(capsys.readouterr().err) == (
        f"hpsearch.rs: error: --resume: {out}/search.json was written for direction "
        "'minimize', not 'maximize'"
    )
    assert len(load_results(out)) == 2


def test_resume_refuses_another_method(repo_root, tmp_path):
    out = tmp_path / "out"
    common = ["--problem", "problems.ackley", "--output", out, "--workers", "1"]
    assert hpsearch(*common, "--max-evals", "2", cwd=repo_root).returncode == 0
    proc = hpsearch(*common, "--max-evals", "4", "--resume", cwd=repo_root, method="ambs")
    assert proc.returncode == 2
    assert only_line(proc.stderr) == (
        f"hpsearch.ambs: error: --resume: {out}/search.json was written by method 'rs', not 'ambs'"
    )
    assert len(load_results(str(out))) == 2


def test_resume_records_new_parameters_and_keeps_the_start(tmp_path):
    out = tmp_path / "out"
    argv = ["--problem", write_problem(tmp_path / "small.py"), "--output", str(out)]
    argv += ["--no-isolation", "--n-initial", "2"]
    assert main("ambs", [*argv, "--max-evals", "3", "--seed", "1"]) == 0
    first = json.loads((out / "search.json").read_text())
    assert main("ambs", [*argv, "--max-evals", "5", "--seed", "2", "--kappa", "3", "--resume"]) == 0
    record = json.loads((out / "search.json").read_text())
    assert record["seed"] == 2 and record["parameters"]["kappa"] == 3.0
    assert record["started_at"] == first["started_at"]
    assert len(record["resumed_at"]) == 1 and record["resumed_at"][0] >= first["started_at"]
    assert len(load_results(str(out))) == 5


def test_resume_of_a_directory_without_search_json(tmp_path):
    out = tmp_path / "out"
    argv = ["--problem", write_problem(tmp_path / "small.py"), "--output", str(out)]
    argv += ["--no-isolation"]
    assert main("rs", [*argv, "--max-evals", "2"]) == 0
    (out / "search.json").unlink()  # as a search from before search.json left it
    assert main("rs", [*argv, "--max-evals", "4", "--resume"]) == 0
    assert len(load_results(str(out))) == 4
    record = json.loads((out / "search.json").read_text())
    assert record["method"] == "rs" and record["direction"] == "minimize"
    assert record["started_at"] is None and len(record["resumed_at"]) == 1


def test_best_json_is_the_same_from_the_cli_the_simulator_and_the_report(tmp_path):
    from hpsearch.report import write_report

    cli_out, sim_out = str(tmp_path / "cli"), str(tmp_path / "sim")
    common = ["--problem", "problems.ackley", "--max-evals", "6", "--seed", "0"]
    assert main("rs", [*common, "--output", cli_out, "--no-isolation"]) == 0
    argv = ["rs", *common, "--workers", "2", "--duration", "fixed:1", "--output", sim_out]
    assert simulate_main(argv) == 0
    write_report([cli_out], str(tmp_path / "report"))
    bests = []
    for path in (cli_out, sim_out, str(tmp_path / "report")):
        with open(os.path.join(path, "best.json")) as f:
            bests.append(json.load(f))
    for best, run in zip(bests, (cli_out, sim_out, cli_out), strict=True):
        assert sorted(best) == ["config", "job_id", "objective"]
        assert isinstance(best["objective"], float) and isinstance(best["job_id"], int)
        assert sorted(best["config"]) == [f"x{i}" for i in range(5)]
        df = load_results(run)
        (row,) = df.loc[df["job_id"] == best["job_id"]].itertuples(index=False)
        assert row.objective == best["objective"] == df["objective"].min()
    assert bests[0] == bests[2]  # the search and its report agree


def _readme_ambs_flags(readme: str) -> dict[str, tuple[list[str] | None, str]]:
    """``--flag -> (choices or None, default)`` from the README's "AMBS adds ..." paragraph."""
    paragraph = readme[readme.index("AMBS adds") :].split("\n\n")[0]
    flags = {}
    for flag, choices, default in re.findall(
        r"`(--[\w-]+)(?: \{([^}]*)\})?`\s+\((?:default )?([^,:)]+)", paragraph
    ):
        flags[flag] = (choices.split(",") if choices else None, default)
    return flags


def test_readme_states_the_ambs_flags_the_parser_has(repo_root):
    with open(os.path.join(repo_root, "README.md")) as f:
        stated = _readme_ambs_flags(f.read())
    parser = argparse.ArgumentParser()
    get_method("ambs").add_arguments(parser)
    usage = parser.format_usage()
    stopping = argparse.ArgumentParser()
    add_stopping_arguments(stopping)  # every ask/tell method's, stated in their own paragraph
    shared = set(re.findall(r"\[(--[\w-]+)", stopping.format_usage()))
    flags = {f for f in re.findall(r"\[(--[\w-]+)", usage)} - shared
    assert set(stated) == flags, "README and parser list different AMBS flags"
    for flag, (choices, default) in stated.items():
        dest = flag[2:].replace("-", "_")
        if choices is not None:
            assert f"{flag} {{{','.join(choices)}}}" in usage, flag
        # the README's default, converted by the flag's own type, is the parser's default
        assert parser.parse_args([flag, default]).__dict__[dest] == parser.get_default(dest), flag


def test_the_output_stays_locked_until_the_last_file_is_written(tmp_path, monkeypatch):
    from hpsearch.output_lock import OutputLock
    from tests.lock_probe import LockProbe

    out = str(tmp_path / "out")
    probe = LockProbe(sys.stdout, out)
    monkeypatch.setattr(sys, "stdout", probe)
    argv = ["--problem", "problems.ackley", "--max-evals", "2", "--output", out]
    assert main("rs", [*argv, "--no-isolation"]) == 0
    assert probe.held is True  # best.json is written with the lock held
    assert os.path.exists(os.path.join(out, "best.json"))
    OutputLock(out).release()  # and released when the search returns


EVALUATOR_FAILS = """
import os, resource, sys
from hpsearch.cli import main
from hpsearch.evaluators import ProcessEvaluator  # imported while files can be opened
from hpsearch.loop import Search
from hpsearch.output_lock import OutputLock

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 16, hard))
try:
    main("rs", ["--problem", "problems.ackley", "--output", sys.argv[1], "--workers", "64"])
except OSError as err:
    print("evaluator failed:", err.strerror)
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
OutputLock(sys.argv[1])  # OutputInUse if the failed search still held it
print("output free")
"""


def test_an_evaluator_that_cannot_start_leaves_the_output_unlocked(tmp_path, repo_root):
    proc = subprocess.run(
        [sys.executable, "-c", EVALUATOR_FAILS, str(tmp_path / "out")],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "evaluator failed: Too many open files" in proc.stdout, proc.stderr
    assert "output free" in proc.stdout, proc.stderr


@pytest.mark.parametrize(
    ("method", "args", "message"),
    [
        ("grid", ["--grid-points", "1"], "argument --grid-points: must be >= 2, got 1"),
        ("grid", [], "the real dimension 'x0' needs --grid-points N or values in problem.grid"),
        (
            "grid",
            ["--grid-points", "100"],
            "the grid has 10,000,000,000 configurations, more than --max-grid 1,000,000",
        ),
        ("optuna", ["--sampler", "bohb"], "argument --sampler: invalid choice: 'bohb'"),
        ("optuna", ["--sampler-args", "{n: 1}"], "argument --sampler-args: not JSON"),
        ("optuna", ["--sampler-args", "[1]"], "argument --sampler-args: must be a JSON object"),
        (
            "optuna",
            ["--sampler-args", '{"n_startup": 1}'],
            """--sampler-args {"n_startup": 1}: TPESampler.__init__() got an unexpected keyword""",
        ),
        (
            "optuna",
            ["--sampler", "nsga2", "--sampler-args", '{"population_size": 1}'],
            "`population_size` must be greater than or equal to 2",
        ),
        ("optuna", ["--sampler-args", '{"seed": 1}'], "give the seed with --seed"),
    ],
)
def test_bad_method_flags_exit_2_with_one_line(repo_root, tmp_path, method, args, message):
    output = ["--output", str(tmp_path / "out")]
    proc = hpsearch("--problem", "problems.ackley", *output, *args, cwd=repo_root, method=method)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()  # refused before anything was left there


def test_without_optuna_the_optuna_method_exits_2_with_the_install_line(repo_root, tmp_path):
    # Python refuses to import a module whose sys.modules entry is None: Optuna is missing
    program = (
        "import sys; sys.modules['optuna'] = None; from hpsearch.cli import main; "
        "sys.exit(main('optuna', sys.argv[1:]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", program, "--problem", "problems.ackley", "--output", str(tmp_path)],
        cwd=repo_root, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        "hpsearch.optuna: error: the optuna method needs Optuna: pip install 'hpsearch[optuna]'"
    )
