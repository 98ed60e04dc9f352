"""What the search loop runs: a scheduler proposes trials and learns from their reports and results.

Optimizers that only need configurations (random search, AMBS) keep their ``ask``/``tell``
interface and run under :class:`AskTellScheduler`. Methods that decide about trials while they
train (population-based training, early stopping) subclass :class:`Scheduler`: they plan
trials that continue other jobs' checkpoints, answer reports with "stop", and say which
checkpoints they still need. See docs/trials.md for a worked example.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from hpsearch.evaluation import FINISHED, Job, Result
from hpsearch.problem import Problem
from hpsearch.results import ResultsLog
from hpsearch.search.base import Optimizer
from hpsearch.space import Config
from hpsearch.suggestions import SuggestionBuffer
from hpsearch.trial import Report


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


class AskTellScheduler(Scheduler):
    """Run an ask/tell :class:`~hpsearch.search.base.Optimizer`: every trial is a fresh start.

    Suggestions are asked ahead in a background thread (see
    :class:`~hpsearch.suggestions.SuggestionBuffer`), so a free worker gets one at once.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.problem = optimizer.problem
        self._buffer: SuggestionBuffer | None = None

    def _suggestions(self) -> SuggestionBuffer:
        if self._buffer is None:
            raise RuntimeError("the scheduler is not open")
        return self._buffer

    def restore(self, log: ResultsLog, rerun: Sequence[Job]) -> None:
        self.optimizer.tell(*log.finished())
        self.optimizer.mark_pending([job.config for job in rerun])

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
        return [TrialPlan(config) for config in self._suggestions().take(n)]

    def finished(self, results: list[Result]) -> None:
        done = [r for r in results if r.status in FINISHED]
        buffer = self._suggestions()
        buffer.tell([r.config for r in done], [r.objective for r in done])
        buffer.forget([r.config for r in results if r.status not in FINISHED])

    def best(self) -> tuple[Config, float] | None:
        return self.optimizer.best()

    def close(self) -> None:
        if self._buffer is not None:
            self._buffer.close()
            self._buffer = None


def as_scheduler(method: Optimizer | Scheduler) -> Scheduler:
    """``method`` itself when it is a scheduler, else an ask/tell scheduler around it."""
    return method if isinstance(method, Scheduler) else AskTellScheduler(method)


__all__ = ["AskTellScheduler", "Scheduler", "TrialPlan", "as_scheduler"]
