"""Figures of population methods, from the files they write beside results.csv.

- :func:`plot_lineage` (population-based training, ``lineage.csv``): the members' objective
  over training steps with an arrow per exploit, from the copied member to the member that
  copied it, and below it every hyperparameter that changed, each member's value over steps
  (its schedule).
- :func:`plot_acceptance` (replica exchange, ``exchanges.csv``): the fraction of accepted swaps
  per adjacent pair of the ladder, computed by :func:`acceptance_ratios`.
- :func:`plot_replicas` (replica exchange): each replica's ladder values over steps, so that
  accepted swaps show as values moving between replicas.

The results frame is the one :func:`hpsearch.results.load_results` reads: one row per segment
with ``member``, ``parent``, ``step_start`` and ``step_end``.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hpsearch.evaluation import FINISHED
from hpsearch.report import new_figure, param_columns, save_figure
from hpsearch.results import PARAM_PREFIX
from hpsearch.search.pbt import LINEAGE_COLUMNS as LINEAGE_FILE_COLUMNS
from hpsearch.search.pbt import LINEAGE_FILE
from hpsearch.search.rex import EXCHANGE_COLUMNS, EXCHANGES_FILE

#: A hyperparameter axis is drawn on a log scale when its positive values span more than this.
LOG_SPAN = 20.0
RATIO_COLUMNS = ["position", "cold", "hot", "proposals", "accepted", "ratio", "label"]


# ---- reading ---------------------------------------------------------------------------------
def _read_log(path: str, columns: Sequence[str], dtype: dict[str, Any]) -> pd.DataFrame:
    """A CSV log as a frame (empty with ``columns`` when absent); a last line cut short by a
    kill is ignored."""
    text = ""
    if os.path.isfile(path):
        with open(path, newline="") as f:
            text = f.read()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    if not text.strip():
        return pd.DataFrame(columns=list(columns))
    return pd.read_csv(io.StringIO(text), dtype=dtype, keep_default_na=False, na_values=[""])


def load_lineage(run_dir: str) -> pd.DataFrame:
    """The exploits of a PBT run (its ``lineage.csv``; empty when it has none)."""
    path = os.path.join(run_dir, LINEAGE_FILE)
    return _read_log(path, LINEAGE_FILE_COLUMNS, {"old": str, "new": str})


def load_exchanges(run_dir: str) -> pd.DataFrame:
    """The swap proposals of a replica exchange (its ``exchanges.csv``; empty when none)."""
    path = os.path.join(run_dir, EXCHANGES_FILE)
    return _read_log(path, EXCHANGE_COLUMNS, {"pair": str, "betas": str, "losses": str})


# ---- segments, lines and schedules ----------------------------------------------------------
def segments(df: pd.DataFrame) -> pd.DataFrame:
    """The finished segments of members that reached a step with an objective, by job id (a
    job run again after a resume counts once, as its last row).

    Raises ValueError when the frame has no population columns.
    """
    missing = [c for c in ("member", "step_end") if c not in df.columns]
    if missing:
        raise ValueError(f"results have no {' or '.join(missing)} column: not a population run")
    rows = df.loc[df["status"].isin(FINISHED) & df["member"].notna() & df["step_end"].notna()]
    rows = rows.loc[np.isfinite(rows["objective"].astype(float))]
    rows = rows.drop_duplicates("job_id", keep="last").sort_values("job_id", kind="stable")
    rows = rows.assign(
        member=rows["member"].astype(int),
        step_start=rows["step_start"].fillna(0).astype(float) if "step_start" in rows else 0.0,
        step_end=rows["step_end"].astype(float),
        objective=rows["objective"].astype(float),
    )
    if "parent" not in rows:
        rows = rows.assign(parent=math.nan)
    return rows


def _by_job(rows: pd.DataFrame, values: pd.Series) -> dict[int, float]:
    """``values`` (a column of ``rows``) by job id."""
    return dict(
        zip(rows["job_id"].astype(int).tolist(), values.astype(float).tolist(), strict=True)
    )


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``df`` as dicts (column -> value)."""
    return [{str(k): v for k, v in r.items()} for r in df.to_dict(orient="records")]


