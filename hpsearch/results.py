"""results.csv and steps.csv: the append-only logs of a search, and reading them back.

results.csv has one row per finished evaluation, written (flushed and fsynced) by the search
loop before the optimizer hears of it. Columns: ``job_id``, ``p:<name>`` for every
hyperparameter, ``objective``, ``status``, ``worker``, ``host``, ``t_submit``, ``t_start``,
``t_end`` (seconds since the search started), ``m:<metric>`` for extra metrics, ``error``. A
multi-objective run also fills ``objective_0``, ``objective_1``, ... (one per objective;
``objective`` holds the first, the primary one). Trials add ``member`` and ``parent`` when a
method uses populations or continues checkpoints, and ``step_start``, ``step_end`` and
``stopped`` when runs report steps. A conditional hyperparameter that is inactive in a
configuration has an empty cell. A categorical hyperparameter's cell holds its choice as text,
or, where the texts of two choices would be the same (``1`` and ``"1"``) or one would be empty,
each choice's Python ``repr``; reading with the space gives every value its declared type.

steps.csv has one row per report of a running trial: ``job_id``, ``step``, ``objective``,
``t`` (seconds since the search started), ``m:<metric>``, ``error``. A line break in a
metric's name becomes a space in its column's name.

Beside them, ``submitted.jsonl`` (:mod:`hpsearch.journal`) journals every job handed to a
worker, so that a search killed outright can be resumed with the jobs that were running when it
died.

A write cut short by a kill leaves a last record without its end (perhaps inside a quoted cell
that spans lines); readers ignore it and a resumed log drops it. A job id that appears in
results.csv, steps.csv, the journal or the checkpoints is never handed out again.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hpsearch.checkpoints import CHECKPOINTS_DIR
from hpsearch.evaluation import DONE, FINISHED, Job, Result
from hpsearch.journal import SUBMITTED_FILE, Journal
from hpsearch.space import Categorical, Config, Dimension, Integer, Space
from hpsearch.trial import Report

RESULTS_FILE = "results.csv"
STEPS_FILE = "steps.csv"
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

log = logging.getLogger(__name__)


class ResultsError(ValueError):
    """An existing results file that cannot be continued."""


class ResultsExist(ResultsError):
    """A results file where a new search was to start (:attr:`path` names it)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} exists and is not to be resumed")
        self.path = path


def _cell(value: Any) -> Any:
    value = _python(value)  # a plain number, not numpy's repr
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(float(value))  # shortest exact form: a resumed search sees the same values
    return value


def _complete_length(data: bytes) -> int:
    """The length of the complete CSV records at the start of ``data``: each ends with a line
    end outside quotes (a record cut short may end inside a quoted cell spanning lines)."""
    end = position = quotes = 0
    for line in data.split(b"\n")[:-1]:
        position += len(line) + 1
        quotes += line.count(b'"')
        if quotes % 2 == 0:
            end = position
    return end


def _drop_cut_record(path: str) -> None:
    """Truncate a CSV file to its complete records (a kill can cut the final write short)."""
    with open(path, "rb+") as f:
        data = f.read()
        f.truncate(_complete_length(data))


def _metric_column(name: str) -> str:
    """The column of a metric: ``m:`` and its name on one line (a header of one line reads
    back with any CSV reader)."""
    return METRIC_PREFIX + " ".join(name.splitlines())


def _choice_cells(dim: Categorical) -> list[str]:
    """The cell of each choice: its text, or its repr where two texts would be the same or
    one would be empty (an empty cell marks an inactive hyperparameter)."""
    texts = [str(_cell(c)) for c in dim.choices]
    if "" in texts or len(set(texts)) < len(texts):
        return [repr(c) for c in dim.choices]
    return texts


