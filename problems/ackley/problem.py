"""Ackley problem definition (see the package docstring for its options)."""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from hpsearch import Problem
from hpsearch.testfunctions import ackley

LOW, HIGH = -32.768, 32.768


def build_problem(dim: int | None = None) -> Problem:
    dim = int(os.environ.get("HPSEARCH_ACKLEY_DIM", "5")) if dim is None else dim
    if dim < 1:
        raise ValueError(f"HPSEARCH_ACKLEY_DIM must be >= 1, got {dim}")
    problem = Problem(f"ackley{dim}", direction="minimize")
    for i in range(dim):
        problem.add_hyperparameter(f"x{i}", (LOW, HIGH))
    return problem


def _sleep_range() -> tuple[float, float] | None:
    text = os.environ.get("HPSEARCH_ACKLEY_SLEEP", "").strip()
    if not text:
        return None
    low, _, high = text.partition(",")
    low_s, high_s = float(low), float(high or low)
    if not 0 <= low_s <= high_s:
        raise ValueError(
            f"HPSEARCH_ACKLEY_SLEEP must be 'LOW,HIGH' with 0 <= LOW <= HIGH, got {text!r}"
        )
    return low_s, high_s


def _report_interval() -> float | None:
    text = os.environ.get("HPSEARCH_ACKLEY_REPORT", "").strip()
    if not text:
        return None
    seconds = float(text)
    if not seconds > 0:
        raise ValueError(f"HPSEARCH_ACKLEY_REPORT must be seconds > 0, got {text!r}")
    return seconds


def make_run() -> Callable[..., Any]:
    """The run function: ``run(config)``, or ``run(config, trial)`` when it reports.

    With a report interval, the sleep is cut into steps of that length, each followed by a
    report; the run returns the cost of its ``trial.report`` calls as metrics
    (``report_median_us``, ``report_p99_us``).
    """
    sleep = _sleep_range()
    interval = _report_interval()

    def value(config: dict) -> float:
        x = np.array([v for k, v in sorted(config.items(), key=lambda kv: int(kv[0][1:]))])
        return ackley(x)

    def run(config: dict) -> float:
        if sleep is not None:
            time.sleep(random.uniform(*sleep))
        return value(config)

    def run_reporting(config: dict, trial: Any = None) -> dict:
        assert interval is not None
        objective = value(config)
        end = time.time() + (random.uniform(*sleep) if sleep is not None else interval)
        costs, step = [], 0
        while time.time() < end:
            time.sleep(min(interval, max(0.0, end - time.time())))
            step += 1
            if trial is not None:
                t = time.perf_counter()
                trial.report(step, objective * (1 + 1 / step))
                costs.append(time.perf_counter() - t)
        return {
            "objective": objective,
            "report_median_us": 1e6 * float(np.median(costs)) if costs else math.nan,
            "report_p99_us": 1e6 * float(np.percentile(costs, 99)) if costs else math.nan,
        }

    return run if interval is None else run_reporting
