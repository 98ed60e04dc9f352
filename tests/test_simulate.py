"""The simulator: its virtual clock on hand-checked schedules, its options, and reality."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from hpsearch.cli import console_main
from hpsearch.cli import main as run_cli
from hpsearch.problem import Problem, load_problem
from hpsearch.report import utilisation
from hpsearch.results import load_results
from hpsearch.search.base import Optimizer
from hpsearch.search.random import RandomSearch
from hpsearch.simulate import DurationModel, main, parse_duration, simulate
from hpsearch.testfunctions import make_problem


class InOrder(Optimizer):
    """Asks i = 0, 1, 2, ... so a schedule can be worked out by hand."""

    def _ask(self, n: int) -> np.ndarray:
        start = self.n_told + self.n_pending
        return self.space.encode([{"i": k} for k in range(start, start + n)])


def counting_problem() -> Problem:
    problem = Problem("count", direction="minimize")
    problem.add_hyperparameter("i", (0, 1000))
    problem.run = lambda config: float(config["i"])
    return problem


def rows(path):
    return load_results(path).sort_values("job_id").reset_index(drop=True)


def test_two_workers_fixed_durations_follow_the_hand_checked_schedule(tmp_path):
    problem, _ = make_problem("branin")
    out = simulate(
        RandomSearch(problem, seed=0), 2, "fixed:10", str(tmp_path), 5, master_time="zero"
    )
    df = rows(tmp_path)
    assert df["t_start"].tolist() == [0, 0, 10, 10, 20]
    assert df["t_end"].tolist() == [10, 10, 20, 20, 30]
    assert df["t_submit"].tolist() == df["t_start"].tolist()
    assert df["worker"].tolist() == [0, 1, 0, 1, 0]
    assert (df["status"] == "DONE").all()
    assert (out.n_finished, out.wall_time, out.stopped_by) == (5, 30.0, "max-evals")
    assert out.utilisation == pytest.approx(50 / 60)
    assert utilisation(df) == pytest.approx(50 / 60)


def test_three_workers_with_durations_from_the_configuration(tmp_path):
    durations = [3, 1, 2, 2, 1, 1]
    model = DurationModel("by i", lambda config, rng: durations[config["i"]])
    problem = counting_problem()
    out = simulate(InOrder(problem), 3, model, str(tmp_path), 6, master_time="zero")
    df = rows(tmp_path)
    # t=1 job 1 ends on worker 1 -> job 3; t=2 job 2 ends on worker 2 -> job 4;
    # t=3 jobs 0, 3, 4 end together; the one evaluation left goes to the lowest worker
    assert df["p:i"].tolist() == [0, 1, 2, 3, 4, 5]
    assert df["t_start"].tolist() == [0, 0, 0, 1, 2, 3]
    assert df["t_end"].tolist() == [3, 1, 2, 3, 3, 4]
    assert df["worker"].tolist() == [0, 1, 2, 1, 2, 0]
    assert df["objective"].tolist() == [0, 1, 2, 3, 4, 5]
    assert out.wall_time == 4.0
    assert out.utilisation == pytest.approx(10 / 12)


@pytest.mark.parametrize(
    ("grace", "statuses", "wall"), [(0, ["CANCELLED"] * 2, 25), (10, ["DONE"] * 2, 30)]
)
def test_a_virtual_timeout_cancels_or_lets_finish_within_grace(tmp_path, grace, statuses, wall):
    problem, _ = make_problem("hartmann6")
    out = simulate(
        RandomSearch(problem, seed=1),
        2,
        "fixed:10",
        str(tmp_path),
        100,
        timeout=25,
        grace=grace,
        master_time="zero",
    )
    df = rows(tmp_path)
    assert df["status"].tolist() == ["DONE"] * 4 + statuses
    assert df["t_end"].tolist()[-2:] == [wall, wall]
    assert out.stopped_by == "timeout"
    assert out.n_finished == 4 + (grace > 0) * 2
    assert out.wall_time == wall
    assert np.isnan(df["objective"].tolist()[-1]) == (grace == 0)


def test_measured_master_time_delays_the_workers(tmp_path):
    problem, _ = make_problem("ackley5")
    out = simulate(RandomSearch(problem, seed=2), 3, "uniform:1,2", str(tmp_path), 30)
    df = load_results(tmp_path)
    assert out.master_seconds > 0 and out.n_asks >= 10
    assert df["t_submit"].min() > 0  # the first ask took real time
    assert out.wall_time > df["t_end"].max() - 1e-9
    for _, jobs in df.sort_values("t_start").groupby("worker"):
        # a worker never runs two evaluations at once, and waits for the master between them
        assert (jobs["t_start"].to_numpy()[1:] > jobs["t_end"].to_numpy()[:-1]).all()
    assert out.utilisation < 1.0


def test_eval_timeout_marks_long_evaluations(tmp_path):
    problem, _ = make_problem("branin")
    simulate(
        RandomSearch(problem, seed=3),
        4,
        "uniform:0,10",
        str(tmp_path),
        40,
        eval_timeout=5,
        master_time="zero",
        seed=0,
    )
    df = load_results(tmp_path)
    timed_out = df["status"] == "TIMEOUT"
    assert 5 < timed_out.sum() < 35
    assert ((df["t_end"] - df["t_start"])[timed_out] == 5).all()
    assert df.loc[timed_out, "objective"].isna().all()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fixed:-1", "non-negative"),
        ("uniform:5,1", "LOW must be <= HIGH"),
        ("lognormal:0,1", "median must be > 0"),
        ("gamma", "unknown duration model"),
        ("no_such_module_x:f", "cannot import"),
    ],
)
def test_bad_duration_models_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


def test_command_line_writes_results_and_rejects_bad_input(tmp_path, capsys):
    out = str(tmp_path / "sim")
    argv = ["rs", "--problem", "branin", "--workers", "3", "--max-evals", "12"]
    assert main([*argv, "--duration", "lognormal:60,0.5", "--output", out, "--seed", "0"]) == 0
    assert len(load_results(out)) == 12
    assert main([*argv, "--duration", "weibull:1", "--output", str(tmp_path / "b")]) == 2
    assert "unknown duration model 'weibull:1'" in capsys.readouterr().err
    assert main(["--problem", "branin"]) == 2
    argv = ["simulate", *argv, "--duration", "fixed:1", "--output", str(tmp_path / "c")]
    assert console_main(argv) == 0
    assert len(load_results(tmp_path / "c")) == 12


def test_simulation_agrees_with_a_real_run_on_two_workers(tmp_path, monkeypatch, repo_root):
    monkeypatch.chdir(repo_root)
    monkeypatch.setenv("HPSEARCH_ACKLEY_SLEEP", "0.5,0.5")
    real_dir, sim_dir = str(tmp_path / "real"), str(tmp_path / "sim")
    argv = ["--problem", "problems.ackley", "--max-evals", "8", "--workers", "2"]
    assert run_cli("rs", [*argv, "--output", real_dir, "--seed", "0"]) == 0
    problem = load_problem("problems.ackley")
    simulate(RandomSearch(problem, seed=0), 2, "fixed:0.5", sim_dir, 8)
    real, sim = load_results(real_dir), load_results(sim_dir)
    assert len(real) == len(sim) == 8
    # the pool's workers start a little apart: hence 15%, not the 10% of the benchmark
    assert math.isclose(utilisation(real), utilisation(sim), rel_tol=0.15)
    spans = [df["t_end"].max() - df["t_start"].min() for df in (real, sim)]
    assert math.isclose(*spans, rel_tol=0.15)


def test_a_directory_with_results_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--problem", "problems.ackley", "--max-evals", "2", "--output", str(out)]
    assert run_cli("rs", argv) == 0
    names = set(os.listdir(out)) - {"search.lock"}  # the lock names its latest holder
    before = {name: (out / name).read_bytes() for name in names}
    capsys.readouterr()
    argv = ["ambs", "--problem", "ackley5", "--workers", "2", "--duration", "fixed:1"]
    assert main([*argv, "--output", str(out)]) == 2
    assert {name: (out / name).read_bytes() for name in names} == before
    assert set(os.listdir(out)) - {"search.lock"} == names
    error = capsys.readouterr().err.strip()
    assert error == (
        f"python -m hpsearch.simulate: error: {out}/results.csv exists: a simulation "
        "starts a new directory, choose another --output"
    )
