import time

import pytest

from hpsearch.evaluation import CANCELLED, DONE, FAILED, TIMEOUT, Job
from hpsearch.evaluators import ProcessEvaluator, SerialEvaluator
from hpsearch.problem import load_problem

EXPECTED = {
    "ok": (DONE, ""),
    "raise": (FAILED, "RuntimeError: deliberate failure"),
    "nan": (FAILED, "non-finite objective nan"),
    "inf": (FAILED, "non-finite objective inf"),
    "bad": (FAILED, "non-numeric objective 'not a number'"),
    "abort": (FAILED, "killed by signal SIGABRT"),
    "hang": (TIMEOUT, "exceeded --eval-timeout 1 s"),
}


def collect(evaluator, jobs, limit=60.0):
    pending, results = list(jobs), []
    end = time.time() + limit
    while (pending or evaluator.n_busy) and time.time() < end:
        while pending and evaluator.n_free:
            evaluator.submit(pending.pop(0))
        results += evaluator.wait(timeout=1.0)
    return {r.job.job_id: r for r in results}


def test_process_pool_records_every_kind_of_failure_and_keeps_going(faulty_problem):
    modes = [*EXPECTED, "ok"]  # the last job runs after the crash and the hang
    jobs = [Job(i, {"mode": m, "x": 0.25}) for i, m in enumerate(modes)]
    with ProcessEvaluator(faulty_problem, n_workers=2, eval_timeout=1.0) as evaluator:
        results = collect(evaluator, jobs)
    assert sorted(results) == list(range(len(jobs)))
    for job in jobs:
        status, message = EXPECTED[job.config["mode"]]
        result = results[job.job_id]
        assert result.status == status, (job.config, result.outcome)
        assert message in result.outcome.error
        assert result.outcome.t_end >= result.outcome.t_start
    assert results[0].objective == 0.25 and results[0].outcome.metrics == {"twice": 0.5}
    assert {r.worker for r in results.values()} == {0, 1}


def test_process_pool_timeout_clock_starts_after_the_problem_is_imported(faulty_problem):
    # a 1 s timeout must not be eaten by the child's start-up (spawn + imports)
    with ProcessEvaluator(faulty_problem, n_workers=1, eval_timeout=1.0) as evaluator:
        results = collect(evaluator, [Job(0, {"mode": "hang", "x": 0.0})])
    outcome = results[0].outcome
    assert outcome.status == TIMEOUT
    assert outcome.t_end - outcome.t_start == pytest.approx(1.0, abs=0.5)


def test_wait_returns_after_its_timeout_when_nothing_finishes(faulty_problem):
    with ProcessEvaluator(faulty_problem, n_workers=1) as evaluator:
        evaluator.submit(Job(0, {"mode": "hang", "x": 0.0}))
        t0 = time.time()
        assert evaluator.wait(timeout=0.3) == []
        assert 0.25 <= time.time() - t0 < 2.0
        cancelled = evaluator.cancel_all()
    assert [r.status for r in cancelled] == [CANCELLED]


def test_submit_to_a_full_pool_is_an_error(faulty_problem):
    with ProcessEvaluator(faulty_problem, n_workers=1) as evaluator:
        evaluator.submit(Job(0, {"mode": "ok", "x": 0.0}))
        with pytest.raises(RuntimeError, match="no free worker"):
            evaluator.submit(Job(1, {"mode": "ok", "x": 0.0}))


def test_serial_evaluator_runs_in_process_and_interrupts_a_hang(faulty_problem):
    run = load_problem(faulty_problem).run
    evaluator = SerialEvaluator(run, eval_timeout=0.5)
    jobs = [Job(i, {"mode": m, "x": 0.5}) for i, m in enumerate(["ok", "raise", "nan", "hang"])]
    results = collect(evaluator, jobs)
    assert [results[i].status for i in range(4)] == [DONE, FAILED, FAILED, TIMEOUT]
