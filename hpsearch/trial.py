"""The trial a run function gets: where its training starts, where it saves, how it reports.

A run function declared as ``run(config, trial)`` receives a :class:`Trial`. It may continue
from a checkpoint (``trial.restore_from``), train up to ``trial.max_steps``, save into
``trial.checkpoint_dir`` and call ``trial.report(step, objective, **metrics)`` after each step;
``report`` returns True when the search asks the run to stop. A report never waits for the
master: it goes out at once and the answer is whatever decision has arrived so far, so a stop
may take effect one report late.
"""

from __future__ import annotations

import math
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hpsearch.evaluation import Job


@dataclass
class Report:
    """One intermediate result of a running job, as sent to the master."""

    job_id: int
    step: Any
    objective: float | None
    metrics: dict[str, Any] = field(default_factory=dict)
    #: When it was made: wall-clock ``time.time()`` (virtual seconds in the simulator).
    time: float = math.nan
    #: Fingerprint of the checkpoint directory when the report was made ("" when empty).
    checkpoint: str = ""
    #: Why the report is invalid ("" when it is valid); an invalid report is recorded only.
    error: str = ""


class ReportChannel(Protocol):
    """How a trial's reports reach the search and its decisions come back."""

    def send(self, report: Report) -> None:
        """Pass ``report`` on without waiting for the master."""

    def stop_requested(self, job_id: int) -> bool:
        """True once the search has asked job ``job_id`` to stop (never waits)."""


class NoChannel:
    """A channel to nowhere, for a trial run outside a search: reports are kept in ``sent``."""

    def __init__(self) -> None:
        self.sent: list[Report] = []

    def send(self, report: Report) -> None:
        self.sent.append(report)

    def stop_requested(self, job_id: int) -> bool:
        return False


#: The file the master writes into a checkpoint directory once it is complete.
USABLE_MARKER = ".hpsearch-usable"


def fingerprint(directory: str | os.PathLike[str] | None) -> str:
    """A cheap fingerprint of a directory's files (paths, sizes, modification times).

    It changes when any file is written, so a checkpoint whose fingerprint still matches the
    one taken at a report holds exactly what was saved before that report. "" when the
    directory is empty or missing.
    """
    if directory is None or not os.path.isdir(directory):
        return ""
    entries = []
    for root, _, files in os.walk(directory):
        for name in files:
            if name == USABLE_MARKER and root == os.fspath(directory):
                continue  # the master's mark, not the run's checkpoint
            path = os.path.join(root, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            entries.append(f"{os.path.relpath(path, directory)}:{st.st_size}:{st.st_mtime_ns}")
    if not entries:
        return ""
    text = "\n".join(sorted(entries))
    return f"{len(entries)}-{zlib.crc32(text.encode()):08x}"


def _as_number(value: Any) -> float | None:
    """``value`` as a float when it is a real number (bools are not), else None."""
    if isinstance(value, bool | str | bytes):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number


class Trial:
    """What a run function taking two parameters gets as its second one.

    - ``id``: the job id (the row of results.csv); ``member``: the population member, or None.
    - ``step``: the step training starts from (0 for a fresh start).
    - ``max_steps``: the step at which this job should end, counted from the start of
      training (a job continuing from step 6 with ``max_steps`` 9 trains 3 steps); None when
      the search sets no budget and the problem decides.
    - ``checkpoint_dir``: a :class:`pathlib.Path` unique to this job, created for it, on the
      same filesystem as results.csv. Save there; the search marks it usable once the run
      returns, or as of the last report when the job is killed with nothing written since.
    - ``restore_from``: the ``checkpoint_dir`` of the job to continue from, or None.
    """

    def __init__(
        self,
        job: Job,
        channel: ReportChannel | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.id = job.job_id
        self.member = job.member
        self.step = job.step
        self.max_steps = job.max_steps
        self.checkpoint_dir = None if job.checkpoint_dir is None else Path(job.checkpoint_dir)
        self.restore_from = None if job.restore_from is None else Path(job.restore_from)
        if self.checkpoint_dir is not None:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self._channel: ReportChannel = channel if channel is not None else NoChannel()
        self._clock = clock
        #: The last step reported without error (None before the first).
        self.last_step: Any = None
        #: True once a report has returned True: the search asked this run to stop.
        self.stopped = False

    def __repr__(self) -> str:
        return f"Trial(id={self.id}, member={self.member}, step={self.step}, max_steps={self.max_steps})"

    @property
    def at_end(self) -> bool:
        """True once the run reported its ``max_steps``: a stop answered after that came too
        late to stop it early."""
        last = _as_number(self.last_step)
        return self.max_steps is not None and last is not None and last >= self.max_steps

    def report(self, step: Any, objective: Any, **metrics: Any) -> bool:
        """Record ``objective`` (and metrics) at ``step``; return True when the search asks to stop.

        Appends one row to steps.csv. Steps must increase (and exceed ``trial.step``); a
        non-increasing step, a non-finite objective or a non-number is recorded with its
        error in steps.csv and does not stop the run. Never waits for the master.
        """
        error = self._check(step, objective)
        value = _as_number(objective)
        report = Report(
            job_id=self.id,
            step=csv_value(step) if _as_number(step) is not None else repr(step),
            objective=value if value is not None and math.isfinite(value) else None,
            metrics={str(k): csv_value(v) for k, v in metrics.items()},
            time=self._clock(),
            checkpoint="" if error else fingerprint(self.checkpoint_dir),
            error=error,
        )
        if not error:
            self.last_step = report.step
        self._channel.send(report)
        if not self.stopped and self._channel.stop_requested(self.id):
            self.stopped = True
        return self.stopped

    def _check(self, step: Any, objective: Any) -> str:
        number = _as_number(step)
        if number is None or not math.isfinite(number):
            return f"report(): step {step!r} is not a finite number"
        previous = self.last_step if self.last_step is not None else self.step
        if (self.last_step is not None or self.step) and not number > float(previous):
            return f"report(): step {step!r} does not increase (previous step {previous!r})"
        value = _as_number(objective)
        if value is None:
            return f"report(): objective {objective!r} is not a number"
        if not math.isfinite(value):
            return f"report(): objective {value} is not finite"
        return ""


def csv_value(value: Any) -> Any:
    """A metric value as something a CSV cell holds (numpy and framework scalars become
    Python numbers; anything else its text)."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    try:
        return value.item()
    except (AttributeError, ValueError):
        return str(value)
