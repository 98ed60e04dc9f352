"""The evaluator contract (tests/evaluator_checks.py) on MPI ranks: run with
``mpirun -n N python -m pytest --with-mpi``.

Rank 0 runs each check with an MPIEvaluator; other ranks serve, in one session per worker mode
for the whole module: in-process on every rank, isolated (the default) on the first
ISOLATED_WORKERS, as there starting a session costs every worker's child process an import of
the problem.
"""

from __future__ import annotations

import time
import traceback

import pytest

from tests import evaluator_checks as checks
from tests.evaluator_checks import EVAL_TIMEOUT, SCRIPTED, Capabilities, Harness

pytestmark = pytest.mark.mpi(min_size=2)

MODES = {
    "isolated": Capabilities(isolates=True, concurrent=True, interrupts=True),
    # the run is in the worker rank itself: a cancel can only wait for its result
    "in-process": Capabilities(isolates=False, concurrent=True, interrupts=False),
}
#: Worker ranks in the isolated session: each starts an evaluation process that imports the
#: problem (a second of CPU), and on two cores two check what seven would, only slower.
ISOLATED_WORKERS = 2
#: Tag of the message a worker rank sends rank 0 when it leaves serve() with an error.
LEFT_SERVE = 1


def modes(needs: str | None = None) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("session", checks.backend_params(MODES, needs), indirect=True)


class Session:
    """Rank 0's side of a serve session: the evaluator, and word of worker ranks that left."""

    def __init__(self, comm, side, can: Capabilities) -> None:
        from hpsearch.evaluators import mpi

        self.evaluator = mpi.MPIEvaluator(comm)
        self.side = side
        self.can = can
        self.gone: list[str] = []

    def poll(self) -> None:
        from mpi4py import MPI

        status = MPI.Status()
        while self.side.Iprobe(source=MPI.ANY_SOURCE, tag=LEFT_SERVE, status=status):
            self.gone.append(self.side.recv(source=status.Get_source(), tag=LEFT_SERVE))

    def alive(self) -> None:
        self.poll()
        assert not self.gone, "worker ranks left serve():\n" + "\n".join(self.gone)


def quiet_barrier(comm) -> None:
    """Wait for every rank without spinning, as MPICH's blocking calls do."""
    request = comm.Ibarrier()
    while not request.Test():
        time.sleep(0.005)


@pytest.fixture(scope="module")
def session(request):
    """Rank 0: a Session; ranks that serve in it: serve until rank 0 ends it, then None."""
    from mpi4py import MPI

    from hpsearch.evaluators import mpi

    world = mpi.world()
    mode = request.param
    quiet_barrier(world)
    if mode == "isolated":
        inside = world.rank <= ISOLATED_WORKERS
        comm = world.Split(0 if inside else MPI.UNDEFINED, world.rank)
    else:
        comm = world.Dup()
    if comm == MPI.COMM_NULL:
        yield None
        return
    # this session's own communicators: what a broken session leaves unreceived stays there
    side = comm.Dup()
    if comm.rank != 0:
        try:
            mpi.serve(comm, SCRIPTED, eval_timeout=EVAL_TIMEOUT, isolation=mode == "isolated")
        except Exception as err:
            # rank 0's check fails with it (else it would wait for this rank's job until its
            # limit); raised here, it would fail a later test of this rank instead
            trace = "".join(traceback.format_exception(err))
            side.send(f"rank {comm.rank}: {trace}", dest=0, tag=LEFT_SERVE)
        yield None
        return
    mpi.synchronise_start(comm)
    session = Session(comm, side, MODES[mode])
    yield session
    session.evaluator.shutdown()


@pytest.fixture
def harness(session, request):
    if session is None:
        yield None
        return
    tmp_path = request.getfixturevalue("tmp_path")  # on rank 0 only: ranks share its base
    if session.gone:
        pytest.fail("worker ranks left serve() in an earlier check:\n" + "\n".join(session.gone))
    evaluator = session.evaluator
    yield Harness(evaluator, session.can, tmp_path, alive=session.alive)
    evaluator.report_handler = None
    # after a failed check, let its jobs end (all do within the eval timeout) for the next one
    end = time.monotonic() + EVAL_TIMEOUT + 5.0
    while evaluator.n_busy and not session.gone and time.monotonic() < end:
        evaluator.wait(timeout=0.5)
        session.poll()


@modes()
def test_every_job_comes_back_exactly_once_with_its_id(harness):
    if harness is not None:
        checks.check_every_job_comes_back_exactly_once_with_its_id(harness)


@modes()
def test_submit_to_a_full_evaluator_raises(harness):
    if harness is not None:
        checks.check_submit_to_a_full_evaluator_raises(harness)


@modes("concurrent")
def test_wait_returns_nothing_after_its_timeout_without_spinning(harness):
    if harness is not None:
        checks.check_wait_returns_nothing_after_its_timeout_without_spinning(harness)


@modes()
def test_failures_come_back_with_their_status_and_reason(harness):
    if harness is not None:
        checks.check_failures_come_back_with_their_status_and_reason(harness)


@modes("isolates")
def test_a_crash_comes_back_failed_and_its_worker_takes_the_next_job(harness):
    if harness is not None:
        checks.check_a_crash_comes_back_failed_and_its_worker_takes_the_next_job(harness)


@modes()
def test_reports_reach_the_handler_in_order_before_their_result(harness):
    if harness is not None:
        checks.check_reports_reach_the_handler_in_order_before_their_result(harness)


@modes()
def test_a_stop_answer_ends_the_run_at_most_one_report_late(harness):
    if harness is not None:
        checks.check_a_stop_answer_ends_the_run_at_most_one_report_late(harness)


@modes()
def test_an_invalid_report_reaches_the_handler_with_its_error_and_the_run_goes_on(harness):
    if harness is not None:
        checks.check_an_invalid_report_reaches_the_handler_with_its_error_and_the_run_goes_on(
            harness
        )


@modes()
def test_a_trial_runs_to_its_end_without_a_report_handler(harness):
    if harness is not None:
        checks.check_a_trial_runs_to_its_end_without_a_report_handler(harness)


# Last of each session: with a cancel, the workers' evaluations are killed.
@modes()
def test_cancel_all_returns_running_jobs_and_the_evaluator_takes_new_ones(harness):
    if harness is not None:
        checks.check_cancel_all_returns_running_jobs_and_the_evaluator_takes_new_ones(harness)
