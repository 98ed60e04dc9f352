"""hpsearch.optimize: whole searches from Python, in this process, in scripts run by Python
(local pool) and under a real mpirun, compared with the command line."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pandas as pd
import pytest

import hpsearch as hp
from hpsearch.report import show
from tests.killing import finish

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
MPIRUN = os.path.join(BIN, "mpirun")
ENV = {**os.environ, "PYTHONPATH": ROOT}

# A problem and its run function defined in the script itself, so in its __main__.
SCRIPT = """
import os, sys, time
import hpsearch as hp

SHIFT = {shift}

def run(config):
    time.sleep(float(os.environ.get("SLEEP", "0")))
    return (config["x"] - SHIFT) ** 2 + config["n"]

problem = hp.Problem("quadratic", direction="minimize", run=run)
problem.add_hyperparameter("x", (0.0, 1.0))
problem.add_hyperparameter("n", (0, 3))

if __name__ == "__main__":
    df = hp.optimize(problem, method="rs", max_evals={max_evals}, workers=2, output="out",
                     seed=0, grace=0.5)
    where = "rank " + os.environ.get("PMI_RANK", "-")
    if df is None:
        print(where, "None", flush=True)
    else:
        df.to_pickle("returned.pkl")
        print(where, len(df), "rows", flush=True)
"""


def write_script(tmp_path, max_evals=6, shift=0.25):
    path = tmp_path / "my_search.py"
    path.write_text(SCRIPT.format(max_evals=max_evals, shift=shift))
    return path


def clean_environ(**extra):
    """This environment without an MPI launcher's variables (a test may run under one)."""
    environ = {k: v for k, v in ENV.items() if not k.startswith(("PMI_", "MPI_", "HYDRA"))}
    return {**environ, **extra}


def check_objectives(df, shift):
    done = df[df["status"] == "DONE"]
    expected = (done["p:x"] - shift) ** 2 + done["p:n"]
    assert len(done) and (abs(done["objective"] - expected) < 1e-9).all()


