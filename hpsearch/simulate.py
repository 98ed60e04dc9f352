"""Simulate an asynchronous search on many workers with a virtual clock.

The search loop and the method are the real ones (the same code a master runs); only the
workers are simulated, by a :class:`~hpsearch.evaluators.virtual.VirtualEvaluator`. Each
evaluation calls the problem's (cheap) run function for its objective and takes a *virtual*
duration drawn from a :class:`DurationModel`. The master's own time is either measured for
real and added to the virtual clock (``master_time="measured"``: a slow surrogate shows up
as idle workers) or taken as zero. The rows go to results.csv through the same
:class:`~hpsearch.results.ResultsLog` as a real search, with times in virtual seconds.

``python -m hpsearch.simulate <method> --problem ackley10 --workers 4096 --max-evals 81920
--duration lognormal:60,0.5 --output sim-out``

With ``--curves MODULE:FUNCTION`` the runs report a learning-curve model instead of running
the problem (whose space and direction still define the search): the saving of early stopping
can be estimated for thousands of workers from a model of how the problem's networks learn.
"""

from __future__ import annotations

import importlib
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpsearch.arguments import (
    EXIT_USAGE,
    ArgumentParser,
    non_negative_int,
    positive_float,
    positive_int,
)
from hpsearch.evaluators.virtual import MASTER_TIMES, VirtualEvaluator
from hpsearch.loop import Search, SearchOutcome
from hpsearch.methods import get_method, method_names
from hpsearch.output_lock import OutputLock
from hpsearch.problem import Problem, RunFunction, load_problem
from hpsearch.results import ResultsExist, ResultsLog, load_results
from hpsearch.scheduling import Scheduler
from hpsearch.search.base import Optimizer
from hpsearch.search_record import best_job_id, search_record, write_best, write_search
from hpsearch.space import Config
from hpsearch.trial import Trial

log = logging.getLogger(__name__)


class DurationModel:
    """Virtual seconds one evaluation takes: ``model(config, rng) -> float > 0``.

    Built by :func:`parse_duration` from ``fixed:S``, ``uniform:LOW,HIGH``,
    ``lognormal:MEDIAN,SIGMA`` or ``MODULE:FUNCTION`` (a function of the configuration
    returning seconds, e.g. proportional to the network's size).
    """

    def __init__(self, text: str, draw: Callable[[Config, np.random.Generator], float]) -> None:
        self.text = text
        self._draw = draw

    def __repr__(self) -> str:
        return f"DurationModel({self.text!r})"

    def __call__(self, config: Config, rng: np.random.Generator) -> float:
        seconds = float(self._draw(config, rng))
        if not seconds >= 0 or not math.isfinite(seconds):
            raise ValueError(f"duration model {self.text!r} gave {seconds!r} seconds for {config}")
        return seconds


def _numbers(text: str, kind: str, count: int) -> list[float]:
    try:
        values = [float(v) for v in kind.split(",")]
    except ValueError:
        values = []
    if len(values) != count or not all(math.isfinite(v) and v >= 0 for v in values):
        raise ValueError(
            f"duration model {text!r}: expected {count} non-negative number(s) after the colon"
        )
    return values


def parse_duration(text: str) -> DurationModel:
    """A duration model from its command-line form; ValueError naming what is wrong."""
    kind, _, args = text.partition(":")
    if kind == "fixed":
        (seconds,) = _numbers(text, args, 1)
        return DurationModel(text, lambda config, rng: seconds)
    if kind == "uniform":
        low, high = _numbers(text, args, 2)
        if low > high:
            raise ValueError(f"duration model {text!r}: LOW must be <= HIGH")
        return DurationModel(text, lambda config, rng: rng.uniform(low, high))
    if kind == "lognormal":
        median, sigma = _numbers(text, args, 2)
        if median <= 0:
            raise ValueError(f"duration model {text!r}: the median must be > 0")
        return DurationModel(text, lambda config, rng: median * math.exp(sigma * rng.normal()))
    if kind and args.isidentifier():
        try:
            function = getattr(importlib.import_module(kind), args)
        except (ImportError, AttributeError) as err:
            raise ValueError(
                f"duration model {text!r}: cannot import {args} from {kind}: {err}"
            ) from None
        if not callable(function):
            raise ValueError(f"duration model {text!r}: {kind}.{args} is not callable")
        return DurationModel(text, lambda config, rng: function(config))
    raise ValueError(
        f"unknown duration model {text!r}, expected fixed:S, uniform:LOW,HIGH, "
        "lognormal:MEDIAN,SIGMA or MODULE:FUNCTION"
    )


