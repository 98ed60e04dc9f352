"""The contract of :class:`hpsearch.evaluators.base.Evaluator`, written once for every backend.

Each ``check_*`` function takes a :class:`Harness` (an evaluator, what its backend can do, a
directory for checkpoints) and asserts one behaviour. tests/test_evaluator_contract.py runs
them over the in-process and the local process-pool evaluators, and
tests/mpi/test_mpi_evaluator_contract.py over MPI ranks. Jobs run
tests/problem_files/scripted.py, whose configuration says what the run does.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hpsearch.evaluation import CANCELLED, DONE, FAILED, TIMEOUT, Job, Result
from hpsearch.evaluators.base import Evaluator
from hpsearch.trial import Report

SCRIPTED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "problem_files", "scripted.py")
#: The --eval-timeout of every evaluator under test: longer than any job but a hang.
EVAL_TIMEOUT = 1.5
#: Seconds each step of a run that is asked to stop takes: long enough for the decision to
#: reach a run in another process before its next report, even on oversubscribed cores.
STOP_STEP_SLEEP = 0.25
#: Steps of that run when nothing stops it (1.25 s, inside EVAL_TIMEOUT).
STOP_FULL_STEPS = 5


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do beyond the interface; checks that need more are not run on it."""

    #: A run that crashes its process comes back FAILED (it runs in a child process).
    isolates: bool
    #: Jobs run while the caller is not inside wait(), so a wait can time out.
    concurrent: bool
    #: cancel_all stops a job that has started (else it waits for the job's own result).
    interrupts: bool


WHY_NOT = {
    "isolates": "runs the job in the evaluating process: a crash would end that process",
    "concurrent": "runs the job inside wait(), so every wait returns the job it ran",
}


def backend_params(backends: dict[str, Capabilities], needs: str | None = None) -> list[Any]:
    """One ``pytest.param`` per backend, marked as not applicable where it lacks ``needs``."""
    params = []
    for name, can in backends.items():
        marks: Any = ()
        if needs is not None and not getattr(can, needs):
            marks = pytest.mark.skip(reason=f"not applicable to {name}: it {WHY_NOT[needs]}")
        params.append(pytest.param(name, marks=marks, id=name))
    return params


#: Job ids unique in the test session, as a search's are, so that no decision or report of an
#: earlier test can be taken for one of a later test on an evaluator they share.
_job_ids = itertools.count(1)


@dataclass
class Harness:
    """An evaluator under test with what its checks need around it."""

    evaluator: Evaluator
    can: Capabilities
    tmp: Path
    #: Seconds a check waits for its jobs before it gives up on them.
    limit: float = 30.0
    #: Raises when a worker can no longer answer (e.g. an MPI rank that left its serve loop).
    alive: Callable[[], None] = lambda: None
    #: Ids of the jobs that came back from wait() or cancel_all().
    finished: set[int] = field(default_factory=set)

    def job(self, **config: Any) -> Job:
        job_id = next(_job_ids)
        return Job(job_id, config, checkpoint_dir=str(self.tmp / f"job-{job_id}"))

    def fill(self, **config: Any) -> list[Job]:
        """Submit one job with ``config`` to every free worker."""
        jobs = [self.job(**config) for _ in range(self.evaluator.n_free)]
        for job in jobs:
            self.evaluator.submit(job)
        return jobs

    def wait(self, timeout: float) -> list[Result]:
        results = self.evaluator.wait(timeout=timeout)
        self.finished.update(r.job.job_id for r in results)
        return results

    def cancel_all(self) -> list[Result]:
        results = self.evaluator.cancel_all()
        self.finished.update(r.job.job_id for r in results)
        return results

    def collect(self, jobs: Sequence[Job] = ()) -> list[Result]:
        """Submit ``jobs`` as workers free up; every result until none is running."""
        pending, results = list(jobs), []
        end = time.monotonic() + self.limit
        while (pending or self.evaluator.n_busy) and time.monotonic() < end:
            while pending and self.evaluator.n_free:
                self.evaluator.submit(pending.pop(0))
            results += self.wait(timeout=min(1.0, max(0.0, end - time.monotonic())))
            self.alive()
        assert not pending and not self.evaluator.n_busy, (
            f"jobs still running after {self.limit:g} s: {self.evaluator.running()}"
        )
        return results


class Recorder:
    """A report handler that keeps every call and answers "stop" for the jobs in
    ``stop_after`` (job id -> number of its reports) once that many of their reports came."""

    def __init__(self, harness: Harness, stop_after: dict[int, int] | None = None) -> None:
        self.harness = harness
        self.stop_after = dict(stop_after or {})
        self.calls: list[list[Report]] = []
        #: Reports that arrived after their job had come back.
        self.late: list[Report] = []
        #: Job id -> how many of its reports had arrived when "stop" was answered.
        self.stopped_at: dict[int, int] = {}

    def __call__(self, reports: list[Report]) -> Collection[int]:
        assert isinstance(reports, list) and reports, reports
        self.calls.append(list(reports))
        self.late += [r for r in reports if r.job_id in self.harness.finished]
        stop = set()
        for job_id, after in self.stop_after.items():
            count = len(self.of(job_id))
            if job_id not in self.stopped_at and count >= after:
                self.stopped_at[job_id] = count
                stop.add(job_id)
        return stop

    def of(self, job_id: int) -> list[Report]:
        return [r for call in self.calls for r in call if r.job_id == job_id]