def test_problem_in_a_scripts_main_runs_in_the_local_pool(tmp_path):
    write_script(tmp_path, max_evals=6, shift=0.25)
    proc = subprocess.run(
        [sys.executable, "my_search.py"],
        cwd=tmp_path,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "rank - 6 rows" in proc.stdout
    df = pd.read_pickle(tmp_path / "returned.pkl")
    assert len(df) == 6 and set(df["status"]) == {"DONE"}
    assert df["worker"].nunique() == 2  # evaluated in the pool, not in the script's process
    check_objectives(df, 0.25)
    pd.testing.assert_frame_equal(df, hp.load_results(str(tmp_path / "out")), check_dtype=False)


def test_closure_over_data_is_shipped_by_value(tmp_path):
    weights = {"a": 2.0, "b": -1.0}  # reaches the workers inside the pickled function

    def run(config):
        return weights["a"] * config["x"] + weights["b"]

    problem = hp.Problem("linear", direction="minimize", run=run)
    problem.add_hyperparameter("x", (0.0, 1.0))
    df = hp.optimize(problem, "rs", max_evals=4, workers=2, output=str(tmp_path), progress=False)
    assert list(df["status"]) == ["DONE"] * 4
    assert ((df["objective"] - (2.0 * df["p:x"] - 1.0)).abs() < 1e-9).all()


def test_module_name_and_module_object(tmp_path):
    import problems.ackley as ackley

    by_name = hp.optimize(
        "problems.ackley", "rs", max_evals=3, workers=1, output=str(tmp_path / "a"), seed=5
    )
    by_module = hp.optimize(
        ackley, "rs", max_evals=3, workers=1, output=str(tmp_path / "b"), seed=5, progress=False
    )
    columns = [c for c in by_name.columns if c.startswith("p:")] + ["objective"]
    pd.testing.assert_frame_equal(by_name[columns], by_module[columns])


CLI_FLAGS = ["--problem", "problems.ackley", "--max-evals", "8", "--workers", "2", "--seed", "7"]
CLI_FLAGS += ["--output", "cli", "--n-initial", "4", "--surrogate", "ET"]


def test_same_results_as_the_command_line(tmp_path):
    cli = subprocess.run(
        [sys.executable, "-m", "hpsearch.ambs", *CLI_FLAGS],
        cwd=tmp_path,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    df = hp.optimize(
        "problems.ackley",
        "ambs",
        max_evals=8,
        workers=2,
        seed=7,
        output=str(tmp_path / "api"),
        n_initial=4,
        surrogate="ET",
        progress=False,
    )
    expected = hp.load_results(str(tmp_path / "cli"))
    columns = [f"p:x{i}" for i in range(5)] + ["objective"]
    # the initial design does not depend on timing: the first jobs are the same
    first = [0, 1, 2, 3]
    got = df.set_index("job_id").loc[first, columns]
    pd.testing.assert_frame_equal(
        got, expected.set_index("job_id").loc[first, columns], check_dtype=False
    )
    with open(tmp_path / "cli" / "search.json") as f, open(tmp_path / "api" / "search.json") as g:
        assert re.sub(r'"(started|finished)[^\n]*', "", f.read()) == re.sub(
            r'"(started|finished)[^\n]*', "", g.read()
        )


def test_interrupt_stops_the_search_and_returns_what_finished(tmp_path):
    write_script(tmp_path, max_evals=100)
    marker = uuid.uuid4().hex
    proc = subprocess.Popen(
        [sys.executable, "my_search.py"],
        cwd=tmp_path,
        env=clean_environ(SLEEP="1.5", API_TEST_MARKER=marker),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    results = tmp_path / "out" / "results.csv"
    deadline = time.time() + 60
    while time.time() < deadline and (
        not results.exists() or len(results.read_text().splitlines()) < 3
    ):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped by SIGINT" in out
    df = pd.read_pickle(tmp_path / "returned.pkl")
    assert (df["status"] == "DONE").sum() >= 2
    assert (df["status"] == "CANCELLED").sum() >= 1  # running when interrupted: recorded
    assert len(df) < 100
    assert not processes_with(marker)  # no evaluation process left running


def processes_with(marker):
    """PIDs of live processes whose environment holds ``marker``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker.encode() in f.read():
                    found.append(pid)
        except OSError:
            continue
    return found


def quadratic():
    problem = hp.Problem("quadratic", direction="minimize", run=lambda c: c["x"] ** 2)
    problem.add_hyperparameter("x", (0.0, 1.0))
    return problem


@pytest.mark.parametrize(
    ("problem", "kwargs", "message"),
    [
        (hp.Problem("bare"), {}, "problem 'bare' has no run function"),
        (quadratic, {"method": "gp"}, "unknown search method 'gp', expected one of rs, ambs"),
        (quadratic, {"surogate": "ET"}, "unknown option 'surogate' for method 'ambs'"),
        (quadratic, {"method": "rs", "kappa": 1.0}, "unknown option 'kappa' for method 'rs'"),
        (quadratic, {"surrogate": "XX"}, "argument surrogate: invalid choice: 'XX'"),
        (quadratic, {"max_evals": 0}, "max_evals must be >= 1, got 0"),
        (quadratic, {"workers": 0}, "argument workers: must be >= 1, got 0"),
        (quadratic, {"no_isolation": "yes"}, "option 'no_isolation' is True or False"),
        ("problems.nonexistent", {}, "cannot import problem module 'problems.nonexistent'"),
        (42, {}, "problem must be a module name or path, a module or a hpsearch.Problem"),
    ],
)
def test_bad_input_is_one_line_before_any_evaluation(tmp_path, problem, kwargs, message):
    problem = problem() if callable(problem) else problem
    output = tmp_path / "out"
    with pytest.raises(ValueError) as raised:
        hp.optimize(problem, output=str(output), **kwargs)
    text = str(raised.value)
    assert message in text and "\n" not in text
    assert not output.exists()


def test_a_problem_the_method_cannot_take_is_one_line_keeping_what_finished(tmp_path):
    two = hp.Problem("two", direction="minimize", run=lambda c: [c["x"], 1 - c["x"]])
    two.add_hyperparameter("x", (0.0, 1.0))
    with pytest.raises(ValueError) as raised:
        hp.optimize(two, "optuna", sampler="cmaes", max_evals=6, workers=1,
                    output=str(tmp_path), progress=False)  # fmt: skip
    assert str(raised.value) == (
        "problem 'two' returns 2 objectives, and CMA-ES handles one: use sampler='nsga2' (or tpe)"
    )
    assert (hp.load_results(str(tmp_path))["status"] == "DONE").sum() >= 1


def test_output_holding_another_search_needs_resume(tmp_path):
    hp.optimize(quadratic(), "rs", max_evals=2, workers=1, output=str(tmp_path), progress=False)
    before = (tmp_path / "results.csv").read_text()
    with pytest.raises(
        ValueError,
        match=r"results.csv exists: pass resume=True to continue it or choose another output",
    ) as raised:
        hp.optimize(quadratic(), "rs", max_evals=4, workers=1, output=str(tmp_path))
    assert "\n" not in str(raised.value)
    assert (tmp_path / "results.csv").read_text() == before
    df = hp.optimize(quadratic(), "rs", max_evals=4, workers=1, output=str(tmp_path), resume=True)
    assert len(df) == 4 and set(df["status"]) == {"DONE"}


def test_show_returns_the_figures_outside_ipython(tmp_path):
    hp.optimize(quadratic(), "rs", max_evals=3, workers=1, output=str(tmp_path), progress=False)
    figures = show(str(tmp_path))
    assert figures and "best_vs_time" in figures
    for path in figures.values():
        assert path.endswith(".png") and os.path.getsize(path) > 0


def test_docs_example_runs(tmp_path):
    """The worked example of docs/python-api.md (all but its cluster part) runs as written."""
    with open(os.path.join(ROOT, "docs", "python-api.md")) as f:
        text = f.read()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2  # the search script, then the plots
    for name, code in zip(["my_search.py", "plot.py"], blocks, strict=True):
        (tmp_path / name).write_text(code)
        proc = subprocess.run(
            [sys.executable, name],
            cwd=tmp_path,
            env=clean_environ(MPLBACKEND="Agg"),
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert proc.returncode == 0, proc.stderr
    df = hp.load_results(str(tmp_path / "quickstart"))
    assert len(df) == 20 and (df["status"] == "DONE").all()
    assert (tmp_path / "quickstart" / "best.png").stat().st_size > 0
    assert "best_vs_time.png" in proc.stdout  # show() outside IPython: the figure paths


@pytest.mark.skipif(not os.path.exists(MPIRUN), reason="mpirun is not installed")
class TestUnderMpirun:
    def launch(self, tmp_path, *program, timeout=120):
        proc = subprocess.Popen(
            [MPIRUN, "-n", "3", sys.executable, *program],
            cwd=tmp_path,
            env=clean_environ(PATH=f"{BIN}:{os.environ['PATH']}"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # the guard kills mpirun and every rank at once
        )
        return finish(proc, timeout)

    def test_rank_0_gets_the_results_and_the_others_none(self, tmp_path):
        write_script(tmp_path, max_evals=8, shift=0.5)
        rc, out, err = self.launch(tmp_path, "my_search.py")
        assert rc == 0, err
        lines = sorted(line for line in out.splitlines() if line.startswith("rank"))
        assert lines == ["rank 0 8 rows", "rank 1 None", "rank 2 None"], out
        df = pd.read_pickle(tmp_path / "returned.pkl")
        assert set(df["status"]) == {"DONE"}
        assert set(df["worker"]) <= {1, 2}  # evaluated on the worker ranks
        check_objectives(df, 0.5)

    def test_problem_of_an_interactive_session_is_refused(self, tmp_path):
        code = textwrap.dedent(
            """
            import os
            import hpsearch as hp
            problem = hp.Problem("q", run=lambda c: c["x"])
            problem.add_hyperparameter("x", (0.0, 1.0))
            try:
                hp.optimize(problem, "rs", max_evals=2, output="out")
            except ValueError as err:
                with open("refused-" + os.environ["PMI_RANK"], "w") as f:
                    f.write(str(err))
            """
        )
        rc, _, err = self.launch(tmp_path, "-c", code)
        assert rc == 0, err
        refusals = sorted(tmp_path.glob("refused-*"))
        assert [p.name for p in refusals] == ["refused-0", "refused-1", "refused-2"]
        for path in refusals:
            text = path.read_text()
            assert "defined in an interactive session" in text and "\n" not in text
        assert not (tmp_path / "out").exists()
