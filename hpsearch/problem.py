"""Problems: the search space, the direction and the constraints of a search, and how to load one.

A problem module defines ``problem`` (a :class:`Problem`) and ``run(config) -> float | dict``, or
``run(config, trial)`` to report progress and save checkpoints (see :mod:`hpsearch.trial`).
It is named by a dotted module name importable from the current directory or by a path to a
``.py`` file; :func:`load_problem` imports it, and every worker process imports it again by the
same name. A :class:`Problem` built in a script or a notebook instead (``Problem(..., run=run)``)
reaches the worker processes as its run function pickled by value (see :func:`run_source`).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pickle
import sys
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from hpsearch.space import Dimension, InvalidHyperparameterError, Space, dimension_from_spec

DIRECTIONS = ("maximize", "minimize")

Constraint = Callable[[Mapping[str, Any]], bool]
RunFunction = Callable[..., Any]
#: What a worker process loads a run function from: the name (or path) of the problem module
#: it imports, or the function pickled by value.
RunSource = str | bytes
#: Module-name prefix of a problem module imported from a path (not importable by that name).
_PATH_MODULE_PREFIX = "hpsearch_problem_"


class ProblemLoadError(Exception):
    """The problem module cannot be imported or does not define ``problem`` and ``run``."""


class Problem:
    """What to search: a name, a direction, a :class:`Space` and constraints on configurations.

    >>> problem = Problem("digits", direction="maximize", run=run)
    >>> problem.add_hyperparameter("learning_rate", (1e-4, 1e-1, "log-uniform"))

    ``run`` is the run function (also settable later as ``problem.run = run``); a problem
    module needs none here, :func:`load_problem` sets the module's ``run``.
    """

    def __init__(
        self, name: str, direction: str = "maximize", run: RunFunction | None = None
    ) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(
                f"problem {name!r}: direction must be 'maximize' or 'minimize', but got {direction!r}"
            )
        self.name = name
        self.direction = direction
        self.space = Space()
        self.constraints: list[Constraint] = []
        #: Hyperparameters a population method may change during training (None: all).
        self.mutable: list[str] | None = None
        #: Replica exchange: name -> function(value) -> inverse temperature (larger: colder),
        #: for hyperparameters whose default mapping does not fit (see hpsearch.search.rex).
        self.inverse_temperature: dict[str, Callable[[Any], float]] = {}
        #: Grid search: name -> the values to try (instead of ``--grid-points`` on a range).
        self.grid: dict[str, Sequence[Any]] = {}
        #: Ensembles (hpsearch.ensemble): ``fn(y_true, y_pred) -> float``, the objective of
        #: saved validation predictions, in this problem's direction (None: a default metric).
        self.score_predictions: Callable[[Any, Any], float] | None = None
        #: The run function (set by :func:`load_problem` for a problem module).
        self.run: RunFunction | None = run
        #: Set by :func:`load_problem`: the name (or path) workers import the problem by.
        self.source: str | None = None

    def __repr__(self) -> str:
        return f"Problem({self.name!r}, direction={self.direction!r}, space={self.space.names})"

    @property
    def sign(self) -> float:
        """Factor that turns this problem's objective into one to minimise."""
        return -1.0 if self.direction == "maximize" else 1.0

    def add_hyperparameter(
        self, name: str, spec: Any = None, *, ordinal: bool = False, default: Any = None
    ) -> Dimension:
        """Declare a hyperparameter from a shorthand (see :func:`dimension_from_spec`) or a Dimension.

        Raises ValueError naming the hyperparameter and the problem when the declaration is invalid.
        """
        if isinstance(name, Dimension):
            name, spec = name.name, name
        try:
            dim = dimension_from_spec(name, spec, ordinal=ordinal, default=default)
            if dim.name != name:
                raise InvalidHyperparameterError(
                    f"hyperparameter {name!r}: the dimension passed is named {dim.name!r}"
                )
            return self.space.add(dim)
        except InvalidHyperparameterError as err:
            raise InvalidHyperparameterError(f"problem {self.name!r}, {err}") from None

    def add_architecture(self, architecture: Any) -> list[Dimension]:
        """Declare the dimensions of an architecture space (e.g. :class:`hpsearch.arch.MLPSpace`)."""
        return [self.add_hyperparameter(dim.name, dim) for dim in architecture.dimensions()]

    def add_constraint(self, constraint: Constraint) -> Constraint:
        """Reject configurations for which ``constraint(config)`` is false; usable as a decorator."""
        if not callable(constraint):
            raise TypeError(
                f"problem {self.name!r}: a constraint must be callable, got {constraint!r}"
            )
        self.constraints.append(constraint)
        return constraint

    def is_feasible(self, config: Mapping[str, Any]) -> bool:
        """True when every constraint accepts ``config``."""
        return all(c(config) for c in self.constraints)

    def check(self) -> None:
        """Raise ValueError when the problem cannot be searched (e.g. it has no hyperparameter)."""
        if not len(self.space):
            raise ValueError(f"problem {self.name!r} declares no hyperparameter")


