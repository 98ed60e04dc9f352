"""Plots and a self-contained HTML page from one or several results.csv files.

``python -m hpsearch.report out/ [out2/ ...] [--output DIR]`` writes PNGs (best objective so
far against time and against evaluations, worker activity, parameter importance, parallel
coordinates of the best configurations, the Pareto front of a multi-objective search; a PBT
run's lineage, a replica exchange's ladder acceptance, the learning curves and steps saved of
a search that stopped trials early), the best configuration as ``best.json``, and ``report.html`` with every image embedded (it opens
offline). Runs whose directory names differ only by a trailing seed number (``ambs-s0``,
``ambs-s1``) form one group, drawn as the median with its min-max spread.

The functions :func:`utilisation` and :func:`busy_workers` work on any results frame.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hpsearch.arguments import EXIT_USAGE, ArgumentParser, positive_int
from hpsearch.evaluation import DONE, FINISHED
from hpsearch.results import (
    METRIC_PREFIX,
    OBJECTIVE_PREFIX,
    PARAM_PREFIX,
    load_results,
    stopped_mask,
)
from hpsearch.search_record import BEST_FILE, read_search, recorded_direction, write_best

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DIRECTIONS = ("auto", "minimize", "maximize")
STATUS_COLOURS = {
    "DONE": "tab:blue",
    "FAILED": "tab:red",
    "TIMEOUT": "tab:orange",
    "CANCELLED": "tab:gray",
}


# ---- measures on a results frame ---------------------------------------------------------
def _timed(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that occupied a worker: finite start and end times."""
    if not len(df):
        return df
    start, end = df["t_start"].astype(float), df["t_end"].astype(float)
    return df.loc[np.isfinite(start) & np.isfinite(end)]


def utilisation(df: pd.DataFrame, n_workers: int | None = None, wall: float | None = None) -> float:
    """Busy worker-seconds / (workers x wall seconds) of a search's results frame.

    Every row with start and end times counts (cancelled ones too: they held a worker).
    ``n_workers`` defaults to the distinct (host, worker) pairs seen; ``wall`` to the time
    from the first evaluation's start to the last end (a pool's start-up is not counted). NaN
    when there is nothing to measure.
    """
    rows = _timed(df)
    if not len(rows):
        return math.nan
    if n_workers is None:
        n_workers = len(rows[["host", "worker"]].astype(str).drop_duplicates())
    if wall is None:
        wall = float(rows["t_end"].max() - rows["t_start"].min())
    if n_workers < 1 or not wall > 0:
        return math.nan
    busy = float((rows["t_end"].astype(float) - rows["t_start"].astype(float)).sum())
    return busy / (n_workers * wall)


