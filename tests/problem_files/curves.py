"""A problem whose runs report a learning curve that keeps its order: the value at step s is
``x + 1 / s`` (minimise), so the trial with the lowest ``x`` is ahead at every step.

``HPSEARCH_CURVES_STEPS`` sets the steps of a run without a budget (default 9),
``HPSEARCH_CURVES_SLEEP`` the seconds each step takes (default 0).
"""

import os
import time

from hpsearch import Problem

STEPS = int(os.environ.get("HPSEARCH_CURVES_STEPS", "9"))
SLEEP = float(os.environ.get("HPSEARCH_CURVES_SLEEP", "0"))

problem = Problem("curves", direction="minimize")
problem.add_hyperparameter("x", (0.0, 1.0))


def run(config: dict, trial) -> dict:
    end = trial.max_steps or STEPS
    step = trial.step
    while step < end:
        time.sleep(SLEEP)
        step += 1
        if trial.report(step, config["x"] + 1.0 / step):
            break
    return {"objective": config["x"] + 1.0 / step, "steps": step}
