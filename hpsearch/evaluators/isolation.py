"""Run evaluations in a child process that can be killed: crashes and hangs stay contained.

An :class:`IsolatedRunner` owns one child process (``spawn`` start method: no state inherited
from the parent, no forked threads). The child leads a process group of its own, with the
default signal dispositions, so a kill reaches whatever the evaluation started and nothing the
evaluation starts ignores SIGTERM. It loads the run function once from its source (imports
the problem module by name, or unpickles a function shipped by value), then
evaluates the jobs it is sent over a pipe, one at a time. A child that dies (segfault,
``os.abort``, out of memory) or runs past the evaluation timeout is replaced by a fresh one;
the job becomes a FAILED or TIMEOUT result and the caller carries on. A child that cannot
import the problem (it fails, dies or takes longer than the evaluation timeout) makes
:meth:`IsolatedRunner.collect` raise :class:`~hpsearch.evaluators.base.WorkerError`: every
job would fail the same way.

Over the pipe the parent sends jobs, ``(STOP_TRIAL, job_id)`` decisions and ``None`` (leave);
the child sends ``(IMPORTING, None)``, its readiness (``(READY, None)``, or ``(READY, reason)``
when the problem does not import), ``(REPORT, Report)`` for each trial report and one
:class:`~hpsearch.evaluation.Outcome` per job, in that order.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

from hpsearch.evaluation import FAILED, TIMEOUT, Job, Outcome, evaluate
from hpsearch.evaluators.base import WorkerError
from hpsearch.problem import RunSource
from hpsearch.trial import Report

IMPORTING, READY, REPORT, STOP_TRIAL = "importing", "ready", "report", "stop-trial"
#: Signals that end a process from outside (a stop, a batch system, the kernel's OOM killer):
#: a child they kill while it imports the problem says nothing about the problem.
KILLED_FROM_OUTSIDE = {"SIGTERM", "SIGINT", "SIGHUP", "SIGKILL"}
_context = multiprocessing.get_context("spawn")


class PipeChannel:
    """A trial's channel in the child: reports go up the pipe, stop decisions come down it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.stops: set[int] = set()

    def send(self, report: Report) -> None:
        self.conn.send((REPORT, report))

    def stop_requested(self, job_id: int) -> bool:
        while self.conn.poll():
            message = self.conn.recv()
            if isinstance(message, tuple) and message[0] == STOP_TRIAL:
                self.stops.add(message[1])
        return job_id in self.stops


#: Signals Python itself ignores in every process (writes to a closed pipe raise instead);
#: ``subprocess`` restores them in the programs it starts.
PYTHON_IGNORES = {signal.SIGPIPE, signal.SIGXFSZ}


def restore_default_signals() -> None:
    """Give every signal ignored in this process (inherited across exec from a launcher or a
    worker rank) its default disposition again, so that user code can be stopped."""
    for sig in signal.valid_signals():
        if sig in PYTHON_IGNORES:
            continue
        try:
            if signal.getsignal(sig) == signal.SIG_IGN:
                default = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
                signal.signal(sig, default)
        except (OSError, ValueError):  # not a signal a process may handle
            continue


def kill_process_group(process: Any) -> None:
    """SIGKILL ``process`` and every process in the group it leads (what its run started),
    and reap it. The group outlives its leader while members are left, so this also clears
    what a finished or crashed child left behind."""
    if process.pid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # ESRCH: it leads no group (yet)
    if process.is_alive():
        process.kill()
    process.join()


def _child_main(conn: Connection, source: RunSource, env: dict[str, str]) -> None:
    """Body of the child process: import the problem, then serve jobs until told to stop."""
    # A session of its own: a kill of the group reaches what the evaluation starts, and a
    # terminal's Ctrl-C or a kill of the search's group does not: the parent decides when
    # evaluations stop.
    os.setsid()
    restore_default_signals()
    os.environ.update(env)
    from hpsearch.problem import ProblemLoadError, load_run

    conn.send((IMPORTING, None))
    try:
        run: Any = load_run(source)
    except BaseException as err:  # sys.exit() in the module too: the parent must hear of it
        reason = str(err) if isinstance(err, ProblemLoadError) else f"{type(err).__name__}: {err}"
        conn.send((READY, reason))
        return
    conn.send((READY, None))
    channel = PipeChannel(conn)
    while True:
        try:
            job = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if job is None:
            return
        if isinstance(job, tuple):  # a stop decision that came after its job had finished
            continue
        channel.stops.clear()
        conn.send(evaluate(run, job, channel))


def _signal_name(code: int | None) -> str:
    """The name of the signal behind a process's exit code ("" when it exited by itself)."""
    if code is None or code >= 0:
        return ""
    try:
        return signal.Signals(-code).name
    except ValueError:
        return str(-code)


def _describe_exit(code: int | None) -> str:
    name = _signal_name(code)
    return f"killed by signal {name}" if name else f"exited with status {code}"