def busy_workers(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Step function of how many workers are busy: ``(times, counts)``, count from each time on."""
    rows = _timed(df)
    if not len(rows):
        return np.zeros(0), np.zeros(0, dtype=int)
    times = np.concatenate([rows["t_start"].to_numpy(float), rows["t_end"].to_numpy(float)])
    steps = np.concatenate([np.ones(len(rows), dtype=int), -np.ones(len(rows), dtype=int)])
    order = np.lexsort((steps, times))  # at equal times, ends (-1) before starts
    times, counts = times[order], np.cumsum(steps[order])
    last = np.r_[times[1:] != times[:-1], True]  # one value per distinct time
    return times[last], counts[last]


def finished(df: pd.DataFrame) -> pd.DataFrame:
    """Finished rows (DONE, FAILED, TIMEOUT; not CANCELLED) in the order they ended."""
    if not len(df):
        return df
    return df.loc[df["status"].isin(FINISHED)].sort_values("t_end", kind="stable")


def best_so_far(df: pd.DataFrame, maximize: bool = False) -> pd.DataFrame:
    """Per finished evaluation, in end order: ``t_end``, ``n`` (count) and ``best`` so far."""
    rows = finished(df)
    values = rows["objective"].astype(float).to_numpy() if len(rows) else np.zeros(0)
    signed = np.where(np.isfinite(values), -values if maximize else values, np.inf)
    best = np.minimum.accumulate(signed) if len(signed) else signed
    best = np.where(np.isfinite(best), -best if maximize else best, np.nan)
    return pd.DataFrame(
        {"t_end": rows["t_end"].to_numpy(float), "n": np.arange(1, len(rows) + 1), "best": best}
    )


def infer_maximize(df: pd.DataFrame, run_dir: str | None = None) -> bool:
    """The direction of a run: from its ``search.json`` when there is one, else from its
    ``best.json`` (a run from before search.json existed), else minimise.

    Raises ValueError naming an unreadable search.json.
    """
    direction = recorded_direction(run_dir) if run_dir else None
    if direction is not None:
        return direction == "maximize"
    path = os.path.join(run_dir, BEST_FILE) if run_dir else ""
    values = df.loc[df["status"] == DONE, "objective"].astype(float) if len(df) else None
    if path and os.path.isfile(path) and values is not None and len(values):
        with open(path) as f:
            best = json.load(f).get("objective")
        if isinstance(best, int | float):
            return bool(np.isclose(best, values.max()) and not np.isclose(best, values.min()))
    return False


# ---- runs and groups -----------------------------------------------------------------------
@dataclass
class Run:
    """One results file: its label, its group (label without a trailing seed) and its rows."""

    label: str
    group: str
    path: str
    df: pd.DataFrame
    #: The search stopped trials early (``--stopper``): a stopped trial's value is no final
    #: value, and the best configurations are those trained to their end.
    stops_early: bool = False


def _run_dir(path: str) -> str:
    return path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))


def load_runs(paths: Sequence[str]) -> list[Run]:
    """Read each results.csv (or directory holding one); ValueError naming a missing one."""
    runs = []
    for path in paths:
        csv_path = os.path.join(path, "results.csv") if os.path.isdir(path) else path
        if not os.path.isfile(csv_path):
            raise ValueError(f"no results file at {csv_path}")
        label = os.path.basename(os.path.normpath(_run_dir(path))) or path
        group = re.sub(r"[-_.]?(seed|s)?\d+$", "", label) or label
        record = read_search(_run_dir(path)) or {}
        stopper = (record.get("parameters") or {}).get("stopper", "none")
        run = Run(label, group, path, load_results(csv_path), stops_early=stopper != "none")
        check_consistent(run.df, csv_path)
        runs.append(run)
    labels = [r.label for r in runs]
    for i, run in enumerate(runs):
        if labels.count(run.label) > 1:
            run.label = f"{run.label} ({i})"
    return runs


def check_consistent(df: pd.DataFrame, path: str) -> None:
    """ValueError when a results frame cannot be one search's: a job id that ended on several
    rows (a cancelled job rerun on resume keeps its id, so CANCELLED rows may repeat), or more
    evaluations at once than there were workers (two searches wrote into one directory)."""
    ended = df.loc[df["status"] != "CANCELLED", "job_id"]
    repeated = ended[ended.duplicated()].unique()
    if len(repeated):
        shown = ", ".join(str(int(j)) for j in repeated[:5])
        more = f" and {len(repeated) - 5} more" if len(repeated) > 5 else ""
        raise ValueError(
            f"{path}: job ids {shown}{more} appear on more than one row: two searches wrote "
            "into this directory at once, and their rows cannot be told apart"
        )
    u = utilisation(df)
    if u > 1.0 + 1e-6:
        raise ValueError(
            f"{path}: evaluations overlap on one worker (utilisation {u:.3f} is above 1): two "
            "searches wrote into this directory at once"
        )


def param_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if str(c).startswith(PARAM_PREFIX)]


def objective_columns(df: pd.DataFrame) -> list[str]:
    """Every column whose name starts with ``objective`` (``objective`` first)."""
    return [c for c in df.columns if str(c).startswith("objective")]


# ---- plots ---------------------------------------------------------------------------------
def new_figure(width: float = 7.0, height: float = 4.0) -> Figure:
    """A figure of ``width`` x ``height`` inches with constrained layout (drawn by Agg, no
    pyplot), for :func:`save_figure`."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Figure, path: str) -> str:
    """Write ``fig`` as a PNG at 100 dpi, without the matplotlib version; return ``path``."""
    fig.savefig(path, dpi=100, metadata={"Software": None})
    return path


def _grid_median(curves: list[tuple[np.ndarray, np.ndarray]], grid: np.ndarray) -> np.ndarray:
    """Each step curve (x, best) sampled on ``grid`` (NaN before its first value), stacked."""
    out = np.full((len(curves), len(grid)), np.nan)
    for i, (x, y) in enumerate(curves):
        if len(x):
            idx = np.searchsorted(x, grid, side="right") - 1
            out[i] = np.where(idx >= 0, y[np.clip(idx, 0, None)], np.nan)
    return out


def plot_best(runs: Sequence[Run], path: str, x: str, maximize: bool) -> str:
    """Best objective so far against ``x`` (``"t_end"`` or ``"n"``), median and spread per group."""
    fig = new_figure()
    ax = fig.add_subplot()
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    for colour, (group, members) in zip(_colours(len(groups)), groups.items(), strict=True):
        curves = []
        for run in members:
            b = best_so_far(run.df, maximize).dropna(subset=["best"])
            curves.append((b[x].to_numpy(float), b["best"].to_numpy(float)))
            if len(members) == 1:
                ax.step(curves[-1][0], curves[-1][1], where="post", color=colour, label=run.label)
            else:
                ax.step(*curves[-1], where="post", color=colour, alpha=0.25, linewidth=0.8)
        if len(members) > 1:
            ends = [c[0][-1] for c in curves if len(c[0])]
            if not ends:
                continue
            grid = np.linspace(0.0, max(ends), 400)
            stacked = _grid_median(curves, grid)
            with warnings.catch_warnings():
                # grid points before any run of the group has a value are all NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                median = np.nanmedian(stacked, axis=0)
                low, high = np.nanmin(stacked, axis=0), np.nanmax(stacked, axis=0)
            label = f"{group} (median of {len(members)}, min-max)"
            ax.plot(grid, median, color=colour, linewidth=2, label=label)
            ax.fill_between(grid, low, high, color=colour, alpha=0.2, linewidth=0)
    ax.set_xlabel("time since the search started (s)" if x == "t_end" else "evaluations finished")
    ax.set_ylabel("best objective so far")
    ax.set_title(f"Best objective ({'maximised' if maximize else 'minimised'})")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    return save_figure(fig, path)


def _colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def plot_workers(run: Run, path: str) -> str:
    """Save :func:`workers_figure` of ``run`` to ``path``; return the path."""
    return save_figure(workers_figure(run), path)


def workers_figure(run: Run) -> Figure:
    """Gantt chart of every evaluation on its worker (colour = status) and the busy fraction."""
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    rows = _timed(run.df)
    fig = new_figure(8.0, 6.0)
    gantt, busy = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    keys = rows["host"].astype(str) + "/" + rows["worker"].astype(str)
    codes, uniques = pd.factorize(keys, sort=True)
    n_workers = max(len(uniques), 1)
    segments = np.stack(
        [
            np.column_stack([rows["t_start"].to_numpy(float), codes]),
            np.column_stack([rows["t_end"].to_numpy(float), codes]),
        ],
        axis=1,
    )
    colours = [STATUS_COLOURS.get(s, "black") for s in rows["status"]]
    width = float(np.clip(200.0 / n_workers, 0.5, 8.0))
    gantt.add_collection(LineCollection(list(segments), colors=colours, linewidths=width))
    gantt.set_ylim(-1, n_workers)
    gantt.yaxis.set_major_locator(MaxNLocator(integer=True))
    gantt.set_ylabel(f"worker ({n_workers})")
    gantt.set_title(f"Worker activity: {run.label}")
    present = [s for s in STATUS_COLOURS if (rows["status"] == s).any()]
    gantt.legend(
        [Line2D([], [], color=STATUS_COLOURS[s], linewidth=4) for s in present],
        present,
        fontsize="small",
        loc="upper right",
    )
    times, counts = busy_workers(rows)
    if len(times):
        busy.step(times, counts / n_workers, where="post", color="tab:green")
    u = utilisation(rows, n_workers)
    busy.set_ylim(0, 1.05)
    busy.set_ylabel("busy fraction")
    busy.set_xlabel("time since the search started (s)")
    busy.set_title(f"utilisation {u:.3f}", fontsize="small")
    gantt.autoscale_view(scaley=False)
    return fig


def _encoded_params(df: pd.DataFrame) -> pd.DataFrame:
    """Parameters as numbers: numeric ones as they are, others as category codes (NaN kept)."""
    out = {}
    for c in param_columns(df):
        column = df[c]
        if pd.api.types.is_numeric_dtype(column):
            out[c[len(PARAM_PREFIX) :]] = column.astype(float)
        else:
            codes, _ = pd.factorize(column, sort=True)
            out[c[len(PARAM_PREFIX) :]] = pd.Series(
                np.where(codes < 0, np.nan, codes), index=df.index, dtype=float
            )
    return pd.DataFrame(out, index=df.index)


def parameter_importance(df: pd.DataFrame, seed: int = 0, max_rows: int = 5000) -> pd.Series:
    """Impurity importance of each parameter in a random forest fitted to the DONE rows.

    Needs at least 5 finished evaluations with an objective; raises ValueError otherwise.
    Inactive (empty) parameters are encoded as -1.
    """
    from sklearn.ensemble import RandomForestRegressor

    rows = df.loc[(df["status"] == DONE) & df["objective"].notna()] if len(df) else df
    if len(rows) < 5 or not param_columns(df):
        raise ValueError(f"parameter importance needs >= 5 successful evaluations, got {len(rows)}")
    if len(rows) > max_rows:
        rows = rows.sample(max_rows, random_state=seed)
    X = _encoded_params(rows).fillna(-1.0)
    forest = RandomForestRegressor(n_estimators=100, min_samples_leaf=2, random_state=seed)
    forest.fit(X.to_numpy(), rows["objective"].astype(float).to_numpy())
    return pd.Series(forest.feature_importances_, index=X.columns).sort_values(ascending=False)


def plot_importance(importance: pd.Series, path: str) -> str:
    fig = new_figure(6.0, 0.6 + 0.35 * len(importance))
    ax = fig.add_subplot()
    ax.barh(importance.index[::-1], importance.to_numpy()[::-1], color="tab:blue")
    ax.set_xlabel("importance (random forest, impurity decrease)")
    ax.set_title("Parameter importance")
    return save_figure(fig, path)


def top_k(df: pd.DataFrame, k: int, maximize: bool, trained_only: bool = False) -> pd.DataFrame:
    """The ``k`` best DONE rows, best first. ``trained_only`` (a search that stopped trials
    early): a stopped trial counts only when none trained to its end (its last value is no
    final value)."""
    rows = df.loc[(df["status"] == DONE) & df["objective"].notna()] if len(df) else df
    if trained_only and "stopped" in rows:
        trained = ~stopped_mask(rows)
        rows = rows[trained] if trained.any() else rows
    return rows.sort_values("objective", ascending=not maximize, kind="stable").head(k)


def plot_parallel(df: pd.DataFrame, path: str, maximize: bool, k: int = 30) -> str:
    """Parallel coordinates of the ``k`` best configurations, coloured by objective."""
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    best = top_k(df, k, maximize)
    X = _encoded_params(df)
    low, high = X.min(), X.max()
    scaled = ((X.loc[best.index] - low) / (high - low).replace(0, 1)).fillna(-0.05)
    names = list(X.columns)
    fig = new_figure(max(6.0, 0.9 * len(names)), 4.0)
    ax = fig.add_subplot()
    xs = np.arange(len(names))
    objective = best["objective"].astype(float).to_numpy()
    norm = Normalize(objective.min(), objective.max()) if len(objective) else Normalize(0, 1)
    cmap = colormaps["viridis" if maximize else "viridis_r"]
    lines = LineCollection(
        [np.column_stack([xs, row]) for row in scaled.to_numpy(float)],
        colors=cmap(norm(objective)),
        linewidths=1.2,
    )
    ax.add_collection(lines)
    for x in xs:
        ax.axvline(float(x), color="0.7", linewidth=0.8)
    ax.set_xticks(xs, names, rotation=45 if len(names) > 6 else 0, ha="right")
    ax.set_xlim(-0.2, max(len(names) - 0.8, 0.2))
    ax.set_ylim(-0.1, 1.05)
    ax.set_ylabel("value, scaled to its range (below 0: inactive)")
    ax.set_title(f"The {len(best)} best configurations")
    from matplotlib.cm import ScalarMappable

    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="objective")
    return save_figure(fig, path)


