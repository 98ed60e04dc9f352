"""What the local process pool does beyond the contract every evaluator keeps (that one is in
tests/test_evaluator_contract.py)."""

import time

import pytest

from hpsearch.evaluation import TIMEOUT, Job
from hpsearch.evaluators import ProcessEvaluator


def collect(evaluator, jobs, limit=60.0):
    pending, results = list(jobs), []
    end = time.time() + limit
    while (pending or evaluator.n_busy) and time.time() < end:
        while pending and evaluator.n_free:
            evaluator.submit(pending.pop(0))
        results += evaluator.wait(timeout=1.0)
    return {r.job.job_id: r for r in results}


def test_process_pool_timeout_clock_starts_after_the_problem_is_imported(faulty_problem):
    # a 1 s timeout must not be eaten by the child's start-up (spawn + imports)
    with ProcessEvaluator(faulty_problem, n_workers=1, eval_timeout=1.0) as evaluator:
        results = collect(evaluator, [Job(0, {"mode": "hang", "x": 0.0})])
    outcome = results[0].outcome
    assert outcome.status == TIMEOUT
    assert outcome.t_end - outcome.t_start == pytest.approx(1.0, abs=0.5)
