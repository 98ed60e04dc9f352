"""The interface every evaluator backend offers the search loop."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from hpsearch.evaluation import Job, Result
from hpsearch.trial import Report


class WorkerError(RuntimeError):
    """A worker cannot evaluate anything (the problem does not import there): every job sent
    to it would fail the same way, so the search stops. The message names the worker."""


#: Takes the reports that arrived (in the order each job made them) and returns the ids of
#: the jobs the search asks to stop.
ReportHandler = Callable[[list[Report]], Collection[int]]


class Evaluator:
    """Runs jobs on a fixed set of workers and hands back results as they finish.

    Close to ``concurrent.futures`` with ``FIRST_COMPLETED``: :meth:`submit` while
    :attr:`n_free` > 0, then :meth:`wait` for whatever finishes first. Use as a context
    manager, or call :meth:`shutdown`.

    Reports of running trials go to :attr:`report_handler` as they arrive (inside
    :meth:`wait`, or inside the run itself for in-process evaluation), always before the
    result of the job that made them; the jobs it names are asked to stop.
    """

    #: Number of workers, i.e. of jobs that can run at once.
    n_workers: int
    #: Set by the search loop; without one, reports are dropped and nothing is stopped.
    report_handler: ReportHandler | None = None
    #: True when :meth:`now` is not wall-clock time (a simulation): the loop then prepares
    #: trials in its own thread, so its work is counted on that clock, in a fixed order.
    virtual: bool = False

    def handle_reports(self, reports: list[Report]) -> set[int]:
        """Pass ``reports`` to the handler; the ids of the jobs to stop."""
        if not reports or self.report_handler is None:
            return set()
        return set(self.report_handler(reports))

    def now(self) -> float:
        """The evaluator's clock: wall-clock seconds (virtual seconds in a simulation)."""
        return time.time()

    @property
    def n_busy(self) -> int:
        return len(self.running())

    @property
    def n_free(self) -> int:
        return self.n_workers - self.n_busy

    def submit(self, job: Job) -> None:
        """Start ``job`` on a free worker (raises RuntimeError when none is free)."""
        raise NotImplementedError

    def wait(self, timeout: float | None = None) -> list[Result]:
        """Block until at least one job finishes or ``timeout`` seconds pass; return what finished.

        Must not spin: waiting costs no CPU, as workers may share cores with the master.
        Raises :class:`WorkerError` once a worker turned out unable to evaluate and no
        finished job is left to return; that worker's job has no result.
        """
        raise NotImplementedError

    def running(self) -> list[Job]:
        """The jobs submitted and not yet returned by :meth:`wait`."""
        raise NotImplementedError

    def cancel_all(self) -> list[Result]:
        """Stop every running job; return them as CANCELLED results."""
        raise NotImplementedError

    def shutdown(self) -> None:
        """Release the workers. Running jobs are killed."""

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
