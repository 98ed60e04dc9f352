"""Early stopping, decided by the master from the trials' reports.

A :class:`Stopper` sees every valid report (``judge(job_id, step, value)``, the value to
minimise) and answers whether that trial should stop. It holds all it needs in memory on the
master (no shared storage, no locks), so a decision is the same under ``mpirun``, in the
local pool and in the simulator; and it never waits: a trial is compared with what the others
have reported so far.

- :class:`ASHA`, asynchronous successive halving (Li et al., arXiv:1810.05934): rungs at
  ``min_steps * reduction_factor**k`` steps below ``max_steps``. A trial reaching a rung
  records its value there and stops unless it is in the best ``1 / reduction_factor`` of the
  values recorded at that rung so far (the first trial at a rung always goes on).
- :class:`MedianStopper` (the median rule of Google Vizier, Optuna's ``MedianPruner``): from
  ``min_steps`` on, a trial stops when its value at a step is worse than the median of the
  values the other trials reported at that step, once ``min_trials`` others have.

Both keep their values sorted, so a decision is a binary search and an insertion, not a
sort or a pass computing a quantile: the master answers reports from thousands of workers.
"""

from __future__ import annotations

import argparse
import bisect
import logging
import math
from typing import Any

from hpsearch.problem import Problem, takes_trial
from hpsearch.scheduling import STOPPED_AS, AskTellScheduler, Scheduler
from hpsearch.search.base import Optimizer

log = logging.getLogger(__name__)

STOPPERS = ("none", "asha", "median")


class Stopper:
    """Decides, report by report, which trials stop early."""

    def judge(self, job_id: int, step: float, value: float) -> bool:
        """Learn that trial ``job_id`` reported ``value`` (to minimise) at ``step``; True
        when it should stop."""
        raise NotImplementedError

    def rung(self, job_id: int) -> int | None:
        """The highest rung trial ``job_id`` reached (None: the stopper has no rungs, or the
        trial reached none)."""
        return None


def _check_steps(min_steps: int, max_steps: int | None) -> None:
    if not isinstance(min_steps, int) or min_steps < 1:
        raise ValueError(f"min_steps must be an int >= 1, but got {min_steps!r}")
    if max_steps is not None and (not isinstance(max_steps, int) or max_steps < min_steps):
        raise ValueError(
            f"max_steps must be an int >= min_steps ({min_steps}), but got {max_steps!r}"
        )


class ASHA(Stopper):
    """Asynchronous successive halving over rungs ``min_steps * reduction_factor**k`` below
    ``max_steps`` (no last rung when ``max_steps`` is None)."""

    def __init__(
        self, min_steps: int = 1, max_steps: int | None = None, reduction_factor: int = 3
    ) -> None:
        _check_steps(min_steps, max_steps)
        if not isinstance(reduction_factor, int) or reduction_factor < 2:
            raise ValueError(f"reduction_factor must be an int >= 2, but got {reduction_factor!r}")
        self.min_steps, self.max_steps = min_steps, max_steps
        self.reduction_factor = reduction_factor
        self.recorded: list[list[float]] = []  # values per rung, sorted
        self.reached: dict[int, int] = {}  # job id -> highest rung recorded

    def rung_step(self, k: int) -> int:
        return self.min_steps * self.reduction_factor**k

    def _is_rung(self, k: int) -> bool:
        return self.max_steps is None or self.rung_step(k) < self.max_steps

    def judge(self, job_id: int, step: float, value: float) -> bool:
        k = self.reached.get(job_id, -1) + 1
        stop = False
        # a trial that reports less often than the rungs come records at each rung it passed
        while self._is_rung(k) and step >= self.rung_step(k):
            if k == len(self.recorded):
                self.recorded.append([])
            values = self.recorded[k]
            bisect.insort(values, value)
            self.reached[job_id] = k
            # the best 1/reduction_factor of the values recorded at this rung go on
            stop = stop or value > _quantile(values, 1.0 / self.reduction_factor)
            k += 1
        return stop

    def rung(self, job_id: int) -> int | None:
        return self.reached.get(job_id)


class MedianStopper(Stopper):
    """Stop a trial whose value at a step (from ``min_steps`` on) is worse than the median of
    the other trials' values at that step, once ``min_trials`` of them have reached it."""

    def __init__(self, min_steps: int = 1, min_trials: int = 5) -> None:
        _check_steps(min_steps, None)
        self.min_steps, self.min_trials = min_steps, min_trials
        self.at_step: dict[float, list[float]] = {}  # values reported at each step, sorted

    def judge(self, job_id: int, step: float, value: float) -> bool:
        others = self.at_step.setdefault(step, [])
        stop = (
            step >= self.min_steps
            and len(others) >= self.min_trials
            and value > _quantile(others, 0.5)
        )
        bisect.insort(others, value)
        return stop


def _quantile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values, interpolated linearly (as numpy's default)."""
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of early stopping, for the methods that train every trial from scratch."""
    parser.add_argument(
        "--stopper",
        choices=STOPPERS,
        default="none",
        help="stop trials early from their reports: asynchronous successive halving or the "
        "median rule (default none)",
    )
    parser.add_argument(
        "--min-steps", type=int, default=1, help="steps before a trial may be stopped (1)"
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="steps a trial trains (its trial.max_steps; default: the problem decides)",
    )
    parser.add_argument(
        "--reduction-factor", type=int, default=3, help="ASHA keeps the best 1/factor (3)"
    )
    parser.add_argument(
        "--stopped-as",
        choices=STOPPED_AS,
        default="worst",
        help="what the optimizer learns of a stopped trial: no better than the worst trial "
        "trained to its end (default), or its last value as if final",
    )


def from_arguments(args: argparse.Namespace) -> Stopper | None:
    """The stopper the flags ask for (None for ``none``); ValueError naming a bad value."""
    if args.stopper == "asha":
        return ASHA(args.min_steps, args.max_steps, args.reduction_factor)
    if args.stopper == "median":
        _check_steps(args.min_steps, args.max_steps)
        return MedianStopper(args.min_steps)
    _check_steps(args.min_steps, args.max_steps)
    return None


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The early-stopping flags' values, by name (recorded in search.json); none when they
    ask for nothing, so a search without them records what it always did."""
    if args.stopper == "none" and args.max_steps is None:
        return {}
    names = ["stopper", "min_steps", "max_steps"]
    names += ["reduction_factor"] if args.stopper == "asha" else []
    names += ["stopped_as"] if args.stopper != "none" else []
    return {name: getattr(args, name) for name in names}


def build(problem: Problem, method: Optimizer | Scheduler, args: argparse.Namespace) -> Any:
    """``method`` with the early stopping and step budget its flags ask for. A problem whose
    run never reports (``run(config)``) gets a warning and no stopping."""
    stopper = from_arguments(args)
    if stopper is not None and problem.run is not None and not takes_trial(problem.run):
        log.warning(
            "--stopper %s: problem %r has run(config), which never reports: nothing stops early",
            args.stopper,
            problem.name,
        )
        stopper = None
    if isinstance(method, Scheduler) or (stopper is None and args.max_steps is None):
        return method
    return AskTellScheduler(method, stopper, args.max_steps, args.stopped_as)