def plot_pareto(df: pd.DataFrame, path: str, columns: Sequence[str], maximize: bool) -> str:
    """The first two objectives of every DONE row, with the Pareto front over all objectives."""
    from hpsearch.pareto import pareto_front

    rows = df.loc[df["status"] == DONE]
    front = pareto_front(rows, columns, maximize=maximize)
    a, b = columns[0], columns[1]
    fig = new_figure(6.0, 5.0)
    ax = fig.add_subplot()
    ax.scatter(rows[a], rows[b], s=10, color="0.6", label="evaluations")
    ordered = front.sort_values(a)
    ax.plot(ordered[a], ordered[b], "o-", color="tab:red", label=f"Pareto front ({len(front)})")
    ax.set_xlabel(a)
    ax.set_ylabel(b)
    ax.set_title(f"Pareto front ({'maximised' if maximize else 'minimised'})")
    ax.legend(fontsize="small")
    return save_figure(fig, path)


# ---- the report --------------------------------------------------------------------------
def best_config(
    df: pd.DataFrame, maximize: bool, trained_only: bool = False
) -> dict[str, Any] | None:
    """The best DONE row as ``{"objective", "config", "job_id"}`` (inactive parameters
    dropped); ``trained_only`` as for :func:`top_k`."""
    best = top_k(df, 1, maximize, trained_only)
    if not len(best):
        return None
    row = best.iloc[0]
    config = {c[len(PARAM_PREFIX) :]: _plain(row[c]) for c in param_columns(df) if pd.notna(row[c])}
    return {"objective": float(row["objective"]), "job_id": int(row["job_id"]), "config": config}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def summary(run: Run) -> dict[str, Any]:
    df = run.df
    status = df["status"].value_counts() if len(df) else pd.Series(dtype=int)
    return {
        "run": run.label,
        "rows": len(df),
        **{s: int(status.get(s, 0)) for s in STATUS_COLOURS},
        "workers": len(_timed(df)[["host", "worker"]].astype(str).drop_duplicates()),
        "wall (s)": float(df["t_end"].max()) if len(df) else math.nan,
        "utilisation": utilisation(df),
    }


