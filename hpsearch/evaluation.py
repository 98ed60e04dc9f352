"""Jobs, results, and running a problem's ``run`` function on one job.

A job is one run of a trial: a configuration with its identity (the job id), its place in a
population (``member``), the job whose checkpoint it continues (``parent``) and its step range.
Errors travel as values: whatever a run function does (raise, return NaN, a wrong type), the
outcome is a :class:`Result` with a status and a message, never an exception across processes.
"""

from __future__ import annotations

import math
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
        metrics = {str(k): csv_value(v) for k, v in returned.items() if k != "objective"}
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


def evaluate(
    run: RunFunction,
    job: Job,
    channel: ReportChannel | None = None,
    clock: Callable[[], float] = time.time,
) -> Outcome:
    """Run ``job`` here and now, timing it; exceptions become FAILED outcomes.

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
    except Exception as err:
        where = traceback.extract_tb(err.__traceback__)[-1]
        outcome = Outcome(
            FAILED,
            error=f"{type(err).__name__}: {err} (at {where.filename}:{where.lineno})",
        )
    outcome.t_start, outcome.t_end = t_start, clock()
    outcome.stopped = (
        trial is not None and trial.stopped and outcome.status == DONE and not trial.at_end
    )
    if trial is not None:
        outcome.checkpoint = fingerprint(trial.checkpoint_dir)
    return outcome
