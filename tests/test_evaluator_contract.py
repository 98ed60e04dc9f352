"""The evaluator contract (tests/evaluator_checks.py) on the in-process and process-pool backends.

The MPI backend runs the same checks in tests/mpi/test_mpi_evaluator_contract.py.
"""

from __future__ import annotations

import pytest

from hpsearch.evaluators import Evaluator, ProcessEvaluator, SerialEvaluator
from hpsearch.problem import load_problem
from tests import evaluator_checks as checks
from tests.evaluator_checks import EVAL_TIMEOUT, SCRIPTED, Capabilities, Harness

BACKENDS = {
    # nothing runs outside wait(), so cancel_all always finds its jobs not yet started
    "serial": Capabilities(isolates=False, concurrent=False, interrupts=True),
    "process": Capabilities(isolates=True, concurrent=True, interrupts=True),
}


def backends(needs: str | None = None) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("backend", checks.backend_params(BACKENDS, needs))


def make(backend: str) -> Evaluator:
    if backend == "serial":
        return SerialEvaluator(load_problem(SCRIPTED).run, eval_timeout=EVAL_TIMEOUT)
    return ProcessEvaluator(SCRIPTED, n_workers=2, eval_timeout=EVAL_TIMEOUT)


@pytest.fixture(scope="module")
def pools():
    """Evaluators shared by the checks that leave their workers idle: a process pool's
    children each import the problem, which takes seconds on busy cores."""
    made: dict[str, Evaluator] = {}
    yield made
    for evaluator in made.values():
        evaluator.shutdown()


@pytest.fixture
def harness(backend, tmp_path, pools):
    if backend not in pools:
        pools[backend] = make(backend)
    evaluator = pools[backend]
    yield Harness(evaluator, BACKENDS[backend], tmp_path)
    evaluator.report_handler = None
    if evaluator.n_busy:  # a failed check: the next one gets a new evaluator
        del pools[backend]
        evaluator.shutdown()


@pytest.fixture
def own_harness(backend, tmp_path):
    """A harness with an evaluator of its own, for the check that cancels: a cancel kills the
    pool's evaluation processes."""
    with make(backend) as evaluator:
        yield Harness(evaluator, BACKENDS[backend], tmp_path)


@backends()
def test_every_job_comes_back_exactly_once_with_its_id(harness):
    checks.check_every_job_comes_back_exactly_once_with_its_id(harness)


@backends()
def test_submit_to_a_full_evaluator_raises(harness):
    checks.check_submit_to_a_full_evaluator_raises(harness)


@backends("concurrent")
def test_wait_returns_nothing_after_its_timeout_without_spinning(harness):
    checks.check_wait_returns_nothing_after_its_timeout_without_spinning(harness)


@backends()
def test_failures_come_back_with_their_status_and_reason(harness):
    checks.check_failures_come_back_with_their_status_and_reason(harness)


@backends("isolates")
def test_a_crash_comes_back_failed_and_its_worker_takes_the_next_job(harness):
    checks.check_a_crash_comes_back_failed_and_its_worker_takes_the_next_job(harness)


@backends()
def test_reports_reach_the_handler_in_order_before_their_result(harness):
    checks.check_reports_reach_the_handler_in_order_before_their_result(harness)


@backends()
def test_a_stop_answer_ends_the_run_at_most_one_report_late(harness):
    checks.check_a_stop_answer_ends_the_run_at_most_one_report_late(harness)


@backends()
def test_an_invalid_report_reaches_the_handler_with_its_error_and_the_run_goes_on(harness):
    checks.check_an_invalid_report_reaches_the_handler_with_its_error_and_the_run_goes_on(harness)


@backends()
def test_a_trial_runs_to_its_end_without_a_report_handler(harness):
    checks.check_a_trial_runs_to_its_end_without_a_report_handler(harness)


@backends()
def test_cancel_all_returns_running_jobs_and_the_evaluator_takes_new_ones(own_harness):
    checks.check_cancel_all_returns_running_jobs_and_the_evaluator_takes_new_ones(own_harness)
