"""Suggestions kept ready beside the message loop, so no worker waits for a surrogate refit.

:class:`SuggestionBuffer` owns the optimizer in a thread of its own: the search loop hands
out ready configurations at once and passes results in; the thread tells the optimizer and
asks for more while workers are busy. Surrogate fits (scikit-learn) and numpy release the
GIL for most of their work, so the message loop stays responsive.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from hpsearch.search.base import Optimizer, UnsuitedProblem
from hpsearch.space import Config


class OptimizerError(RuntimeError):
    """The optimizer raised in its thread; the original exception is the cause. (An
    :class:`UnsuitedProblem` it raised is raised as it is.)"""


class SuggestionBuffer:
    """Ask ``optimizer`` ahead of time, in a background thread, and learn from results there.

    The loop calls :meth:`keep_ready` (how many suggestions to hold), :meth:`take`,
    :meth:`tell` and :meth:`forget`; nothing else may touch the optimizer until
    :meth:`close` returns (which also applies every result still queued). With
    ``background=False`` (a simulation, where the master's time is counted on a virtual
    clock) the same calls ask and learn at once, in the caller's thread.
    """

    def __init__(self, optimizer: Optimizer, background: bool = True) -> None:
        self.optimizer = optimizer
        self.background = background
        #: seconds of the last round of learning and asking: reports keep coming meanwhile
        self.round_seconds = 0.0
        self._cond = threading.Condition()
        self._ready: deque[Config] = deque()
        self._inbox: list[tuple[str, list[Any], list[Any]]] = []
        self._want = 0
        self._closed = False
        self._working = False  # the thread is telling or asking the optimizer
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="hpsearch-optimizer", daemon=True)
        if background:
            self._thread.start()

    # ---- called by the search loop ---------------------------------------------------------
    def keep_ready(self, n: int) -> None:
        """Hold ``n`` suggestions ready (asked, pending in the optimizer)."""
        if not self.background:
            self._apply(self._inbox)
            self._inbox = []
            if n > len(self._ready):
                t0 = time.perf_counter()
                self._ready.extend(self.optimizer.ask(n - len(self._ready)))
                self.round_seconds = time.perf_counter() - t0
            return
        with self._cond:
            self._raise_if_failed()
            if n != self._want:
                self._want = n
                self._cond.notify_all()

    def take(self, n: int) -> list[Config]:
        """Up to ``n`` ready suggestions, at once (never waits)."""
        with self._cond:
            self._raise_if_failed()
            return [self._ready.popleft() for _ in range(min(n, len(self._ready)))]

    def wait_ready(self, timeout: float) -> None:
        """Block until a suggestion is ready (or ``timeout`` seconds pass)."""
        with self._cond:
            self._cond.wait_for(lambda: self._ready or self._error or self._closed, timeout)
            self._raise_if_failed()

    @property
    def exhausted(self) -> bool:
        """True when nothing is ready, queued or being asked, and the optimizer has no
        configuration left to propose."""
        with self._cond:
            idle = not (self._ready or self._inbox or self._working)
            return idle and self.optimizer.exhausted

    def tell(self, configs: Sequence[Config], objectives: Sequence[Any]) -> None:
        self._post("tell", list(configs), list(objectives))

    def forget(self, configs: Sequence[Config]) -> None:
        self._post("forget", list(configs), [])

    def close(self) -> None:
        """Stop the thread, drop unused suggestions, and apply every queued result."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self.background:
            self._thread.join()
        self._raise_if_failed()
        self.optimizer.forget(list(self._ready))
        self._ready.clear()
        self._apply(self._inbox)
        self._inbox = []

    # ---- the optimizer's thread ------------------------------------------------------------
    def _post(self, kind: str, configs: list[Any], objectives: list[Any]) -> None:
        if not configs:
            return
        with self._cond:
            self._raise_if_failed()
            self._inbox.append((kind, configs, objectives))
            self._cond.notify_all()

    def _raise_if_failed(self) -> None:
        if isinstance(self._error, UnsuitedProblem):  # bad input, not a failing optimizer
            raise self._error
        if self._error is not None:
            raise OptimizerError(f"the optimizer failed: {self._error!r}") from self._error

    def _apply(self, inbox: list[tuple[str, list[Any], list[Any]]]) -> None:
        for kind, configs, objectives in inbox:
            if kind == "tell":
                self.optimizer.tell(configs, objectives)
            else:
                self.optimizer.forget(configs)

    def _work(self) -> None:
        while True:
            with self._cond:
                # an exhausted optimizer is asked again only once a result may reopen it
                self._cond.wait_for(
                    lambda: (
                        self._closed
                        or self._inbox
                        or (len(self._ready) < self._want and not self.optimizer.exhausted)
                    )
                )
                if self._closed:
                    return
                inbox, self._inbox = self._inbox, []
                self._working = True
            try:
                t0 = time.perf_counter()
                self._apply(inbox)
                with self._cond:
                    missing = self._want - len(self._ready)
                configs = self.optimizer.ask(missing) if missing > 0 else []
                with self._cond:
                    if missing > 0:
                        self.round_seconds = time.perf_counter() - t0
                    self._ready.extend(configs)
                    self._working = False
                    self._cond.notify_all()
            except BaseException as err:  # reported to the loop, which stops the search
                with self._cond:
                    self._error = err
                    self._cond.notify_all()
                return
