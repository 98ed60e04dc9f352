"""Simulated workers on a virtual clock, for running the real search loop at any scale.

Each job's objective comes from calling the problem's (cheap) run function at once; its
duration is drawn from a duration model and counted on a virtual clock. A trial's reports are
replayed at evenly spaced virtual times over that duration, and reach the report handler when
the clock passes them; a stop decision ends the job at its next report (one report late, as
on real workers), with that report's objective (and, since the run went on past it when it
was called, without a checkpoint to continue). The master's own time (everything the loop
does between calls to the evaluator) is either measured and added to the clock
(``master_time="measured"``: a slow method shows up as idle workers) or taken as zero.
"""

from __future__ import annotations

import heapq
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hpsearch.evaluation import CANCELLED, DONE, TIMEOUT, Job, Outcome, Result, evaluate
from hpsearch.evaluators.base import Evaluator
from hpsearch.problem import RunFunction
from hpsearch.space import Config
from hpsearch.trial import NoChannel, Report

MASTER_TIMES = ("measured", "zero")
SIM_HOST = "simulated"

#: Virtual seconds one evaluation takes: ``duration(config, rng) -> seconds``.
Duration = Callable[[Config, np.random.Generator], float]


@dataclass(order=True)
class _Running:
    """A job on a simulated worker; ordered by when it ends, then by job id."""

    t_end: float
    job_id: int
    result: Result = field(compare=False)
    reports: list[Report] = field(compare=False)  # all its reports, in time order
    delivered: int = field(default=0, compare=False)  # how many reached the handler


