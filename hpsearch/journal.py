"""``submitted.jsonl``: the journal of every job handed to a worker, one JSON object a line.

A line is ``{"job_id", "config"}`` and the job's ``member``, ``parent``, ``step`` and
``max_steps`` where they differ from their defaults (where its checkpoints are is worked out
again when it is handed out). Lines are flushed before the jobs go out, and fsynced (once a
hand-out) when the rows of results.csv are, so a search killed outright, or on a node that
is lost, can be resumed with the jobs that were running when it died.

Reading it back checks every line: one that is not a job of the search's space is an error
naming its line number. A last line cut short by a kill is dropped with a warning; its job
was never handed out, and its id, where the cut left it whole, is never handed out again
either.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from hpsearch.evaluation import Job
from hpsearch.space import Space

SUBMITTED_FILE = "submitted.jsonl"
#: Fields of a job beyond its id and configuration that the journal holds.
JOB_FIELDS = ("member", "parent", "step", "max_steps")
#: Fields that may be null (the others are non-negative integers).
NULLABLE_FIELDS = ("member", "parent", "max_steps")
#: The id of a line cut short, where its number is whole (followed by a comma or brace).
CUT_JOB_ID = re.compile(rb'"job_id"\s*:\s*(\d+)\s*[,}]')

_JOB_DEFAULTS = {k: Job.__dataclass_fields__[k].default for k in JOB_FIELDS}

log = logging.getLogger(__name__)


class JournalError(ValueError):
    """A journal line that is not a job of the search."""


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r} cannot be journalled")


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class Journal:
    """The journal at ``path``. With ``resume`` an existing one is read (and checked) at once:
    :attr:`jobs` in the order they were handed out, :attr:`ids` every job id it names.
    Nothing is written before :meth:`open`; with ``fsync`` each :meth:`write` reaches the
    disk before it returns."""

    def __init__(self, path: str, space: Space, resume: bool, fsync: bool = True) -> None:
        self.path, self.space, self.resume, self.fsync = path, space, resume, fsync
        self.jobs: list[Job] = []
        self.ids: set[int] = set()
        self.missing = resume and not os.path.exists(path)
        self._complete = 0  # bytes of complete lines
        self._file: Any = None
        if resume and not self.missing:
            self._read()

    def _read(self) -> None:
        with open(self.path, "rb") as f:
            data = f.read()
        *lines, cut = data.split(b"\n")
        self._complete = len(data) - len(cut)
        for number, line in enumerate(lines, 1):
            job = self._job(line, f"{self.path} line {number}")
            self.jobs.append(job)
            self.ids.add(job.job_id)
        if cut:
            found = CUT_JOB_ID.search(cut)
            what = "a job that was never handed out"
            if found:
                self.ids.add(int(found.group(1)))
                what = f"job {int(found.group(1))}, never handed out; its id is not reused"
            log.warning("%s: dropping its last line, cut short (%s)", self.path, what)

    def _job(self, line: bytes, where: str) -> Job:
        try:
            entry = json.loads(line)
        except ValueError:
            raise JournalError(f"{where}: {line[:80]!r} is not JSON") from None
        if not isinstance(entry, dict):
            raise JournalError(f"{where}: {line[:80]!r} is not a JSON object")
        if "job_id" not in entry:
            raise JournalError(f"{where}: has no job_id")
        if not _is_index(entry["job_id"]):
            raise JournalError(f"{where}: job_id {entry['job_id']!r} is not a non-negative integer")
        if not isinstance(entry.get("config"), dict):
            raise JournalError(f"{where}: config is not a JSON object")
        fields = {k: entry[k] for k in JOB_FIELDS if k in entry}
        for name, value in fields.items():
            if not (_is_index(value) or (value is None and name in NULLABLE_FIELDS)):
                raise JournalError(f"{where}: {name} {value!r} is not a non-negative integer")
        try:
            config = self.space.validate(entry["config"])
        except ValueError as err:
            raise JournalError(f"{where}: {err}") from None
        return Job(entry["job_id"], config, **fields)

    def open(self) -> None:
        """Start writing: after a cut last line when resuming, in an empty file otherwise."""
        if self.resume and not self.missing:
            with open(self.path, "rb+") as f:
                f.truncate(self._complete)
        self._file = open(self.path, "a" if self.resume else "w")  # noqa: SIM115 (kept open)

    def write(self, jobs: Iterable[Job]) -> None:
        """Record jobs about to be handed out (flushed, and with ``fsync`` on the disk, when
        this returns)."""
        for job in jobs:
            entry = {"job_id": job.job_id, "config": job.config}
            entry.update(
                {k: getattr(job, k) for k in JOB_FIELDS if getattr(job, k) != _JOB_DEFAULTS[k]}
            )
            self._file.write(json.dumps(entry, default=_plain) + "\n")
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
