"""Jobs, results, and running a problem's ``run`` function on one configuration.

Errors travel as values: whatever a run function does (raise, return NaN, a wrong type), the
outcome is a :class:`Result` with a status and a message, never an exception across processes.
"""

from __future__ import annotations

import math
import socket
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from hpsearch.problem import RunFunction
from hpsearch.space import Config

DONE = "DONE"
FAILED = "FAILED"
TIMEOUT = "TIMEOUT"
CANCELLED = "CANCELLED"
#: Statuses of evaluations that count as finished (``--max-evals`` counts these).
FINISHED = (DONE, FAILED, TIMEOUT)
HOST = socket.gethostname()


@dataclass
class Job:
    """A configuration sent to a worker; ``t_submit`` is wall-clock (``time.time()``)."""

    job_id: int
    config: Config
    t_submit: float = field(default_factory=time.time)
    #: Seconds between the worker's report of its previous job and this job being sent to it
    #: (NaN for a worker's first job): how long a free worker waited for the master.
    handout_latency: float = math.nan


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


@dataclass
class Result:
    """A finished (or cancelled) job: the job, its outcome, and the worker that ran it."""

    job: Job
    outcome: Outcome
    worker: int | str = ""
    host: str = ""

    @property
    def status(self) -> str:
        return self.outcome.status

    @property
    def objective(self) -> float | list[float] | None:
        return self.outcome.objective

    @property
    def config(self) -> Config:
        return self.job.config


def _scalar(value: Any) -> Any:
    """A metric value as something a CSV cell can hold."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    try:
        return value.item()  # numpy and framework scalars
    except (AttributeError, ValueError):
        return str(value)


def interpret(returned: Any) -> Outcome:
    """Turn what a run function returned into an outcome (status DONE or FAILED)."""
    metrics: dict[str, Any] = {}
    objective = returned
    if isinstance(returned, dict):
        if "objective" not in returned:
            keys = ", ".join(map(repr, returned)) or "none"
            return Outcome(
                FAILED, error=f"run() returned a dict without 'objective' (keys: {keys})"
            )
        objective = returned["objective"]
        metrics = {str(k): _scalar(v) for k, v in returned.items() if k != "objective"}
    if hasattr(objective, "tolist") and getattr(objective, "ndim", 0) > 0:
        objective = objective.tolist()  # a numpy array of objectives
    if isinstance(objective, list | tuple):
        return _interpret_vector(objective, metrics)
    try:
        value = float(objective)
    except (TypeError, ValueError):
        return Outcome(
            FAILED, metrics=metrics, error=f"run() returned a non-numeric objective {objective!r}"
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
        try:
            value = float(objective)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            return Outcome(
                FAILED,
                metrics=metrics,
                error=f"run() returned objective {i} = {objective!r}, not a finite number",
            )
        values.append(value)
    return Outcome(DONE, objective=values, metrics=metrics)


def evaluate(run: RunFunction, config: Config) -> Outcome:
    """Call ``run(config)`` here and now, timing it; exceptions become FAILED outcomes."""
    t_start = time.time()
    try:
        outcome = interpret(run(dict(config)))
    except Exception as err:
        where = traceback.extract_tb(err.__traceback__)[-1]
        outcome = Outcome(
            FAILED,
            error=f"{type(err).__name__}: {err} (at {where.filename}:{where.lineno})",
        )
    outcome.t_start, outcome.t_end = t_start, time.time()
    return outcome
