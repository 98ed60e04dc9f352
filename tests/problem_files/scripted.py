"""A run(config, trial) problem that does what its configuration says, for evaluator tests.

- ``mode``: ``steps`` (default) trains; ``raise``, ``nan``, ``inf``, ``bad`` (a non-numeric
  objective), ``abort`` (the process dies) and ``hang`` misbehave instead.
- ``steps`` (default 1) and ``sleep`` (seconds before each step, default 0): the run reports
  after every step, ``report(step, 1 / step, square=step**2, phase="train")``, and returns
  early when a report answers True.
- ``bad``: the 3rd report is invalid: ``step`` repeats the previous step, ``nan`` reports a
  NaN objective, ``text`` a string.

It returns ``{"objective": x, "steps": steps run}`` (``x`` defaults to 0).
"""

import math
import os
import time

from hpsearch import Problem

problem = Problem("scripted", direction="minimize")
problem.add_hyperparameter("x", (0.0, 1.0))


def run(config: dict, trial) -> object:
    mode = config.get("mode", "steps")
    if mode == "raise":
        raise RuntimeError("deliberate failure")
    if mode == "nan":
        return math.nan
    if mode == "inf":
        return {"objective": math.inf}
    if mode == "bad":
        return "not a number"
    if mode == "abort":
        os.abort()
    if mode == "hang":
        time.sleep(3600)
    done = 0
    for step in range(1, config.get("steps", 1) + 1):
        time.sleep(config.get("sleep", 0.0))
        done = step
        reported, objective = step, 1.0 / step
        bad = config.get("bad", "") if step == 3 else ""
        if bad == "step":
            reported = step - 1
        elif bad == "nan":
            objective = math.nan
        elif bad == "text":
            objective = "high"
        if trial.report(reported, objective, square=step * step, phase="train"):
            break
    return {"objective": config.get("x", 0.0), "steps": done}
