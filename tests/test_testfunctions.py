"""The test functions reach their documented minima at their known minimisers."""

import numpy as np
import pytest

from hpsearch.testfunctions import make_problem, minimum, parse_name

MINIMISERS = {
    "ackley5": np.zeros(5),
    "branin": np.array([np.pi, 2.275]),
    "hartmann6": np.array([0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]),
    "rosenbrock10": np.ones(10),
    "levy10": np.ones(10),
}


@pytest.mark.parametrize("name", sorted(MINIMISERS))
def test_minimum_reached_at_known_minimiser(name):
    problem, run = make_problem(name)
    x = MINIMISERS[name]
    config = {f"x{i}": float(v) for i, v in enumerate(x)}
    assert run(config) == pytest.approx(minimum(name), abs=1e-4)
    assert len(problem.space) == len(x) and problem.direction == "minimize"
    random_values = [run(c) for c in problem.space.sample(20, 0)]
    assert min(random_values) > minimum(name)


def test_unknown_name_is_a_one_line_value_error():
    with pytest.raises(ValueError, match="unknown test function 'ackley'"):
        parse_name("ackley")  # the dimension is missing