def _img(path: str, alt: str) -> str:
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1100px; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
img { max-width: 100%; }
pre { background: #f4f4f4; padding: 1em; }
"""


def write_report(
    paths: Sequence[str], output: str, direction: str = "auto", k: int = 10
) -> dict[str, str]:
    """Write the PNGs, ``best.json`` (when an evaluation succeeded) and ``report.html`` to
    ``output``; return name -> path."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, but got {direction!r}")
    runs = load_runs(paths)
    if direction == "auto":
        maximize = infer_maximize(runs[0].df, _run_dir(runs[0].path))
    else:
        maximize = direction == "maximize"
    os.makedirs(output, exist_ok=True)
    files: dict[str, str] = {}
    sections: list[str] = []

    def image(name: str, title: str, path: str) -> None:
        files[name] = path
        sections.append(f"<h2>{html.escape(title)}</h2>\n{_img(path, title)}")

    table = pd.DataFrame([summary(r) for r in runs])
    sections.append("<h2>Runs</h2>\n" + table.to_html(index=False, float_format="{:.4g}".format))
    image(
        "best_vs_time",
        "Best objective so far vs time",
        plot_best(runs, os.path.join(output, "best_vs_time.png"), "t_end", maximize),
    )
    image(
        "best_vs_evals",
        "Best objective so far vs evaluations",
        plot_best(runs, os.path.join(output, "best_vs_evals.png"), "n", maximize),
    )
    for i, run in enumerate(runs):
        name = "workers" if len(runs) == 1 else f"workers_{i}"
        image(
            name,
            f"Worker activity: {run.label}",
            plot_workers(run, os.path.join(output, f"{name}.png")),
        )
    # the per-configuration views describe the best run (the first, when there is one)
    bests = {id(r): best_config(r.df, maximize, r.stops_early) for r in runs}
    ranked = [r for r in runs if bests[id(r)] is not None]
    sign = -1 if maximize else 1
    main = min(ranked, key=lambda r: sign * bests[id(r)]["objective"]) if ranked else runs[0]  # type: ignore[index]
    best = best_config(main.df, maximize, main.stops_early)
    shown = ["job_id", *param_columns(main.df), *objective_columns(main.df), "t_end", "worker"]
    shown += [c for c in main.df.columns if str(c).startswith(METRIC_PREFIX)]
    top = top_k(main.df, k, maximize, main.stops_early)[shown]
    sections.append(
        f"<h2>Top {len(top)} configurations ({html.escape(main.label)})</h2>\n"
        + top.to_html(index=False, float_format="{:.5g}".format, na_rep="")
    )
    try:
        importance = parameter_importance(main.df)
    except ValueError as err:
        sections.append(f"<h2>Parameter importance</h2>\n<p>{html.escape(str(err))}</p>")
    else:
        image(
            "importance",
            f"Parameter importance ({main.label})",
            plot_importance(importance, os.path.join(output, "importance.png")),
        )
    if len(top):
        image(
            "parallel",
            f"Parallel coordinates of the best configurations ({main.label})",
            plot_parallel(main.df, os.path.join(output, "parallel.png"), maximize),
        )
    vectors = [c for c in objective_columns(main.df) if str(c).startswith(OBJECTIVE_PREFIX)]
    if len(vectors) >= 2 and (main.df["status"] == DONE).any():
        image(
            "pareto",
            f"Pareto front ({main.label})",
            plot_pareto(main.df, os.path.join(output, "pareto.png"), vectors, maximize),
        )
    _population_sections(main, output, maximize, image, sections)
    _stopping_sections(main, output, maximize, image, sections)
    if best is None:
        best_html = "<p>no evaluation succeeded</p>"
    else:
        files["best"] = write_best(output, best["objective"], best["config"], best["job_id"])
        with open(files["best"]) as f:
            best_html = f"<pre>{html.escape(f.read())}</pre>"
    sections.append(f"<h2>Best configuration ({html.escape(main.label)})</h2>\n{best_html}")
    title = "hpsearch report: " + ", ".join(r.label for r in runs)
    page = (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
        f"<p>Objective {'maximised' if maximize else 'minimised'}.</p>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
    files["html"] = os.path.join(output, "report.html")
    with open(files["html"], "w") as f:
        f.write(page)
    return files


def _population_sections(
    run: Run,
    output: str,
    maximize: bool,
    image: Callable[[str, str, str], None],
    sections: list[str],
) -> None:
    """The figures of a population method, when the run's directory has its files: the PBT
    lineage (``lineage.csv``), and the ladder acceptance and replica values of a replica
    exchange (``exchanges.csv``). A run without either gets nothing."""
    from hpsearch import population_plots as pp
    from hpsearch.results import load_steps

    run_dir = _run_dir(run.path)
    label = html.escape(run.label)
    if os.path.isfile(os.path.join(run_dir, pp.LINEAGE_FILE)):
        try:
            path = pp.plot_lineage(
                run.df,
                pp.load_lineage(run_dir),
                load_steps(run_dir),
                os.path.join(output, "lineage.png"),
                maximize,
            )
        except ValueError as err:
            sections.append(f"<h2>PBT lineage ({label})</h2>\n<p>{html.escape(str(err))}</p>")
        else:
            image("lineage", f"PBT lineage and hyperparameter schedules ({run.label})", path)
    if os.path.isfile(os.path.join(run_dir, pp.EXCHANGES_FILE)):
        exchanges = pp.load_exchanges(run_dir)
        try:
            ratios = pp.acceptance_ratios(exchanges, run.df)
            names = pp.ladder_names(exchanges, run.df)
            replicas = pp.plot_replicas(
                run.df, names, os.path.join(output, "replicas.png"), exchanges
            )
        except ValueError as err:
            sections.append(f"<h2>Replica exchange ({label})</h2>\n<p>{html.escape(str(err))}</p>")
            return
        image(
            "acceptance",
            f"Replica exchange: acceptance per adjacent ladder pair ({run.label})",
            pp.plot_acceptance(ratios, os.path.join(output, "acceptance.png")),
        )
        image("replicas", f"Replica exchange: ladder values over steps ({run.label})", replicas)


def _stopping_sections(
    run: Run,
    output: str,
    maximize: bool,
    image: Callable[[str, str, str], None],
    sections: list[str],
) -> None:
    """The learning curves of a search with early stopping and the steps stopping saved,
    when the search used a stopper, its directory has a steps.csv and it stopped a trial; any
    other run gets nothing."""
    from hpsearch import curve_plots as cp
    from hpsearch.results import STEPS_FILE, load_steps

    run_dir = _run_dir(run.path)
    if not run.stops_early or not os.path.isfile(os.path.join(run_dir, STEPS_FILE)):
        return
    if not cp.has_stopped_trials(run.df):
        return
    title = f"Learning curves and early stopping ({run.label})"
    sentence = html.escape(cp.saved_sentence(cp.compute_saved(run.df)))
    try:
        path = cp.plot_curves(
            run.df, load_steps(run_dir), os.path.join(output, "curves.png"), maximize
        )
    except ValueError as err:
        sections.append(
            f"<h2>{html.escape(title)}</h2>\n<p>{sentence}</p>\n<p>{html.escape(str(err))}</p>"
        )
        return
    image("curves", title, path)
    sections.append(f"<p>{sentence}</p>")


def show(run: str, output: str | None = None) -> dict[str, str] | None:
    """Write the report of the search in ``run`` (a directory or its results.csv) to
    ``output`` (default: ``<run>/report``) and show its figures inline in IPython or Jupyter
    (returning None); anywhere else, return figure name -> PNG path."""
    files = write_report([run], output or os.path.join(_run_dir(run), "report"))
    figures = {name: path for name, path in files.items() if path.endswith(".png")}
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return figures
    if get_ipython() is None:  # installed, but this is no IPython session
        return figures
    for path in figures.values():
        display(Image(filename=path))
    return None


def main(argv: Sequence[str] | None = None, prog: str = "python -m hpsearch.report") -> int:
    """``python -m hpsearch.report RUN [RUN ...] [--output DIR] [--direction D] [--top K]``."""
    parser = ArgumentParser(
        prog=prog, description="Plots and an offline HTML page from results.csv files."
    )
    parser.add_argument("runs", nargs="+", help="results.csv files or directories holding one")
    parser.add_argument(
        "--output", default=None, help="report directory (default: <first run>/report)"
    )
    parser.add_argument(
        "--direction",
        choices=DIRECTIONS,
        default="auto",
        help="objective direction (default auto: from search.json, else best.json, else minimize)",
    )
    parser.add_argument("--top", type=positive_int, default=10, help="rows of the top-k table (10)")
    args = parser.parse_args(argv)
    output = args.output or os.path.join(_run_dir(args.runs[0]), "report")
    try:
        files = write_report(args.runs, output, args.direction, args.top)
    except (ValueError, KeyError, pd.errors.ParserError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(f"report written to {files['html']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
