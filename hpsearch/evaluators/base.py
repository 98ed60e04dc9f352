"""The interface every evaluator backend offers the search loop."""

from __future__ import annotations

from hpsearch.evaluation import Job, Result


class Evaluator:
    """Runs jobs on a fixed set of workers and hands back results as they finish.

    Close to ``concurrent.futures`` with ``FIRST_COMPLETED``: :meth:`submit` while
    :attr:`n_free` > 0, then :meth:`wait` for whatever finishes first. Use as a context
    manager, or call :meth:`shutdown`.
    """

    #: Number of workers, i.e. of jobs that can run at once.
    n_workers: int

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
