"""In-process evaluation, one job at a time: for problems that must share state, and notebooks."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from hpsearch.evaluation import (
    CANCELLED,
    HOST,
    TIMEOUT,
    EvaluationInterrupted,
    Job,
    Outcome,
    Result,
    evaluate,
)
from hpsearch.evaluators.base import Evaluator
from hpsearch.problem import RunFunction
from hpsearch.trial import Report


class _EvalTimeout(EvaluationInterrupted):
    """Raised inside a run function by the timer; a BaseException so ``except Exception`` in
    user code does not swallow it."""


@contextmanager
def _alarm(seconds: float | None) -> Iterator[None]:
    """Interrupt the main thread after ``seconds`` (best effort: Python code only)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def fire(signum, frame):
        raise _EvalTimeout

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _HandlerChannel:
    """Reports of an in-process run go straight to the evaluator's report handler."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self.stops: set[int] = set()

    def send(self, report: Report) -> None:
        self.stops |= self.evaluator.handle_reports([report])

    def stop_requested(self, job_id: int) -> bool:
        return job_id in self.stops


class SerialEvaluator(Evaluator):
    """Evaluate ``run`` in this process, one job at a time, when :meth:`wait` is called.

    Nothing is isolated: a crash in ``run`` ends the process. ``eval_timeout`` interrupts
    Python code with SIGALRM (in the main thread only), not code stuck inside a C extension.
    A trial's reports reach the report handler during the run, so its answer is immediate.
    """

    n_workers = 1

    def __init__(self, run: RunFunction, eval_timeout: float | None = None, worker: int | str = 0):
        self.run = run
        self.eval_timeout = eval_timeout
        self.worker = worker
        self.job: Job | None = None

    def running(self) -> list[Job]:
        return [self.job] if self.job is not None else []

    def submit(self, job: Job) -> None:
        if self.job is not None:
            raise RuntimeError("no free worker: wait() for a result before submitting more jobs")
        self.job = job

    def wait(self, timeout: float | None = None) -> list[Result]:
        job = self.job
        if job is None:
            return []
        t_start = time.time()
        try:
            with _alarm(self.eval_timeout):
                outcome = evaluate(self.run, job, _HandlerChannel(self))
        except _EvalTimeout:
            outcome = Outcome(
                TIMEOUT,
                error=f"evaluation exceeded --eval-timeout {self.eval_timeout:g} s and was interrupted",
                t_start=t_start,
                t_end=time.time(),
            )
        self.job = None
        return [Result(job, outcome, worker=self.worker, host=HOST)]

    def cancel_all(self) -> list[Result]:
        job, self.job = self.job, None
        if job is None:
            return []
        now = time.time()
        return [
            Result(
                job,
                Outcome(
                    CANCELLED, error="cancelled when the search stopped", t_start=now, t_end=now
                ),
                self.worker,
                HOST,
            )
        ]


__all__ = ["SerialEvaluator"]
