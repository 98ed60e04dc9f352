"""The search methods the command line runs: one registry behind ``python -m hpsearch.<name>``,
``hpsearch <name>`` and ``hpsearch simulate <name>``, and the flags of each.

A method is a module defining ``add_arguments(parser)`` (its own flags), ``build(problem,
args)`` (the ask/tell optimizer or trial scheduler those flags configure) and ``parameters(args)`` (those flags' values as
plain JSON values, recorded in ``search.json``). Adding one is that module plus an entry in
:data:`METHODS`; ``python -m hpsearch.<name>`` also needs the two-line module
``hpsearch/<name>.py`` calling :func:`hpsearch.cli.main`.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpsearch.problem import Problem
    from hpsearch.scheduling import Scheduler
    from hpsearch.search.base import Optimizer


@dataclass(frozen=True)
class Method:
    """A search method: its name, a few words on what it is, and the module implementing it.

    The module is imported on first use, so that the registry costs nothing to import.
    """

    name: str
    description: str
    module: str
    #: Trains every trial from scratch (an ask/tell optimizer): takes the early-stopping
    #: flags of :mod:`hpsearch.stopping`.
    stoppable: bool = False

    def _implementation(self) -> ModuleType:
        return importlib.import_module(self.module)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the method's own flags to ``parser``."""
        self._implementation().add_arguments(parser)
        if self.stoppable:
            from hpsearch import stopping

            stopping.add_arguments(parser)

    def build(self, problem: Problem, args: argparse.Namespace) -> Optimizer | Scheduler:
        """The optimizer (or trial scheduler) for ``problem`` configured by parsed flags
        (``args.seed`` included).

        Raises ValueError naming a bad parameter value.
        """
        method: Optimizer | Scheduler = self._implementation().build(problem, args)
        if self.stoppable:
            from hpsearch import stopping

            return stopping.build(problem, method, args)
        return method

    def parameters(self, args: argparse.Namespace) -> dict[str, Any]:
        """The method's own parameters in parsed flags, as plain JSON values (no seed)."""
        parameters: dict[str, Any] = self._implementation().parameters(args)
        if self.stoppable:
            from hpsearch import stopping

            parameters.update(stopping.parameters(args))
        return parameters


METHODS: Mapping[str, Method] = MappingProxyType(
    {
        m.name: m
        for m in (
            Method("rs", "random search", "hpsearch.search.random", stoppable=True),
            Method("ambs", "asynchronous model-based search", "hpsearch.search.ambs", True),
            Method("grid", "grid search", "hpsearch.search.grid", stoppable=True),
            Method(
                "optuna", "search with an Optuna sampler", "hpsearch.search.optuna_search", True
            ),
            Method("pbt", "population-based training", "hpsearch.search.pbt"),
            Method("rex", "replica exchange of hyperparameters", "hpsearch.search.rex"),
        )
    }
)


def method_names() -> list[str]:
    """The names of the registered methods, in registration order."""
    return list(METHODS)


def get_method(name: str) -> Method:
    """The registered method called ``name``; ValueError naming the known ones otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(
            f"unknown search method {name!r}, expected one of {', '.join(METHODS)}"
        ) from None
