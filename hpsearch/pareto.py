"""The Pareto front of a multi-objective search's results."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hpsearch.results import OBJECTIVE_PREFIX


def objective_columns(df: pd.DataFrame) -> list[str]:
    """The ``objective_<i>`` columns of a results frame, in objective order."""
    columns = [c for c in df.columns if str(c).startswith(OBJECTIVE_PREFIX)]
    return sorted(columns, key=lambda c: int(str(c)[len(OBJECTIVE_PREFIX) :]))


def pareto_front(
    df: pd.DataFrame, columns: Sequence[str] | None = None, maximize: bool | Sequence[bool] = True
) -> pd.DataFrame:
    """The non-dominated rows of ``df`` (rows with a missing objective are left out).

    ``columns`` defaults to the ``objective_<i>`` columns of a results.csv; ``maximize`` says
    the direction, for all columns or one per column. A row is dominated when another is at
    least as good in every column and better in one. Rows keep their order and index.
    """
    columns = list(objective_columns(df) if columns is None else columns)
    if not columns:
        raise ValueError(
            "no objective columns: pass columns=[...] or a multi-objective results frame"
        )
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"columns not in the frame: {', '.join(map(str, missing))}")
    signs = np.where(np.broadcast_to(np.asarray(maximize, dtype=bool), (len(columns),)), -1.0, 1.0)
    rows = df.loc[df[columns].notna().all(axis=1)]
    F = rows[columns].to_numpy(dtype=float) * signs  # to minimise
    better_eq = (F[:, None, :] <= F[None, :, :]).all(axis=2)
    strictly = (F[:, None, :] < F[None, :, :]).any(axis=2)
    dominated = (better_eq & strictly).any(axis=0)
    return rows.iloc[np.flatnonzero(~dominated)]