def takes_trial(run: Callable[..., Any]) -> bool:
    """True when ``run`` is ``run(config, trial)``, False for ``run(config)``.

    Raises ValueError naming the signature when ``run`` takes anything else: a second
    parameter must be the trial (named ``trial``), and no further one may be required.
    """
    try:
        signature = inspect.signature(run)
    except (TypeError, ValueError):
        return False  # a builtin or C callable: called with the configuration alone
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    required_keywords = [
        p.name
        for p in signature.parameters.values()
        if p.kind == p.KEYWORD_ONLY and p.default is p.empty
    ]
    has_varargs = any(p.kind == p.VAR_POSITIONAL for p in signature.parameters.values())
    problem = f"run{signature}: "
    if required_keywords:
        raise ValueError(f"{problem}keyword parameter {required_keywords[0]!r} has no default")
    if not positional:
        if has_varargs:
            return False
        raise ValueError(f"{problem}run must take the configuration as its first parameter")
    if len(positional) == 1:
        return False
    second = positional[1]
    if second.name != "trial":
        raise ValueError(
            f"{problem}the second parameter must be the trial, named 'trial' (got {second.name!r})"
        )
    extra = [p.name for p in positional[2:] if p.default is p.empty]
    if extra:
        raise ValueError(f"{problem}parameter {extra[0]!r} after 'trial' has no default")
    return True


def _import_module(spec: str):
    if spec.endswith(".py") or os.sep in spec:
        path = os.path.abspath(spec)
        if not os.path.isfile(path):
            raise ProblemLoadError(f"problem file {spec!r} does not exist")
        name = _PATH_MODULE_PREFIX + os.path.splitext(os.path.basename(path))[0]
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ProblemLoadError(f"cannot load problem file {spec!r}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
        return module
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    return importlib.import_module(spec)


def load_problem(spec: str) -> Problem:
    """Import a problem module (dotted name or ``.py`` path) and return its ``problem``.

    The returned problem has ``run`` (the module's run function) and ``source`` (``spec``) set.
    Raises ProblemLoadError with a one-line message when the module cannot be used.
    """
    try:
        module = _import_module(spec)
    except ProblemLoadError:
        raise
    except ModuleNotFoundError as err:
        raise ProblemLoadError(f"cannot import problem module {spec!r}: {err}") from err
    except Exception as err:  # a broken problem file: report its own error in one line
        raise ProblemLoadError(
            f"problem module {spec!r} failed to import: {type(err).__name__}: {err}"
        ) from err
    return _module_problem(module, spec)


def _module_problem(module: ModuleType, spec: str) -> Problem:
    """The ``problem`` of an imported problem module, its ``run`` and ``source`` set."""
    problem = getattr(module, "problem", None)
    if not isinstance(problem, Problem):
        found = "nothing" if problem is None else type(problem).__name__
        raise ProblemLoadError(
            f"problem module {spec!r} must define `problem = hpsearch.Problem(...)`, found {found}"
        )
    run = getattr(module, "run", None)
    if not callable(run):
        raise ProblemLoadError(f"problem module {spec!r} must define a function `run(config)`")
    try:
        takes_trial(run)
    except ValueError as err:
        raise ProblemLoadError(f"problem module {spec!r}: {err}") from None
    try:
        problem.check()
    except ValueError as err:
        raise ProblemLoadError(str(err)) from None
    problem.run = run
    problem.source = os.path.abspath(spec) if spec.endswith(".py") else spec
    return problem


def module_problem(module: ModuleType) -> Problem:
    """The ``problem`` of a problem module object, with its ``run`` set.

    A module imported by name or path gets that name or path as its ``source``, which
    workers import; the run function of a ``__main__`` module (a script, a notebook) is
    shipped to them by value instead. Raises ProblemLoadError as :func:`load_problem` does.
    """
    name = module.__name__
    if name == "__main__":
        spec = "__main__"
    elif name.startswith(_PATH_MODULE_PREFIX) and getattr(module, "__file__", None):
        spec = str(module.__file__)
    else:
        spec = name
    problem = _module_problem(module, spec)
    if name == "__main__":
        problem.source = None
    return problem


def defined_interactively(problem: Problem) -> bool:
    """True when ``problem``'s run function lives in the ``__main__`` of an interactive
    session (a notebook, ``python -c``, a console): no other process can import it."""
    if problem.source is not None:
        return False
    if getattr(problem.run, "__module__", None) != "__main__":
        return False
    return getattr(sys.modules.get("__main__"), "__file__", None) is None


def run_source(problem: Problem) -> RunSource:
    """What worker processes load ``problem``'s run function from: the module name or path
    it was loaded by, else the function pickled by value (cloudpickle: with what it refers
    to, copied once into every worker process).

    Raises ValueError naming the problem when the function cannot be pickled.
    """
    if problem.source is not None:
        return problem.source
    import cloudpickle

    try:
        return cloudpickle.dumps(problem.run)
    except Exception as err:
        raise ValueError(
            f"problem {problem.name!r}: the run function cannot be pickled for the worker "
            f"processes: {type(err).__name__}: {err}"
        ) from None


def load_run(source: RunSource) -> RunFunction:
    """The run function ``source`` names (a problem module) or holds (pickled by value).

    Raises ProblemLoadError with a one-line message when it cannot be loaded.
    """
    if isinstance(source, str):
        run = load_problem(source).run
        assert run is not None
        return run
    try:
        run = pickle.loads(source)
    except Exception as err:
        raise ProblemLoadError(
            f"the run function cannot be unpickled: {type(err).__name__}: {err}"
        ) from err
    return run
