"""Checkpoint directories of trials: one per job under ``<output>/checkpoints``, usable once complete.

A job saves into its own directory while it runs. The master marks the directory usable (a
marker file holding the step) when the job returns normally, or, when the job was killed or
failed, only if nothing was written after its last report (the directory's fingerprint still
matches the one taken at that report). Any other directory is deleted: a later job never
restores from a half-written checkpoint. Usable checkpoints beyond the best ``keep`` jobs are
deleted too, except those a running or future job still needs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from hpsearch.evaluation import DONE, Job, Result
from hpsearch.trial import Report, fingerprint

log = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
#: File the master writes into a checkpoint directory once it is complete: ``{"step": s}``.
USABLE_MARKER = ".hpsearch-usable"


class CheckpointStore:
    """The checkpoint directories of a search's jobs and which of them are usable."""

    def __init__(self, output_dir: str, keep: int = 10) -> None:
        if keep < 0:
            raise ValueError(f"keep must be >= 0 checkpoints, but got {keep}")
        self.root = Path(output_dir) / CHECKPOINTS_DIR
        self.keep = keep
        #: job id -> (step, fingerprint) of its last valid report, while it runs
        self._reported: dict[int, tuple[Any, str]] = {}
        #: job id -> (step, value to minimise or NaN) of every usable checkpoint
        self._usable: dict[int, tuple[Any, float]] = {}

    def directory(self, job_id: int) -> Path:
        return self.root / str(job_id)

    def load_existing(self, scores: Mapping[int, float]) -> None:
        """Find the usable checkpoints an earlier run left (``scores``: job id -> value to
        minimise, for pruning)."""
        if not self.root.is_dir():
            return
        for marker in self.root.glob(f"*/{USABLE_MARKER}"):
            try:
                job_id = int(marker.parent.name)
                step = json.loads(marker.read_text())["step"]
            except (ValueError, KeyError, OSError):
                continue
            self._usable[job_id] = (step, scores.get(job_id, math.nan))

    def is_usable(self, job_id: int) -> bool:
        return job_id in self._usable

    def usable_step(self, job_id: int) -> Any:
        """The step the usable checkpoint of ``job_id`` holds (None: the run set none)."""
        return self._usable[job_id][0]

    def prepare(self, job: Job) -> None:
        """Create ``job``'s directory; a job run again keeps only a usable checkpoint of its
        own, which it then continues from (``job.restore_from`` and ``job.step`` are set)."""
        path = self.directory(job.job_id)
        if self.is_usable(job.job_id):
            job.restore_from, job.step = str(path), self.usable_step(job.job_id) or 0
            self._usable.pop(job.job_id)
            (path / USABLE_MARKER).unlink(missing_ok=True)
        elif path.exists():
            shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True, exist_ok=True)
        job.checkpoint_dir = str(path)

    def reported(self, reports: Collection[Report]) -> None:
        for r in reports:
            if not r.error:
                self._reported[r.job_id] = (r.step, r.checkpoint)

    def finished(self, result: Result, value: float) -> str | None:
        """Mark the directory of a job that ended usable or delete it; return its path when
        usable. ``value`` is the job's objective to minimise (NaN when it has none)."""
        job = result.job
        reported = self._reported.pop(job.job_id, None)
        if job.checkpoint_dir is None:
            return None
        path = Path(job.checkpoint_dir)
        current = fingerprint(path)
        step: Any
        if result.status == DONE and current:
            step = result.step_end if result.step_end is not None else job.max_steps
        elif reported is not None and reported[1] and reported[1] == current:
            step = reported[0]  # killed or failed, but nothing written since its last report
        else:
            if current:
                log.info("job %d: checkpoint may be incomplete, deleted", job.job_id)
            shutil.rmtree(path, ignore_errors=True)
            return None
        (path / USABLE_MARKER).write_text(json.dumps({"step": step}))
        self._usable[job.job_id] = (step, value)
        return str(path)

    def prune(self, needed: Collection[int]) -> None:
        """Delete usable checkpoints beyond the best ``keep`` jobs, sparing ``needed`` ones."""
        if len(self._usable) <= self.keep + len(needed):
            return
        ranked = sorted(
            self._usable, key=lambda j: (math.isnan(self._usable[j][1]), self._usable[j][1])
        )
        for job_id in ranked[self.keep :]:
            if job_id not in needed:
                del self._usable[job_id]
                shutil.rmtree(self.directory(job_id), ignore_errors=True)


def is_usable(output_dir: str, job_id: int) -> bool:
    """True when ``output_dir`` holds a checkpoint of job ``job_id`` marked usable."""
    return (Path(output_dir) / CHECKPOINTS_DIR / str(job_id) / USABLE_MARKER).is_file()


def remove_empty_root(output_dir: str) -> None:
    """Remove the checkpoints folder when a search left nothing in it."""
    root = Path(output_dir) / CHECKPOINTS_DIR
    if root.is_dir() and not any(root.iterdir()):
        os.rmdir(root)
