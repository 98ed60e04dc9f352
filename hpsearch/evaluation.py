"""Jobs, results, and running a problem's ``run`` function on one job.

A job is one run of a trial: a configuration with its identity (the job id), its place in a
population (``member``), the job whose checkpoint it continues (``parent``) and its step range.
Errors travel as values: whatever a run function does (raise, call ``sys.exit``, return NaN or
something that is not a number), the outcome is a :class:`Result` with a status and a message,
never an exception across processes. Messages and text metrics are cut to
:data:`MAX_TEXT` characters; the full traceback of a run that raised goes to
``OUTPUT/logs/<job_id>.log`` (see :func:`save_traceback`).
"""

from __future__ import annotations

import math
import numbers
import os
import reprlib
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hpsearch.problem import RunFunction, takes_trial
from hpsearch.space import Config
from hpsearch.trial import ReportChannel, Trial, csv_value, fingerprint

DONE = "DONE"
FAILED = "FAILED"
TIMEOUT = "TIMEOUT"
CANCELLED = "CANCELLED"
#: Statuses of evaluations that count as finished (``--max-evals`` counts these).
FINISHED = (DONE, FAILED, TIMEOUT)
HOST = socket.gethostname()
#: Longest error message or text metric kept in a row (characters).
MAX_TEXT = 2000
#: Where the full traceback of a failed job goes, relative to the output directory.
LOGS_DIR = "logs"


class EvaluationInterrupted(BaseException):
    """Raised inside a run by its evaluator (an in-process timeout): :func:`evaluate` lets it
    through instead of recording it as the run's failure."""


@dataclass
class Job:
    """A trial's run sent to a worker; ``t_submit`` is wall-clock (``time.time()``).

    ``step`` is where training starts and ``max_steps`` where this job should end (None: the
    problem decides); ``checkpoint_dir`` is this job's own directory (None when the run
    function takes no trial) and ``restore_from`` the checkpoint of ``parent``, if any.
    """

    job_id: int
    config: Config
    t_submit: float = field(default_factory=time.time)
    #: Seconds between the worker's report of its previous job and this job being sent to it
    #: (NaN for a worker's first job): how long a free worker waited for the master.
    handout_latency: float = math.nan
    member: int | None = None
    parent: int | None = None
    step: int = 0
    max_steps: int | None = None
    checkpoint_dir: str | None = None
    restore_from: str | None = None


@dataclass
class Outcome:
    """What evaluating one configuration gave, as measured where it ran."""

    status: str
    #: A float, or a list of floats for a multi-objective run (the first is the primary one).
    objective: float | list[float] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    t_start: float = math.nan
    t_end: float = math.nan
    #: True when a report told the run to stop and it then returned (stopped early).
    stopped: bool = False
    #: Fingerprint of the job's checkpoint directory when its run returned, taken where it
    #: ran (None when the run did not return: the master looks at the directory itself).
    checkpoint: str | None = None
    #: The full traceback when the run raised ("" otherwise); :attr:`error` is its last line.
    traceback: str = ""
    #: Name of the signal that killed the evaluation process ("" when none did).
    killed_by: str = ""


@dataclass
class Result:
    """A finished (or cancelled) job: the job, its outcome, and the worker that ran it."""

    job: Job
    outcome: Outcome
    worker: int | str = ""
    host: str = ""
    #: Set by the search loop: the last step the job reported (None when it reported none),
    #: and its checkpoint directory when it is usable for a later job to restore from.
    step_end: Any = None
    checkpoint: str | None = None
    #: Set by the search loop: the highest rung of early stopping the trial reached (None:
    #: no stopper, or no rung).
    rung: int | None = None

    @property
    def status(self) -> str:
        return self.outcome.status

    @property
    def objective(self) -> float | list[float] | None:
        return self.outcome.objective

    @property
    def config(self) -> Config:
        return self.job.config

    @property
    def primary_objective(self) -> float | None:
        """The (first) objective of a DONE result, None otherwise."""
        if self.status != DONE:
            return None
        objective = self.outcome.objective
        return objective[0] if isinstance(objective, list) else objective


def cut(text: str, limit: int = MAX_TEXT, more: str = "") -> str:
    """``text`` cut to at most ``limit`` characters, saying how much was left out (and
    ``more``, e.g. where the rest is)."""
    if len(text) <= limit:
        return text
    note = f" [... {{}} characters cut{more}]"
    kept = max(0, limit - len(note.format(len(text))))
    return text[:kept] + note.format(len(text) - kept)


_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60


def _short_repr(value: Any) -> str:
    return _repr.repr(value)