def member_colours(members: Sequence[int]) -> dict[int, Any]:
    """A colour per member: tab10 or tab20 while they suffice, else spread over turbo."""
    from matplotlib import colormaps

    n = len(members)
    if n <= 20:
        cmap = colormaps["tab10" if n <= 10 else "tab20"]
        return {m: cmap(i) for i, m in enumerate(members)}
    cmap = colormaps["turbo"]
    return {m: cmap(i / (n - 1)) for i, m in enumerate(members)}


def _polylines(pieces: dict[int, list[tuple[list[float], list[float]]]]) -> dict[int, Any]:
    """Each member's pieces joined into one line, broken (NaN) between pieces."""
    out = {}
    for m, parts in sorted(pieces.items()):
        xs: list[float] = []
        ys: list[float] = []
        for x, y in parts:
            if xs:
                xs.append(math.nan)
                ys.append(math.nan)
            xs += x
            ys += y
        out[m] = (np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))
    return out


def objective_lines(
    df: pd.DataFrame, steps: pd.DataFrame | None = None
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per member ``(steps, objectives)``: each segment from the point it continues (its parent
    at ``step_start``) through its reports in ``steps`` (steps.csv) to its objective at
    ``step_end``; without reports, a straight line from start to end. Segments are separated
    by NaN, so an exploit breaks the member's line and restarts it at the copied point."""
    rows = segments(df)
    objective = _by_job(rows, rows["objective"])
    curves: dict[int, pd.DataFrame] = {}
    if steps is not None and len(steps):
        reported = steps.loc[np.isfinite(steps["objective"].astype(float))]
        reported = reported.drop_duplicates(["job_id", "step"], keep="last")
        for _, group in reported.groupby("job_id"):
            curves[int(group["job_id"].to_numpy()[0])] = group.sort_values("step")
    pieces: dict[int, list[tuple[list[float], list[float]]]] = {}
    for row in _records(rows):
        start, end = row["step_start"], row["step_end"]
        xs: list[float] = []
        ys: list[float] = []
        if pd.notna(row["parent"]) and int(row["parent"]) in objective:
            xs.append(start)
            ys.append(float(objective[int(row["parent"])]))
        if (curve := curves.get(int(row["job_id"]))) is not None:
            inside = curve.loc[(curve["step"] > start) & (curve["step"] <= end)]
            xs += inside["step"].astype(float).tolist()
            ys += inside["objective"].astype(float).tolist()
        if not xs or xs[-1] != end:
            xs.append(end)
            ys.append(row["objective"])
        pieces.setdefault(int(row["member"]), []).append((xs, ys))
    return _polylines(pieces)


def _encoded(rows: pd.DataFrame, name: str) -> tuple[pd.Series, list[str] | None]:
    """A hyperparameter's values as numbers, with its categories when they are not numbers."""
    column = rows[PARAM_PREFIX + name]
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.astype(float), None
    codes, categories = pd.factorize(column.astype(str), sort=True)
    values = pd.Series(np.where(codes < 0, np.nan, codes), index=rows.index, dtype=float)
    return values, [str(c) for c in categories]


def schedule_lines(
    df: pd.DataFrame, name: str
) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], list[str] | None]:
    """Per member, hyperparameter ``name`` over steps as a step function: the value of each
    segment from ``step_start`` to ``step_end``, starting from its parent's value (an exploit
    shows as a jump from the copied value to the explored one). Also the categories, for a
    hyperparameter that is not a number (values are then their codes)."""
    rows = segments(df)
    values, categories = _encoded(rows, name)
    by_job = _by_job(rows, values)
    pieces: dict[int, list[tuple[list[float], list[float]]]] = {}
    for row, value in zip(_records(rows), values.tolist(), strict=True):
        xs, ys = [row["step_start"], row["step_end"]], [value, value]
        if pd.notna(row["parent"]) and int(row["parent"]) in by_job:
            xs.insert(0, row["step_start"])
            ys.insert(0, float(by_job[int(row["parent"])]))
        pieces.setdefault(int(row["member"]), []).append((xs, ys))
    return _polylines(pieces), categories


