"""Early stopping: the stoppers' decisions, and stopping through the real search loop."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from hpsearch import load_problem, load_results
from hpsearch.evaluation import DONE, Job, Outcome, Result
from hpsearch.scheduling import AskTellScheduler
from hpsearch.search import RandomSearch
from hpsearch.stopping import ASHA, MedianStopper
from hpsearch.trial import Report


def test_asha_rungs_are_min_steps_times_powers_of_the_factor_below_max_steps():
    asha = ASHA(min_steps=1, max_steps=27, reduction_factor=3)
    assert [asha.rung_step(k) for k in range(4) if asha._is_rung(k)] == [1, 3, 9]


def test_asha_keeps_the_best_third_of_each_rung_as_trials_arrive():
    asha = ASHA(min_steps=1, max_steps=100, reduction_factor=3)
    # the first trial at a rung always goes on; later ones only if in the best third so far
    assert asha.judge(0, 1, 0.5) is False
    assert asha.judge(1, 1, 0.9) is True  # worse than the best third of [0.5, 0.9]
    assert asha.judge(2, 1, 0.1) is False  # the best so far
    assert asha.rung(0) == asha.rung(1) == 0 and asha.rung(3) is None
    # between rungs nothing is decided, whatever the value
    assert asha.judge(0, 2, 5.0) is False and asha.rung(0) == 0
    assert asha.judge(0, 3, 0.4) is False and asha.rung(0) == 1  # first at rung 1


def test_asha_records_every_rung_a_sparse_reporter_passed():
    asha = ASHA(min_steps=1, max_steps=100, reduction_factor=2)
    for job in range(4):
        asha.judge(job, 4, float(job))  # first report at step 4: rungs 1, 2 and 4 at once
    assert [len(values) for values in asha.recorded] == [4, 4, 4]
    assert asha.rung(3) == 2


def test_asha_stops_about_two_thirds_at_each_rung():
    rng = np.random.default_rng(0)
    asha = ASHA(min_steps=1, max_steps=100, reduction_factor=3)
    stopped = sum(asha.judge(job, 1, float(v)) for job, v in enumerate(rng.random(300)))
    assert 0.6 < stopped / 300 < 0.72


def test_median_stops_a_trial_worse_than_the_median_of_the_others_at_its_step():
    median = MedianStopper(min_steps=2, min_trials=3)
    for job, values in enumerate([[0.9, 0.5, 0.3], [0.8, 0.6, 0.4], [0.7, 0.7, 0.5]]):
        for step, value in enumerate(values, start=1):
            assert median.judge(job, step, value) is False  # fewer than 3 others
    assert median.judge(3, 1, 5.0) is False  # before min_steps
    assert median.judge(3, 2, 0.65) is True  # median of 0.5, 0.6, 0.7 at step 2 is 0.6
    assert median.judge(4, 2, 0.55) is False
    assert median.judge(4, 3, 0.45) is True  # median of the others at step 3: 0.3, 0.4, 0.5


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ASHA(min_steps=0), "min_steps must be an int >= 1"),
        (lambda: ASHA(min_steps=5, max_steps=3), r"max_steps must be an int >= min_steps \(5\)"),
        (lambda: ASHA(reduction_factor=1), "reduction_factor must be an int >= 2"),
        (lambda: ASHA(reduction_factor=2.5), "reduction_factor must be an int >= 2"),
        (lambda: MedianStopper(min_steps=-1), "min_steps must be an int >= 1"),
    ],
)
def test_bad_parameters_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


CURVES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "problem_files", "curves.py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def search(tmp_path, method, *options, sleep="0.02"):
    env = {**os.environ, "HPSEARCH_CURVES_SLEEP": sleep}
    command = [sys.executable, "-m", f"hpsearch.{method}", "--problem", CURVES]
    command += ["--output", str(tmp_path), "--seed", "0", *map(str, options)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def assert_successive_halving(df: pd.DataFrame, n: int, max_steps: int, saved: float) -> None:
    """What ASHA (rungs at powers of 3 below ``max_steps``) must leave in results.csv of
    ``n`` trials, having saved at least the fraction ``saved`` of the steps of training them
    all to the end."""
    assert len(df) == n and (df["status"] == "DONE").all()
    stopped, full = df[df["stopped"]], df[~df["stopped"]]
    assert (full["step_end"] == max_steps).all() and (stopped["step_end"] < max_steps).all()
    top = max(k for k in range(max_steps) if 3**k < max_steps)
    assert set(df["rung"]) <= set(range(top + 1)) and (full["rung"] == top).all()
    # the curves keep their order, so the best trial is never behind at a rung
    assert not df.loc[df["p:x"].idxmin(), "stopped"]
    assert df["step_end"].sum() <= (1 - saved) * n * max_steps


# AMBS proposes ever better configurations, which ASHA then stops less often
@pytest.mark.parametrize(("method", "saved"), [("rs", 0.5), ("ambs", 0.2)])
def test_asha_stops_trials_early_and_never_the_best(tmp_path, method, saved):
    proc = search(tmp_path, method, "--max-evals", 24, "--workers", 2, "--stopper", "asha",
                  "--max-steps", 9)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert_successive_halving(load_results(str(tmp_path)), 24, 9, saved)
    record = json.loads((tmp_path / "search.json").read_text())["parameters"]
    assert record["stopper"] == "asha" and record["max_steps"] == 9


def test_the_median_rule_stops_trials_behind_the_median(tmp_path):
    proc = search(tmp_path, "rs", "--max-evals", 16, "--workers", 2, "--stopper", "median",
                  "--min-steps", 2, "--max-steps", 6)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    df = load_results(str(tmp_path))
    assert df["stopped"].any() and (df.loc[df["stopped"], "step_end"] >= 2).all()
    assert "rung" not in df  # the median rule has no rungs
    assert not df.loc[df["p:x"].idxmin(), "stopped"]


def test_asha_in_the_simulator(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT}
    command = [sys.executable, "-m", "hpsearch.simulate", "rs", "--problem", CURVES]
    command += ["--workers", "64", "--duration", "fixed:60", "--max-evals", "200"]
    command += ["--stopper", "asha", "--max-steps", "9", "--output", str(tmp_path)]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert_successive_halving(load_results(str(tmp_path)), 200, 9, 0.5)


def simulate_curves(tmp_path, model, *options):
    command = [sys.executable, "-m", "hpsearch.simulate", "rs", "--problem", CURVES]
    command += ["--workers", "64", "--duration", "fixed:60", "--max-evals", "200", "--seed", "0"]
    command += ["--curves", f"tests.problem_files.curve_models:{model}", "--output", str(tmp_path)]
    command += list(map(str, options))
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_simulator_estimates_the_saving_from_a_learning_curve_model(tmp_path):
    proc = simulate_curves(tmp_path, "ordered", "--stopper", "asha", "--max-steps", 27)
    assert proc.returncode == 0, proc.stderr
    df = load_results(str(tmp_path))
    assert_successive_halving(df, 200, 27, 0.6)
    assert set(df["rung"]) == {0, 1, 2}  # rungs at steps 1, 3 and 9
    # the values are the model's, not the problem's run
    full = df[~df["stopped"]]
    assert np.allclose(full["objective"], full["p:x"] + 1 / 27)


def test_asha_misleads_when_early_values_rank_trials_the_wrong_way(tmp_path):
    # a low x starts slow and ends best: successive halving stops the best trials first
    proc = simulate_curves(tmp_path, "crossing", "--stopper", "asha", "--max-steps", 27)
    assert proc.returncode == 0, proc.stderr
    df = load_results(str(tmp_path))
    best_five = df.nsmallest(5, "p:x")
    assert best_five["stopped"].all()


@pytest.mark.parametrize("stopped_as", ["worst", "last"])
def test_the_best_is_a_trial_trained_to_its_end(tmp_path, stopped_as):
    # trials get worse as they train on: a stopped trial's last value beats every final one
    options = ["--stopper", "asha", "--max-steps", 9, "--stopped-as", stopped_as]
    proc = simulate_curves(tmp_path, "overfitting", *options)
    assert proc.returncode == 0, proc.stderr
    df = load_results(str(tmp_path)).set_index("job_id")
    full = df[~df["stopped"]]
    assert df["objective"].min() < full["objective"].min()
    best = json.loads((tmp_path / "best.json").read_text())
    assert not df.loc[best["job_id"], "stopped"]
    assert best["objective"] == pytest.approx(full["objective"].min())


def test_curves_need_the_steps_of_a_full_training(tmp_path):
    proc = simulate_curves(tmp_path, "ordered", "--stopper", "asha")
    assert proc.returncode == 2 and "needs --max-steps" in proc.stderr
    proc = simulate_curves(tmp_path, "nowhere", "--max-steps", 9)
    assert proc.returncode == 2 and "cannot import nowhere" in proc.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--min-steps", "5", "--max-steps", "3"], r"max_steps must be an int >= min_steps \(5\)"),
        (["--reduction-factor", "1"], "reduction_factor must be an int >= 2"),
        (["--reduction-factor", "2.5"], "argument --reduction-factor: invalid int value"),
        (["--min-steps", "0"], "min_steps must be an int >= 1"),
    ],
)
def test_bad_stopping_flags_exit_2_with_one_line(tmp_path, options, message):
    proc = search(tmp_path, "rs", "--stopper", "asha", *options)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) <= 2 and re.search(message, proc.stderr)
    assert not (tmp_path / "results.csv").exists()


def test_a_run_that_never_reports_gets_a_warning_and_no_stopping(tmp_path):
    sleepy = os.path.join(ROOT, "tests", "problem_files", "sleepy.py")
    command = [sys.executable, "-m", "hpsearch.rs", "--problem", sleepy, "--max-evals", "3"]
    command += ["--workers", "1", "--stopper", "asha", "--output", str(tmp_path)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "never reports" in line]
    assert len(warnings) == 1 and "--stopper asha" in warnings[0]
    assert len(load_results(str(tmp_path))) == 3


def test_an_optimizer_learns_stopped_trials_only_once_one_trained_to_its_end(tmp_path):
    problem = load_problem(CURVES)
    optimizer = RandomSearch(problem, seed=0)
    stopper = MedianStopper(min_steps=1, min_trials=1)
    scheduler = AskTellScheduler(optimizer, stopper, max_steps=9)
    scheduler.open(background=False)
    try:
        scheduler.keep_ready(3)
        plans = scheduler.take(3)
        assert len(plans) == 3
        jobs = [Job(i, p.config, max_steps=p.max_steps) for i, p in enumerate(plans)]
        assert all(job.max_steps == 9 for job in jobs)
        # job 1 leads at step 1; jobs 0 and 2 are behind its value there and are stopped
        answers = [
            scheduler.report(jobs[i], Report(i, 1, v)) for i, v in [(1, 0.5), (0, 0.6), (2, 0.9)]
        ]
        assert answers == [False, True, True]

        def ended(job, value, stopped):
            return Result(job, Outcome(DONE, objective=value, stopped=stopped))

        scheduler.finished([ended(jobs[0], 0.6, True)])
        scheduler.keep_ready(0)  # learn what was told (inline without a background thread)
        assert optimizer.y_ == []  # no final value yet: it waits, pending under the liar
        assert len(optimizer.pending_) == 3
        # job 1 trains to its end and gets worse (0.7): job 0's 0.6 is no better than that
        scheduler.finished([ended(jobs[1], 0.7, False), ended(jobs[2], 0.9, True)])
        scheduler.keep_ready(0)
        assert not optimizer.pending_
        assert sorted(optimizer.y_) == [0.7, 0.7, 0.9]
        assert optimizer.best()[1] == 0.7
    finally:
        scheduler.close()


def test_with_stopped_as_last_an_optimizer_learns_last_values_as_final(tmp_path):
    optimizer = RandomSearch(load_problem(CURVES), seed=0)
    scheduler = AskTellScheduler(optimizer, MedianStopper(1, 1), max_steps=9, stopped_as="last")
    scheduler.open(background=False)
    try:
        scheduler.keep_ready(2)
        jobs = [Job(i, p.config, max_steps=p.max_steps) for i, p in enumerate(scheduler.take(2))]
        assert [scheduler.report(jobs[i], Report(i, 1, v)) for i, v in [(0, 0.5), (1, 0.6)]] == [
            False,
            True,
        ]
        scheduler.finished([Result(jobs[1], Outcome(DONE, objective=0.6, stopped=True))])
        scheduler.keep_ready(0)
        assert optimizer.y_ == [0.6] and len(optimizer.pending_) == 1
    finally:
        scheduler.close()


def test_stopped_as_takes_only_its_choices():
    with pytest.raises(ValueError, match="stopped_as must be one of worst, last"):
        AskTellScheduler(RandomSearch(load_problem(CURVES), seed=0), stopped_as="first")


def test_a_resumed_search_keeps_stopping_with_what_it_had_learned(tmp_path):
    options = ["--workers", 2, "--stopper", "asha", "--max-steps", 9]
    first = search(tmp_path, "ambs", "--max-evals", 12, *options)
    assert first.returncode == 0, first.stderr
    second = search(tmp_path, "ambs", "--max-evals", 24, *options, "--resume")
    assert second.returncode == 0, second.stderr
    df = load_results(str(tmp_path))
    assert len(df) == 24 and df["job_id"].is_unique and df["stopped"].any()
