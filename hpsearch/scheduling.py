"""What the search loop runs: a scheduler proposes trials and learns from their reports and results.

Optimizers that only need configurations (random search, AMBS) keep their ``ask``/``tell``
interface and run under :class:`AskTellScheduler`. Methods that decide about trials while they
train (population-based training, early stopping) subclass :class:`Scheduler`: they plan
trials that continue other jobs' checkpoints, answer reports with "stop", and say which
checkpoints they still need. See docs/trials.md for a worked example.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpsearch.evaluation import FINISHED, Job, Result
from hpsearch.problem import Problem
from hpsearch.results import ResultsLog, stopped_mask, valid_reports
from hpsearch.search.base import Optimizer
from hpsearch.space import Config
from hpsearch.suggestions import SuggestionBuffer
from hpsearch.trial import Report

if TYPE_CHECKING:
    from hpsearch.stopping import Stopper


@dataclass
class TrialPlan:
    """A trial to hand out: its configuration and where its training starts and ends.

    ``parent`` is a job whose usable checkpoint the trial continues (``Result.checkpoint``
    says which jobs have one); ``step`` is where it starts (None: the step the parent's
    checkpoint holds, or 0 without a parent); ``max_steps`` where it should end (None: the
    problem decides).
    """

    config: Config
    member: int | None = None
    parent: int | None = None
    step: int | None = None
    max_steps: int | None = None


class Scheduler:
    """The interface between the search loop and a search method.

    The loop calls, from its own thread: :meth:`restore` when it resumes an earlier run,
    :meth:`open` once, then repeatedly
    :meth:`keep_ready` / :meth:`take` to hand out trials, :meth:`report` for every valid
    report of a running trial (answer True to stop it), :meth:`finished` with every batch of
    ended jobs (finished or cancelled, after their rows are on disk), and :meth:`close` at the
    end. Only :meth:`take` must be fast: a free worker waits for it.
    """

    problem: Problem
    #: Seconds the last round of preparing trials took (the loop keeps more ready when long).
    round_seconds: float = 0.0

    def restore(self, log: ResultsLog, rerun: Sequence[Job]) -> None:
        """Learn the state of the earlier run a search resumes: the rows of ``log`` (its
        ``previous`` frame; :meth:`ResultsLog.finished` gives the finished configurations
        and objectives) and the jobs that were running, which the loop hands out first."""

    def open(self, background: bool) -> None:
        """Start; ``background=False`` when the master's time is simulated (do work inline)."""

    def keep_ready(self, n: int) -> None:
        """Prepare up to ``n`` trials to hand out (a hint: :meth:`take` may return fewer)."""

    def wait_ready(self, timeout: float) -> None:
        """Block until a trial is ready or ``timeout`` seconds pass (free workers wait).

        By default it sleeps: the loop then looks again, without spinning.
        """
        time.sleep(timeout)

    def take(self, n: int) -> list[TrialPlan]:
        """Up to ``n`` trials to hand out now, without waiting."""
        raise NotImplementedError

    def report(self, job: Job, report: Report) -> bool:
        """Learn of a report of running ``job``; True asks the trial to stop."""
        return False

    def rung(self, job_id: int) -> int | None:
        """The highest rung of early stopping job ``job_id`` reached (None: none)."""
        return None

    def finished(self, results: list[Result]) -> None:
        """Learn of ended jobs (``Result.checkpoint`` is set where one is usable)."""

    def needed_checkpoints(self) -> Collection[int]:
        """Job ids whose checkpoints a future trial may continue: never deleted."""
        return ()

    @property
    def exhausted(self) -> bool:
        """True when no trial will ever be proposed again (the search then ends)."""
        return False

    def best(self) -> tuple[Config, float] | None:
        """The best configuration and its objective (problem's direction), if the method
        knows better than the loop, which otherwise reports the best result of this run."""
        return None

    def close(self) -> None:
        """Stop; learn whatever is still queued."""


#: What an optimizer learns of a trial the stopper stopped (see :class:`AskTellScheduler`).
STOPPED_AS = ("worst", "last")