def lineage_hyperparameters(df: pd.DataFrame, lineage: pd.DataFrame | None = None) -> list[str]:
    """Hyperparameters whose schedule is worth drawing, in the results' column order: those an
    exploit changed (the keys of ``old`` and ``new`` in lineage.csv) and the numeric ones that
    vary within a member."""
    names: set[str] = set()
    for column in ("old", "new"):
        if lineage is None or column not in lineage:
            continue
        for text in lineage[column].dropna():
            try:
                changed = json.loads(text)
            except (TypeError, ValueError):
                continue
            if isinstance(changed, dict):
                names.update(str(k) for k in changed)
    rows = segments(df)
    for c in param_columns(rows):
        numeric = pd.api.types.is_numeric_dtype(rows[c])
        if numeric and len(rows) and rows.groupby("member")[c].nunique().max() > 1:
            names.add(c[len(PARAM_PREFIX) :])
    return [c[len(PARAM_PREFIX) :] for c in param_columns(df) if c[len(PARAM_PREFIX) :] in names]


def exploit_arrows(df: pd.DataFrame, lineage: pd.DataFrame) -> pd.DataFrame:
    """One row per exploit of lineage.csv that can be placed: ``step``, ``member``,
    ``copied_from``, the copied point (``x_from`` = step, ``y_from`` = the copied job's
    objective) and the point of the member that copied it, its last segment before the
    exploit (``x_to``, ``y_to``)."""
    rows = segments(df)
    objective = _by_job(rows, rows["objective"])
    out = []
    cursor: dict[int, int] = {}  # per member, the job that continued its latest exploit
    for x in _records(lineage):
        copied, m = int(x["job_copied"]), int(x["member"])
        if copied not in objective:
            continue
        own = rows.loc[rows["member"] == m]
        after = own.loc[(own["parent"] == copied) & (own["job_id"] > cursor.get(m, -1))]
        if len(after):
            cursor[m] = int(after["job_id"].iloc[0])
            own = own.loc[own["job_id"] < cursor[m]]
        elif m in cursor:
            own = own.loc[own["job_id"] > cursor[m]]
        if not len(own):
            continue
        before = own.iloc[-1]
        out.append(
            {
                "step": int(x["step"]),
                "member": m,
                "copied_from": int(x["copied_from"]),
                "x_from": float(x["step"]),
                "y_from": objective[copied],
                "x_to": float(before["step_end"]),
                "y_to": float(before["objective"]),
            }
        )
    columns = ["step", "member", "copied_from", "x_from", "y_from", "x_to", "y_to"]
    return pd.DataFrame(out, columns=columns)


# ---- replica exchange ------------------------------------------------------------------------
def _betas(text: str) -> list[dict[str, float]]:
    """The two dicts of a ``betas`` cell of exchanges.csv (JSON: colder replica first)."""
    try:
        sides = json.loads(text)
        return [{str(k): float(v) for k, v in side.items()} for side in sides]
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"exchanges.csv: cannot read betas {text!r}") from None


def _key(value: float) -> float:
    return float(f"{value:.12g}")  # the same ladder values give the same betas


def parse_exchanges(exchanges: pd.DataFrame) -> pd.DataFrame:
    """One row per proposal: ``step``, ``cold_member`` and ``hot_member`` (replica numbers),
    ``cold`` and ``hot`` (their summed inverse temperatures, colder first), ``names`` (the
    ladder hyperparameters) and ``accepted`` (bool)."""
    out = []
    for x in _records(exchanges):
        m, n = (int(v) for v in str(x["pair"]).split("-"))
        beta_m, beta_n = _betas(str(x["betas"]))
        cold, hot = _key(sum(beta_m.values())), _key(sum(beta_n.values()))
        if hot > cold:  # rex.py writes the colder first; do not rely on it
            m, n, cold, hot = n, m, hot, cold
        accepted = x["accepted"]
        if not isinstance(accepted, bool | np.bool_):
            accepted = str(accepted).strip().lower() in ("true", "1")
        out.append(
            {
                "step": int(x["step"]),
                "cold_member": m,
                "hot_member": n,
                "cold": cold,
                "hot": hot,
                "names": tuple(beta_m),
                "accepted": bool(accepted),
            }
        )
    columns = ["step", "cold_member", "hot_member", "cold", "hot", "names", "accepted"]
    return pd.DataFrame(out, columns=columns)


def ladder_names(exchanges: pd.DataFrame, df: pd.DataFrame | None = None) -> list[str]:
    """The ladder's hyperparameters: the keys of the betas of exchanges.csv (those with a
    column in ``df`` when it is given); without proposals, the numeric hyperparameters that
    vary within a replica."""
    parsed = parse_exchanges(exchanges)
    names = list(dict.fromkeys(n for names in parsed["names"] for n in names))
    if df is not None:
        names = [n for n in names if PARAM_PREFIX + n in df.columns]
        if not names:
            names = lineage_hyperparameters(df)
    return names


