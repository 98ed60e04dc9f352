"""What the optimizer benchmarks share: one thread per search, resumable .jsonl records of
finished searches, the commit they ran at, and median [quartile] cells."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence

import numpy as np
import threadpoolctl


def one_thread() -> None:
    """Searches run one per process and core; threaded libraries (OpenMP in scikit-learn's
    gradient boosting) would otherwise oversubscribe the cores many times over. The variable
    covers OpenMP runtimes loaded later in the process, which threadpoolctl cannot see yet."""
    os.environ["OMP_NUM_THREADS"] = "1"
    threadpoolctl.threadpool_limits(1)


def load_records(path: str, key: Sequence[str]) -> dict[tuple, dict]:
    """Finished searches from an earlier (possibly interrupted) run, by the ``key`` fields."""
    records: dict[tuple, dict] = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    records[tuple(r[k] for k in key)] = r
    return records


def git_commit() -> str:
    """The checkout's commit (``-dirty`` when it has changes), or "unknown"."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(
            ["git", "-C", here, "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cell(values: Sequence[float], fmt: str = ".4g") -> str:
    """``median [first quartile, third quartile]``."""
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return f"{med:{fmt}} [{q1:{fmt}}, {q3:{fmt}}]"