def _param_values(dim: Dimension, cells: Iterable[Any], job_ids: Iterable[Any]) -> list[Any]:
    """The values of ``dim`` that its ``p:`` cells (text, NaN when empty) hold, None for an
    empty cell; ValueError naming the job of a cell that holds none."""
    choices: dict[str, Any] = {}
    if isinstance(dim, Categorical):
        choices = dict(zip(_choice_cells(dim), dim.choices, strict=True))
        for choice in dim.choices:  # files written before texts could collide
            choices.setdefault(str(_cell(choice)), choice)
    values: list[Any] = []
    for text, job_id in zip(cells, job_ids, strict=True):
        if not isinstance(text, str):
            values.append(None)
            continue
        try:
            if isinstance(dim, Categorical):
                values.append(choices[text])
            elif isinstance(dim, Integer):
                values.append(int(text) if text.strip().lstrip("+-").isdigit() else float(text))
            else:
                values.append(float(text))
        except (KeyError, ValueError):
            raise ValueError(
                f"job {job_id}: {text!r} is not a value of hyperparameter {dim.name!r}"
            ) from None
    return values


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
        header: list[str] = []
        if resume and os.path.exists(self.path):
            header = _header(self.path)  # ResultsError if there are records but no header
            _drop_cut_record(self.path)
        if header:
            self.extra = [c for c in header if c not in head and c not in tail]
        else:  # a new file, or one a kill left without a complete record
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

    ``resume=True`` continues an existing file (after dropping a last record cut short) and
    its journal; a file without rows (or without any byte) is continued as a search that
    finished nothing. Otherwise the file must not exist yet (:class:`ResultsExist`).
    Everything is read and checked before anything is written. Times in rows are relative to
    ``t0``, which a resumed log places so that new rows continue after the last one already
    written.
    """

    def __init__(self, output_dir: str, space: Space, resume: bool = False, fsync: bool = True):
        self.output_dir = output_dir
        self.path = os.path.join(output_dir, RESULTS_FILE)
        self.submitted_path = os.path.join(output_dir, SUBMITTED_FILE)
        self.space = space
        self.fsync = fsync
        self.param_columns = [PARAM_PREFIX + n for n in space.names]
        self._categoricals = {d.name: d for d in space if isinstance(d, Categorical)}
        self._choice_cells = {name: _choice_cells(d) for name, d in self._categoricals.items()}
        self.previous = pd.DataFrame()
        os.makedirs(output_dir, exist_ok=True)
        exists = os.path.exists(self.path)
        if exists and not resume:
            raise ResultsExist(self.path)
        head = ["job_id", *self.param_columns, *RECORD_COLUMNS]
        header = _header(self.path) if exists else []
        if header:
            self._check_header(header, head, ["error"])
            self.previous = load_results(self.path, space)
        self._finished = self._read_finished()
        self.journal_file = Journal(self.submitted_path, space, resume, fsync)
        if self.journal_file.missing and exists:
            log.warning(
                "%s is missing: jobs that were running when the search stopped are not known "
                "and not run again (their ids are not reused where results.csv, steps.csv or "
                "the checkpoints name them)",
                self.submitted_path,
            )
        #: The reports of the run being resumed (steps.csv; empty for a new search).
        self.previous_steps = load_steps(output_dir) if resume else load_steps("")
        self._used_ids = self._ids_in_use() if resume else set()
        # all read and checked: from here on the directory is written
        self.table = CsvTable(self.path, head, ["error"], fsync, resume)
        if not header:
            self.previous = pd.DataFrame(columns=self.table.columns)
        self.journal_file.open()
        self.steps = StepsLog(output_dir, fsync=fsync, resume=resume)
        elapsed = float(self.previous["t_end"].max()) if len(self.previous) else 0.0
        self.t0 = time.time() - (elapsed if math.isfinite(elapsed) else 0.0)

    @property
    def columns(self) -> list[str]:
        return self.table.columns

    def _check_header(self, header: list[str], head: list[str], tail: list[str]) -> None:
        """The header must hold this space's ``p:`` columns and every column of a results
        file, in the order rows are written (new rows would land in the wrong columns)."""
        params = [c for c in header if c.startswith(PARAM_PREFIX)]
        if params != self.param_columns:
            raise ResultsError(
                f"{self.path} was written for hyperparameters {[c[2:] for c in params]}, "
                f"not this problem's {self.space.names}"
            )
        missing = [c for c in [*head, *tail] if c not in header]
        if missing:
            raise ResultsError(f"{self.path} has no column {', '.join(map(repr, missing))}")
        if header[: len(head)] != head or header[len(header) - len(tail) :] != tail:
            raise ResultsError(
                f"{self.path}: its header does not start with {', '.join(head)} and end with "
                f"{', '.join(tail)}"
            )

    def _ids_in_use(self) -> set[int]:
        """Every job id the directory names: rows, journal, reports and checkpoints."""
        ids = set(self.journal_file.ids)
        if len(self.previous):
            ids.update(self.previous["job_id"].astype(int))
        steps = self.previous_steps
        ids.update(pd.to_numeric(steps["job_id"], errors="coerce").dropna().astype(int))
        checkpoints = os.path.join(self.output_dir, CHECKPOINTS_DIR)
        if os.path.isdir(checkpoints):
            ids.update(int(name) for name in os.listdir(checkpoints) if name.isdigit())
        return ids

    def _param_cell(self, name: str, value: Any) -> Any:
        cells = self._choice_cells.get(name)
        if cells is None or value is None:
            return value
        return cells[self._categoricals[name].index(value)]

    def _row(self, result: Result) -> dict[str, Any]:
        job, out = result.job, result.outcome
        vector = out.objective if isinstance(out.objective, list) else []
        row: dict[str, Any] = {
            "job_id": job.job_id,
            **{PARAM_PREFIX + k: self._param_cell(k, v) for k, v in job.config.items()},
            "objective": vector[0] if vector else out.objective,
            **{f"{OBJECTIVE_PREFIX}{i}": v for i, v in enumerate(vector)},
            "status": out.status,
            "worker": result.worker,
            "host": result.host,
            "t_submit": job.t_submit - self.t0,
            "t_start": out.t_start - self.t0,
            "t_end": out.t_end - self.t0,
            "handout_latency": job.handout_latency,
            **{_metric_column(k): v for k, v in out.metrics.items()},
            "error": _one_line(out.error),  # one line per row, whatever the message
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
        self.journal_file.write(jobs)

    def close(self) -> None:
        self.journal_file.close()
        self.steps.close()

    # ---- reading back for resume ---------------------------------------------------------
    def finished(self) -> tuple[list[Config], list[Any]]:
        """Configurations and objectives of the finished rows: a DONE row's objective is a
        float, or the list of floats it wrote (however many); other rows' None."""
        configs, objectives = self._finished
        return list(configs), list(objectives)

    def _read_finished(self) -> tuple[list[Config], list[Any]]:
        if not len(self.previous):
            return [], []
        rows = self.previous[self.previous["status"].isin(FINISHED)]
        configs = configs_from_frame(rows, self.space)
        vector_columns = sorted(
            (c for c in rows.columns if c.startswith(OBJECTIVE_PREFIX)),
            key=lambda c: int(c[len(OBJECTIVE_PREFIX) :]),
        )
        vectors = np.column_stack(
            [self._numbers(rows, c) for c in vector_columns] or [np.empty((len(rows), 0))]
        )
        objectives: list[Any] = []
        for done, vector, value in zip(
            (rows["status"] == DONE).to_numpy(),
            vectors,
            self._numbers(rows, "objective"),
            strict=True,
        ):
            vector = vector[~np.isnan(vector)]
            if not done:
                objectives.append(None)
            elif len(vector):
                objectives.append([float(v) for v in vector])
            else:
                objectives.append(float(value))
        return configs, objectives

    def _numbers(self, rows: pd.DataFrame, column: str) -> np.ndarray:
        """A column of ``rows`` as floats; ResultsError naming the job of a cell that holds
        text."""
        try:
            return pd.to_numeric(rows[column]).to_numpy(float)
        except (ValueError, TypeError):
            for job_id, text in zip(rows["job_id"], rows[column], strict=True):
                try:
                    float(text)
                except (ValueError, TypeError):
                    raise ResultsError(
                        f"{self.path}: job {job_id}: {column} {text!r} is not a number"
                    ) from None
            raise

    @property
    def next_job_id(self) -> int:
        """The lowest job id above every id the directory names (0 for a new search)."""
        return max(self._used_ids, default=-1) + 1

    def unfinished_jobs(self) -> list[Job]:
        """Jobs submitted by an earlier run that have no finished row: to be run again."""
        done = set()
        if len(self.previous):
            done = set(
                self.previous.loc[self.previous["status"].isin(FINISHED), "job_id"].astype(int)
            )
        jobs = {job.job_id: job for job in self.journal_file.jobs if job.job_id not in done}
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
                    **{_metric_column(k): v for k, v in r.metrics.items()},
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
    df = _read_csv(path) if os.path.exists(path) else pd.DataFrame()
    if not len(df.columns):
        return pd.DataFrame(columns=["job_id", "step", "objective", "t", "error"])
    return df


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


