"""Replica exchange (parallel tempering) of hyperparameters over replicas trained side by side.

``replicas`` copies of one network train with SGD, each with its own values of the
"temperature-like" hyperparameters of the ``ladder`` (learning rate, dropout, batch size,
noise), spread from cold to hot. Every ``exchange_every`` steps, once all replicas have
reached the same step (and after ``burn_in`` steps), a random adjacent pair on the ladder
proposes to swap its hyperparameter values (never its weights). The swap is accepted with
probability ``min(1, exp(C * sum_h (beta_m - beta_n) * (L_m - L_n)))``, where ``beta`` is a
ladder hyperparameter's inverse temperature and ``L`` the validation loss (the objective to
minimise) of each replica at that step, so the better weights drift to the cold end while the
hot replicas keep exploring. Every proposal is a row of ``exchanges.csv``.

Inverse temperatures: ``1 / value`` by default (a larger learning rate or noise is hotter),
``(1 - p) / p`` for a dropout probability (a name containing "dropout"), ``value`` for a
batch size (a name containing "batch": larger batches are less noisy, so colder); a problem
gives its own as ``problem.inverse_temperature = {"name": function(value) -> beta}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np

from hpsearch.arguments import positive_int
from hpsearch.evaluation import FINISHED, Job, Result
from hpsearch.problem import Problem, takes_trial
from hpsearch.results import ResultsLog
from hpsearch.scheduling import Scheduler, TrialPlan
from hpsearch.search.base import Seed
from hpsearch.search.population import Member, best_member, restore_members
from hpsearch.search.random import RandomSearch
from hpsearch.space import Categorical, Integer

log = logging.getLogger(__name__)

EXCHANGES_FILE = "exchanges.csv"
#: Failed segments in a row after which a replica with nobody to copy stops.
MAX_FAILURES = 5
EXCHANGE_COLUMNS = ["step", "pair", "betas", "losses", "probability", "accepted"]


def default_inverse_temperature(name: str) -> Callable[[float], float]:
    """How a hyperparameter's value maps to its inverse temperature (larger: colder)."""
    if "dropout" in name:
        return lambda p: (1 - p) / p if p > 0 else math.inf
    if "batch" in name:
        return float
    return lambda value: 1 / value if value else math.inf


def ladder_values(problem: Problem, name: str, low: float, high: float, log_scale: bool, n: int):
    """``n`` values of hyperparameter ``name`` from ``low`` to ``high`` (log-spaced when
    ``log_scale``), checked against its declaration; ValueError naming what is wrong."""
    if name not in problem.space.names:
        raise ValueError(f"--ladder {name}: problem {problem.name!r} has no such hyperparameter")
    dim = problem.space[name]
    if isinstance(dim, Categorical):
        raise ValueError(f"--ladder {name}: the ladder needs a real or integer hyperparameter")
    if log_scale and not low > 0:
        raise ValueError(f"--ladder {name}: a log ladder needs LOW > 0, got {low}")
    bounds = (getattr(dim, "low", -math.inf), getattr(dim, "high", math.inf))
    if not (bounds[0] <= low <= bounds[1] and bounds[0] <= high <= bounds[1]):
        raise ValueError(
            f"--ladder {name}: LOW and HIGH must lie in [{bounds[0]:g}, {bounds[1]:g}], "
            f"got {low:g}:{high:g}"
        )
    spaced = np.geomspace(low, high, n) if log_scale else np.linspace(low, high, n)
    try:
        return [dim.check_value(round(v) if isinstance(dim, Integer) else float(v)) for v in spaced]
    except ValueError as err:
        raise ValueError(f"--ladder {name}: {err}") from None


