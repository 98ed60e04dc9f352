import numpy as np
import pytest
from scipy import stats

from hpsearch import Problem
from hpsearch.search import RandomSearch


def make_problem() -> Problem:
    problem = Problem("p", direction="maximize")
    problem.add_hyperparameter("x", (0.0, 10.0))
    problem.add_hyperparameter("lr", (1e-5, 1e-1, "log-uniform"))
    problem.add_hyperparameter("k", (1, 6))
    problem.add_hyperparameter("act", ["relu", "tanh", "elu"])
    return problem


def test_random_search_covers_the_space_uniformly():
    opt = RandomSearch(make_problem(), seed=0)
    configs = opt.ask(3000)
    x = np.array([c["x"] for c in configs])
    lr = np.log10([c["lr"] for c in configs])
    # Kolmogorov-Smirnov against the declared distributions (uniform, log-uniform)
    assert stats.kstest(x, "uniform", args=(0, 10)).pvalue > 1e-3
    assert stats.kstest(lr, "uniform", args=(-5, 4)).pvalue > 1e-3
    # chi-square on the discrete dimensions
    k_counts = np.bincount([c["k"] for c in configs], minlength=7)[1:]
    assert stats.chisquare(k_counts).pvalue > 1e-3
    act_counts = [sum(c["act"] == a for c in configs) for a in ("relu", "tanh", "elu")]
    assert stats.chisquare(act_counts).pvalue > 1e-3


def test_tell_applies_the_direction_once():
    for direction, expected in (("maximize", 3.0), ("minimize", 1.0)):
        problem = make_problem()
        problem.direction = direction
        opt = RandomSearch(problem, seed=2)
        configs = opt.ask(3)
        opt.tell(configs, [1.0, 3.0, 2.0])
        assert opt.best()[1] == expected
        assert opt._targets().min() == problem.sign * expected


def test_a_finite_space_is_exhausted_before_anything_repeats():
    problem = Problem("small")
    problem.add_hyperparameter("a", ["x", "y"])
    problem.add_hyperparameter("b", [1, 2, 3], ordinal=True)
    opt = RandomSearch(problem, seed=0)
    opt.max_draws_per_point = 50
    first = opt.ask(6)
    assert len({(c["a"], c["b"]) for c in first}) == 6
    assert len(opt.ask(2)) == 2  # repeats, with a warning, rather than stalling the search


def test_impossible_constraints_fail_clearly():
    problem = make_problem()
    problem.add_constraint(lambda c: False)
    opt = RandomSearch(problem, seed=0)
    opt.max_draws_per_point = 5
    with pytest.raises(RuntimeError, match="constraints reject every sampled configuration"):
        opt.ask(1)


def test_tell_checks_lengths_and_values():
    opt = RandomSearch(make_problem(), seed=0)
    configs = opt.ask(2)
    with pytest.raises(ValueError, match="one objective per configuration"):
        opt.tell(configs, [1.0])
    with pytest.raises(ValueError, match="'x'"):
        opt.tell([{**configs[0], "x": 99.0}], [1.0])
    with pytest.raises(ValueError, match="n >= 0"):
        opt.ask(-1)


def test_configurations_marked_pending_are_not_proposed_again():
    problem = Problem("tiny")
    problem.add_hyperparameter("a", ["x", "y", "z"])
    problem.add_hyperparameter("b", [1, 2], ordinal=True)
    opt = RandomSearch(problem, seed=0)
    rerun = [{"a": "x", "b": 1}, {"a": "z", "b": 2}]
    opt.mark_pending(rerun)
    assert opt.n_pending == 2
    asked = opt.ask(4)  # the six configurations less the two running elsewhere
    assert not [c for c in asked if c in rerun]
    opt.tell(rerun, [0.1, 0.2])
    assert opt.n_pending == 4 and opt.n_told == 2
