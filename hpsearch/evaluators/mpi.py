"""MPI backend: rank 0 hands jobs to the other ranks and collects their results as they come.

This is the only module that imports mpi4py (importing ``mpi4py.MPI`` initialises MPI), and
only a process started by an MPI launcher imports it. Messages are small pickled objects:

- master -> worker: ``TAG_JOB`` (a :class:`~hpsearch.evaluation.Job`), ``TAG_STOP_TRIAL`` (a
  job id: the search asks that trial to stop), ``TAG_CANCEL`` (kill the running evaluation and
  report it), ``TAG_STOP`` (leave the serve loop);
- worker -> master: ``TAG_REPORT`` (a list of :class:`~hpsearch.trial.Report` of the running
  job), ``TAG_RESULT`` (``(job_id, Outcome, host)``), exactly one per job, after its reports,
  or instead ``TAG_UNABLE`` (``(job_id, reason, host)``: this worker cannot import the
  problem, so the job did not run and the search stops).

The master probes for any tag, so it receives each worker's messages in the order sent.

Nobody blocks inside MPI: MPICH's blocking calls spin, and tests run more ranks than cores.
Ranks poll with ``Iprobe`` and sleep between polls, backing off to a few milliseconds.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections import deque
from multiprocessing.connection import wait as wait_for
from typing import Any

import mpi4py

mpi4py.rc.recv_mprobe = False  # matched probes hang on some fabrics
from mpi4py import MPI  # noqa: E402  (after the rc setting)

from hpsearch.evaluation import CANCELLED, HOST, Job, Outcome, Result  # noqa: E402
from hpsearch.evaluators.base import Evaluator, WorkerError  # noqa: E402
from hpsearch.evaluators.isolation import IsolatedRunner  # noqa: E402
from hpsearch.evaluators.serial import SerialEvaluator  # noqa: E402
from hpsearch.placement import thread_environment, worker_environment  # noqa: E402
from hpsearch.problem import RunSource  # noqa: E402
from hpsearch.trial import Report  # noqa: E402

TAG_JOB, TAG_RESULT, TAG_CANCEL, TAG_STOP, TAG_REPORT, TAG_STOP_TRIAL = 11, 12, 13, 14, 15, 16
TAG_UNABLE = 17
MASTER = 0
#: Polling back-off: first sleep and longest sleep between two polls, in seconds.
MIN_POLL, MAX_POLL = 1e-4, 2e-3
#: How often a worker that is evaluating looks for a cancel or stop message; right after
#: it forwarded reports it looks after REPLY_POLL, then less and less often.
CONTROL_POLL = 0.05
REPLY_POLL = 1e-3
#: How long the master waits for busy workers to report after it asked them to cancel.
CANCEL_WAIT = 30.0


def world() -> Any:
    return MPI.COMM_WORLD


class _Backoff:
    """Sleeps that grow from ``shortest`` to ``longest`` (seconds) while nothing happens."""

    def __init__(self, shortest: float = MIN_POLL, longest: float = MAX_POLL) -> None:
        self.shortest, self.longest = shortest, longest
        self.delay = shortest

    def reset(self) -> None:
        self.delay = self.shortest

    def grow(self) -> None:
        self.delay = min(2 * self.delay, self.longest)

    def sleep(self, limit: float = math.inf) -> None:
        time.sleep(max(0.0, min(self.delay, limit)))
        self.grow()


def synchronise_start(comm: Any) -> tuple[int, int]:
    """Wait (without spinning) until every rank is here; return this worker's node-local
    index among the workers on its node and the number of workers on the node.

    Collective: the master and every worker call it once, at start-up.
    """
    request = comm.Ibarrier()
    backoff = _Backoff()
    while not request.Test():
        backoff.sleep()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.rank)
    workers_here = sorted(r for r in node.allgather(comm.rank) if r != MASTER)
    node.Free()
    index = workers_here.index(comm.rank) if comm.rank in workers_here else -1
    return index, max(1, len(workers_here))


def release_workers(comm: Any) -> None:
    """Tell every worker to leave its serve loop (used on shutdown and on bad input)."""
    requests = [comm.isend(None, dest=r, tag=TAG_STOP) for r in range(1, comm.size)]
    MPI.Request.Waitall(requests)


class MPIEvaluator(Evaluator):
    """Evaluate on every rank but 0, each worker getting a new job as soon as it reports.

    Call from rank 0 after :func:`synchronise_start`; :meth:`shutdown` releases the workers.
    ``interruptible=False`` says the workers evaluate in their own process
    (``--no-isolation``): they cannot answer a cancel before their run returns, so
    :meth:`cancel_all` does not wait for them.
    """

    def __init__(self, comm: Any, interruptible: bool = True) -> None:
        if comm.size < 2:
            raise ValueError("the MPI evaluator needs at least 2 ranks (a master and a worker)")
        self.comm = comm
        self.n_workers = comm.size - 1
        self.interruptible = interruptible
        self.jobs: dict[int, Job] = {}
        self.idle: deque[int] = deque(range(1, comm.size))
        self.reported_at: dict[int, float] = {}
        #: Workers that could not import the problem, with the job they did not run.
        self.unable: dict[int, Job] = {}
        self.failure: WorkerError | None = None
        self._stopped = False

    def running(self) -> list[Job]:
        return list(self.jobs.values())

    @property
    def n_busy(self) -> int:
        return len(self.jobs) + len(self.unable)  # a worker that is unable takes no job

    def submit(self, job: Job) -> None:
        if not self.idle:
            raise RuntimeError("no free worker: wait() for a result before submitting more jobs")
        rank = self.idle.popleft()
        job.t_submit = time.time()
        job.handout_latency = job.t_submit - self.reported_at.get(rank, math.nan)
        self.jobs[rank] = job
        self.comm.send(job, dest=rank, tag=TAG_JOB)

    def _receive(self) -> tuple[list[Result], int]:
        """Results that arrived, and how many reports were handled on the way."""
        results: list[Result] = []
        reports: list[Report] = []
        status = MPI.Status()
        budget = 4 * self.n_workers  # under a flood of reports, answer some before reading on
        while budget and self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status):
            budget -= 1
            rank, tag = status.Get_source(), status.Get_tag()
            message = self.comm.recv(source=rank, tag=tag)
            if tag == TAG_REPORT:
                reports += message
                continue
            if tag == TAG_UNABLE:
                job_id, reason, host = message
                self.unable[rank] = self.jobs.pop(rank)
                self.failure = self.failure or WorkerError(f"worker {rank} ({host}): {reason}")
                continue
            job_id, outcome, host = message
            self.reported_at[rank] = time.time()
            job = self.jobs.pop(rank)
            assert job.job_id == job_id, (job.job_id, job_id)
            self.idle.append(rank)
            results.append(Result(job, outcome, worker=rank, host=host))
        stops = self.handle_reports(reports)
        if stops:
            for rank, job in self.jobs.items():
                if job.job_id in stops:
                    self.comm.send(job.job_id, dest=rank, tag=TAG_STOP_TRIAL)
        return results, len(reports)

    def wait(self, timeout: float | None = None) -> list[Result]:
        results = self._wait(timeout)
        if not results and self.failure is not None:
            raise self.failure
        return results

    def _wait(self, timeout: float | None) -> list[Result]:
        end = math.inf if timeout is None else time.time() + timeout
        backoff = _Backoff()
        while True:
            results, n_reports = self._receive()
            now = time.time()
            if results or not self.jobs or now >= end:
                return results
            if n_reports:
                backoff.reset()  # a reporting worker may finish its job any moment
            backoff.sleep(end - now)

    def cancel_all(self) -> list[Result]:
        """Ask busy workers to kill their evaluations; each reports once (a result that was
        already on its way, or CANCELLED). Workers that evaluate in their own process cannot
        answer before their run returns: what has arrived is taken, the rest is CANCELLED at
        once."""
        for rank in self.jobs:
            self.comm.send(None, dest=rank, tag=TAG_CANCEL)
        results: list[Result] = []
        end = time.time() + (CANCEL_WAIT if self.interruptible else 0.0)
        results += self._wait(timeout=0.0)
        while self.jobs and time.time() < end:
            results += self._wait(timeout=end - time.time())
        now = time.time()
        why = "worker did not answer the cancel"
        if not self.interruptible:
            why = "cancelled when the search stopped (the worker finishes the run on its own)"
        for rank, job in list(self.jobs.items()):  # a worker that never answered
            outcome = Outcome(CANCELLED, error=why, t_start=now, t_end=now)
            results.append(Result(job, outcome, worker=rank, host=""))
        self.jobs.clear()
        return results

    def shutdown(self) -> None:
        if not self._stopped:
            self._stopped = True
            release_workers(self.comm)


def _receive_control(comm: Any, backoff: _Backoff | None) -> tuple[int, Any]:
    """Next message from the master; sleeps between polls when ``backoff`` is given,
    returns ``(-1, None)`` at once when it is None and nothing is there."""
    status = MPI.Status()
    if backoff is None:
        _prime(comm)
    while not comm.Iprobe(source=MASTER, tag=MPI.ANY_TAG, status=status):
        if backoff is None:
            return -1, None
        backoff.sleep()
    tag = status.Get_tag()
    return tag, comm.recv(source=MASTER, tag=tag)


def _prime(comm: Any) -> None:
    """MPICH's first probe after a quiet spell only moves arrived messages into its queue: a
    probe that must see them at once goes after this one."""
    comm.Iprobe(source=MASTER, tag=MPI.ANY_TAG)


def _evaluate_isolated(comm: Any, runner: IsolatedRunner, job: Job) -> tuple[Outcome, bool]:
    """Run ``job`` in the runner's child, forwarding its reports and watching for control
    messages.

    Returns the outcome and whether the master asked this worker to stop.
    """
    runner.submit(job)
    answer = _Backoff(REPLY_POLL, CONTROL_POLL)
    while True:
        outcome = runner.collect()
        reports = runner.take_reports()
        if reports:
            comm.send(reports, dest=MASTER, tag=TAG_REPORT)
            answer.reset()  # the master's answer comes within milliseconds: look soon
        if outcome is not None:
            return outcome, False
        tag, message = _receive_control(comm, None)
        while tag == TAG_STOP_TRIAL:
            runner.stop_trial(message)
            tag, message = _receive_control(comm, None)
        if tag in (TAG_CANCEL, TAG_STOP):
            now = time.time()
            outcome = runner.cancel() or Outcome(
                CANCELLED, error="cancelled when the search stopped", t_start=now, t_end=now
            )
            reports = runner.take_reports()  # sent before it was killed: they come first
            if reports:
                comm.send(reports, dest=MASTER, tag=TAG_REPORT)
            return outcome, tag == TAG_STOP
        timeout = min(answer.delay, max(0.0, runner.deadline - time.time()))
        answer.grow()
        wait_for(runner.waitables, timeout=timeout)


def serve(
    comm: Any,
    source: RunSource,
    eval_timeout: float | None = None,
    isolation: bool = True,
    gpus_per_node: int | None = None,
    threads_per_worker: int | None = None,
) -> None:
    """Worker rank: evaluate the jobs the master sends until it says stop.

    Evaluations run in a child process (``isolation``) that loads the run function from
    ``source`` once (see :data:`~hpsearch.problem.RunSource`);
    a crash or timeout there is reported and a fresh child takes the next job. A worker that
    cannot import the problem says so to the master instead of running the job. The rank
    lets SIGINT/SIGTERM pass: a launcher forwards them to every rank, and it is the master
    that decides how the search ends.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        # a handler, not SIG_IGN: an ignored signal would stay ignored in every program the
        # evaluation starts (dispositions survive exec, handlers do not)
        signal.signal(sig, _left_to_the_master)
    index, workers_here = synchronise_start(comm)
    threads = threads_per_worker or max(1, (os.cpu_count() or 1) // workers_here)
    environ = {**worker_environment(index, gpus_per_node, None), **thread_environment(threads)}
    os.environ.update(environ)  # before any framework is imported in this rank
    runner = IsolatedRunner(source, eval_timeout, environ) if isolation else None
    local: SerialEvaluator | None = None
    backoff = _Backoff()
    try:
        while True:
            tag, job = _receive_control(comm, backoff)
            backoff.reset()
            if tag == TAG_STOP:
                return
            if tag != TAG_JOB:
                continue  # a cancel or stop that crossed our last result: nothing is running
            stop = False
            try:
                if runner is not None:
                    outcome, stop = _evaluate_isolated(comm, runner, job)
                else:
                    local = local or _in_process_evaluator(comm, source, eval_timeout)
                    local.submit(job)
                    outcome = local.wait()[0].outcome
            except WorkerError as err:
                if runner is not None:
                    runner.cancel()
                comm.send((job.job_id, str(err), HOST), dest=MASTER, tag=TAG_UNABLE)
                continue
            comm.send((job.job_id, outcome, HOST), dest=MASTER, tag=TAG_RESULT)
            if stop:
                return
    finally:
        if runner is not None:
            runner.close()


def _left_to_the_master(signum: int, frame: Any) -> None:
    """SIGINT/SIGTERM on a worker rank: nothing to do, the master stops the search."""


def _forward_reports(comm: Any) -> Any:
    """A report handler for a run in this rank: send the reports to the master, and answer
    with the stop decisions that have arrived so far."""

    def forward(reports: list[Report]) -> set[int]:
        comm.send(reports, dest=MASTER, tag=TAG_REPORT)
        stops = set()
        _prime(comm)
        while comm.Iprobe(source=MASTER, tag=TAG_STOP_TRIAL):
            stops.add(comm.recv(source=MASTER, tag=TAG_STOP_TRIAL))
        return stops

    return forward


def _in_process_evaluator(
    comm: Any, source: RunSource, eval_timeout: float | None
) -> SerialEvaluator:
    """An evaluator running the problem in this rank (``--no-isolation``), its reports sent to
    the master; raises WorkerError when the problem does not import here."""
    from hpsearch.problem import ProblemLoadError, load_run

    try:
        run = load_run(source)
    except (ProblemLoadError, SystemExit) as err:
        raise WorkerError(f"the problem does not import: {err}") from err
    evaluator = SerialEvaluator(run, eval_timeout)
    evaluator.report_handler = _forward_reports(comm)
    return evaluator
