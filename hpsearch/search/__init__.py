"""Optimizers: each proposes configurations with ``ask(n)`` and learns with ``tell``."""

from hpsearch.search.base import Optimizer
from hpsearch.search.random import RandomSearch

__all__ = ["AMBS", "Optimizer", "RandomSearch"]


def __getattr__(name: str) -> object:
    # AMBS needs scikit-learn: import it only when asked for, not with every evaluator.
    if name == "AMBS":
        from hpsearch.search.ambs import AMBS

        return AMBS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
