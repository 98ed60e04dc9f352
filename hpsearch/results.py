"""results.csv: the append-only log of finished evaluations, and reading it back.

One row per finished evaluation, written (flushed and fsynced) by the search loop before the
optimizer hears of it. Columns: ``job_id``, ``p:<name>`` for every hyperparameter,
``objective``, ``status``, ``worker``, ``host``, ``t_submit``, ``t_start``, ``t_end`` (seconds
since the search started), ``m:<metric>`` for extra metrics, ``error``. A multi-objective run
also fills ``objective_0``, ``objective_1``, ... (one per objective; ``objective`` holds the
first, the primary one). A conditional
hyperparameter that is inactive in a configuration has an empty cell.

Beside it, ``submitted.jsonl`` journals every job handed to a worker, so that a search killed
outright can be resumed with the jobs that were running when it died.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hpsearch.evaluation import FINISHED, Job, Result
from hpsearch.space import Config, Space

RESULTS_FILE = "results.csv"
SUBMITTED_FILE = "submitted.jsonl"
PARAM_PREFIX = "p:"
METRIC_PREFIX = "m:"
OBJECTIVE_PREFIX = "objective_"
RECORD_COLUMNS = [
    "objective",
    "status",
    "worker",
    "host",
    "t_submit",
    "t_start",
    "t_end",
    "handout_latency",
]


class ResultsError(ValueError):
    """An existing results file that cannot be continued."""


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(value)  # shortest exact form: a resumed search sees the same values
    return value


def _drop_partial_last_line(path: str) -> None:
    """Truncate a file to its last complete line (a kill can cut the final write short)."""
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


class ResultsLog:
    """Appends finished evaluations to ``<output>/results.csv`` and journals submissions.

    ``resume=True`` continues an existing file (after dropping a last line cut short);
    otherwise the file must not exist yet. Times in rows are relative to ``t0``, which a
    resumed log places so that new rows continue after the last one already written.
    """

    def __init__(self, output_dir: str, space: Space, resume: bool = False, fsync: bool = True):
        self.output_dir = output_dir
        self.path = os.path.join(output_dir, RESULTS_FILE)
        self.submitted_path = os.path.join(output_dir, SUBMITTED_FILE)
        self.space = space
        self.fsync = fsync
        self.param_columns = [PARAM_PREFIX + n for n in space.names]
        self.metric_columns: list[str] = []
        self.previous = pd.DataFrame()
        os.makedirs(output_dir, exist_ok=True)
        if resume and os.path.exists(self.path):
            self._open_existing()
        elif os.path.exists(self.path):
            raise ResultsError(
                f"{self.path} exists: pass --resume to continue it or choose another --output"
            )
        else:
            self._write_header()
            open(self.submitted_path, "w").close()
        elapsed = float(self.previous["t_end"].max()) if len(self.previous) else 0.0
        self.t0 = time.time() - (elapsed if math.isfinite(elapsed) else 0.0)
        self._submitted = open(self.submitted_path, "a")  # noqa: SIM115 (open for the log's lifetime)

    @property
    def columns(self) -> list[str]:
        return ["job_id", *self.param_columns, *RECORD_COLUMNS, *self.metric_columns, "error"]

    # ---- writing -----------------------------------------------------------------------
    def _write_header(self) -> None:
        with open(self.path, "w", newline="") as f:
            csv.writer(f).writerow(self.columns)

    def _open_existing(self) -> None:
        _drop_partial_last_line(self.path)
        with open(self.path, newline="") as f:
            header = next(csv.reader(f), [])
        params = [c for c in header if c.startswith(PARAM_PREFIX)]
        if params != self.param_columns:
            raise ResultsError(
                f"{self.path} was written for hyperparameters {[c[2:] for c in params]}, "
                f"not this problem's {self.space.names}"
            )
        self.metric_columns = [
            c for c in header if c.startswith(METRIC_PREFIX) or c.startswith(OBJECTIVE_PREFIX)
        ]
        self.previous = load_results(self.path)
        if os.path.exists(self.submitted_path):
            _drop_partial_last_line(self.submitted_path)

    def _row(self, result: Result) -> list[Any]:
        job, out = result.job, result.outcome
        vector = out.objective if isinstance(out.objective, list) else []
        values: dict[str, Any] = {
            "job_id": job.job_id,
            **{PARAM_PREFIX + k: v for k, v in job.config.items()},
            "objective": vector[0] if vector else out.objective,
            **{f"{OBJECTIVE_PREFIX}{i}": v for i, v in enumerate(vector)},
            "status": out.status,
            "worker": result.worker,
            "host": result.host,
            "t_submit": job.t_submit - self.t0,
            "t_start": out.t_start - self.t0,
            "t_end": out.t_end - self.t0,
            "handout_latency": job.handout_latency,
            **{METRIC_PREFIX + k: v for k, v in out.metrics.items()},
            "error": " ".join(out.error.split()),  # one line per row, whatever the message
        }
        return [_cell(values.get(c)) for c in self.columns]

    def write(self, results: Iterable[Result]) -> None:
        """Append rows for ``results``; durable on disk when this returns."""
        results = list(results)
        new_metrics = sorted(
            (
                {METRIC_PREFIX + k for r in results for k in r.outcome.metrics}
                | {
                    f"{OBJECTIVE_PREFIX}{i}"
                    for r in results
                    if isinstance(r.objective, list)
                    for i in range(len(r.objective))
                }
            )
            - set(self.metric_columns)
        )
        if new_metrics:
            self._add_metric_columns(new_metrics)
        buffer = io.StringIO()
        csv.writer(buffer).writerows(self._row(r) for r in results)
        with open(self.path, "a", newline="") as f:
            f.write(buffer.getvalue())
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())

    def _add_metric_columns(self, new: Sequence[str]) -> None:
        """Rewrite the file with a wider header, atomically (rows are never at risk)."""
        old_width = len(self.columns)
        self.metric_columns += new
        tmp = self.path + ".tmp"
        with open(self.path, newline="") as src, open(tmp, "w", newline="") as dst:
            reader, writer = csv.reader(src), csv.writer(dst)
            next(reader, None)
            writer.writerow(self.columns)
            for row in reader:
                # metrics sit before the final "error" column
                writer.writerow(row[: old_width - 1] + [""] * len(new) + row[old_width - 1 :])
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, self.path)

    def journal(self, jobs: Iterable[Job]) -> None:
        """Record jobs handed to workers (read back by :meth:`unfinished_jobs` on resume)."""
        for job in jobs:
            self._submitted.write(json.dumps({"job_id": job.job_id, "config": job.config}) + "\n")
        self._submitted.flush()

    def close(self) -> None:
        self._submitted.close()

    # ---- reading back for resume ---------------------------------------------------------
    def finished(self) -> tuple[list[Config], list[Any]]:
        """Configurations and objectives (float, list of floats or None) of the finished rows."""
        rows = (
            self.previous[self.previous["status"].isin(FINISHED)]
            if len(self.previous)
            else self.previous
        )
        configs = configs_from_frame(rows, self.space)
        objectives: list[Any] = [
            None if pd.isna(v) else float(v) for v in rows.get("objective", [])
        ]
        vector_columns = sorted(
            (c for c in rows.columns if c.startswith(OBJECTIVE_PREFIX)),
            key=lambda c: int(c[len(OBJECTIVE_PREFIX) :]),
        )
        if vector_columns:
            objectives = [
                None if any(pd.isna(v) for v in row) else [float(v) for v in row]
                for row in rows[vector_columns].itertuples(index=False)
            ]
        return configs, objectives

    @property
    def next_job_id(self) -> int:
        ids = [int(self.previous["job_id"].max()) + 1] if len(self.previous) else [0]
        ids += [j.job_id + 1 for j in self.unfinished_jobs()]
        return max(ids)

    def unfinished_jobs(self) -> list[Job]:
        """Jobs submitted by an earlier run that have no finished row: to be run again."""
        if not os.path.exists(self.submitted_path):
            return []
        done = set()
        if len(self.previous):
            done = set(
                self.previous.loc[self.previous["status"].isin(FINISHED), "job_id"].astype(int)
            )
        jobs: dict[int, Job] = {}
        with open(self.submitted_path) as f:
            for line in f:
                entry = json.loads(line)
                if entry["job_id"] not in done:
                    jobs[entry["job_id"]] = Job(
                        entry["job_id"], self.space.validate(entry["config"])
                    )
        return list(jobs.values())


def configs_from_frame(df: pd.DataFrame, space: Space) -> list[Config]:
    """Typed configurations from the ``p:`` columns of a results frame (empty cells -> None)."""
    if not len(df):
        return []
    params = df[[PARAM_PREFIX + n for n in space.names]].astype(object)
    params = params.where(params.notna(), None)
    records: list[dict[str, Any]] = [
        {str(k)[len(PARAM_PREFIX) :]: _python(v) for k, v in row.items()}
        for row in params.to_dict(orient="records")
    ]
    return [space.validate(r) for r in records]


def _python(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def load_results(path: str) -> pd.DataFrame:
    """Read a results.csv (or the directory holding one) into a DataFrame.

    A last line cut short by a kill is ignored, so a file from a search that died can be read.
    """
    if os.path.isdir(path):
        path = os.path.join(path, RESULTS_FILE)
    with open(path, newline="") as f:
        text = f.read()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    df = pd.read_csv(
        io.StringIO(text),
        keep_default_na=False,
        na_values=[""],
        dtype={"error": str, "host": str, "status": str},
    )
    if "error" in df:
        df["error"] = df["error"].fillna("")
    return df