def by_id(results: Sequence[Result]) -> dict[int, Result]:
    counts = Counter(r.job.job_id for r in results)
    assert all(n == 1 for n in counts.values()), f"jobs that came back twice: {counts}"
    return {r.job.job_id: r for r in results}


def assert_idle(harness: Harness) -> None:
    evaluator = harness.evaluator
    assert evaluator.running() == []
    assert (evaluator.n_busy, evaluator.n_free) == (0, evaluator.n_workers)
    assert harness.wait(timeout=0.1) == [], "a job came back after its result"


def assert_every_worker_takes_a_job(harness: Harness) -> None:
    jobs = harness.fill(steps=1)
    assert len(jobs) == harness.evaluator.n_workers
    results = by_id(harness.collect())
    assert sorted(results) == [job.job_id for job in jobs]
    assert {r.status for r in results.values()} == {DONE}, [r.outcome for r in results.values()]


def check_every_job_comes_back_exactly_once_with_its_id(harness: Harness) -> None:
    n = 3 * harness.evaluator.n_workers + 1
    jobs = [harness.job(steps=1, sleep=0.01 * (i % 4), x=i / n) for i in range(n)]
    results = by_id(harness.collect(jobs))
    assert sorted(results) == [job.job_id for job in jobs]
    for job in jobs:
        result = results[job.job_id]
        assert result.job.config == job.config
        assert (result.status, result.objective) == (DONE, job.config["x"]), result.outcome
        assert result.outcome.metrics == {"steps": 1}
        assert result.outcome.t_start <= result.outcome.t_end
    # every worker had a job from the first round, and its results name it
    assert len({r.worker for r in results.values()}) == harness.evaluator.n_workers
    assert_idle(harness)


def check_submit_to_a_full_evaluator_raises(harness: Harness) -> None:
    evaluator = harness.evaluator
    jobs = harness.fill(steps=2, sleep=0.05)
    assert len(jobs) == evaluator.n_workers
    assert (evaluator.n_busy, evaluator.n_free) == (evaluator.n_workers, 0)
    assert sorted(j.job_id for j in evaluator.running()) == [j.job_id for j in jobs]
    extra = harness.job()
    with pytest.raises(RuntimeError, match="no free worker"):
        evaluator.submit(extra)
    assert extra.job_id not in [j.job_id for j in evaluator.running()]
    results = by_id(harness.collect())
    assert sorted(results) == [j.job_id for j in jobs]
    assert {r.status for r in results.values()} == {DONE}
    assert_idle(harness)


def check_wait_returns_nothing_after_its_timeout_without_spinning(harness: Harness) -> None:
    slow = harness.job(steps=1, sleep=1.0)
    harness.evaluator.submit(slow)
    t0, cpu0 = time.monotonic(), time.process_time()
    assert harness.wait(timeout=0.4) == []
    elapsed, cpu = time.monotonic() - t0, time.process_time() - cpu0
    assert 0.39 <= elapsed < 1.2, elapsed
    assert cpu < 0.1 * elapsed, f"wait() used {cpu:.3f} s of CPU in {elapsed:.3f} s"
    (result,) = harness.collect()
    assert (result.job.job_id, result.status) == (slow.job_id, DONE), result.outcome
    assert_idle(harness)


EXPECTED_FAILURES = {
    "raise": (FAILED, "RuntimeError: deliberate failure"),
    "nan": (FAILED, "non-finite objective nan"),
    "inf": (FAILED, "non-finite objective inf"),
    "bad": (FAILED, "objective of type str, not a real number: 'not a number'"),
    "hang": (TIMEOUT, f"exceeded --eval-timeout {EVAL_TIMEOUT:g} s"),
}


def check_failures_come_back_with_their_status_and_reason(harness: Harness) -> None:
    jobs = [harness.job(mode=mode) for mode in EXPECTED_FAILURES]
    results = by_id(harness.collect(jobs))
    assert sorted(results) == [job.job_id for job in jobs]
    for job in jobs:
        status, reason = EXPECTED_FAILURES[job.config["mode"]]
        outcome = results[job.job_id].outcome
        assert outcome.status == status, (job.config, outcome)
        assert reason in outcome.error, (job.config, outcome)
        if status == TIMEOUT:
            assert EVAL_TIMEOUT - 0.05 <= outcome.t_end - outcome.t_start < EVAL_TIMEOUT + 1.0
    # every worker, the one that timed out included, takes the next job
    assert_every_worker_takes_a_job(harness)
    assert_idle(harness)


def check_a_crash_comes_back_failed_and_its_worker_takes_the_next_job(harness: Harness) -> None:
    crash = harness.job(mode="abort")
    (result,) = harness.collect([crash])
    assert (result.job.job_id, result.status) == (crash.job_id, FAILED), result.outcome
    assert "killed by signal SIGABRT" in result.outcome.error
    assert_every_worker_takes_a_job(harness)
    assert_idle(harness)


