"""Ending a search as a batch system does (SIGKILL to all of its processes at once), and
waiting for one under a guard that kills its whole session."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kill_when(
    command: list[str], env: dict, ready: Callable[[], bool], limit: float = 120.0
) -> None:
    """Start ``command`` in a session of its own and SIGKILL all of it (the master, the pool
    and its evaluations, as a batch system ends a job) once ``ready()`` is true."""
    proc = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    end = time.monotonic() + limit
    try:
        while not ready() and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.1)
        assert proc.poll() is None, "the search ended before it could be killed"
        assert ready(), f"not ready after {limit:g} s"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    """Wait for ``proc`` (started with ``start_new_session=True``) and return its exit code,
    stdout and stderr; past ``timeout`` seconds kill its whole session and fail the test."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{proc.args[0]} did not finish within {timeout} s")
    return proc.returncode, out, err
