"""Pareto fronts and multi-objective runs: interpret, results columns, optimizer targets."""

import math

import numpy as np
import pandas as pd
import pytest

from hpsearch import Problem, pareto_front
from hpsearch.evaluation import DONE, FAILED, Job, Result, interpret
from hpsearch.results import ResultsLog, load_results
from hpsearch.search.random import RandomSearch


def test_front_of_a_known_set():
    df = pd.DataFrame(
        {
            "objective_0": [0.9, 0.8, 0.95, 0.7, 0.9, np.nan],
            "objective_1": [-10, -5, -20, -6, -12, 0.0],
        }
    )
    # (0.9,-10), (0.8,-5), (0.95,-20) trade off; (0.7,-6) loses to (0.8,-5); (0.9,-12) to (0.9,-10)
    assert list(pareto_front(df).index) == [0, 1, 2]
    # minimising the first and maximising the second: (0.7,-6) and (0.8,-5) trade off
    front = pareto_front(df, columns=["objective_0", "objective_1"], maximize=[False, True])
    assert list(front.index) == [1, 3]
    with pytest.raises(ValueError, match="no objective columns"):
        pareto_front(df[[]])


def test_interpret_vectors():
    outcome = interpret({"objective": [0.5, -3], "n": 1})
    assert outcome.status == DONE and outcome.objective == [0.5, -3.0]
    assert interpret(np.array([1.0, 2.0])).objective == [1.0, 2.0]
    bad = interpret([1.0, math.nan])
    assert bad.status == FAILED and "objective 1" in bad.error
    assert interpret([]).status == FAILED


def _problem() -> Problem:
    problem = Problem("two", direction="maximize")
    problem.add_hyperparameter("x", (0.0, 1.0))
    return problem


def test_results_record_every_objective_and_resume_reads_them(tmp_path):
    problem = _problem()
    log = ResultsLog(str(tmp_path), problem.space)
    results = [
        Result(Job(0, {"x": 0.25}), interpret([0.5, -2.0]), worker=0),
        Result(Job(1, {"x": 0.75}), interpret(["bad", 1.0]), worker=0),
    ]
    log.write(results)
    log.close()
    df = load_results(str(tmp_path))
    assert df.loc[0, "objective"] == 0.5
    assert (df.loc[0, "objective_0"], df.loc[0, "objective_1"]) == (0.5, -2.0)
    assert df["objective_1"].isna()[1] and df.loc[1, "status"] == FAILED
    again = ResultsLog(str(tmp_path), problem.space, resume=True)
    configs, objectives = again.finished()
    assert configs == [{"x": 0.25}, {"x": 0.75}]
    assert objectives == [[0.5, -2.0], None]
    assert list(pareto_front(df).index) == [0]


def test_optimizer_scalarises_with_weights_redrawn_per_ask():
    opt = RandomSearch(_problem(), seed=0)
    configs = opt.ask(3)
    opt.tell(configs, [[1.0, -1.0], [0.0, 0.0], None])
    assert opt.n_objectives == 2
    assert opt.best()[1] == 1.0  # best() follows the primary objective
    opt.ask(1)
    w1 = opt.weights_.copy()
    t1 = opt._targets()
    assert math.isnan(t1[2]) and np.all((t1[:2] >= 0) & (t1[:2] <= 1 + opt.chebyshev_rho))
    # (1, -1) maximised is (-1, 1) minimised: scaled (0, 1); (0, 0) scales to (1, 0)
    assert t1[0] == pytest.approx(w1[1] * (1 + opt.chebyshev_rho) + 0 * w1[0])
    opt.ask(1)
    assert not np.allclose(opt.weights_, w1)
