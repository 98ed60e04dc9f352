"""Ackley problem definition (see the package docstring for its options)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable

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


def make_run() -> Callable[[dict], float]:
    sleep = _sleep_range()

    def run(config: dict) -> float:
        x = np.array([v for k, v in sorted(config.items(), key=lambda kv: int(kv[0][1:]))])
        if sleep is not None:
            time.sleep(random.uniform(*sleep))
        return ackley(x)

    return run