def _real(value: Any) -> float | None:
    """``value`` as a float when it is a real number (int, float, a numpy number or 0-d
    array; not a bool, not text), None otherwise."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def _metric(value: Any) -> Any:
    value = csv_value(value)
    return cut(value) if isinstance(value, str) else value


def interpret(returned: Any) -> Outcome:
    """Turn what a run function returned into an outcome (status DONE or FAILED).

    Objectives are real numbers only: text, bytes or a bool is a FAILED outcome naming the
    type, never read as a number.
    """
    metrics: dict[str, Any] = {}
    objective = returned
    if isinstance(returned, dict):
        if "objective" not in returned:
            keys = cut(", ".join(map(_short_repr, returned)) or "none")
            return Outcome(
                FAILED, error=f"run() returned a dict without 'objective' (keys: {keys})"
            )
        objective = returned["objective"]
        metrics = {cut(str(k), 200): _metric(v) for k, v in returned.items() if k != "objective"}
    if hasattr(objective, "tolist") and getattr(objective, "ndim", 0) > 0:
        objective = objective.tolist()  # a numpy array of objectives
    if isinstance(objective, list | tuple):
        return _interpret_vector(objective, metrics)
    value = _real(objective)
    if value is None:
        return Outcome(
            FAILED,
            metrics=metrics,
            error=f"run() returned an objective of type {type(objective).__name__}, "
            f"not a real number: {_short_repr(objective)}",
        )
    if not math.isfinite(value):
        return Outcome(
            FAILED, metrics=metrics, error=f"run() returned a non-finite objective {value}"
        )
    return Outcome(DONE, objective=value, metrics=metrics)


def _interpret_vector(objectives: list | tuple, metrics: dict[str, Any]) -> Outcome:
    """Several objectives (multi-objective run): every one must be a finite number."""
    if not objectives:
        return Outcome(FAILED, metrics=metrics, error="run() returned an empty list of objectives")
    values = []
    for i, objective in enumerate(objectives):
        value = _real(objective)
        if value is None:
            return Outcome(
                FAILED,
                metrics=metrics,
                error=f"run() returned objective {i} of type {type(objective).__name__}, "
                f"not a real number: {_short_repr(objective)}",
            )
        if not math.isfinite(value):
            return Outcome(
                FAILED,
                metrics=metrics,
                error=f"run() returned objective {i} = {objective!r}, not a finite number",
            )
        values.append(value)
    return Outcome(DONE, objective=values, metrics=metrics)


def evaluate(
    run: RunFunction,
    job: Job,
    channel: ReportChannel | None = None,
    clock: Callable[[], float] = time.time,
) -> Outcome:
    """Run ``job`` here and now, timing it; whatever it raises (``sys.exit`` included)
    becomes a FAILED outcome, except KeyboardInterrupt and :class:`EvaluationInterrupted`.

    A run function taking two parameters gets a :class:`~hpsearch.trial.Trial` whose reports
    go through ``channel``.
    """
    t_start = clock()
    trial = None
    try:
        if takes_trial(run):
            trial = Trial(job, channel, clock)
            outcome = interpret(run(dict(job.config), trial))
        else:
            outcome = interpret(run(dict(job.config)))
    except (KeyboardInterrupt, EvaluationInterrupted):
        raise
    except BaseException as err:
        outcome = _failure(err, job.job_id)
    outcome.t_start, outcome.t_end = t_start, clock()
    outcome.stopped = (
        trial is not None and trial.stopped and outcome.status == DONE and not trial.at_end
    )
    if trial is not None:
        outcome.checkpoint = fingerprint(trial.checkpoint_dir)
    return outcome


def _failure(err: BaseException, job_id: int) -> Outcome:
    """The FAILED outcome of a run that raised ``err``: its last line, cut, and the full
    traceback."""
    where = traceback.extract_tb(err.__traceback__)[-1]
    if isinstance(err, SystemExit):
        what = f"run() called sys.exit({err.code!r})"
    else:
        try:
            what = f"{type(err).__name__}: {err}"
        except Exception:  # an exception whose text cannot be made
            what = type(err).__name__
    more = f", full traceback in {LOGS_DIR}/{job_id}.log"
    return Outcome(
        FAILED,
        error=cut(f"{what} (at {where.filename}:{where.lineno})", more=more),
        traceback="".join(traceback.format_exception(err)),
    )


def save_traceback(output_dir: str, result: Result) -> None:
    """Write the full traceback of a run that raised to ``output_dir/logs/<job_id>.log``."""
    if not result.outcome.traceback:
        return
    directory = os.path.join(output_dir, LOGS_DIR)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f"{result.job.job_id}.log"), "w") as f:
        f.write(result.outcome.traceback)
