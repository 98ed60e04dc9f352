"""A problem whose run trains in steps: it reports each step, saves a checkpoint file before
each report, continues from ``trial.restore_from`` and stops when the search says so.

The "weights" are a number that grows by ``rate`` per step; the objective at a step is the
weights' distance to 3. ``HPSEARCH_STEPPER_STEPS`` sets the steps of a run without a budget,
``HPSEARCH_STEPPER_SLEEP`` the seconds each step takes, ``HPSEARCH_STEPPER_BAD`` a report to
make invalid (``step``: a repeated step, ``nan``: a non-finite objective),
``HPSEARCH_STEPPER_HANG_AFTER`` a step after whose report the run hangs until it is killed.
"""

import json
import math
import os
import time

from hpsearch import Problem

STEPS = int(os.environ.get("HPSEARCH_STEPPER_STEPS", "5"))
SLEEP = float(os.environ.get("HPSEARCH_STEPPER_SLEEP", "0"))
BAD = os.environ.get("HPSEARCH_STEPPER_BAD", "")
HANG_AFTER = int(os.environ.get("HPSEARCH_STEPPER_HANG_AFTER", "0"))

problem = Problem("stepper", direction="minimize")
problem.add_hyperparameter("rate", (0.1, 1.0))
problem.add_hyperparameter("x", (0.0, 1.0))


def run(config: dict, trial=None) -> dict:
    weights, step = 0.0, 0
    if trial is not None and trial.restore_from is not None:
        with open(trial.restore_from / "state.json") as f:
            saved = json.load(f)
        weights, step = saved["weights"], saved["step"]
    end = (trial.max_steps if trial is not None else None) or STEPS
    stopped = False
    while step < end and not stopped:
        time.sleep(SLEEP)
        weights += config["rate"]
        step += 1
        if trial is None:
            continue
        # written beside the folder, then renamed into it: a kill can cut the write short
        # without touching the checkpoint, leaving only the rename and the report in between
        tmp = trial.checkpoint_dir.parent / f".{trial.id}.state.json.tmp"
        tmp.write_text(json.dumps({"weights": weights, "step": step}))
        os.replace(tmp, trial.checkpoint_dir / "state.json")
        objective = abs(weights - 3.0)
        if BAD == "nan" and step == 2:
            objective = math.nan
        reported_step = step - 1 if BAD == "step" and step == 3 else step
        stopped = trial.report(reported_step, objective, weights=weights)
        if step == HANG_AFTER:
            time.sleep(3600)
    return {"objective": abs(weights - 3.0), "weights": weights, "steps": step}