def check_reports_reach_the_handler_in_order_before_their_result(harness: Harness) -> None:
    recorder = Recorder(harness)
    harness.evaluator.report_handler = recorder
    jobs = [
        harness.job(steps=4, sleep=0.02, x=0.5)
        for _ in range(min(2, harness.evaluator.n_workers) + 1)
    ]
    results = by_id(harness.collect(jobs))
    assert recorder.late == [], "a job reported after it came back"
    for job in jobs:
        reports, outcome = recorder.of(job.job_id), results[job.job_id].outcome
        assert outcome.status == DONE and not outcome.stopped, outcome
        assert [r.step for r in reports] == [1, 2, 3, 4]
        assert [r.objective for r in reports] == [1.0, 0.5, 1 / 3, 0.25]
        assert [r.metrics for r in reports] == [
            {"square": s * s, "phase": "train"} for s in range(1, 5)
        ]
        assert [r.error for r in reports] == [""] * 4
        times = [r.time for r in reports]
        assert times == sorted(times) and len(set(times)) == 4, times
        assert outcome.t_start <= times[0] and times[-1] <= outcome.t_end
    assert_idle(harness)


def check_a_stop_answer_ends_the_run_at_most_one_report_late(harness: Harness) -> None:
    stopped = harness.job(steps=STOP_FULL_STEPS, sleep=STOP_STEP_SLEEP)
    others = [harness.job(steps=STOP_FULL_STEPS, sleep=STOP_STEP_SLEEP / 3)]
    recorder = Recorder(harness, stop_after={stopped.job_id: 2})
    harness.evaluator.report_handler = recorder
    results = by_id(harness.collect([stopped, *others]))
    decided_at = recorder.stopped_at[stopped.job_id]
    reports, outcome = recorder.of(stopped.job_id), results[stopped.job_id].outcome
    assert decided_at >= 2
    assert outcome.status == DONE and outcome.stopped, outcome
    assert outcome.metrics["steps"] == len(reports) < STOP_FULL_STEPS
    assert len(reports) <= decided_at + 1, (
        f"stopped at report {len(reports)}, asked at {decided_at}"
    )
    for job in others:  # only the job named in the answer stops
        outcome = results[job.job_id].outcome
        assert outcome.status == DONE and not outcome.stopped, outcome
        assert outcome.metrics["steps"] == len(recorder.of(job.job_id)) == STOP_FULL_STEPS
    assert_idle(harness)


INVALID_REPORTS = {
    "step": "step 2 does not increase (previous step 2)",
    "nan": "objective nan is not finite",
    "text": "objective 'high' is not a number",
}


def check_an_invalid_report_reaches_the_handler_with_its_error_and_the_run_goes_on(
    harness: Harness,
) -> None:
    recorder = Recorder(harness)
    harness.evaluator.report_handler = recorder
    jobs = [harness.job(steps=5, bad=bad) for bad in INVALID_REPORTS]
    results = by_id(harness.collect(jobs))
    for job in jobs:
        reports, outcome = recorder.of(job.job_id), results[job.job_id].outcome
        assert outcome.status == DONE and not outcome.stopped, outcome
        assert outcome.metrics["steps"] == len(reports) == 5
        errors = [r.error for r in reports]
        assert errors[:2] == errors[3:] == ["", ""], errors
        assert INVALID_REPORTS[job.config["bad"]] in errors[2], errors[2]
        if job.config["bad"] != "step":
            assert reports[2].objective is None
    assert_idle(harness)


def check_a_trial_runs_to_its_end_without_a_report_handler(harness: Harness) -> None:
    assert harness.evaluator.report_handler is None
    results = by_id(harness.collect([harness.job(steps=3, sleep=0.01)]))
    (outcome,) = [r.outcome for r in results.values()]
    assert outcome.status == DONE and not outcome.stopped, outcome
    assert outcome.metrics["steps"] == 3
    assert_idle(harness)


def check_cancel_all_returns_running_jobs_and_the_evaluator_takes_new_ones(
    harness: Harness,
) -> None:
    recorder = Recorder(harness)
    harness.evaluator.report_handler = recorder
    # two at most: each interrupted worker then starts its evaluation process anew
    running = [harness.job(steps=20, sleep=0.02) for _ in range(min(2, harness.evaluator.n_free))]
    for job in running:
        harness.evaluator.submit(job)
    cancelled = by_id(harness.cancel_all())
    assert sorted(cancelled) == [job.job_id for job in running]
    for result in cancelled.values():
        if harness.can.interrupts:
            assert result.status == CANCELLED, result.outcome
            assert "cancelled" in result.outcome.error
        else:  # the job ran to its end: cancel_all waited for its result
            assert result.status == DONE, result.outcome
    assert harness.evaluator.running() == []
    assert harness.evaluator.n_free == harness.evaluator.n_workers
    # every worker, the interrupted ones included, takes a new job
    assert_every_worker_takes_a_job(harness)
    assert recorder.late == [], "a job reported after it came back"
    assert_idle(harness)
