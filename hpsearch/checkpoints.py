"""Checkpoint directories of trials: one per job under ``<output>/checkpoints``, usable once complete.

A job saves into its own directory while it runs. The master marks the directory usable (a
marker file holding the step and the directory's fingerprint) when the job returns normally,
or, when the job was killed or failed, only if nothing was written after its last report (the
directory's fingerprint still matches the one taken at that report). Any other directory is
deleted: a later job never restores from a half-written checkpoint. A marker counts only
while the directory still matches its fingerprint, so a checkpoint that a later attempt of
the same job began to overwrite is not restored either.

Usable checkpoints beyond the best ``keep`` finished jobs are deleted, except those a running
or future job still needs and those of jobs cut by a stop (they are continued on resume).
They are deleted by a thread of their own: on a parallel file system deleting a folder of
files takes milliseconds that the master's hand-out should not wait for.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch.evaluation import DONE, Job, Result
from hpsearch.trial import USABLE_MARKER, Report, csv_value, fingerprint

log = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"


@dataclass
class _Usable:
    step: Any  # the step the checkpoint holds
    value: float  # the job's objective to minimise (NaN: none), for pruning
    cut: bool  # the job did not finish: kept for its rerun whatever its value


def read_marker(directory: str | os.PathLike[str]) -> Any:
    """The step a usable checkpoint in ``directory`` holds; raises LookupError when the
    directory has no marker or was written to since it was marked."""
    marker = Path(directory) / USABLE_MARKER
    try:
        content = json.loads(marker.read_text())
        step, mark = content["step"], content["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        raise LookupError(f"{directory} holds no usable checkpoint") from None
    if fingerprint(directory) != mark:
        raise LookupError(f"{directory} was written to after it was marked usable")
    return step


def is_usable(output_dir: str, job_id: int) -> bool:
    """True when ``output_dir`` holds a usable checkpoint of job ``job_id``."""
    try:
        read_marker(Path(output_dir) / CHECKPOINTS_DIR / str(job_id))
    except LookupError:
        return False
    return True


class CheckpointStore:
    """The checkpoint directories of a search's jobs and which of them are usable."""

    def __init__(self, output_dir: str, keep: int = 10) -> None:
        if keep < 0:
            raise ValueError(f"keep must be >= 0 checkpoints, but got {keep}")
        self.root = Path(output_dir).resolve() / CHECKPOINTS_DIR
        self.keep = keep
        #: job id -> (step, fingerprint) of its last valid report, while it runs
        self._reported: dict[int, tuple[Any, str]] = {}
        #: job id -> (step, fingerprint) of the checkpoint a rerun job restored from itself
        self._restored: dict[int, tuple[Any, str]] = {}
        self._usable: dict[int, _Usable] = {}
        self._deleter: ThreadPoolExecutor | None = None

    def directory(self, job_id: int) -> Path:
        return self.root / str(job_id)

    def load_existing(self, scores: Mapping[int, float]) -> None:
        """Find the usable checkpoints an earlier run left (``scores``: job id -> value to
        minimise of its finished jobs; a job without one was cut by a stop)."""
        if not self.root.is_dir():
            return
        for marker in self.root.glob(f"*/{USABLE_MARKER}"):
            try:
                job_id = int(marker.parent.name)
                step = read_marker(marker.parent)
            except (ValueError, LookupError):
                continue
            cut = job_id not in scores
            self._usable[job_id] = _Usable(step, scores.get(job_id, math.nan), cut)

    def is_usable(self, job_id: int) -> bool:
        return job_id in self._usable

    def usable_step(self, job_id: int) -> Any:
        """The step the usable checkpoint of ``job_id`` holds (None: the run set none)."""
        return self._usable[job_id].step

    def prepare(self, job: Job) -> None:
        """Set ``job``'s checkpoint directory (created) and the one it restores from: its
        parent's, or, for a job run again whose own checkpoint is usable, its own (with
        ``job.step`` from there). Raises LookupError when the parent has none."""
        path = self.directory(job.job_id)
        if self.is_usable(job.job_id):
            usable = self._usable.pop(job.job_id)
            job.restore_from, job.step = str(path), usable.step or 0
            self._restored[job.job_id] = (usable.step, fingerprint(path))
        else:
            if job.parent is not None:
                if not self.is_usable(job.parent):
                    raise LookupError(f"job {job.parent} has no usable checkpoint to continue")
                job.restore_from = str(self.directory(job.parent))
            if path.exists():
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
        restored = self._restored.pop(job.job_id, None)
        if job.checkpoint_dir is None:
            return None
        path = Path(job.checkpoint_dir)
        known = result.outcome.checkpoint  # taken by the worker when the run returned
        current = fingerprint(path) if known is None else known
        step: Any
        if result.status == DONE and current:
            step = next(s for s in (result.step_end, job.max_steps, job.step) if s is not None)
        elif reported is not None and reported[1] and reported[1] == current:
            step = reported[0]  # killed or failed, but nothing written since its last report
        elif reported is None and restored is not None and restored[1] == current:
            step = restored[0]  # run again from its own checkpoint, cut before writing
        else:
            if current:
                log.info("job %d: checkpoint may be incomplete, deleted", job.job_id)
            shutil.rmtree(path, ignore_errors=True)
            return None
        step = csv_value(step)
        marker = {"step": step, "fingerprint": current}
        (path / USABLE_MARKER).write_text(json.dumps(marker))
        self._usable[job.job_id] = _Usable(step, value, cut=result.status != DONE)
        return str(path)

    def prune(self, needed: Collection[int]) -> None:
        """Delete usable checkpoints beyond the best ``keep`` finished jobs, sparing ``needed``
        ones and those of jobs cut by a stop."""
        ranked = sorted(
            (j for j, u in self._usable.items() if not u.cut and j not in needed),
            key=lambda j: (math.isnan(self._usable[j].value), self._usable[j].value),
        )
        for job_id in ranked[self.keep :]:
            del self._usable[job_id]
            if self._deleter is None:
                self._deleter = ThreadPoolExecutor(1, thread_name_prefix="checkpoint-deleter")
            self._deleter.submit(shutil.rmtree, self.directory(job_id), ignore_errors=True)

    def close(self) -> None:
        """Wait until the checkpoints pruned so far are deleted."""
        if self._deleter is not None:
            self._deleter.shutdown(wait=True)
            self._deleter = None


def _file_mode() -> int:
    """The mode ``open()`` gives a new file under this process's umask."""
    # os.umask can only be read by setting it; done once, at import, before any thread starts
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


#: mkstemp makes files only their owner can read; files written here get the usual mode.
FILE_MODE = _file_mode()


def write_atomically(
    directory: str | os.PathLike[str], name: str, write: Callable[[str], Any]
) -> Path:
    """``write(path)`` to a temporary file in ``directory``, then rename it to ``name``; return
    the final path, with the mode the umask gives new files. A process killed meanwhile leaves
    the previous file or the new one, never a part; the temporary file is removed when
    ``write`` raises."""
    directory = Path(directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=Path(name).suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, directory / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return directory / name


def remove_empty_root(output_dir: str) -> None:
    """Remove the checkpoints folder when a search left nothing in it."""
    root = Path(output_dir) / CHECKPOINTS_DIR
    if root.is_dir() and not any(root.iterdir()):
        os.rmdir(root)
