"""Simulate an asynchronous search on many workers with a virtual clock.

The optimizer is the real one (the same code a master runs); only the workers are simulated.
Each evaluation calls the problem's (cheap) run function for its objective and takes a
*virtual* duration drawn from a :class:`DurationModel`. The master's own ask/tell time is
either measured for real and added to the virtual clock (``master_time="measured"``: a slow
surrogate shows up as idle workers) or taken as zero. The rows go to results.csv through the
same :class:`~hpsearch.results.ResultsLog` as a real search, with times in virtual seconds.

``python -m hpsearch.simulate <method> --problem ackley10 --workers 4096 --max-evals 81920
--duration lognormal:60,0.5 --output sim-out``
"""

from __future__ import annotations

import heapq
import importlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hpsearch.evaluation import CANCELLED, DONE, FINISHED, TIMEOUT, Job, Outcome, Result, evaluate
from hpsearch.loop import SearchOutcome
from hpsearch.problem import Problem, RunFunction, load_problem
from hpsearch.results import ResultsLog
from hpsearch.search.base import Optimizer
from hpsearch.space import Config

log = logging.getLogger(__name__)

MASTER_TIMES = ("measured", "zero")
SIM_HOST = "simulated"


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


@dataclass
class SimulationOutcome(SearchOutcome):
    """A search outcome (virtual times) plus what the master spent."""

    master_seconds: float = 0.0
    n_asks: int = 0


@dataclass
class Simulation:
    """An asynchronous master/worker search on ``n_workers`` simulated workers.

    Mirrors :class:`hpsearch.loop.Search`: every free worker gets a job (one ``ask`` for all
    of them), finished evaluations are written to the log, then told. ``timeout`` is in
    virtual seconds; after it, running evaluations get ``grace`` virtual seconds to finish
    and the rest are cancelled.
    """

    optimizer: Optimizer
    run: RunFunction
    log: ResultsLog
    n_workers: int
    duration: DurationModel
    max_evals: int
    timeout: float | None = None
    grace: float = 10.0
    master_time: str = "measured"
    eval_timeout: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.n_workers < 1:
            raise ValueError(f"a simulation needs at least 1 worker, but got {self.n_workers}")
        if self.master_time not in MASTER_TIMES:
            raise ValueError(
                f"master_time must be one of {MASTER_TIMES}, but got {self.master_time!r}"
            )
        self.log.t0 = 0.0  # rows hold virtual seconds since the start as they are
        self.rng = np.random.default_rng(self.seed)
        self.now = 0.0
        self.master_seconds = 0.0
        self.n_asks = 0
        self.next_job_id = 0
        self.n_finished = 0
        self.n_failed = 0
        self.busy_seconds = 0.0
        self.free = list(range(self.n_workers))  # a heap: the lowest free worker gets work
        self.running: list[tuple[float, int, Result]] = []  # heap on t_end, then job id

    def _master(self, action: Callable[[], object]) -> object:
        """Run a master action, advancing the virtual clock by its measured time if asked."""
        t = time.perf_counter()
        value = action()
        spent = time.perf_counter() - t
        self.master_seconds += spent
        if self.master_time == "measured":
            self.now += spent
        return value

    def _submit(self) -> None:
        n = min(len(self.free), self.max_evals - self.n_finished - len(self.running))
        if n <= 0:
            return
        configs = self._master(lambda: self.optimizer.ask(n))
        self.n_asks += 1
        assert isinstance(configs, list)
        for config in configs:
            job = Job(self.next_job_id, config, t_submit=self.now)
            self.next_job_id += 1
            outcome = evaluate(self.run, config)
            seconds = self.duration(config, self.rng)
            if self.eval_timeout is not None and seconds > self.eval_timeout:
                outcome = Outcome(
                    TIMEOUT, error=f"evaluation exceeded --eval-timeout {self.eval_timeout:g} s"
                )
                seconds = self.eval_timeout
            outcome.t_start, outcome.t_end = self.now, self.now + seconds
            result = Result(job, outcome, worker=heapq.heappop(self.free), host=SIM_HOST)
            heapq.heappush(self.running, (outcome.t_end, job.job_id, result))

    def _finish_until(self, t: float) -> list[Result]:
        """Pop the evaluations that end by virtual time ``t``, freeing their workers."""
        done: list[Result] = []
        while self.running and self.running[0][0] <= t:
            done.append(heapq.heappop(self.running)[2])
        return done

    def _record(self, results: list[Result]) -> None:
        if not results:
            return
        for r in results:
            assert isinstance(r.worker, int)
            heapq.heappush(self.free, r.worker)
            self.busy_seconds += r.outcome.t_end - r.outcome.t_start
        self.log.write(results)
        finished = [r for r in results if r.status in FINISHED]
        self.n_finished += len(finished)
        self.n_failed += sum(r.status != DONE for r in finished)
        cancelled = [r.config for r in results if r.status not in FINISHED]

        def tell() -> None:
            self.optimizer.tell([r.config for r in finished], [r.objective for r in finished])
            self.optimizer.forget(cancelled)

        self._master(tell)

    def _deadline(self) -> float:
        return math.inf if self.timeout is None else self.timeout

    def run_search(self) -> SimulationOutcome:
        """Simulate to a stopping rule and return the outcome (times in virtual seconds)."""
        stopped_by = "max-evals"
        while self.n_finished < self.max_evals:
            if self.now >= self._deadline():
                stopped_by = "timeout"
                break
            self._submit()
            if not self.running:
                break
            # the master waits for the next evaluation to end, unless it is already late
            t_next = max(self.now, self.running[0][0])
            if t_next > self._deadline():
                self.now = self._deadline()
                stopped_by = "timeout"
                break
            self.now = t_next
            self._record(self._finish_until(self.now))
        self._drain()
        best = self.optimizer.best()
        wall = self.now
        return SimulationOutcome(
            n_finished=self.n_finished,
            n_failed=self.n_failed,
            best_config=None if best is None else best[0],
            best_objective=None if best is None else best[1],
            results_path=self.log.path,
            wall_time=wall,
            stopped_by=stopped_by,
            utilisation=self.busy_seconds / (self.n_workers * wall) if wall > 0 else math.nan,
            master_seconds=self.master_seconds,
            n_asks=self.n_asks,
        )

    def _drain(self) -> None:
        """Let running evaluations end within the grace period, then cancel the rest."""
        if not self.running:
            return
        end = self.now + self.grace
        while self.running and self.running[0][0] <= end:
            self.now = max(self.now, self.running[0][0])
            self._record(self._finish_until(self.now))
        if self.running:
            self.now = end
            cancelled = []
            for _, _, r in self.running:
                r.outcome = Outcome(
                    CANCELLED, error="search stopped", t_start=r.outcome.t_start, t_end=end
                )
                cancelled.append(r)
            self.running = []
            self._record(cancelled)


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
    optimizer: Optimizer,
    n_workers: int,
    duration: DurationModel | str,
    output: str,
    max_evals: int,
    timeout: float | None = None,
    master_time: str = "measured",
    grace: float = 10.0,
    eval_timeout: float | None = None,
    seed: int | None = None,
) -> SimulationOutcome:
    """Simulate a search of ``optimizer`` on ``n_workers`` and write ``output``/results.csv.

    The objective comes from ``optimizer.problem.run``; ``timeout`` is virtual seconds.
    """
    problem = optimizer.problem
    if problem.run is None:
        raise ValueError(f"problem {problem.name!r} has no run function to simulate")
    model = parse_duration(duration) if isinstance(duration, str) else duration
    results_log = ResultsLog(output, problem.space, fsync=False)
    try:
        return Simulation(
            optimizer,
            problem.run,
            results_log,
            n_workers,
            model,
            max_evals,
            timeout=timeout,
            grace=grace,
            master_time=master_time,
            eval_timeout=eval_timeout,
            seed=seed,
        ).run_search()
    finally:
        results_log.close()