def parse_curves(text: str, steps: int | None) -> RunFunction:
    """A run function that reports the learning-curve model ``MODULE:FUNCTION``,
    ``function(config, step) -> objective``, at every step up to the trial's ``max_steps``
    (else ``steps``), and returns its last value; ValueError naming what is wrong."""
    module, _, name = text.partition(":")
    if not module or not name.isidentifier():
        raise ValueError(f"--curves {text!r}: expected MODULE:FUNCTION")
    try:
        curve = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"--curves {text!r}: cannot import {name} from {module}: {err}") from None
    if not callable(curve):
        raise ValueError(f"--curves {text!r}: {module}.{name} is not callable")
    if steps is None:
        raise ValueError(f"--curves {text!r} needs --max-steps: the steps of a full training")

    def run(config: Config, trial: Trial) -> float | None:
        value = None
        for step in range(trial.step + 1, (trial.max_steps or steps) + 1):
            value = float(curve(config, step))
            if trial.report(step, value):
                break
        return value

    return run


@dataclass
class SimulationOutcome(SearchOutcome):
    """A search outcome (virtual times) plus what the master spent (real seconds, asks)."""

    master_seconds: float = 0.0
    n_asks: int = 0


def resolve_problem(spec: str) -> Problem:
    """A test function name (``ackley10``, ``hartmann6``, ...) or a problem module/path."""
    from hpsearch.testfunctions import make_problem, parse_name

    if "." not in spec and "/" not in spec:
        try:
            parse_name(spec)
        except ValueError:
            pass
        else:
            return make_problem(spec)[0]
    return load_problem(spec)


def simulate(
    optimizer: Optimizer | Scheduler,
    n_workers: int,
    duration: DurationModel | str,
    output: str,
    max_evals: int,
    timeout: float | None = None,
    master_time: str = "measured",
    grace: float = 10.0,
    eval_timeout: float | None = None,
    seed: int | None = None,
    record: Mapping[str, Any] | None = None,
) -> SimulationOutcome:
    """Simulate a search of ``optimizer`` (an ask/tell optimizer or a trial scheduler) on
    ``n_workers`` and write ``output``/results.csv (and ``record`` to its search.json).

    The objective comes from ``optimizer.problem.run``; ``timeout`` is virtual seconds.
    Raises :class:`~hpsearch.results.ResultsExist`, having written nothing, when
    ``output`` holds a results.csv already.
    """
    problem = optimizer.problem
    if problem.run is None:
        raise ValueError(f"problem {problem.name!r} has no run function to simulate")
    model = parse_duration(duration) if isinstance(duration, str) else duration
    evaluator = VirtualEvaluator(problem.run, n_workers, model, eval_timeout, master_time, seed)
    results_log = ResultsLog(output, problem.space, fsync=False)
    if record is not None:  # never over the record of the search another results.csv holds
        write_search(output, record)
    results_log.t0 = 0.0  # rows hold virtual seconds since the start as they are
    try:
        outcome = Search(optimizer, evaluator, results_log, max_evals, timeout, grace).run()
    finally:
        results_log.close()
    return SimulationOutcome(
        **vars(outcome),
        master_seconds=evaluator.master_seconds,
        n_asks=getattr(optimizer, "n_asks_", 0),
    )


