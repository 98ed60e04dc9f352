"""Grid search: the grid it builds, the order it walks it in, and its end."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from hpsearch import MLPSpace, Problem, count_neurons, load_problem, load_results
from hpsearch.evaluators import SerialEvaluator
from hpsearch.loop import Search
from hpsearch.results import ResultsLog
from hpsearch.search.grid import GridSearch, dimension_values
from hpsearch.space import Integer, Real

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = os.path.join(ROOT, "tests", "problem_files", "small_grid.py")


def mixed_problem() -> Problem:
    problem = Problem("mixed")
    problem.add_hyperparameter("lr", (1e-4, 1e-1, "log-uniform"))
    problem.add_hyperparameter("batch", [16, 32, 64], ordinal=True)
    problem.add_architecture(MLPSpace(max_layers=3, units=(4, 64, "log-uniform")))
    problem.add_constraint(lambda c: count_neurons(c) <= 80)
    return problem


def keys(problem: Problem, configs) -> list[tuple]:
    return problem.space.keys(configs)


def test_ranges_take_evenly_spaced_values_on_their_scale():
    assert dimension_values(Real("x", low=0.0, high=1.0), 5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert dimension_values(Real("lr", low=1e-4, high=1e-1, log=True), 4) == [
        1e-4,
        1e-3,
        1e-2,
        1e-1,
    ]
    assert dimension_values(Integer("w", low=1, high=64, log=True), 7) == [1, 2, 4, 8, 16, 32, 64]
    # more points than integers: each integer once
    assert dimension_values(Integer("k", low=1, high=3), 10) == [1, 2, 3]
    assert dimension_values(Integer("k", low=1, high=4), None) == [1, 2, 3, 4]


def test_a_problem_grid_lists_a_dimensions_values():
    problem = mixed_problem()
    problem.grid = {"units_0": [16, 32, 16], "lr": [0.01]}
    opt = GridSearch(problem, grid_points=3)
    values = dict(zip(problem.space.names, opt.values_, strict=True))
    assert values["units_0"] == [16, 32] and values["lr"] == [0.01]
    assert values["units_1"] == [4, 16, 64] and values["batch"] == [16, 32, 64]


def test_the_grid_is_every_feasible_configuration_once_even_with_conditions():
    problem = mixed_problem()
    opt = GridSearch(problem, grid_points=3, seed=0)
    space = problem.space
    # brute force: the full product, inactive dimensions blanked, duplicates merged
    product = itertools.product(*opt.values_)
    full = {space.key(space.validate(dict(zip(space.names, row, strict=True)))) for row in product}
    feasible = {k for k in full if problem.is_feasible(dict(zip(space.names, k, strict=True)))}
    asked = opt.ask(len(feasible) + 5)
    assert len(asked) == opt.size_ == len(feasible) < len(full)
    assert set(keys(problem, asked)) == feasible
    assert opt.exhausted and opt.ask(1) == []


def test_declared_order_varies_the_last_dimension_fastest():
    problem = Problem("two")
    problem.add_hyperparameter("a", ["x", "y"])
    problem.add_hyperparameter("b", (0.0, 1.0))
    asked = GridSearch(problem, grid_points=3, order="declared").ask(6)
    assert [(c["a"], c["b"]) for c in asked] == [
        (a, b) for a in ("x", "y") for b in (0.0, 0.5, 1.0)
    ]


def test_the_shuffled_order_is_seeded():
    problem = mixed_problem()

    def order(seed):
        return keys(problem, GridSearch(problem, grid_points=3, seed=seed).ask(1000))

    assert order(1) == order(1)
    assert order(1) != order(2) and sorted(order(1)) == sorted(order(2))


def test_a_cancelled_configuration_is_proposed_again_and_reopens_an_exhausted_grid():
    problem = Problem("four")
    problem.add_hyperparameter("a", [1, 2, 3, 4], ordinal=True)
    opt = GridSearch(problem, seed=0)
    asked = opt.ask(4)
    assert opt.exhausted
    opt.forget(asked[1:2])
    assert not opt.exhausted
    assert opt.ask(2) == asked[1:2]
    assert opt.exhausted


def test_the_default_configuration_comes_first_even_off_the_grid():
    problem = Problem("defaults")
    problem.add_hyperparameter("m", (0.0, 1.0), default=0.9)
    opt = GridSearch(problem, grid_points=3, order="declared")
    assert [c["m"] for c in opt.ask(10)] == [0.9, 0.0, 0.5, 1.0]


@pytest.mark.parametrize(
    ("grid_points", "message"),
    [
        (None, "the real dimension 'lr' needs --grid-points N or values in problem.grid"),
        (1, "--grid-points must be >= 2, got 1"),
    ],
)
def test_a_grid_without_points_for_a_real_range_is_refused(grid_points, message):
    with pytest.raises(ValueError, match=message):
        GridSearch(mixed_problem(), grid_points=grid_points)


def test_bad_problem_grids_are_refused_naming_the_dimension():
    problem = mixed_problem()
    problem.grid = {"units_9": [4]}
    with pytest.raises(ValueError, match=r"unknown hyperparameter.*units_9"):
        GridSearch(problem, grid_points=3)
    problem.grid = {"units_0": [1000]}
    with pytest.raises(ValueError, match="'units_0': grid value must be an int in"):
        GridSearch(problem, grid_points=3)


def test_a_huge_grid_is_refused_at_once_without_being_built():
    problem = Problem("huge")
    for i in range(12):
        problem.add_hyperparameter(f"x{i}", (0.0, 1.0))
    t = time.perf_counter()
    with pytest.raises(ValueError, match=r"1,000,000,000,000,000,000,000,000 configurations"):
        GridSearch(problem, grid_points=100)
    assert time.perf_counter() - t < 1.0
    conditional = mixed_problem()  # 5 + 25 + 125 = 155 architectures x 5 x 3
    with pytest.raises(ValueError, match="more than --max-grid 1,000"):
        GridSearch(conditional, grid_points=5, max_grid=1000)
    assert GridSearch(conditional, grid_points=5, max_grid=155 * 15).size_ > 0


def search(output, max_evals, resume=False, grid_points=4):
    problem = load_problem(SMALL)
    assert problem.run is not None
    log = ResultsLog(str(output), problem.space, resume=resume)
    opt = GridSearch(problem, grid_points=grid_points, seed=0)
    with SerialEvaluator(problem.run) as evaluator:
        outcome = Search(opt, evaluator, log, max_evals, rerun=log.unfinished_jobs()).run()
    log.close()
    return outcome, opt.size_


def test_the_search_ends_exhausted_after_every_configuration_once(tmp_path):
    outcome, size = search(tmp_path, max_evals=1000)
    df = load_results(str(tmp_path))
    assert outcome.stopped_by == "exhausted" and outcome.n_finished == size == len(df)
    assert not df.duplicated(["p:x", "p:width", "p:act"]).any()


def test_a_resumed_grid_search_repeats_no_configuration(tmp_path):
    first, size = search(tmp_path, max_evals=5)
    assert first.stopped_by == "max-evals"
    second, _ = search(tmp_path, max_evals=1000, resume=True)
    df = load_results(str(tmp_path))
    assert second.stopped_by == "exhausted" and len(df) == size
    assert not df.duplicated(["p:x", "p:width", "p:act"]).any()


def test_python_m_hpsearch_grid_says_the_size_and_stops_exhausted(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hpsearch.grid", "--problem", SMALL, "--grid-points", "3",
         "--workers", "2", "--max-evals", "100", "--output", str(tmp_path), "--seed", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # x: 3 values, width: 1, 8, 64, act: 2; tanh with width 64 is infeasible
    assert "grid search over 15 configurations (shuffled order)" in proc.stderr
    assert "finished 15 evaluations (0 failed)" in proc.stdout
    assert "stopped by exhausted" in proc.stdout
    df = load_results(str(tmp_path))
    assert np.all(df["status"] == "DONE")
    assert math.isclose(df["objective"].min(), 0.04)  # x = 0.5, width 8
    again = subprocess.run(
        [sys.executable, "-m", "hpsearch.grid", "--problem", SMALL, "--grid-points", "3",
         "--workers", "2", "--max-evals", "100", "--output", str(tmp_path), "--resume"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "stopped by exhausted; no evaluation ran" in again.stdout
    assert len(load_results(str(tmp_path))) == 15
