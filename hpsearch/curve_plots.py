"""Figures of early stopping, from the steps.csv and results.csv of a search run with a
stopper (``--stopper asha`` or ``median``, see docs/early-stopping.md).

- :func:`plot_curves`: every trial's objective over steps (its reports in steps.csv), one
  thin line per trial: the trials the search stopped early in light grey, the ones that
  trained to their end in colour (by their last value), the best of those highlighted.
- :func:`compute_saved`: the steps the trials ran against the steps a search without
  stopping would have run for the same trials (:class:`ComputeSaved`), and
  :func:`saved_sentence`, the same in words.

The results frame is the one :func:`hpsearch.results.load_results` reads, with
``step_start``, ``step_end`` and ``stopped``; the steps frame the one
:func:`hpsearch.results.load_steps` reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hpsearch.evaluation import DONE
from hpsearch.report import new_figure, save_figure
from hpsearch.results import stopped_mask, valid_reports

#: The objective axis is drawn on a log scale when its values are positive and span more
#: than this factor.
LOG_SPAN = 100.0
STOPPED_COLOUR = "0.8"
BEST_COLOUR = "tab:red"


# ---- trials ---------------------------------------------------------------------------------
def has_stopped_trials(df: pd.DataFrame) -> bool:
    """Whether the search stopped at least one trial early."""
    return bool(stopped_mask(df).any())


def trials(df: pd.DataFrame) -> pd.DataFrame:
    """One row per trial that reported a step (its last row: a job run again after a resume
    counts once), with ``step_start`` (0 when empty), ``step_end`` and ``stopped`` as numbers
    and booleans, by job id."""
    if "step_end" not in df.columns:
        return df.iloc[:0].assign(step_start=0.0, step_end=0.0, stopped=False)
    rows = df.loc[np.isfinite(pd.to_numeric(df["step_end"], errors="coerce").astype(float))]
    rows = rows.drop_duplicates("job_id", keep="last").sort_values("job_id", kind="stable")
    start = rows["step_start"] if "step_start" in rows.columns else pd.Series(0.0, rows.index)
    return rows.assign(
        step_start=pd.to_numeric(start, errors="coerce").fillna(0.0).astype(float),
        step_end=rows["step_end"].astype(float),
        stopped=stopped_mask(rows),
    )


# ---- compute saved --------------------------------------------------------------------------
@dataclass(frozen=True)
class ComputeSaved:
    """Steps run by a search with early stopping, against the steps it would have run
    without stopping (NaN when no trial trained to its end, so the full length is unknown)."""

    steps_run: float
    steps_full: float
    max_steps: float
    trials: int
    stopped: int

    @property
    def saved(self) -> float:
        """The fraction of the full steps that stopping saved (NaN when unknown)."""
        if not self.steps_full > 0:
            return math.nan
        return 1.0 - self.steps_run / self.steps_full


def compute_saved(df: pd.DataFrame) -> ComputeSaved:
    """Steps run (``step_end - step_start`` summed over the trials of :func:`trials`) and the
    steps without stopping: a stopped trial would have trained to the search's last step, the
    largest ``step_end`` of the trials that were not stopped, from its ``step_start``; a
    trial that was not stopped ran what it would have run anyway."""
    rows = trials(df)
    ran = rows["step_end"] - rows["step_start"]
    stopped = rows["stopped"].to_numpy(bool)
    kept = rows.loc[~stopped, "step_end"]
    max_steps = float(kept.max()) if len(kept) else math.nan
    full = np.where(stopped, np.maximum(rows["step_end"], max_steps) - rows["step_start"], ran)
    return ComputeSaved(
        steps_run=float(ran.sum()),
        steps_full=float(full.sum()) if len(kept) else math.nan,
        max_steps=max_steps,
        trials=len(rows),
        stopped=int(stopped.sum()),
    )


def saved_sentence(saved: ComputeSaved) -> str:
    """``"N of M steps run, X% saved"`` and how it was counted, as plain text."""
    stopped = f"{saved.stopped} of {saved.trials} trials stopped early"
    if math.isnan(saved.steps_full):
        return (
            f"{saved.steps_run:g} steps run ({stopped}); no trial trained to its end, so the "
            "steps a search without stopping would have run are unknown."
        )
    return (
        f"{saved.steps_run:g} of {saved.steps_full:g} steps run, {100 * saved.saved:.1f}% "
        f"saved ({stopped}; without stopping, they would have trained to step "
        f"{saved.max_steps:g})."
    )


# ---- learning curves ------------------------------------------------------------------------
def curves(steps: pd.DataFrame) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Each trial's reports as ``(steps, objectives)`` in step order, by job id; reports with
    an error or without a finite objective are left out."""
    if not len(steps):
        return {}
    rows = valid_reports(steps).sort_values(["job_id", "step"], kind="stable")
    return {
        int(g["job_id"].iloc[0]): (g["step"].to_numpy(float), g["objective"].to_numpy(float))
        for _, g in rows.groupby("job_id", sort=True)
    }


