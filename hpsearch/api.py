"""``hpsearch.optimize``: a whole search from Python, the same search the command line runs.

The keyword arguments become the command line's flags and go through its parser and its
checks (:func:`hpsearch.cli.run_search`), so the two accept the same input, report it in the
same words and run the same search.
"""

from __future__ import annotations

import argparse
import inspect
import re
from types import ModuleType
from typing import TYPE_CHECKING, Any

from hpsearch.arguments import UsageError
from hpsearch.cli import build_parser, run_search
from hpsearch.methods import Method, get_method
from hpsearch.problem import Problem, ProblemLoadError, load_problem, module_problem, takes_trial

if TYPE_CHECKING:
    import pandas as pd

PROG = "hpsearch.optimize"
#: Flags that :func:`optimize` sets from its own parameters, or that have no meaning there.
_NOT_OPTIONS = {
    "help",
    "problem",
    "max_evals",
    "output",
    "workers",
    "timeout",
    "eval_timeout",
    "seed",
    "resume",
    "log_level",
}


def optimize(
    problem: str | ModuleType | Problem,
    method: str = "ambs",
    max_evals: int | None = None,
    output: str = "out",
    workers: int | None = None,
    timeout: float | None = None,
    eval_timeout: float | None = None,
    seed: int | None = None,
    resume: bool = False,
    progress: bool = True,
    **options: Any,
) -> pd.DataFrame | None:
    """Run a search of ``problem`` with ``method``; return its results as
    :func:`hpsearch.load_results` gives them.

    ``problem`` is a problem module's name or path, a problem module, or a :class:`Problem`
    whose ``run`` is set (it may be defined in ``__main__``: a script's or a notebook's run
    function goes to the worker processes pickled by value). ``max_evals`` defaults to the
    command line's (100; a population method trains its members to the end). ``options`` are
    the method's own parameters (``surrogate="ET"``, ``stopper="asha"``, ``max_steps=9``,
    ...) and the command line's other flags (``grace``, ``no_isolation``,
    ``threads_per_worker``, ...), by their flag names with underscores. ``progress`` shows the
    live progress line and the end-of-search summary.

    Under ``mpirun -n N``, rank 0 runs the search and returns the results, and every other
    rank serves as a worker and returns None. An interrupt (Ctrl-C, a notebook's stop) stops
    the search as SIGINT does: running evaluations are cancelled and recorded, and the
    results so far are returned.

    Raises ValueError with one line naming what is wrong before any evaluation (a problem
    without a run function, an unknown method or option, ``max_evals`` < 1, an output
    directory holding another search without ``resume=True``, ...), or once the first
    results show that the problem does not suit the method (several objectives for CMA-ES;
    what finished stays in results.csv).
    """
    frame = inspect.currentframe()
    caller = frame.f_back if frame is not None else None
    if (
        caller is not None and caller.f_globals.get("__name__") == "__mp_main__"
    ):  # a worker process re-imports a script that has no guard
        raise RuntimeError(
            "hpsearch.optimize() ran again in a worker process importing the script: call it "
            'under `if __name__ == "__main__":`'
        )
    chosen = get_method(method)
    loaded = _problem(problem)
    if max_evals is not None and max_evals < 1:
        raise ValueError(f"max_evals must be >= 1, got {max_evals}")
    common = {
        "max_evals": max_evals,
        "output": output,
        "workers": workers,
        "timeout": timeout,
        "eval_timeout": eval_timeout,
        "seed": seed,
        "resume": resume,
    }
    try:
        args = _arguments(chosen, loaded, common, options)
        outcome = run_search(chosen, args, PROG, loaded, show=progress)
    except UsageError as err:
        raise ValueError(keyword_names(str(err))) from None
    if outcome is None:
        return None
    from hpsearch.results import load_results

    return load_results(args.output, loaded.space)


def keyword_names(message: str) -> str:
    """A command-line error message in this function's terms: ``--max-evals`` becomes
    ``max_evals``, ``pass --resume`` becomes ``pass resume=True``, ``use --sampler nsga2``
    becomes ``use sampler='nsga2'``."""
    message = message.replace("pass --resume", "pass resume=True")
    message = re.sub(r"use --([a-z][a-z0-9-]*) (\w+)", r"use --\1='\2'", message)
    return re.sub(r"--([a-z][a-z0-9-]*)", lambda m: m.group(1).replace("-", "_"), message)


def _problem(problem: str | ModuleType | Problem) -> Problem:
    """The problem to search, its run function set and checked; ValueError otherwise."""
    try:
        if isinstance(problem, str):
            return load_problem(problem)
        if isinstance(problem, ModuleType):
            return module_problem(problem)
    except ProblemLoadError as err:
        raise ValueError(str(err)) from None
    if not isinstance(problem, Problem):
        raise ValueError(
            "problem must be a module name or path, a module or a hpsearch.Problem, "
            f"got {type(problem).__name__}"
        )
    if problem.run is None:
        raise ValueError(
            f"problem {problem.name!r} has no run function: pass Problem(..., run=run) "
            "or set problem.run = run"
        )
    if not callable(problem.run):
        raise ValueError(f"problem {problem.name!r}: run must be callable, got {problem.run!r}")
    takes_trial(problem.run)  # ValueError naming a signature it cannot call
    problem.check()
    return problem


def _arguments(
    method: Method, problem: Problem, common: dict[str, Any], options: dict[str, Any]
) -> argparse.Namespace:
    """The parsed command line these parameters stand for (UsageError on bad input)."""
    parser = build_parser(method, PROG)
    parser.raise_errors = True
    actions = {a.dest: a for a in parser._actions if a.dest not in _NOT_OPTIONS}
    for name in options:
        if name not in actions:
            raise UsageError(
                f"unknown option {name!r} for method {method.name!r}, expected one of "
                f"{', '.join(sorted(actions))}"
            )
    argv = ["--problem", problem.source or problem.name]
    for name, value in common.items():
        if value is not None and value is not False:
            argv += ["--" + name.replace("_", "-")] + ([] if value is True else [str(value)])
    for name, value in options.items():
        argv += _flag(actions[name], value)
    return parser.parse_args(argv)


def _flag(action: argparse.Action, value: Any) -> list[str]:
    """The command-line words that give ``action`` the value ``value`` (None: its default)."""
    flag = action.option_strings[-1]
    if value is None:
        return []
    if action.nargs == 0:  # a switch: True or False
        if not isinstance(value, bool):
            raise UsageError(f"option {action.dest!r} is True or False, got {value!r}")
        return [flag] if value == action.const else []
    if isinstance(value, list | tuple):
        if isinstance(action, argparse._AppendAction):  # given once per value
            return [word for item in value for word in (flag, str(item))]
        return [flag, ",".join(map(str, value))]
    return [flag, str(value)]
