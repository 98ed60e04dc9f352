"""A small mixed space for grid search and Optuna: a real, a log integer and a choice, with a
constraint; the run returns ``HPSEARCH_SMALL_OBJECTIVES`` objectives (default 1) at once."""

import math
import os

from hpsearch import Problem

N_OBJECTIVES = int(os.environ.get("HPSEARCH_SMALL_OBJECTIVES", "1"))

problem = Problem("small_grid", direction="minimize")
problem.add_hyperparameter("x", (0.0, 1.0))
problem.add_hyperparameter("width", (1, 64, "log-uniform"))
problem.add_hyperparameter("act", ["relu", "tanh"])
problem.add_constraint(lambda c: not (c["act"] == "tanh" and c["width"] > 32))


def run(config: dict) -> float | list[float]:
    loss = (config["x"] - 0.3) ** 2 + abs(math.log2(config["width"]) - 3) / 10
    if N_OBJECTIVES == 1:
        return loss
    return [loss, config["width"] / 64]