class AskTellScheduler(Scheduler):
    """Run an ask/tell :class:`~hpsearch.search.base.Optimizer`: every trial is a fresh start,
    ending at ``max_steps`` (None: the problem decides).

    Suggestions are asked ahead in a background thread (see
    :class:`~hpsearch.suggestions.SuggestionBuffer`), so a free worker gets one at once. A
    ``stopper`` (see :mod:`hpsearch.stopping`) answers the trials' reports. With
    ``stopped_as="worst"`` the optimizer learns a stopped trial's last value as no better
    than the worst trial that trained to its end (it was stopped for being behind, and a last
    value is no final value); until one has, the stopped trial stays pending, under the
    optimizer's liar. With ``stopped_as="last"`` it learns the last value as if it were final.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        stopper: Stopper | None = None,
        max_steps: int | None = None,
        stopped_as: str = "worst",
    ) -> None:
        if stopped_as not in STOPPED_AS:
            raise ValueError(
                f"stopped_as must be one of {', '.join(STOPPED_AS)}, but got {stopped_as!r}"
            )
        self.optimizer = optimizer
        self.stopped_as = stopped_as
        self.problem = optimizer.problem
        self.stopper = stopper
        self.max_steps = max_steps
        self._buffer: SuggestionBuffer | None = None
        #: the worst final value (to minimise) of the trials that trained to their end
        self._worst_final = -math.inf
        #: stopped trials (configuration, last value to minimise) waiting for a final value
        self._stopped: list[tuple[Config, float]] = []
        #: the trials the stopper stopped (not those a search's end stopped)
        self._stopper_stops: set[int] = set()

    def _suggestions(self) -> SuggestionBuffer:
        if self._buffer is None:
            raise RuntimeError("the scheduler is not open")
        return self._buffer

    def restore(self, log: ResultsLog, rerun: Sequence[Job]) -> None:
        configs, objectives = log.finished()
        previous = log.previous
        # a trial stopped by the end of a search, without a stopper, is taken as it is
        stopped = [False] * len(configs)
        if self.stopper is not None and len(previous):
            stopped = stopped_mask(previous)[previous["status"].isin(FINISHED)].tolist()
        self.optimizer.tell(*self._learnable(list(zip(configs, objectives, stopped, strict=True))))
        self.optimizer.mark_pending([job.config for job in rerun])
        self.optimizer.mark_pending([config for config, _ in self._stopped])
        if self.stopper is not None:
            self._replay(log.previous_steps)

    def _replay(self, steps: Any) -> None:
        """Give the stopper the reports of an earlier run, in the order they came, so that
        its rungs and curves are as the run left them."""
        valid = valid_reports(steps).sort_values("t", kind="stable")
        assert self.stopper is not None
        for job_id, step, objective in zip(
            valid["job_id"], valid["step"], valid["objective"], strict=True
        ):
            self.stopper.judge(int(job_id), float(step), self.problem.sign * float(objective))

    def _learnable(self, ended: list[tuple[Config, Any, bool]]) -> tuple[list[Config], list[Any]]:
        """What the optimizer learns of ended trials ``(config, objective, stopped)``: a
        stopped trial counts as no better than the worst trial that trained to its end, and
        waits (pending, so under the optimizer's liar) until one has."""
        configs: list[Config] = []
        objectives: list[Any] = []
        for config, objective, stopped in ended:
            scalar = isinstance(objective, int | float) and math.isfinite(objective)
            if stopped and scalar and self.stopped_as == "worst":
                self._stopped.append((config, self.problem.sign * float(objective)))
                continue
            if scalar and not stopped:
                self._worst_final = max(self._worst_final, self.problem.sign * float(objective))
            configs.append(config)
            objectives.append(objective)
        if self._worst_final > -math.inf:
            for config, value in self._stopped:
                configs.append(config)
                objectives.append(self.problem.sign * max(value, self._worst_final))
            self._stopped = []
        return configs, objectives

    def open(self, background: bool) -> None:
        self._buffer = SuggestionBuffer(self.optimizer, background)

    @property
    def round_seconds(self) -> float:  # type: ignore[override]
        return 0.0 if self._buffer is None else self._buffer.round_seconds

    def keep_ready(self, n: int) -> None:
        self._suggestions().keep_ready(n)

    def wait_ready(self, timeout: float) -> None:
        self._suggestions().wait_ready(timeout)

    def take(self, n: int) -> list[TrialPlan]:
        configs = self._suggestions().take(n)
        return [TrialPlan(config, max_steps=self.max_steps) for config in configs]

    def report(self, job: Job, report: Report) -> bool:
        if self.stopper is None or report.objective is None:
            return False
        value = self.problem.sign * float(report.objective)
        stop = math.isfinite(value) and self.stopper.judge(job.job_id, float(report.step), value)
        if stop:
            self._stopper_stops.add(job.job_id)
        return stop

    def rung(self, job_id: int) -> int | None:
        return None if self.stopper is None else self.stopper.rung(job_id)

    def finished(self, results: list[Result]) -> None:
        done = [r for r in results if r.status in FINISHED]
        buffer = self._suggestions()
        ended = [
            (r.config, r.objective, r.outcome.stopped and r.job.job_id in self._stopper_stops)
            for r in done
        ]
        self._stopper_stops.difference_update(r.job.job_id for r in results)
        buffer.tell(*self._learnable(ended))
        buffer.forget([r.config for r in results if r.status not in FINISHED])

    @property
    def exhausted(self) -> bool:
        return self._buffer is not None and self._buffer.exhausted

    def best(self) -> tuple[Config, float] | None:
        # with a stopper the optimizer also learned stopped trials (imputed or last values);
        # the loop's best of the trials trained to their end is the one to report
        return None if self.stopper is not None else self.optimizer.best()

    def close(self) -> None:
        if self._buffer is not None:
            self._buffer.close()
            self._buffer = None


def as_scheduler(method: Optimizer | Scheduler) -> Scheduler:
    """``method`` itself when it is a scheduler, else an ask/tell scheduler around it."""
    return method if isinstance(method, Scheduler) else AskTellScheduler(method)


__all__ = ["STOPPED_AS", "AskTellScheduler", "Scheduler", "TrialPlan", "as_scheduler"]
