"""The search loop: take trials -> submit -> wait -> log -> tell, until a stopping rule fires.

One loop runs per search (on the MPI master, in the only process, or in a simulation over a
virtual clock). It keeps every free worker busy, writes each result to results.csv before the
method learns of it, records the reports of running trials in steps.csv and answers them, and
stops on ``max_evals`` finished evaluations, on the ``timeout``, when the method has no trial
left, or on SIGTERM/SIGINT (batch walltime): it then stops handing out work, gives running
evaluations ``grace`` seconds to finish, and cancels the rest, writing their rows.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

import pandas as pd

from hpsearch.checkpoints import CheckpointStore, remove_empty_root
from hpsearch.evaluation import (
    CANCELLED,
    DONE,
    FAILED,
    FINISHED,
    Job,
    Outcome,
    Result,
    save_traceback,
)
from hpsearch.evaluators.base import Evaluator
from hpsearch.problem import takes_trial
from hpsearch.results import ResultsLog, configs_from_frame, stopped_mask
from hpsearch.scheduling import Scheduler, TrialPlan, as_scheduler
from hpsearch.search.base import Optimizer
from hpsearch.space import Config
from hpsearch.trial import Report

log = logging.getLogger(__name__)

#: Longest the loop blocks in one wait, so stop requests and the progress line stay timely.
MAX_WAIT = 0.5
#: How often the loop looks for results while free workers wait for a suggestion.
IDLE_POLL = 0.002
#: Signals that stop the search; an evaluation process they killed once it did was killed
#: by the stop (a batch system signals every process of the job), not by its run.
STOP_SIGNALS = ("SIGTERM", "SIGINT")


def _fraction(part: float, whole: float) -> float:
    return part / whole if whole > 0 and math.isfinite(whole) else math.nan


@dataclass
class SearchOutcome:
    """Summary of a finished search (the rows themselves are in ``results_path``)."""

    n_finished: int
    n_failed: int
    best_config: Config | None
    best_objective: float | None
    results_path: str
    wall_time: float
    stopped_by: str
    #: Busy worker-seconds over workers x ``wall_time`` (start-up and the end included).
    utilisation: float = math.nan
    #: Busy worker-seconds over workers x the time from the first evaluation's start to the
    #: last one's end: what ``hpsearch report`` calls utilisation.
    active_utilisation: float = math.nan


class Progress:
    """A live progress line: finished/total, best so far, busy workers, evaluations per minute.

    On a terminal or in a notebook the line is redrawn in place; in a batch log a line is
    written every ``interval`` seconds.
    """

    def __init__(
        self, total: int, n_workers: int, stream: TextIO | None = None, interval: float = 10.0
    ):
        self.total = total
        self.n_workers = n_workers
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.live = self.tty or _notebook(self.stream)
        self.interval = 0.2 if self.live else interval
        self.width = 0  # of the line shown last, for a notebook to overwrite it
        self.t_start = time.time()
        self.last = -math.inf
        self.n_earlier = 0

    def begin(self, n_earlier: int) -> None:
        """Start timing now; ``n_earlier`` evaluations finished in the runs a search resumes
        (counted in the total, not in the rate)."""
        self.t_start = time.time()
        self.n_earlier = n_earlier

    def line(self, n_finished: int, best: float | None, n_busy: int) -> str:
        elapsed = time.time() - self.t_start
        rate = 60.0 * (n_finished - self.n_earlier) / elapsed if elapsed > 0 else 0.0
        best_text = "-" if best is None else f"{best:.6g}"
        return (
            f"[{n_finished:>{len(str(self.total))}}/{self.total}] best {best_text}  "
            f"busy {n_busy}/{self.n_workers}  {rate:.1f} evals/min  "
            f"elapsed {time.strftime('%H:%M:%S', time.gmtime(elapsed))}"
        )

    def update(self, n_finished: int, best: float | None, n_busy: int, force: bool = False) -> None:
        now = time.time()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        text = self.line(n_finished, best, n_busy)
        if self.tty:
            self.stream.write(f"\r{text}\033[K")
        elif self.live:  # a notebook keeps \r but not every terminal control sequence
            self.stream.write(f"\r{text:<{self.width}}")
            self.width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()


def _notebook(stream: TextIO) -> bool:
    """True when ``stream`` is a Jupyter kernel's output stream (it redraws a line after a carriage return)."""
    return type(stream).__module__.startswith("ipykernel")


