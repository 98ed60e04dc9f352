"""A problem whose evaluations sleep for the ``duration`` they are given (seconds)."""

import time

from hpsearch import Problem

problem = Problem("sleepy", direction="minimize")
problem.add_hyperparameter("duration", (0.02, 0.6))
problem.add_hyperparameter("x", (0.0, 1.0))


def run(config: dict) -> float:
    time.sleep(config["duration"])
    return (config["x"] - 0.3) ** 2