def _format(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float | np.floating) else str(value)


def acceptance_ratios(exchanges: pd.DataFrame, df: pd.DataFrame | None = None) -> pd.DataFrame:
    """The fraction of accepted swaps per adjacent pair of the ladder, coldest pair first.

    A pair is a pair of ladder positions (told apart by their inverse temperatures), not of
    replicas: the replicas of a position change with every accepted swap, so ``pair`` of
    exchanges.csv names different replicas for one ladder pair over a run. Columns:
    ``position`` (0 = the coldest pair), ``cold`` and ``hot`` (summed inverse temperatures),
    ``proposals``, ``accepted``, ``ratio`` and ``label``: the ladder values of the pair, read
    from the results frame ``df`` when given (the segments that ended at the proposal's step),
    else the inverse temperatures.
    """
    parsed = parse_exchanges(exchanges)
    if not len(parsed):
        return pd.DataFrame(columns=RATIO_COLUMNS)
    values: dict[tuple[int, float], dict[str, Any]] = {}
    if df is not None and {"member", "step_end"} <= set(df.columns):
        rows = segments(df)
        values = {(int(r["member"]), float(r["step_end"])): r for r in _records(rows)}
    out = []
    for (cold, hot), group in parsed.groupby(["cold", "hot"], sort=False):
        label = f"β {cold:.3g} ↔ {hot:.3g}"
        for x in _records(group):
            a = values.get((x["cold_member"], float(x["step"])))
            b = values.get((x["hot_member"], float(x["step"])))
            names = [n for n in x["names"] if a is not None and PARAM_PREFIX + n in a]
            if a is not None and b is not None and names:
                label = "\n".join(
                    f"{n} {_format(a[PARAM_PREFIX + n])} ↔ {_format(b[PARAM_PREFIX + n])}"
                    for n in names
                )
                break
        proposals, accepted = len(group), int(group["accepted"].sum())
        out.append(
            {
                "cold": cold,
                "hot": hot,
                "proposals": proposals,
                "accepted": accepted,
                "ratio": accepted / proposals,
                "label": label,
            }
        )
    ratios = pd.DataFrame(out).sort_values(["cold", "hot"], ascending=False, kind="stable")
    ratios.insert(0, "position", np.arange(len(ratios)))
    return ratios.reset_index(drop=True)[RATIO_COLUMNS]


# ---- figures ---------------------------------------------------------------------------------
def _draw_schedule(ax: Any, df: pd.DataFrame, name: str, colours: dict[int, Any]) -> None:
    """Each member's value of ``name`` over steps on ``ax``; log-scaled when it spans more
    than a factor :data:`LOG_SPAN` and is positive."""
    lines, categories = schedule_lines(df, name)
    for m, (x, y) in lines.items():
        ax.plot(x, y, color=colours.get(m, "black"), linewidth=1.2)
    finite = np.concatenate([y[np.isfinite(y)] for _, y in lines.values()] or [np.zeros(0)])
    if categories is not None:
        ax.set_yticks(range(len(categories)), categories, fontsize="small")
    elif len(finite) and finite.min() > 0 and finite.max() / finite.min() > LOG_SPAN:
        ax.set_yscale("log")
    ax.set_ylabel(name)
    ax.grid(True, color="0.9", linewidth=0.6)


def _step_axis(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("training step")


def _member_legend(ax: Any, colours: dict[int, Any], what: str) -> None:
    from matplotlib.lines import Line2D

    if len(colours) > 20:
        return
    handles = [Line2D([], [], color=c, linewidth=2) for c in colours.values()]
    labels = [f"{what} {m}" for m in colours]
    ax.legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))