def load_results(path: str, space: Space | None = None) -> pd.DataFrame:
    """Read a results.csv (or the directory holding one) into a DataFrame.

    A last record cut short by a kill is ignored, so a file from a search that died can be
    read. With ``space``, each ``p:`` column holds the values of its hyperparameter, of the
    type it declares (None when inactive), not what pandas would guess from the text;
    ValueError naming the file and the job when a cell holds no value of it.
    """
    if os.path.isdir(path):
        path = os.path.join(path, RESULTS_FILE)
    params = [] if space is None else [PARAM_PREFIX + n for n in space.names]
    df = _read_csv(
        path, dtype={"error": str, "host": str, "status": str, **dict.fromkeys(params, str)}
    )
    if space is not None and len(df.columns):
        if "job_id" not in df.columns:
            raise ResultsError(f"{path} has no column 'job_id'")
        df["job_id"] = _job_ids(df["job_id"], path)
        for dim in space:
            column = PARAM_PREFIX + dim.name
            if column not in df.columns:
                raise ResultsError(f"{path} has no column {column!r}")
            try:
                values = _param_values(dim, df[column], df["job_id"])
            except ValueError as err:
                raise ResultsError(f"{path}: {err}") from None
            df[column] = pd.Series(values, index=df.index, dtype=object)
    return df


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _complete_text(path: str) -> str:
    """The complete records of a CSV log as text (a last record cut short left out);
    ResultsError naming the file when they are not UTF-8."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data[: _complete_length(data)].decode()
    except UnicodeDecodeError as err:
        raise ResultsError(f"{path}: byte {err.start} is not UTF-8 text") from None


def _job_ids(cells: pd.Series, path: str) -> pd.Series:
    """The job ids of a results column as integers; ResultsError naming the file and the row
    of a cell that holds none."""
    ids = pd.to_numeric(cells, errors="coerce")
    bad = ~(ids >= 0) | (ids % 1 != 0)
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        text = cells.iloc[row]
        what = "an empty job_id" if pd.isna(text) else f"job_id {_python(text)!r}"
        raise ResultsError(f"{path}: row {row + 1} has {what}, not a non-negative integer")
    return ids.astype(np.int64)


def _header(path: str) -> list[str]:
    """The header of a CSV log, its first record (which may span lines): [] when a kill left
    no complete record; ResultsError naming the file when that record is empty."""
    text = _complete_text(path)
    if not text:
        return []
    header = next(csv.reader(io.StringIO(text, newline="")), [])
    if not any(header):
        raise ResultsError(f"{path}: its first line is empty, not a header")
    return header


def _read_csv(path: str, dtype: dict[str, Any] | None = None) -> pd.DataFrame:
    """A CSV log as a DataFrame: empty cells are NaN, a last record cut short is ignored (no
    column without a complete header). ResultsError naming the file when it is no CSV log."""
    text = _complete_text(path)
    if not text:
        return pd.DataFrame()
    try:
        df = pd.read_csv(
            io.StringIO(text, newline=""),
            keep_default_na=False,
            na_values=[""],
            dtype={"error": str, **(dtype or {})},
        )
    except ValueError as err:  # pandas' ParserError and EmptyDataError among them
        raise ResultsError(f"{path}: {_one_line(err)}") from None
    if "error" in df:
        df["error"] = df["error"].fillna("")
    return df
