"""Random search: independent uniform draws from the space (constraints applied)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from hpsearch.problem import Problem
from hpsearch.search.base import Optimizer


class RandomSearch(Optimizer):
    """Propose configurations drawn uniformly at random (log dimensions on their log scale).

    >>> opt = RandomSearch(problem, seed=0)
    >>> configs = opt.ask(8)
    >>> opt.tell(configs, objectives)
    """

    def _ask(self, n: int) -> np.ndarray:
        return self._sample_new(n)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Random search has no flags of its own."""


def build(problem: Problem, args: argparse.Namespace) -> RandomSearch:
    """The random search configured by the command line (only its seed)."""
    return RandomSearch(problem, seed=args.seed)


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """Random search has no parameters besides the seed."""
    return {}