class VirtualEvaluator(Evaluator):
    """``n_workers`` simulated workers whose jobs take virtual time from ``duration``.

    :meth:`wait` advances the clock to the next end of a job (or by its timeout);
    ``eval_timeout`` is in virtual seconds. :attr:`master_seconds` is the real time spent
    outside the evaluator (the master's work), whatever ``master_time`` says.
    """

    virtual = True

    def __init__(
        self,
        run: RunFunction,
        n_workers: int,
        duration: Duration,
        eval_timeout: float | None = None,
        master_time: str = "measured",
        seed: int | None = None,
    ) -> None:
        if n_workers < 1:
            raise ValueError(f"a simulation needs at least 1 worker, but got {n_workers}")
        if master_time not in MASTER_TIMES:
            raise ValueError(f"master_time must be one of {MASTER_TIMES}, but got {master_time!r}")
        self.run = run
        self.n_workers = n_workers
        self.duration = duration
        self.eval_timeout = eval_timeout
        self.master_time = master_time
        self.rng = np.random.default_rng(seed)
        self.master_seconds = 0.0
        self._now = 0.0
        self._free = list(range(n_workers))  # a heap: the lowest free worker gets work
        self._running: list[_Running] = []  # a heap on end time, then job id
        self._left_at = math.nan  # the clock starts at the first call
        self._jobs: dict[int, _Running] = {}  # job id -> its entry in _running
        #: reports still to deliver: (time, sequence, job id, index in the job's reports)
        self._reports: list[tuple[float, int, int, int]] = []
        self._report_seq = 0

    # ---- the clock -----------------------------------------------------------------------
    def _enter(self) -> None:
        """Count the real time since the evaluator was last left as the master's."""
        if math.isfinite(self._left_at):
            spent = time.perf_counter() - self._left_at
            self.master_seconds += spent
            if self.master_time == "measured":
                self._now += spent
        self._left_at = math.inf  # nested calls count nothing more

    def _leave(self) -> None:
        self._left_at = time.perf_counter()

    def now(self) -> float:
        if self._left_at != math.inf:
            self._enter()
            self._leave()
        return self._now

    # ---- the evaluator interface ---------------------------------------------------------
    def running(self) -> list[Job]:
        return [r.result.job for r in self._running]

    @property
    def n_busy(self) -> int:
        return len(self._running)

    def submit(self, job: Job) -> None:
        self._enter()
        try:
            if not self._free:
                raise RuntimeError(
                    "no free worker: wait() for a result before submitting more jobs"
                )
            self._start(job)
        finally:
            self._leave()

    def _start(self, job: Job) -> None:
        channel = NoChannel()
        outcome = evaluate(self.run, job, channel, clock=lambda: self._now)
        seconds = self.duration(job.config, self.rng)
        if not seconds >= 0 or not math.isfinite(seconds):
            raise ValueError(f"the duration model gave {seconds!r} seconds for {job.config}")
        start = job.t_submit = self._now
        reports = channel.sent
        for i, report in enumerate(reports):
            report.time = start + seconds * (i + 1) / len(reports)
        if self.eval_timeout is not None and seconds > self.eval_timeout:
            seconds = self.eval_timeout
            reports = [r for r in reports if r.time <= start + seconds]
            outcome = Outcome(
                TIMEOUT, error=f"evaluation exceeded --eval-timeout {self.eval_timeout:g} s"
            )
        outcome.t_start, outcome.t_end = start, start + seconds
        result = Result(job, outcome, worker=heapq.heappop(self._free), host=SIM_HOST)
        running = _Running(outcome.t_end, job.job_id, result, reports)
        heapq.heappush(self._running, running)
        self._jobs[job.job_id] = running
        for index, report in enumerate(reports):
            self._report_seq += 1
            heapq.heappush(self._reports, (report.time, self._report_seq, job.job_id, index))

    def wait(self, timeout: float | None = None) -> list[Result]:
        """Advance the clock from event to event (reports, then ends of jobs) until a job
        ends (returned) or ``timeout`` virtual seconds pass."""
        self._enter()
        try:
            end = math.inf if timeout is None else self._now + timeout
            while self._running:
                t = min(self._running[0].t_end, self._next_report_time())
                if t > end:
                    break
                self._now = max(self._now, t)
                self._deliver_reports(self._now)
                ended = []
                while self._running and self._running[0].t_end <= self._now:
                    job = heapq.heappop(self._running)
                    del self._jobs[job.job_id]
                    heapq.heappush(self._free, int(job.result.worker))
                    ended.append(job.result)
                if ended:
                    return ended
            if math.isfinite(end):
                self._now = max(self._now, end)
            return []
        finally:
            self._leave()

    def _next_report_time(self) -> float:
        """When the next report still to deliver was made (inf when none is left)."""
        while self._reports:
            t, _, job_id, index = self._reports[0]
            job = self._jobs.get(job_id)
            if job is not None and index >= job.delivered and t <= job.t_end:
                return t
            heapq.heappop(self._reports)  # its job ended, was cut, or the report went out
        return math.inf

    def _deliver_reports(self, until: float) -> None:
        """Hand the reports made by ``until`` to the handler, in time order; apply stops."""
        due: list[Report] = []
        while self._next_report_time() <= until:
            _, _, job_id, index = heapq.heappop(self._reports)
            job = self._jobs[job_id]
            job.delivered = index + 1
            due.append(job.reports[index])
        if not due:
            return
        stops = self.handle_reports(due)
        for job_id in stops:
            stopping = self._jobs.get(job_id)
            if stopping is not None and not stopping.result.outcome.stopped:
                self._stop_at_next_report(stopping)
        heapq.heapify(self._running)

    @staticmethod
    def _stop_at_next_report(job: _Running) -> None:
        """End ``job`` at its next report, with that report's objective.

        The run went on past that report when it was called, so whatever it saved is not
        the state at the stop: its checkpoint directory is emptied (nothing to continue).
        """
        if job.delivered >= len(job.reports) - 1:
            return  # its next report is its last: it ends there anyway, not early
        last = job.reports[job.delivered]
        outcome = job.result.outcome
        job.t_end = outcome.t_end = last.time
        if outcome.status == DONE:
            outcome.objective = last.objective
            outcome.metrics = dict(last.metrics)
            outcome.stopped = True
        directory = job.result.job.checkpoint_dir
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
            os.makedirs(directory, exist_ok=True)
            outcome.checkpoint = ""

    def cancel_all(self) -> list[Result]:
        self._enter()
        try:
            self._deliver_reports(self._now)
            cancelled = []
            self._jobs.clear()
            for job in sorted(self._running):
                outcome = job.result.outcome
                job.result.outcome = Outcome(
                    CANCELLED, error="search stopped", t_start=outcome.t_start, t_end=self._now
                )
                heapq.heappush(self._free, int(job.result.worker))
                cancelled.append(job.result)
            self._running = []
            return cancelled
        finally:
            self._leave()
