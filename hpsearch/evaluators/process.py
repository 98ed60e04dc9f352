"""Local process pool: one isolated child process per worker slot, on this machine."""

from __future__ import annotations

import math
import time
from multiprocessing.connection import wait as wait_for

from hpsearch.evaluation import CANCELLED, HOST, Job, Outcome, Result
from hpsearch.evaluators.base import Evaluator, WorkerError
from hpsearch.evaluators.isolation import IsolatedRunner
from hpsearch.problem import RunSource


class ProcessEvaluator(Evaluator):
    """Evaluate on ``n_workers`` local child processes (spawned, each loads the run function
    from ``source`` once: see :data:`~hpsearch.problem.RunSource`).

    A run that crashes its process or exceeds ``eval_timeout`` seconds gives a FAILED or
    TIMEOUT result; its slot gets a fresh process. ``env`` is set in every child before the
    problem is imported (thread counts, GPU binding). A child that cannot import the problem
    makes :meth:`wait` raise :class:`~hpsearch.evaluators.base.WorkerError`.
    """

    def __init__(
        self,
        source: RunSource,
        n_workers: int,
        eval_timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        if n_workers < 1:
            raise ValueError(f"a process pool needs at least 1 worker, but got {n_workers}")
        self.n_workers = n_workers
        self.runners = [IsolatedRunner(source, eval_timeout, env) for _ in range(n_workers)]
        self.reported_at = [math.nan] * n_workers
        self.failure: WorkerError | None = None

    def running(self) -> list[Job]:
        return [r.job for r in self.runners if r.job is not None]

    def submit(self, job: Job) -> None:
        for slot, runner in enumerate(self.runners):
            if not runner.busy:
                job.t_submit = time.time()
                job.handout_latency = job.t_submit - self.reported_at[slot]
                runner.submit(job)
                return
        raise RuntimeError("no free worker: wait() for a result before submitting more jobs")

    def wait(self, timeout: float | None = None) -> list[Result]:
        end = math.inf if timeout is None else time.time() + timeout
        while True:
            results = self._collect()
            if not results and self.failure is not None:
                raise self.failure
            busy = [r for r in self.runners if r.busy]
            if results or not busy:
                return results
            now = time.time()
            until = min(end, *(r.deadline for r in busy))
            if now >= end:
                return []
            waitables = [w for r in busy for w in r.waitables]
            wait_for(waitables, timeout=None if until == math.inf else max(0.0, until - now))

    def _collect(self) -> list[Result]:
        results = []
        for slot, runner in enumerate(self.runners):
            job = runner.job
            if job is None:
                continue
            try:
                outcome = runner.collect()
            except WorkerError as err:
                self.failure = self.failure or WorkerError(f"worker {slot}: {err}")
                continue
            stops = self.handle_reports(runner.take_reports())
            if outcome is not None:
                self.reported_at[slot] = time.time()
                results.append(Result(job, outcome, worker=slot, host=HOST))
            elif job.job_id in stops:
                runner.stop_trial(job.job_id)
        return results

    def cancel_all(self) -> list[Result]:
        results = self._collect()  # what finished (and was reported) meanwhile is kept
        now = time.time()
        for slot, runner in enumerate(self.runners):
            if runner.job is not None:
                job = runner.job
                outcome = runner.cancel() or Outcome(
                    CANCELLED, error="cancelled when the search stopped", t_start=now, t_end=now
                )
                self.handle_reports(runner.take_reports())  # sent before it was killed
                results.append(Result(job, outcome, worker=slot, host=HOST))
        return results

    def shutdown(self) -> None:
        for runner in self.runners:
            runner.close()