class IsolatedRunner:
    """One child process evaluating jobs of one problem, with a per-job timeout.

    Use :meth:`submit`, wait on :attr:`waitables` (e.g. with
    ``multiprocessing.connection.wait``) or until :attr:`deadline`, then :meth:`collect`.
    """

    def __init__(
        self,
        source: RunSource,
        eval_timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.source = source
        self.eval_timeout = eval_timeout
        self.env = dict(env or {})
        self.job: Job | None = None
        self.job_sent_at = math.nan
        self.ready = False
        #: Reports received from the running job and not yet taken (see :meth:`take_reports`).
        self.reports: list[Report] = []
        self._start()

    def _start(self) -> None:
        self.conn, child_conn = _context.Pipe()
        self.process = _context.Process(
            target=_child_main, args=(child_conn, self.source, self.env), daemon=True
        )
        self.process.start()
        child_conn.close()
        self.ready, self.ready_at, self.importing_at = False, math.nan, math.nan
        #: Why the child could not import the problem (None: it could, or has not finished).
        self.import_error: str | None = None

    @property
    def busy(self) -> bool:
        return self.job is not None

    @property
    def waitables(self) -> list[Any]:
        return [self.conn, self.process.sentinel]

    @property
    def deadline(self) -> float:
        """Wall-clock time at which the running job times out (inf when none applies).

        The clock starts once the child has imported the problem, so a slow import (a deep
        learning framework) does not eat into the first job's time; the import itself has
        its own ``eval_timeout``, from when it began.
        """
        if self.job is None or self.eval_timeout is None:
            return math.inf
        if not self.ready:
            started = not math.isnan(self.importing_at)
            return self.importing_at + self.eval_timeout if started else math.inf
        return max(self.job_sent_at, self.ready_at) + self.eval_timeout

    def submit(self, job: Job) -> None:
        if self.job is not None:
            raise RuntimeError("this runner is already evaluating a job")
        if self.conn.closed:  # cancelled earlier: a fresh child, started only when needed
            self._start()
        self.job = job
        self.job_sent_at = time.time()
        self.conn.send(job)

    def stop_trial(self, job_id: int) -> None:
        """Ask the running job to stop (its next report returns True)."""
        if self.job is not None and self.job.job_id == job_id and not self.conn.closed:
            with contextlib.suppress(OSError):
                self.conn.send((STOP_TRIAL, job_id))

    def take_reports(self) -> list[Report]:
        """The reports received since the last call, in the order they were made."""
        reports, self.reports = self.reports, []
        return reports

    def collect(self) -> Outcome | None:
        """The outcome of the running job if it has one now (finished, crashed or timed out).

        Reports that arrived meanwhile are kept for :meth:`take_reports`. Raises
        :class:`~hpsearch.evaluators.base.WorkerError` when the child cannot import the
        problem (it says so, dies first, or takes longer than ``eval_timeout``); the job is
        then still this runner's, unfinished.
        """
        if self.job is None:
            return None
        outcome = self._drain()
        if self.import_error is not None:
            raise WorkerError(f"the problem does not import: {self.import_error}")
        if outcome is not None:
            self.job = None
            return outcome
        now = time.time()
        if not self.process.is_alive():
            self.process.join()
            outcome = self._drain()
            if self.import_error is not None:
                raise WorkerError(f"the problem does not import: {self.import_error}")
            killed_by = _signal_name(self.process.exitcode)
            if not self.ready and killed_by not in KILLED_FROM_OUTSIDE:
                raise WorkerError(
                    f"the evaluation process {_describe_exit(self.process.exitcode)} "
                    "before it had imported the problem"
                )
            outcome = outcome or Outcome(  # what it sent before it died comes first
                FAILED,
                error=f"evaluation process {_describe_exit(self.process.exitcode)}",
                t_start=self.job_sent_at,
                t_end=now,
                killed_by=killed_by,
            )
            self._restart()
            return outcome
        if now >= self.deadline:
            self._kill()
            if not self.ready:
                raise WorkerError(
                    f"importing the problem took longer than --eval-timeout {self.eval_timeout:g} s"
                )
            outcome = self._drain() or Outcome(
                TIMEOUT,
                error=f"evaluation exceeded --eval-timeout {self.eval_timeout:g} s and was killed",
                t_start=self.deadline - (self.eval_timeout or 0.0),
                t_end=now,
            )
            self._restart()
            return outcome
        return None

    def _drain(self) -> Outcome | None:
        """Read what the child has sent: readiness and reports are kept, an outcome returned."""
        while not self.conn.closed and self.conn.poll():
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                return None
            if isinstance(message, tuple) and message[0] == IMPORTING:
                self.importing_at = time.time()
            elif isinstance(message, tuple) and message[0] == READY:
                if message[1] is None:
                    self.ready, self.ready_at = True, time.time()
                else:
                    self.import_error = message[1]
            elif isinstance(message, tuple) and message[0] == REPORT:
                self.reports.append(message[1])
            else:
                return message
        return None

    def cancel(self) -> Outcome | None:
        """Kill the running job, if any; the next :meth:`submit` starts a fresh child.

        Returns the job's outcome when it finished before it could be killed. Either way the
        reports it sent before it died are kept for :meth:`take_reports`: a checkpoint it
        saved and reported stays usable.
        """
        if self.job is None:
            return None
        self._kill()
        outcome = self._drain()
        self.conn.close()
        self.job = None
        return outcome

    def _restart(self) -> None:
        self._kill()
        self.conn.close()
        self.job = None
        self._start()

    def _kill(self) -> None:
        """End the child and what it started; the pipe stays open so that what it sent can
        still be read."""
        kill_process_group(self.process)

    def close(self) -> None:
        """Stop the child: politely when idle, by force when it is still evaluating."""
        if self.job is None and self.process.is_alive() and not self.conn.closed:
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.process.join(timeout=5)
        self._kill()
        self.conn.close()