def main(argv: Sequence[str] | None = None, prog: str = "python -m hpsearch.simulate") -> int:
    """``python -m hpsearch.simulate <method> --problem P --workers W --duration D ...``."""
    from hpsearch.problem import ProblemLoadError

    argv = list(sys.argv[1:] if argv is None else argv)
    names = method_names()
    if not argv or argv[0] not in names:
        print(
            f"usage: {prog} {{{','.join(names)}}} --problem P --workers W --duration D "
            f"[options]   ({prog} <method> --help)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    method = get_method(argv[0])
    parser = ArgumentParser(
        prog=f"{prog} {method.name}",
        description=f"Simulate a {method.description} on many workers with a virtual clock.",
    )
    parser.add_argument(
        "--problem",
        required=True,
        help="test function (ackley10, hartmann6, branin, ...) or problem module / .py path",
    )
    parser.add_argument("--workers", type=positive_int, required=True, help="simulated workers")
    parser.add_argument(
        "--duration",
        required=True,
        help="evaluation time model: fixed:S, uniform:LOW,HIGH, lognormal:MEDIAN,SIGMA "
        "or MODULE:FUNCTION (seconds from the configuration)",
    )
    parser.add_argument(
        "--max-evals", type=non_negative_int, default=100, help="finished evaluations"
    )
    parser.add_argument(
        "--timeout", type=positive_float, default=None, help="virtual seconds budget"
    )
    parser.add_argument("--grace", type=float, default=10.0, help="virtual grace seconds")
    parser.add_argument("--eval-timeout", type=positive_float, default=None, help="virtual seconds")
    parser.add_argument(
        "--master-time",
        choices=MASTER_TIMES,
        default="measured",
        help="add the master's measured ask/tell time to the clock, or count it as zero",
    )
    parser.add_argument("--output", default="sim-out", help="output directory (default sim-out)")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    parser.add_argument(
        "--curves",
        default=None,
        help="a learning-curve model MODULE:FUNCTION, function(config, step) -> objective, "
        "to report instead of running the problem (needs --max-steps)",
    )
    method.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    lock: OutputLock | None = None
    try:
        try:
            duration = parse_duration(args.duration)
            problem = resolve_problem(args.problem)
            if args.curves is not None:
                problem.run = parse_curves(args.curves, getattr(args, "max_steps", None))
            optimizer = method.build(problem, args)
            lock = OutputLock(args.output)  # before anything in the directory is read
            # a record of the search, as a real one leaves (the report reads it)
            record = search_record(method.name, method.parameters(args), problem, args.seed)
            t = time.perf_counter()
            outcome = simulate(
                optimizer,
                args.workers,
                duration,
                args.output,
                args.max_evals,
                timeout=args.timeout,
                master_time=args.master_time,
                grace=args.grace,
                eval_timeout=args.eval_timeout,
                seed=args.seed,
                record=record,
            )
        except ResultsExist as err:
            print(
                f"{prog}: error: {err.path} exists: a simulation starts a new directory, "
                "choose another --output",
                file=sys.stderr,
            )
            return EXIT_USAGE
        except (ProblemLoadError, ValueError) as err:
            print(f"{prog}: error: {err}", file=sys.stderr)
            return EXIT_USAGE
        best = "-" if outcome.best_objective is None else f"{outcome.best_objective:.6g}"
        print(
            f"simulated {outcome.n_finished} evaluations on {args.workers} workers "
            f"({outcome.n_failed} failed): best {best}, virtual wall {outcome.wall_time:.1f} s, "
            f"workers busy {outcome.utilisation:.1%} of the wall time, master "
            f"{outcome.master_seconds:.2f} s in "
            f"{outcome.n_asks} asks, real {time.perf_counter() - t:.1f} s; stopped by "
            f"{outcome.stopped_by}"
        )
        if outcome.best_config is not None and outcome.best_objective is not None:
            df = load_results(args.output, problem.space)
            job_id = best_job_id(df, outcome.best_config, outcome.best_objective, problem.space)
            write_best(args.output, outcome.best_objective, outcome.best_config, job_id)
    finally:
        if lock is not None:
            lock.release()
    print(f"results written to {outcome.results_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