class ReplicaExchange(Scheduler):
    """Train ``replicas`` replicas up to ``max_steps``, proposing a swap every
    ``exchange_every`` steps. ``ladder`` maps hyperparameter names to their ``replicas``
    values (use :func:`ladder_values`), coldest first or in any order."""

    def __init__(
        self,
        problem: Problem,
        ladder: dict[str, Sequence[Any]],
        exchange_every: int = 2,
        burn_in: int = 0,
        coefficient: float = 1.0,
        max_steps: int = 30,
        seed: Seed = None,
        exchanges_path: str | None = None,
    ) -> None:
        if problem.run is not None and not takes_trial(problem.run):
            raise ValueError(
                "replica exchange needs a run function that takes the trial, "
                f"run(config, trial); problem {problem.name!r} has run(config)"
            )
        if not ladder:
            raise ValueError("replica exchange needs a ladder of at least one hyperparameter")
        sizes = {len(values) for values in ladder.values()}
        if len(sizes) != 1 or min(sizes) < 2:
            raise ValueError(f"every ladder needs the same number >= 2 of values, got {ladder}")
        for name, value in [("exchange_every", exchange_every), ("max_steps", max_steps)]:
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"The {name!r} parameter of replica exchange must be an int >= 1. "
                    f"Got {value!r} instead."
                )
        if not math.isfinite(coefficient) or coefficient <= 0:
            raise ValueError(
                "The 'coefficient' parameter of replica exchange must be a float > 0. "
                f"Got {coefficient!r} instead."
            )
        self.problem = problem
        self.exchange_every, self.burn_in, self.max_steps = exchange_every, burn_in, max_steps
        self.coefficient = float(coefficient)
        self.rng = np.random.default_rng(seed)
        self.exchanges_path = exchanges_path
        own = getattr(problem, "inverse_temperature", None) or {}
        self.beta = {name: own.get(name) or default_inverse_temperature(name) for name in ladder}
        base = (
            problem.space.default_config()
            if problem.space.has_defaults
            else RandomSearch(problem, seed=self.rng).ask(1)[0]
        )
        n = sizes.pop()
        self.replicas = [
            Member(problem.space.validate({**base, **{k: v[i] for k, v in ladder.items()}}))
            for i in range(n)
        ]
        self.done: set[int] = set()
        self.waiting: set[int] = set()  # replicas at the end of a round, waiting for the rest
        self.plans = [self._segment(r) for r in range(n)]

    # ---- the scheduler interface -----------------------------------------------------------
    def restore(self, log: ResultsLog, rerun: Sequence[Job]) -> None:
        """Each replica continues from its latest finished segment whose checkpoint is kept,
        with the hyperparameters it trained with; running segments go out again first."""
        restore_members(self.replicas, log, self.problem)
        self.done = {r for r, replica in enumerate(self.replicas) if replica.step >= self.max_steps}
        running = {job.member for job in rerun if job.member is not None}
        self.plans = [
            self._segment(r)
            for r in range(len(self.replicas))
            if r not in running and r not in self.done
        ]

    def take(self, n: int) -> list[TrialPlan]:
        taken, self.plans = self.plans[:n], self.plans[n:]
        return taken

    def finished(self, results: list[Result]) -> None:
        for result in results:
            r = result.job.member
            if r is None or r >= len(self.replicas) or result.status not in FINISHED:
                continue
            replica = self.replicas[r]
            if not replica.trained(result, self.problem):
                self._segment_failed(r)
                continue
            self.waiting.add(r)
        self._end_round()

    def _segment_failed(self, r: int) -> None:
        """Run a failed replica's segment once more from its own checkpoint; when it fails
        again, the replica takes over the weights of the best replica that has ended this
        round, keeping its own ladder values, so the ladder never loses a rung. With nobody
        to copy yet it tries again, up to MAX_FAILURES times in a row."""
        replica = self.replicas[r]
        if replica.failures >= 2 and self._take_over(r):
            return
        if replica.failures >= MAX_FAILURES:
            log.warning("replica %d failed %d times in a row: stopped", r, replica.failures)
            self.done.add(r)
            return
        self.plans.append(self._segment(r))

    def _take_over(self, r: int) -> bool:
        """Give replica ``r`` the weights of the best replica waiting at the end of this
        round; True when there was one."""
        ended = [w for w in self.waiting if math.isfinite(self.replicas[w].value)]
        if not ended:
            return False
        best = min(ended, key=lambda w: self.replicas[w].value)
        source, replica = self.replicas[best], self.replicas[r]
        replica.job_id, replica.step, replica.value = source.job_id, source.step, source.value
        replica.failures = 0
        log.warning("replica %d failed twice in a row: it continues replica %d's weights", r, best)
        self.waiting.add(r)
        return True

    def needed_checkpoints(self) -> Collection[int]:
        return [r.job_id for r in self.replicas if r.job_id is not None]

    @property
    def exhausted(self) -> bool:
        return len(self.done) == len(self.replicas)

    def best(self) -> tuple[dict[str, Any], float] | None:
        return best_member(self.replicas, self.problem)

    # ---- rounds and exchanges --------------------------------------------------------------
    def _segment(self, r: int) -> TrialPlan:
        replica = self.replicas[r]
        end = min(self.max_steps, (replica.step // self.exchange_every + 1) * self.exchange_every)
        return replica.plan(r, end)

    def _end_round(self) -> None:
        """Once every replica still training waits at the same step: propose one exchange,
        then send them all on."""
        active = [r for r in range(len(self.replicas)) if r not in self.done]
        if not active or not set(active) <= self.waiting:
            return
        steps = {self.replicas[r].step for r in active}
        if len(steps) == 1:
            step = steps.pop()
            if self.burn_in <= step < self.max_steps and len(active) > 1:
                self._propose(active, step)
        self.waiting.clear()
        for r in active:
            if self.replicas[r].step >= self.max_steps:
                self.done.add(r)
            else:
                self.plans.append(self._segment(r))

    def _betas(self, r: int) -> dict[str, float]:
        return {name: beta(self.replicas[r].config[name]) for name, beta in self.beta.items()}

    def _propose(self, active: list[int], step: int) -> None:
        """Propose swapping the ladder values of a random adjacent pair (by coldness)."""
        order = sorted(active, key=lambda r: -sum(self._betas(r).values()))
        i = int(self.rng.integers(len(order) - 1))
        m, n = order[i], order[i + 1]
        beta_m, beta_n = self._betas(m), self._betas(n)
        loss_m, loss_n = self.replicas[m].value, self.replicas[n].value
        delta = self.coefficient * sum(beta_m[h] - beta_n[h] for h in self.beta) * (loss_m - loss_n)
        probability = 1.0 if delta >= 0 else math.exp(delta)
        accepted = bool(self.rng.random() < probability)
        if accepted:
            for h in self.beta:
                a, b = self.replicas[m].config, self.replicas[n].config
                a[h], b[h] = b[h], a[h]
        self._log_exchange(step, (m, n), (beta_m, beta_n), (loss_m, loss_n), probability, accepted)

    def _log_exchange(self, step, pair, betas, losses, probability, accepted) -> None:
        if self.exchanges_path is None:
            return
        fresh = not os.path.exists(self.exchanges_path)
        with open(self.exchanges_path, "a", newline="") as f:
            writer = csv.writer(f)
            if fresh:
                writer.writerow(EXCHANGE_COLUMNS)
            beta_cells = [{name: float(b) for name, b in side.items()} for side in betas]
            writer.writerow(
                [
                    step,
                    f"{pair[0]}-{pair[1]}",
                    json.dumps(beta_cells),
                    json.dumps([float(loss) for loss in losses]),
                    probability,
                    accepted,
                ]
            )


def _ladder(text: str) -> tuple[str, float, float, bool]:
    """``name=LOW:HIGH[:log]`` as (name, low, high, log)."""
    name, _, spec = text.partition("=")
    parts = spec.split(":")
    try:
        if not name or len(parts) not in (2, 3) or parts[2:] not in ([], ["log"]):
            raise ValueError
        low, high = float(parts[0]), float(parts[1])
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(
            f"expected NAME=LOW:HIGH or NAME=LOW:HIGH:log, got {text!r}"
        ) from None
    return name, low, high, parts[2:] == ["log"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``python -m hpsearch.rex``."""
    parser.add_argument("--replicas", type=positive_int, default=8, help="replicas (default 8)")
    parser.add_argument(
        "--ladder",
        type=_ladder,
        action="append",
        required=True,
        help="a temperature-like hyperparameter and its range, NAME=LOW:HIGH[:log] (repeat)",
    )
    parser.add_argument(
        "--exchange-every", type=positive_int, default=2, help="steps between exchanges (2)"
    )
    parser.add_argument("--burn-in", type=int, default=0, help="steps before the first exchange")
    parser.add_argument(
        "--coefficient", type=float, default=1.0, help="C of the acceptance rule (default 1)"
    )
    parser.add_argument(
        "--max-steps", type=positive_int, default=30, help="steps each replica trains (30)"
    )
    # the replicas end when each has trained --max-steps: no cap on the segments
    parser.set_defaults(max_evals=1_000_000_000)


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The replica-exchange parameters of a parsed command line (the seed excluded)."""
    return {
        "replicas": args.replicas,
        "ladder": [f"{n}={lo}:{hi}{':log' if lg else ''}" for n, lo, hi, lg in args.ladder],
        "exchange_every": args.exchange_every,
        "burn_in": args.burn_in,
        "coefficient": args.coefficient,
        "max_steps": args.max_steps,
    }


def build(problem: Problem, args: argparse.Namespace) -> ReplicaExchange:
    """The replica exchange configured by the command line; exchanges.csv beside results."""
    ladder = {
        name: ladder_values(problem, name, low, high, log_scale, args.replicas)
        for name, low, high, log_scale in args.ladder
    }
    return ReplicaExchange(
        problem,
        ladder,
        exchange_every=args.exchange_every,
        burn_in=args.burn_in,
        coefficient=args.coefficient,
        max_steps=args.max_steps,
        seed=args.seed,
        exchanges_path=os.path.join(args.output, EXCHANGES_FILE),
    )