def plot_lineage(
    df: pd.DataFrame,
    lineage: pd.DataFrame,
    steps: pd.DataFrame | None,
    path: str,
    maximize: bool = False,
) -> str:
    """The lineage of a PBT run: the members' objective over steps with an arrow per exploit
    (from the copied member at the exploit's step to the member that copied it), and below it
    a panel per hyperparameter of :func:`lineage_hyperparameters` with each member's schedule.

    Raises ValueError when the results are not those of a population run.
    """
    rows = segments(df)
    names = lineage_hyperparameters(rows, lineage)
    colours = member_colours(sorted(rows["member"].unique().tolist()))
    fig = new_figure(8.5, 3.5 + 1.7 * len(names))
    axes = fig.subplots(
        1 + len(names), 1, sharex=True, squeeze=False, height_ratios=[2.2] + [1.0] * len(names)
    )[:, 0]
    top = axes[0]
    for m, (x, y) in objective_lines(rows, steps).items():
        top.plot(x, y, color=colours[m], linewidth=1.2)
    top.scatter(
        rows["step_end"],
        rows["objective"],
        s=10,
        color=[colours[m] for m in rows["member"]],
        zorder=3,
    )
    arrows = exploit_arrows(rows, lineage)
    for a in _records(arrows):
        top.annotate(
            "",
            xy=(a["x_to"], a["y_to"]),
            xytext=(a["x_from"], a["y_from"]),
            arrowprops={"arrowstyle": "-|>", "color": "0.25", "linewidth": 0.8, "alpha": 0.7},
            zorder=4,
        )
    top.set_ylabel(f"objective ({'maximised' if maximize else 'minimised'})")
    top.set_title(
        f"PBT lineage: {len(colours)} members, {len(arrows)} exploits "
        "(arrow: copied member → member that copied it)",
        fontsize="medium",
    )
    top.grid(True, color="0.9", linewidth=0.6)
    _member_legend(top, colours, "member")
    for ax, name in zip(axes[1:], names, strict=True):
        _draw_schedule(ax, rows, name, colours)
    if names:
        axes[1].set_title("Hyperparameter schedules", fontsize="medium")
    _step_axis(axes[-1])
    return save_figure(fig, path)


def plot_acceptance(ratios: pd.DataFrame, path: str) -> str:
    """Bar chart of :func:`acceptance_ratios`: the accepted fraction per adjacent ladder pair,
    cold to hot, each bar annotated with accepted / proposed."""
    fig = new_figure(max(5.0, 1.3 * len(ratios) + 2.0), 4.0)
    ax = fig.add_subplot()
    positions = ratios["position"].to_numpy(int)
    ax.bar(positions, ratios["ratio"].to_numpy(float), color="tab:blue", width=0.6)
    for x, r, a, n in zip(
        positions, ratios["ratio"], ratios["accepted"], ratios["proposals"], strict=True
    ):
        ax.annotate(
            f"{a}/{n}",
            (float(x), float(r)),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            fontsize="small",
        )
    if not len(ratios):
        ax.text(0.5, 0.5, "no swap proposed", transform=ax.transAxes, ha="center")
    ax.set_xticks(positions, ratios["label"].tolist(), fontsize="small")
    ax.set_xlim(-0.6, max(len(ratios) - 0.4, 0.6))
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("fraction of swaps accepted")
    ax.set_xlabel("adjacent pair on the ladder (cold ↔ hot), coldest first")
    ax.set_title(
        "Replica exchange acceptance (accepted/proposed above each bar)", fontsize="medium"
    )
    return save_figure(fig, path)


def plot_replicas(
    df: pd.DataFrame, names: Sequence[str], path: str, exchanges: pd.DataFrame | None = None
) -> str:
    """Each replica's ladder values over steps, a panel per hyperparameter of ``names``; the
    steps of accepted swaps are dotted lines.

    Raises ValueError when the results are not those of a population run.
    """
    rows = segments(df)
    colours = member_colours(sorted(rows["member"].unique().tolist()))
    names = list(names)
    fig = new_figure(8.5, 1.0 + 2.2 * max(len(names), 1))
    axes = fig.subplots(max(len(names), 1), 1, sharex=True, squeeze=False)[:, 0]
    accepted: list[int] = []
    if exchanges is not None and len(exchanges):
        parsed = parse_exchanges(exchanges)
        accepted = sorted(set(parsed.loc[parsed["accepted"], "step"].tolist()))
    for ax, name in zip(axes, names, strict=False):
        for step in accepted:
            ax.axvline(step, color="0.6", linestyle=":", linewidth=0.9)
        _draw_schedule(ax, rows, name, colours)
    if not names:
        axes[0].text(0.5, 0.5, "no ladder hyperparameter", transform=axes[0].transAxes)
    axes[0].set_title(
        "Ladder values of each replica over steps (dotted: accepted swaps)", fontsize="medium"
    )
    _member_legend(axes[0], colours, "replica")
    _step_axis(axes[-1])
    return save_figure(fig, path)
