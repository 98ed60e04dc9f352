"""results.csv and steps.csv: the append-only logs of a search, and reading them back.

results.csv has one row per finished evaluation, written (flushed and fsynced) by the search
loop before the optimizer hears of it. Columns: ``job_id``, ``p:<name>`` for every
hyperparameter, ``objective``, ``status``, ``worker``, ``host``, ``t_submit``, ``t_start``,
``t_end`` (seconds since the search started), ``m:<metric>`` for extra metrics, ``error``. A
multi-objective run also fills ``objective_0``, ``objective_1``, ... (one per objective;
``objective`` holds the first, the primary one). Trials add ``member`` and ``parent`` when a
method uses populations or continues checkpoints, and ``step_start``, ``step_end`` and
``stopped`` when runs report steps. A conditional hyperparameter that is inactive in a
configuration has an empty cell.

steps.csv has one row per report of a running trial: ``job_id``, ``step``, ``objective``,
``t`` (seconds since the search started), ``m:<metric>``, ``error``.

Beside them, ``submitted.jsonl`` journals every job handed to a worker, so that a search killed
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
from hpsearch.trial import Report

RESULTS_FILE = "results.csv"
STEPS_FILE = "steps.csv"
SUBMITTED_FILE = "submitted.jsonl"
#: Longest time a report's row in steps.csv waits for an fsync.
STEPS_FSYNC_SECONDS = 1.0
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
#: Columns of trials that belong to a population or continue a checkpoint.
LINEAGE_COLUMNS = ["member", "parent"]
#: Columns of trials whose runs report steps.
PROGRESS_COLUMNS = ["step_start", "step_end", "stopped", "rung"]
#: Fields of a job beyond its id and configuration, journalled (as planned) when they differ
#: from the default; where its checkpoints are is worked out again when it is handed out.
JOB_FIELDS = ("member", "parent", "step", "max_steps")


_JOB_DEFAULTS = {k: Job.__dataclass_fields__[k].default for k in JOB_FIELDS}


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


class CsvTable:
    """An append-only CSV file whose header widens (atomically) when rows bring new columns.

    The header is ``head + extra + tail``: new columns join ``extra``, before ``tail``.
    ``resume=True`` continues an existing file, whose extra columns are read from its header.
    Rows are flushed to the operating system at once (a killed process loses none); with
    ``fsync`` they reach the disk before :meth:`append` returns, or, with ``fsync_every``
    seconds, at most that long after (and at :meth:`sync`).
    """

    def __init__(
        self,
        path: str,
        head: list[str],
        tail: list[str],
        fsync: bool = True,
        resume: bool = False,
        fsync_every: float = 0.0,
    ) -> None:
        self.path, self.head, self.tail, self.fsync = path, head, tail, fsync
        self.fsync_every = fsync_every
        self._synced_at = time.monotonic()
        self._unsynced = False
        self.extra: list[str] = []
        if resume and os.path.exists(self.path):
            _drop_partial_last_line(self.path)
            with open(self.path, newline="") as f:
                header = next(csv.reader(f), [])
            self.extra = [c for c in header if c not in head and c not in tail]
        else:
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(self.columns)

    @property
    def columns(self) -> list[str]:
        return [*self.head, *self.extra, *self.tail]

    def append(self, rows: Sequence[dict[str, Any]], new_columns: Iterable[str] = ()) -> None:
        """Append ``rows`` (column -> value); on disk when this returns (fsynced too, unless
        ``fsync_every`` defers that).

        Keys not yet in the header become columns, ``new_columns`` first, in that order.
        """
        if not rows:
            return
        known = set(self.columns)
        keys = {k for row in rows for k in row}
        new = [c for c in new_columns if c in keys and c not in known]
        new += sorted(keys - known - set(new))
        if new:
            self._widen(new)
        buffer = io.StringIO()
        columns = self.columns
        csv.writer(buffer).writerows([_cell(row.get(c)) for c in columns] for row in rows)
        with open(self.path, "a", newline="") as f:
            f.write(buffer.getvalue())
            f.flush()
            self._unsynced = True
            if self.fsync and time.monotonic() - self._synced_at >= self.fsync_every:
                self._fsync(f.fileno())

    def _fsync(self, fd: int) -> None:
        os.fsync(fd)
        self._synced_at, self._unsynced = time.monotonic(), False

    def sync(self) -> None:
        """Make every appended row durable on disk."""
        if self.fsync and self._unsynced:
            with open(self.path, "a") as f:
                self._fsync(f.fileno())

    def _widen(self, new: Sequence[str]) -> None:
        """Rewrite the file with a wider header, atomically (rows are never at risk)."""
        old_width = len(self.columns)
        n_tail = len(self.tail)
        self.extra += new
        tmp = self.path + ".tmp"
        with open(self.path, newline="") as src, open(tmp, "w", newline="") as dst:
            reader, writer = csv.reader(src), csv.writer(dst)
            next(reader, None)
            writer.writerow(self.columns)
            cut = old_width - n_tail
            for row in reader:
                writer.writerow(row[:cut] + [""] * len(new) + row[cut:])
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, self.path)


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
        self.previous = pd.DataFrame()
        os.makedirs(output_dir, exist_ok=True)
        resuming = resume and os.path.exists(self.path)
        if os.path.exists(self.path) and not resuming:
            raise ResultsError(
                f"{self.path} exists: pass --resume to continue it or choose another --output"
            )
        if resuming:
            self._check_header()
        self.table = CsvTable(
            self.path, ["job_id", *self.param_columns, *RECORD_COLUMNS], ["error"], fsync, resuming
        )
        if resuming:
            self.previous = load_results(self.path)
            if os.path.exists(self.submitted_path):
                _drop_partial_last_line(self.submitted_path)
        else:
            open(self.submitted_path, "w").close()
        self.steps = StepsLog(output_dir, fsync=fsync, resume=resuming)
        elapsed = float(self.previous["t_end"].max()) if len(self.previous) else 0.0
        self.t0 = time.time() - (elapsed if math.isfinite(elapsed) else 0.0)
        self._submitted = open(self.submitted_path, "a")  # noqa: SIM115 (open for the log's lifetime)

    @property
    def columns(self) -> list[str]:
        return self.table.columns

    def _check_header(self) -> None:
        with open(self.path, newline="") as f:
            header = next(csv.reader(f), [])
        params = [c for c in header if c.startswith(PARAM_PREFIX)]
        if params != self.param_columns:
            raise ResultsError(
                f"{self.path} was written for hyperparameters {[c[2:] for c in params]}, "
                f"not this problem's {self.space.names}"
            )

    def _row(self, result: Result) -> dict[str, Any]:
        job, out = result.job, result.outcome
        vector = out.objective if isinstance(out.objective, list) else []
        row: dict[str, Any] = {
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
        if job.member is not None or job.parent is not None:
            row.update(member=job.member, parent=job.parent)
        if result.step_end is not None or job.step or out.stopped:
            row.update(step_start=job.step, step_end=result.step_end, stopped=out.stopped)
        if result.rung is not None:
            row["rung"] = result.rung
        return row

    def write(self, results: Iterable[Result]) -> None:
        """Append rows for ``results``; durable on disk when this returns."""
        self.table.append(
            [self._row(r) for r in results], new_columns=[*LINEAGE_COLUMNS, *PROGRESS_COLUMNS]
        )

    def journal(self, jobs: Iterable[Job]) -> None:
        """Record jobs handed to workers (read back by :meth:`unfinished_jobs` on resume)."""
        for job in jobs:
            entry = {"job_id": job.job_id, "config": job.config}
            entry.update(
                {k: getattr(job, k) for k in JOB_FIELDS if getattr(job, k) != _JOB_DEFAULTS[k]}
            )
            self._submitted.write(json.dumps(entry) + "\n")
        self._submitted.flush()

    def close(self) -> None:
        self._submitted.close()
        self.steps.close()

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
                    fields = {k: entry[k] for k in JOB_FIELDS if k in entry}
                    jobs[entry["job_id"]] = Job(
                        entry["job_id"], self.space.validate(entry["config"]), **fields
                    )
        return list(jobs.values())


class StepsLog:
    """Appends trials' reports to ``<output>/steps.csv`` (the master is its only writer).

    Reports can come hundreds of times a second, so rows reach the disk (fsync) at most
    ``STEPS_FSYNC_SECONDS`` after they are written, and at :meth:`close`; a killed search
    loses none, a node that crashes may lose that last second of reports.
    """

    def __init__(self, output_dir: str, fsync: bool = True, resume: bool = False) -> None:
        self.path = os.path.join(output_dir, STEPS_FILE)
        self.fsync, self.resume = fsync, resume
        self.table: CsvTable | None = None  # the file is created by the first report

    def write(self, reports: Sequence[Report], t0: float) -> None:
        """Append one row per report, times relative to ``t0``; durable when this returns."""
        if not reports:
            return
        if self.table is None:
            head = ["job_id", "step", "objective", "t"]
            self.table = CsvTable(
                self.path, head, ["error"], self.fsync, self.resume, STEPS_FSYNC_SECONDS
            )
        self.table.append(
            [
                {
                    "job_id": r.job_id,
                    "step": r.step,
                    "objective": r.objective,
                    "t": r.time - t0,
                    **{METRIC_PREFIX + k: v for k, v in r.metrics.items()},
                    "error": r.error,
                }
                for r in reports
            ]
        )

    def close(self) -> None:
        if self.table is not None:
            self.table.sync()


def stopped_mask(df: pd.DataFrame) -> pd.Series:
    """True for the rows of a results frame whose trial was stopped early (False everywhere
    without a ``stopped`` column; an empty cell is False)."""
    if "stopped" not in df.columns:
        return pd.Series(False, index=df.index)
    return df["stopped"].astype(str).str.strip().str.lower().isin({"true", "1", "1.0"})


def valid_reports(steps: pd.DataFrame) -> pd.DataFrame:
    """The reports of a steps frame (:func:`load_steps`) without an error and with a finite
    objective."""
    if not len(steps):
        return steps
    ok = np.isfinite(pd.to_numeric(steps["objective"], errors="coerce").astype(float))
    if "error" in steps.columns:
        error = steps["error"]
        ok &= error.isna() | (error.astype(str).str.strip() == "")
    return steps.loc[ok]


def load_steps(path: str) -> pd.DataFrame:
    """Read a steps.csv (or the directory holding one) into a DataFrame (empty when absent)."""
    if os.path.isdir(path):
        path = os.path.join(path, STEPS_FILE)
    if not os.path.exists(path):
        return pd.DataFrame(columns=["job_id", "step", "objective", "t", "error"])
    return _read_csv(path)


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
    return _read_csv(path, dtype={"error": str, "host": str, "status": str})


def _read_csv(path: str, dtype: dict[str, Any] | None = None) -> pd.DataFrame:
    """A CSV log as a DataFrame: empty cells are NaN, a last line cut short is ignored."""
    with open(path, newline="") as f:
        text = f.read()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    df = pd.read_csv(
        io.StringIO(text),
        keep_default_na=False,
        na_values=[""],
        dtype={"error": str, **(dtype or {})},
    )
    if "error" in df:
        df["error"] = df["error"].fillna("")
    return df
