"""Standard optimisation test functions, as plain numpy functions and as search problems.

Each function takes one point ``x`` (1-D array) and returns a float to minimise.
:func:`make_problem` builds a :class:`~hpsearch.problem.Problem` on the function's usual domain
with a matching ``run(config)``; :data:`FUNCTIONS` lists the names it accepts and their
known minima.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hpsearch.problem import Problem
from hpsearch.space import Config


def ackley(x: np.ndarray) -> float:
    """Ackley, any dimension; minimum 0 at the origin (domain [-32.768, 32.768]^d)."""
    x = np.asarray(x, dtype=float)
    d = len(x)
    return float(
        -20.0 * np.exp(-0.2 * np.sqrt(np.sum(x**2) / d))
        - np.exp(np.sum(np.cos(2 * np.pi * x)) / d)
        + 20.0
        + np.e
    )


def branin(x: np.ndarray) -> float:
    """Branin, 2-D; minimum 0.397887 at three points (domain [-5, 10] x [0, 15])."""
    x1, x2 = float(x[0]), float(x[1])
    b, c = 5.1 / (4 * np.pi**2), 5.0 / np.pi
    r, s, t = 6.0, 10.0, 1.0 / (8 * np.pi)
    return float((x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * np.cos(x1) + s)


_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def hartmann6(x: np.ndarray) -> float:
    """Hartmann, 6-D; minimum -3.32237 (domain [0, 1]^6)."""
    x = np.asarray(x, dtype=float)
    inner = np.sum(_H6_A * (x - _H6_P) ** 2, axis=1)
    return float(-np.sum(_H6_ALPHA * np.exp(-inner)))


def rosenbrock(x: np.ndarray) -> float:
    """Rosenbrock, any dimension >= 2; minimum 0 at (1, ..., 1) (domain [-5, 10]^d)."""
    x = np.asarray(x, dtype=float)
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def levy(x: np.ndarray) -> float:
    """Levy, any dimension; minimum 0 at (1, ..., 1) (domain [-10, 10]^d)."""
    w = 1 + (np.asarray(x, dtype=float) - 1) / 4
    head = np.sin(np.pi * w[0]) ** 2
    body = np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(np.pi * w[:-1] + 1) ** 2))
    tail = (w[-1] - 1) ** 2 * (1 + np.sin(2 * np.pi * w[-1]) ** 2)
    return float(head + body + tail)


@dataclass(frozen=True)
class TestFunction:
    """A test function with its domain (per coordinate) and known minimum."""

    __test__ = False  # not a pytest test class

    function: Callable[[np.ndarray], float]
    low: tuple[float, ...] | float
    high: tuple[float, ...] | float
    minimum: float
    dim: int | None  # None: any dimension, given in the name (ackley5)


FUNCTIONS: dict[str, TestFunction] = {
    "ackley": TestFunction(ackley, -32.768, 32.768, 0.0, None),
    "branin": TestFunction(branin, (-5.0, 0.0), (10.0, 15.0), 0.397887, 2),
    "hartmann6": TestFunction(hartmann6, 0.0, 1.0, -3.32237, 6),
    "rosenbrock": TestFunction(rosenbrock, -5.0, 10.0, 0.0, None),
    "levy": TestFunction(levy, -10.0, 10.0, 0.0, None),
}


def parse_name(name: str) -> tuple[TestFunction, int]:
    """Split ``"ackley10"`` into the function and its dimension; raise ValueError if unknown."""
    if name in FUNCTIONS and FUNCTIONS[name].dim is not None:
        spec = FUNCTIONS[name]
        return spec, int(spec.dim)  # type: ignore[arg-type]
    match = re.fullmatch(r"([a-z]+)(\d+)", name)
    if match and match.group(1) in FUNCTIONS and FUNCTIONS[match.group(1)].dim is None:
        dim = int(match.group(2))
        if dim >= 2:
            return FUNCTIONS[match.group(1)], dim
    known = ", ".join(n if f.dim else f"{n}<d>" for n, f in FUNCTIONS.items())
    raise ValueError(f"unknown test function {name!r}, expected one of {known} (d >= 2)")


def minimum(name: str) -> float:
    """The known minimum of the named function (e.g. ``"levy10"``)."""
    return parse_name(name)[0].minimum


def make_problem(name: str) -> tuple[Problem, Callable[[Config], float]]:
    """Build the problem (minimise, ``x0 .. x{d-1}`` on the usual domain) and its run function.

    ``name`` is ``branin``, ``hartmann6``, or ``ackley<d>`` / ``rosenbrock<d>`` / ``levy<d>``.
    """
    spec, dim = parse_name(name)
    low = np.broadcast_to(np.asarray(spec.low, dtype=float), (dim,))
    high = np.broadcast_to(np.asarray(spec.high, dtype=float), (dim,))
    problem = Problem(name, direction="minimize")
    names = [f"x{i}" for i in range(dim)]
    for n, lo, hi in zip(names, low, high, strict=True):
        problem.add_hyperparameter(n, (float(lo), float(hi)))
    function = spec.function

    def run(config: Config) -> float:
        return function(np.array([config[n] for n in names], dtype=float))

    problem.run = run
    return problem, run
