"""``search.json`` and ``best.json``: what a results directory holds besides results.csv.

``search.json`` records what a search is: the method and its parameters, the problem, its
direction and space, the seed, the hpsearch version, when it started and when it was resumed.
A resumed search must be the same search (same method, direction and space); its other
parameters may change, and the record keeps the latest ones. ``best.json`` holds the best
configuration: ``{"objective", "config", "job_id"}``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpsearch import __version__
from hpsearch.checkpoints import write_atomically
from hpsearch.evaluation import DONE
from hpsearch.problem import DIRECTIONS, Problem
from hpsearch.results import configs_from_frame
from hpsearch.space import Categorical, Config, Integer, Real, Space

SEARCH_FILE = "search.json"
BEST_FILE = "best.json"


class SearchMismatch(ValueError):
    """A results directory recorded for another search than the one asked to continue it."""


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)


def _plain(record: Any) -> Any:
    """``record`` as it reads back from JSON (tuples become lists, numpy scalars numbers)."""
    return json.loads(json.dumps(record, default=_json_value))


def _now() -> str:
    """The current time in ISO 8601, UTC, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


def space_record(space: Space) -> list[dict[str, Any]]:
    """Each hyperparameter as ``{"name", "kind", ...}``: ``low``/``high``/``log`` for a Real or
    Integer, ``choices`` for a Categorical or Ordinal, and ``conditional`` (whether it has a
    condition, a function that cannot be recorded itself)."""
    dimensions = []
    for dim in space:
        entry: dict[str, Any] = {"name": dim.name, "kind": dim.kind}
        if isinstance(dim, Real | Integer):
            entry.update(low=dim.low, high=dim.high, log=dim.log)
        elif isinstance(dim, Categorical):
            entry["choices"] = list(dim.choices)
        entry["conditional"] = dim.condition is not None
        dimensions.append(entry)
    return _plain(dimensions)


def search_record(
    method: str, parameters: Mapping[str, Any], problem: Problem, seed: int | None
) -> dict[str, Any]:
    """The ``search.json`` record of a search starting now (``parameters``: the method's own)."""
    return _plain(
        {
            "method": method,
            "parameters": dict(parameters),
            "problem": {"name": problem.name, "source": problem.source},
            "direction": problem.direction,
            "space": space_record(problem.space),
            "seed": seed,
            "hpsearch_version": __version__,
            "started_at": _now(),
            "resumed_at": [],
        }
    )


def search_path(output_dir: str) -> str:
    """Where the ``search.json`` of a results directory is."""
    return os.path.join(output_dir, SEARCH_FILE)


def read_search(output_dir: str) -> dict[str, Any] | None:
    """The ``search.json`` record in ``output_dir``; None when there is none (a directory from
    before search.json existed). ValueError naming the file when it is unreadable."""
    path = search_path(output_dir)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} cannot be read: {err}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return record


def write_search(output_dir: str, record: Mapping[str, Any]) -> str:
    """Write ``record`` to ``output_dir/search.json`` (atomically); return the path."""
    text = json.dumps(record, indent=2) + "\n"
    write_atomically(output_dir, SEARCH_FILE, lambda tmp: Path(tmp).write_text(text))
    return search_path(output_dir)


def _space_difference(recorded: list[dict[str, Any]], current: list[dict[str, Any]]) -> str | None:
    old = {d["name"]: d for d in recorded}
    new = {d["name"]: d for d in current}
    for name in old:
        if name not in new:
            return f"has hyperparameter {name!r}, which the problem no longer declares"
    for name in new:
        if name not in old:
            return f"lacks hyperparameter {name!r}, which the problem now declares"
    for name, was in old.items():
        now = new[name]
        for key in ["kind", *(k for k in was if k != "kind"), *(k for k in now if k not in was)]:
            if was.get(key) != now.get(key):
                return (
                    f"has hyperparameter {name!r} with {key} {was.get(key)!r}, not {now.get(key)!r}"
                )
    if list(old) != list(new):
        return f"has the hyperparameters in the order {list(old)}, not {list(new)}"
    return None


def difference(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> str | None:
    """What makes ``current`` another search than ``recorded`` (its method, direction or
    space), as the end of a sentence about the recorded one; None when it is the same."""
    if recorded.get("method") != current["method"]:
        return f"was written by method {recorded.get('method')!r}, not {current['method']!r}"
    if recorded.get("direction") != current["direction"]:
        return (
            f"was written for direction {recorded.get('direction')!r}, not {current['direction']!r}"
        )
    space = recorded.get("space")
    if not isinstance(space, list) or not all(isinstance(d, dict) and "name" in d for d in space):
        return "holds no list of hyperparameters under 'space'"
    return _space_difference(space, current["space"])


def resume_record(output_dir: str, current: Mapping[str, Any]) -> dict[str, Any]:
    """The record to write when ``current`` resumes the search in ``output_dir``.

    It is ``current`` (its parameters, seed and version replace the recorded ones) with the
    recorded ``started_at`` and the start of ``current`` appended to ``resumed_at``; a
    directory without search.json gets ``started_at`` null. Raises :class:`SearchMismatch`
    naming the difference when ``current`` is another search (method, direction or space),
    ValueError when search.json cannot be read.
    """
    recorded = read_search(output_dir)
    resumed = dict(current)
    if recorded is None:
        resumed["started_at"] = None
        resumed["resumed_at"] = [current["started_at"]]
        return resumed
    mismatch = difference(recorded, current)
    if mismatch is not None:
        raise SearchMismatch(f"{search_path(output_dir)} {mismatch}")
    earlier = recorded.get("resumed_at")
    resumed["started_at"] = recorded.get("started_at")
    resumed["resumed_at"] = [*(earlier if isinstance(earlier, list) else []), current["started_at"]]
    return resumed


def recorded_direction(run_dir: str) -> str | None:
    """The direction in ``run_dir/search.json``; None without one (or without a direction)."""
    record = read_search(run_dir)
    direction = None if record is None else record.get("direction")
    return direction if direction in DIRECTIONS else None


def best_job_id(df: pd.DataFrame, config: Config, objective: float, space: Space) -> int | None:
    """The job id of the DONE row of a results frame holding ``config`` with ``objective``;
    None when no row does."""
    if not len(df):
        return None
    rows = df.loc[(df["status"] == DONE) & (df["objective"] == objective)]
    try:
        configs = configs_from_frame(rows, space)
    except ValueError:  # a row that no longer fits the space: the id is unknown, not an error
        return None
    key = space.key(config)
    for job_id, row_config in zip(rows["job_id"], configs, strict=True):
        if space.key(row_config) == key:
            return int(job_id)
    return None


def write_best(
    output_dir: str, objective: float, config: Mapping[str, Any], job_id: int | None = None
) -> str:
    """Write ``output_dir/best.json``: ``{"objective", "config", "job_id"}``; return the path.

    Inactive hyperparameters (value None) are left out of the config; ``job_id`` is null when
    it is not known.
    """
    best = {
        "objective": objective,
        "config": {k: v for k, v in config.items() if v is not None},
        "job_id": job_id,
    }
    path = os.path.join(output_dir, BEST_FILE)
    with open(path, "w") as f:
        json.dump(_plain(best), f, indent=2)
        f.write("\n")
    return path