@contextmanager
def stop_on_signals(flag: dict[str, Any]) -> Iterator[None]:
    """On SIGTERM/SIGINT set ``flag["signal"]`` and count ``flag["n"]`` instead of dying."""

    def handler(signum, frame):
        flag["signal"] = signal.Signals(signum).name
        flag["n"] = flag.get("n", 0) + 1

    previous = {s: signal.signal(s, handler) for s in [signal.Signals[n] for n in STOP_SIGNALS]}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@dataclass
class Search:
    """Drive ``method`` with ``evaluator`` until ``max_evals`` evaluations have finished.

    ``method`` is an ask/tell optimizer or a :class:`~hpsearch.scheduling.Scheduler`; when
    ``log`` continues an earlier run, the method learns its rows first.
    ``max_evals`` counts finished rows in the log, including those of an earlier run being
    resumed. ``timeout`` is seconds of the evaluator's clock for this run; ``grace`` is how
    long running evaluations may go on after a stop before they are cancelled. ``rerun``
    holds jobs of an earlier run that were running when it died: they go out first, with
    their job ids (continuing their own checkpoint when it is usable). ``keep_checkpoints``
    is how many of the best jobs' checkpoints survive the search.

    A worker that reports is handed its next trial at once from a small buffer of trials
    prepared in advance; the method learns the new result and refills the buffer afterwards,
    between messages. The buffer holds about as many trials as workers report during one
    round of preparing them.
    """

    method: Optimizer | Scheduler
    evaluator: Evaluator
    log: ResultsLog
    max_evals: int
    timeout: float | None = None
    grace: float = 10.0
    progress: Progress | None = None
    rerun: list[Job] = field(default_factory=list)
    keep_checkpoints: int = 10

    def __post_init__(self) -> None:
        self.scheduler = as_scheduler(self.method)
        self.problem = self.scheduler.problem
        self.next_job_id = self.log.next_job_id
        previous = self.log.previous
        self.n_finished = int(previous["status"].isin(FINISHED).sum()) if len(previous) else 0
        self.n_failed = 0
        self.busy_seconds = 0.0
        self.first_start = math.inf  # of this run's evaluations
        self.last_end = -math.inf
        self.report_times: list[float] = []  # when results arrived, for the report rate
        self.stopping = False  # set once a stopping rule fired: no new work goes out
        self.best_objective: float | None = None  # primary objective, problem's direction
        self.best_config: Config | None = None
        #: whether the best so far trained to its end (a value at an early stop is no final one)
        self.best_is_final = False
        self.running: dict[int, Job] = {}  # job id -> job, handed out and not yet returned
        self.unstartable: list[Result] = []  # jobs that could not start, to record
        self.signals: dict[str, Any] = {}  # the stop signal received, and how many
        self._max_wait = MAX_WAIT  # longest one wait blocks (set by run() for the evaluator)
        self.last_step: dict[int, object] = {}  # job id -> last valid step it reported
        if len(previous) or self.rerun:
            self.scheduler.restore(self.log, self.rerun)
            self._best_of_previous(previous)
        self.with_trials = self.problem.run is not None and takes_trial(self.problem.run)
        self.checkpoints = CheckpointStore(self.log.output_dir, self.keep_checkpoints)
        if self.with_trials and len(previous):
            done = previous[previous["status"] == DONE]
            self.checkpoints.load_existing(
                {
                    int(j): self.problem.sign * float(v)
                    for j, v in zip(done["job_id"], done["objective"], strict=True)
                }
            )

    def _best_of_previous(self, previous: pd.DataFrame) -> None:
        """Start the best so far from the finished rows of the run being resumed."""
        done = previous[(previous["status"] == DONE) & previous["objective"].notna()]
        final = done[~stopped_mask(done)]
        if len(final):
            done = final
        if not len(done):
            return
        i = int((self.problem.sign * done["objective"].astype(float)).to_numpy().argmin())
        row = done.iloc[[i]]
        self.best_objective = float(row["objective"].iloc[0])
        self.best_config = configs_from_frame(row, self.problem.space)[0]
        self.best_is_final = bool(len(final))

    def _stop_reason(self, t_start: float, flag: dict[str, Any]) -> str | None:
        if self.n_finished >= self.max_evals:
            return "max-evals"
        if self.timeout is not None and self.evaluator.now() - t_start >= self.timeout:
            return "timeout"
        if self.scheduler.exhausted and not self.evaluator.n_busy and not self.rerun:
            return "exhausted"
        return flag.get("signal")

    def _unplanned(self) -> int:
        """Evaluations still to hand out: the budget less what runs or is to be rerun."""
        return self.max_evals - self.n_finished - self.evaluator.n_busy - len(self.rerun)

    def _buffer_target(self) -> int:
        """Trials to keep ready: one per free worker, plus twice the reports expected during
        one round of learning and preparing (so a worker that reports finds one), within the
        budget."""
        recent = self.report_times[-50:]
        span = recent[-1] - recent[0] if len(recent) > 1 else 0.0
        rate = (len(recent) - 1) / span if span > 0 else 0.0
        ahead = 1 + math.ceil(2 * rate * self.scheduler.round_seconds)
        wanted = self.evaluator.n_free + min(self.evaluator.n_workers, ahead)
        return max(0, min(wanted, self._unplanned()))

    def _job(self, plan: TrialPlan) -> Job:
        """A job for ``plan`` with the next job id (its checkpoints are set at hand-out)."""
        step = plan.step
        if step is None:
            step = 0
            if plan.parent is not None and self.checkpoints.is_usable(plan.parent):
                step = self.checkpoints.usable_step(plan.parent)
        job = Job(
            self.next_job_id,
            plan.config,
            member=None if plan.member is None else int(plan.member),
            parent=None if plan.parent is None else int(plan.parent),
            step=int(step or 0),
            max_steps=None if plan.max_steps is None else int(plan.max_steps),
        )
        self.next_job_id += 1
        return job

    def _hand_out(self) -> None:
        """Give every free worker a job: reruns first, then ready trials.

        A job whose checkpoint to continue is gone cannot start: it becomes a FAILED result,
        recorded on the next turn of the loop.
        """
        n_free = min(self.evaluator.n_free, self._unplanned() + len(self.rerun))
        if n_free <= 0 or self.stopping or self.signals:
            return
        jobs = [self.rerun.pop(0) for _ in range(min(n_free, len(self.rerun)))]
        jobs += [self._job(plan) for plan in self.scheduler.take(n_free - len(jobs))]
        if not jobs:
            return
        self.log.journal(jobs)  # as planned: a rerun works out its checkpoints again
        for job in jobs:
            if self.with_trials:
                try:
                    self.checkpoints.prepare(job)
                except LookupError as err:
                    now = self.evaluator.now()
                    outcome = Outcome(FAILED, error=str(err), t_start=now, t_end=now)
                    self.unstartable.append(Result(job, outcome))
                    continue
            self.running[job.job_id] = job
            self.evaluator.submit(job)

    def _on_reports(self, reports: list[Report]) -> set[int]:
        """Record reports (durably) and answer them: the ids of the trials to stop."""
        self.log.steps.write(reports, self.log.t0)
        self.checkpoints.reported(reports)
        stop = set()
        for r in reports:
            if r.error:
                continue
            self.last_step[r.job_id] = r.step
            job = self.running.get(r.job_id)
            if self.stopping or (job is not None and self.scheduler.report(job, r)):
                stop.add(r.job_id)
        return stop

    def _update_best(self, results: list[Result]) -> None:
        """Keep the best result, preferring trials trained to their end: the value of an
        early-stopped trial counts only while no trial has a final value."""
        for r in results:
            value = r.primary_objective
            final = not r.outcome.stopped
            if value is None or (self.best_is_final and not final):
                continue
            if (
                self.best_objective is None
                or (final and not self.best_is_final)
                or self.problem.sign * (value - self.best_objective) < 0
            ):
                self.best_objective, self.best_config = value, r.config
                self.best_is_final = final

    def _value(self, result: Result) -> float:
        """The primary objective of ``result`` to minimise (NaN when it has none)."""
        value = result.primary_objective
        return math.nan if value is None else self.problem.sign * value

    def _record(self, results: list[Result]) -> None:
        """Log results (durably), hand out the next jobs, then let the method learn."""
        if not results:
            return
        for r in results:
            self._cancelled_by_stop(r)
            save_traceback(self.log.output_dir, r)
            self.running.pop(r.job.job_id, None)
            r.step_end = self.last_step.pop(r.job.job_id, None)
            r.rung = self.scheduler.rung(r.job.job_id)
        self.log.write(results)
        self.report_times.append(self.evaluator.now())
        finished = [r for r in results if r.status in FINISHED]
        self.n_finished += len(finished)
        self.n_failed += sum(r.status != DONE for r in finished)
        timed = [r.outcome for r in results if math.isfinite(r.outcome.t_start)]
        self.busy_seconds += sum(o.t_end - o.t_start for o in timed)
        self.first_start = min([self.first_start, *(o.t_start for o in timed)])
        self.last_end = max([self.last_end, *(o.t_end for o in timed)])
        self._update_best(finished)
        self._hand_out()
        if self.with_trials:
            for r in results:
                r.checkpoint = self.checkpoints.finished(r, self._value(r))
        self.scheduler.finished(results)
        if self.with_trials:
            needed = {*self.scheduler.needed_checkpoints()}
            needed |= {
                j.parent for j in [*self.running.values(), *self.rerun] if j.parent is not None
            }
            self.checkpoints.prune(needed)
        for r in results:
            if r.status != DONE:
                log.info("job %d %s: %s", r.job.job_id, r.status, r.outcome.error)

    def _cancelled_by_stop(self, result: Result) -> None:
        """A job whose process a stop signal killed was cancelled by the stop: CANCELLED (run
        again on resume), not FAILED."""
        outcome = result.outcome
        if self.signals and outcome.status == FAILED and outcome.killed_by in STOP_SIGNALS:
            outcome.status = CANCELLED
            outcome.error = f"{outcome.error} when the search stopped"

    def run(self) -> SearchOutcome:
        """Run to a stopping rule; every evaluation that finished is in the log (the journal
        holds those still running when an error ends the run, to run again on resume)."""
        flag = self.signals
        clock = self.evaluator.now
        t_start = clock()
        background = not self.evaluator.virtual
        # on a virtual clock nothing happens between events: wait for the next one
        self._max_wait = MAX_WAIT if background else math.inf
        self.scheduler.open(background)
        if self.progress:
            self.progress.begin(self.n_finished)
        self.evaluator.report_handler = self._on_reports
        try:
            with stop_on_signals(flag):
                while (reason := self._stop_reason(t_start, flag)) is None:
                    self.scheduler.keep_ready(self._buffer_target())
                    self._hand_out()
                    unstartable, self.unstartable = self.unstartable, []
                    self._record(unstartable)
                    if not background and not self.evaluator.n_busy:
                        # prepared inline, nothing handed out, nothing running: nothing will
                        reason = "exhausted"
                        break
                    remaining = (
                        math.inf if self.timeout is None else t_start + self.timeout - clock()
                    )
                    wait = max(0.0, min(self._max_wait, remaining))
                    waiting = self.evaluator.n_free and self._unplanned() > 0
                    if waiting and background and not self.scheduler.exhausted:
                        # free workers wait for trials: wake as soon as one is ready
                        self.scheduler.wait_ready(timeout=min(wait, IDLE_POLL))
                        wait = 0.0
                    self._record(self.evaluator.wait(timeout=wait))
                    self._show()
                self._drain(reason, flag)
        finally:
            self.evaluator.report_handler = None
            try:
                self.scheduler.close()
            finally:
                self.checkpoints.close()
                if self.with_trials:
                    remove_empty_root(self.log.output_dir)
        wall = clock() - t_start
        if self.progress:
            self._show(force=True)
            self.progress.close()
        best = self.scheduler.best()
        if best is None and self.best_config is not None and self.best_objective is not None:
            best = (self.best_config, self.best_objective)
        return SearchOutcome(
            n_finished=self.n_finished,
            n_failed=self.n_failed,
            best_config=None if best is None else best[0],
            best_objective=None if best is None else best[1],
            results_path=self.log.path,
            wall_time=wall,
            stopped_by=reason,
            utilisation=_fraction(self.busy_seconds, self.evaluator.n_workers * wall),
            active_utilisation=_fraction(
                self.busy_seconds, self.evaluator.n_workers * (self.last_end - self.first_start)
            ),
        )

    def _drain(self, reason: str, flag: dict[str, Any]) -> None:
        """Let running evaluations finish within the grace period, then cancel the rest."""
        self.stopping = True
        if self.evaluator.n_busy and reason != "max-evals":
            log.warning(
                "stopping (%s): %d evaluations running, waiting up to %g s for them",
                reason,
                self.evaluator.n_busy,
                self.grace,
            )
        clock = self.evaluator.now
        deadline = clock() + self.grace
        n_signals = flag.get("n", 0)
        # a further signal during the grace period means: stop now
        while self.evaluator.n_busy and clock() < deadline and flag.get("n", 0) == n_signals:
            self._record(
                self.evaluator.wait(timeout=min(self._max_wait, max(0.0, deadline - clock())))
            )
            self._show()
        self._record(self.evaluator.cancel_all())

    def _show(self, force: bool = False) -> None:
        if self.progress:
            self.progress.update(self.n_finished, self.best_objective, self.evaluator.n_busy, force)