def main(argv: Sequence[str] | None = None, prog: str = "python -m hpsearch.simulate") -> int:
    """``python -m hpsearch.simulate <method> --problem P --workers W --duration D ...``."""
    from hpsearch.cli import EXIT_USAGE, UsageError, _Parser, methods
    from hpsearch.problem import ProblemLoadError

    argv = list(sys.argv[1:] if argv is None else argv)
    names = methods()
    if not argv or argv[0] not in names:
        print(
            f"usage: {prog} {{{','.join(names)}}} --problem P --workers W --duration D "
            f"[options]   ({prog} <method> --help)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    method = names[argv[0]]
    parser = _Parser(
        prog=f"{prog} {method.name}",
        description=f"Simulate a {method.description} on many workers with a virtual clock.",
    )
    parser.add_argument(
        "--problem",
        required=True,
        help="test function (ackley10, hartmann6, branin, ...) or problem module / .py path",
    )
    parser.add_argument("--workers", type=int, required=True, help="simulated workers")
    parser.add_argument(
        "--duration",
        required=True,
        help="evaluation time model: fixed:S, uniform:LOW,HIGH, lognormal:MEDIAN,SIGMA "
        "or MODULE:FUNCTION (seconds from the configuration)",
    )
    parser.add_argument("--max-evals", type=int, default=100, help="finished evaluations")
    parser.add_argument("--timeout", type=float, default=None, help="virtual seconds budget")
    parser.add_argument("--grace", type=float, default=10.0, help="virtual grace seconds")
    parser.add_argument("--eval-timeout", type=float, default=None, help="virtual seconds")
    parser.add_argument(
        "--master-time",
        choices=MASTER_TIMES,
        default="measured",
        help="add the master's measured ask/tell time to the clock, or count it as zero",
    )
    parser.add_argument("--output", default="sim-out", help="output directory (default sim-out)")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    method.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        if args.workers < 1:
            raise UsageError(f"--workers must be >= 1, got {args.workers}")
        if args.max_evals < 0:
            raise UsageError(f"--max-evals must be >= 0, got {args.max_evals}")
        if args.timeout is not None and not args.timeout > 0:
            raise UsageError(f"--timeout must be > 0 virtual seconds, got {args.timeout}")
        duration = parse_duration(args.duration)
        problem = resolve_problem(args.problem)
        optimizer = method.build(problem, args)
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
        )
    except (UsageError, ProblemLoadError, ValueError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    best = "-" if outcome.best_objective is None else f"{outcome.best_objective:.6g}"
    print(
        f"simulated {outcome.n_finished} evaluations on {args.workers} workers "
        f"({outcome.n_failed} failed): best {best}, virtual wall {outcome.wall_time:.1f} s, "
        f"utilisation {outcome.utilisation:.3f}, master {outcome.master_seconds:.2f} s in "
        f"{outcome.n_asks} asks, real {time.perf_counter() - t:.1f} s; stopped by "
        f"{outcome.stopped_by}"
    )
    if outcome.best_config is not None:
        with open(os.path.join(args.output, "best.json"), "w") as f:
            json.dump({"objective": outcome.best_objective, "config": outcome.best_config}, f)
    print(f"results written to {outcome.results_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