def plot_curves(df: pd.DataFrame, steps: pd.DataFrame, path: str, maximize: bool) -> str:
    """Every trial's objective over steps: stopped trials in light grey, the trials that
    trained to their end coloured by their last value, the best of them (by results.csv) in
    bold red. Raises ValueError when steps.csv has no report with an objective."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import LineCollection
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.lines import Line2D

    lines = curves(steps)
    if not lines:
        raise ValueError("steps.csv has no report with an objective: no learning curve to draw")
    rows = trials(df)
    done = rows.loc[~rows["stopped"] & (rows["status"] == DONE)]
    full = [j for j in done["job_id"].astype(int) if j in lines]
    faded = [j for j in lines if j not in set(full)]
    n_stopped = int(rows["stopped"].sum())

    values = np.concatenate([y for _, y in lines.values()])
    log = bool(values.min() > 0 and values.max() > LOG_SPAN * values.min())
    fig = new_figure(8.0, 5.0)
    ax = fig.add_subplot()
    handles, labels = [], []
    if faded:
        ax.add_collection(
            LineCollection(
                [np.column_stack(lines[j]) for j in faded],
                colors=STOPPED_COLOUR,
                linewidths=0.6,
                zorder=1,
            )
        )
        label = f"stopped early ({n_stopped})"
        if len(faded) > n_stopped:
            label += f", cut short or failed ({len(faded) - n_stopped})"
        handles.append(Line2D([], [], color=STOPPED_COLOUR, linewidth=2))
        labels.append(label)
    if full:
        last = np.array([lines[j][1][-1] for j in full])
        norm = (LogNorm if log else Normalize)(float(last.min()), float(last.max()))
        cmap = colormaps["viridis" if maximize else "viridis_r"]
        ax.add_collection(
            LineCollection(
                [np.column_stack(lines[j]) for j in full],
                colors=cmap(norm(last)),
                linewidths=0.9,
                zorder=2,
            )
        )
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="last value")
        handles.append(Line2D([], [], color=cmap(0.8), linewidth=2))
        labels.append(f"trained to the end ({len(full)})")
        ranked = done.loc[done["job_id"].astype(int).isin(full) & done["objective"].notna()]
        if len(ranked):
            best = ranked.sort_values("objective", ascending=not maximize, kind="stable")
            job, value = int(best["job_id"].iloc[0]), float(best["objective"].iloc[0])
            (line,) = ax.plot(*lines[job], color=BEST_COLOUR, linewidth=2.2, zorder=3)
            handles.append(line)
            labels.append(f"best: job {job} ({value:.4g})")
    if log:
        ax.set_yscale("log")
    ax.autoscale_view()
    ax.set_xlabel("step")
    ax.set_ylabel("objective")
    ax.set_title(f"Learning curves of {len(lines)} trials")
    ax.legend(handles, labels, fontsize="small")
    return save_figure(fig, path)
