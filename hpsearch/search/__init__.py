"""Optimizers: each proposes configurations with ``ask(n)`` and learns with ``tell``."""

from hpsearch.search.base import Optimizer
from hpsearch.search.random import RandomSearch

__all__ = ["Optimizer", "RandomSearch"]
