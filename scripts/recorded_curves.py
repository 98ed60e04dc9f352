"""Learning curves an earlier search recorded, replayed by ``hpsearch simulate --curves``.

``nearest(config, step)`` is the value that the recorded trial nearest to ``config`` (in the
space's unit encoding, where AMBS's surrogate also works) reported at ``step``. The recording
is the search directory named by ``HPSEARCH_RECORDED_CURVES``: a search of the same problem
whose trials all trained to the last step, such as a random search with ``--max-steps`` and
no stopper (its results.csv and steps.csv). It is read once per process.

    HPSEARCH_RECORDED_CURVES=results/pool/hgcal_pid PYTHONPATH=scripts \\
        hpsearch simulate rs --problem problems.hgcal_pid --curves recorded_curves:nearest ...
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from hpsearch.problem import load_problem
from hpsearch.results import (
    configs_from_frame,
    load_results,
    load_steps,
    stopped_mask,
    valid_reports,
)
from hpsearch.search_record import read_search
from hpsearch.space import Config, Space


@dataclass
class Recording:
    """The recorded trials: their encoded configurations and a curve per trial."""

    space: Space
    encoded: np.ndarray  # one row per trial
    curves: list[dict[float, float]]  # step -> objective, per trial


@functools.cache
def recording(directory: str) -> Recording:
    """The trials of the search in ``directory`` that trained to their end and reported."""
    record = read_search(directory)
    if record is None:
        raise ValueError(f"{directory}: no search.json, not a search directory")
    space = load_problem(record["problem"]["source"]).space
    df = load_results(directory)
    done = df[(df["status"] == "DONE") & ~stopped_mask(df)]
    steps = valid_reports(load_steps(directory))
    by_job = {
        int(job_id): dict(
            zip(rows["step"].astype(float), rows["objective"].astype(float), strict=True)
        )
        for job_id, rows in steps.groupby("job_id")
    }
    kept = done[done["job_id"].astype(int).isin(by_job)]
    if not len(kept):
        raise ValueError(f"{directory}: no trial reported a step")
    configs = configs_from_frame(kept, space)
    return Recording(space, space.encode(configs), [by_job[int(j)] for j in kept["job_id"]])


def nearest(config: Config, step: int) -> float:
    """The value at ``step`` of the recorded trial nearest to ``config`` (the last value it
    reported when it stopped before ``step``)."""
    rec = recording(os.environ["HPSEARCH_RECORDED_CURVES"])
    distance = np.linalg.norm(rec.encoded - rec.space.encode([config]), axis=1)
    curve = rec.curves[int(np.argmin(distance))]
    reached = [s for s in curve if s <= step]
    return curve[max(reached)] if reached else curve[min(curve)]
