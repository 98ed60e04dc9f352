"""A problem whose run function misbehaves on purpose, chosen by the ``mode`` hyperparameter.

HPSEARCH_FAULTY_MODES (comma-separated) restricts the modes searched, so a test can ask for
a search made only of crashes, or of hangs. Modes outside the default set (``exit``, ``text``,
``bytes``, ``bool``, ``huge``) are searched only when named there.
"""

import math
import os
import sys
import time

from hpsearch import Problem

MODES = os.environ.get("HPSEARCH_FAULTY_MODES", "ok,raise,nan,inf,abort,hang,bad").split(",")

problem = Problem("faulty", direction="minimize")
problem.add_hyperparameter("mode", MODES)
problem.add_hyperparameter("x", (0.0, 1.0))


def run(config: dict):
    mode = config["mode"]
    if mode == "raise":
        raise RuntimeError("deliberate failure")
    if mode == "nan":
        return math.nan
    if mode == "inf":
        return {"objective": math.inf, "note": "infinite"}
    if mode == "abort":
        os.abort()
    if mode == "hang":
        time.sleep(3600)
    if mode == "bad":
        return "not a number"
    if mode == "exit":
        sys.exit(3)
    if mode == "text":
        return "3.5"
    if mode == "bytes":
        return {"objective": b"2"}
    if mode == "bool":
        return True
    if mode == "huge":
        raise ValueError("x" * 4_000_000)
    return {"objective": config["x"], "twice": 2 * config["x"]}
