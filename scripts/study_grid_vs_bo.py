"""Grid search against Bayesian searches on the trigger network's topology (problems.hgcal_pid).

The FPGA-trigger study trained a 294-point grid of three-layer topologies and found that a
Gaussian-process Bayesian search reached the grid's precision with about a third of the
evaluations. This script repeats the comparison on ``problems.hgcal_pid.topology`` (three
hidden layers of 4 to 128 neurons, at most 256 in all):

1. The grid, once, with hpsearch's own grid search and real training::

       python -m hpsearch.grid --problem problems.hgcal_pid.topology --grid-points 6 \\
           --order declared --max-evals 1000 --workers 2 --output study/grid

   (the script runs this command itself, with ``--resume`` when ``--grid`` holds a grid
   begun before; a complete grid ends at once.)
2. Every search method, 10 seeds each, asks one configuration at a time (the study's
   sequential setting) over the same integer widths, for 100 evaluations (half the grid; the
   study's Bayesian search had 100). A configuration is scored with the
   trained value of the nearest grid point within the budget (log distance): training every
   topology the searches propose would take days on a few cores, and the grid's values are
   what the study compares against. Every proposal counts as an evaluation.
3. For each method, the evaluations needed to reach the grid's best value, and to come
   within each of ``--tolerances`` of it (default 0.0003, the margin by which the study's
   Bayesian search ended below its grid and called it the same precision, and 0.003, about
   the spread of one network's value over training seeds). A table (median [quartiles],
   seeds that got there) and a plot of the median best-so-far.

Each finished search is appended to ``<out>.jsonl``; a rerun with the same ``--out`` reuses
them and runs only the missing ones.

    python scripts/study_grid_vs_bo.py --grid study/grid --out study/table.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import os
import platform
import subprocess
import sys
import warnings
from collections.abc import Callable
from multiprocessing import Pool

import numpy as np
import pandas as pd
import threadpoolctl

from hpsearch.results import load_results
from hpsearch.search.base import Optimizer

GRID_COMMAND = [
    "-m",
    "hpsearch.grid",
    "--problem",
    "problems.hgcal_pid.topology",
    "--grid-points",
    "6",
    "--order",
    "declared",
    "--max-evals",
    "1000",
    "--seed",
    "0",
]
WIDTHS = ("units_0", "units_1", "units_2")


def _ambs(surrogate: str, acq: str = "LCB") -> Callable[[int], Optimizer]:
    def make(seed: int) -> Optimizer:
        from hpsearch.search.ambs import AMBS
        from problems.hgcal_pid.topology import problem

        return AMBS(problem, surrogate=surrogate, acq=acq, seed=seed)

    return make


def _optuna(sampler: str) -> Callable[[int], Optimizer]:
    def make(seed: int) -> Optimizer:
        import optuna

        from hpsearch.search.optuna_search import OptunaSearch
        from problems.hgcal_pid.topology import problem

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return OptunaSearch(problem, sampler=sampler, seed=seed)

    return make


def _random(seed: int) -> Optimizer:
    from hpsearch.search.random import RandomSearch
    from problems.hgcal_pid.topology import problem

    return RandomSearch(problem, seed=seed)


METHODS: dict[str, Callable[[int], Optimizer]] = {
    "AMBS-GP LCB": _ambs("GP", "LCB"),
    "AMBS-GP EI": _ambs("GP", "EI"),
    "AMBS-GP PI": _ambs("GP", "PI"),
    "AMBS-RF": _ambs("RF"),
    "TPE": _optuna("tpe"),
    "CMA-ES": _optuna("cmaes"),
    "random": _random,
}


class GridTable:
    """The grid's trained values, looked up at the nearest trained point (log distance); the
    grid holds only points within the budget."""

    def __init__(self, results: pd.DataFrame) -> None:
        done = results[results["status"] == "DONE"]
        self.points = done[[f"p:{w}" for w in WIDTHS]].to_numpy(dtype=float)
        self.values = done["objective"].to_numpy(dtype=float)
        self.log_points = np.log(self.points)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def best(self) -> float:
        return float(self.values.max())

    def value(self, config: dict) -> float:
        """The trained value of the grid point nearest ``config`` (log distance)."""
        x = np.log([float(config[w]) for w in WIDTHS])
        return float(self.values[np.argmin(((self.log_points - x) ** 2).sum(axis=1))])


def run_grid(directory: str, workers: int) -> None:
    """Train the grid into ``directory``; a grid trained before resumes, and ends at once
    when every point is done."""
    command = [sys.executable, *GRID_COMMAND, "--workers", str(workers), "--output", directory]
    if os.path.exists(os.path.join(directory, "results.csv")):
        command.append("--resume")
    print("training the grid:", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)


def search(job: tuple[str, int, str, int]) -> tuple[str, int, list[float]]:
    """One sequential search of ``evals`` evaluations: the value of each, in order."""
    method, seed, grid_dir, evals = job
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    threadpoolctl.threadpool_limits(1)  # one search per process and core
    from problems.hgcal_pid.topology import problem

    table = GridTable(load_results(grid_dir, problem.space))
    optimizer = METHODS[method](seed)
    values: list[float] = []
    while len(values) < evals:
        asked = optimizer.ask(1)
        if not asked:  # nothing new left to propose
            break
        value = table.value(asked[0])
        optimizer.tell(asked, [value])
        values.append(value)
    return method, seed, values


def load_curves(path: str, evals: int) -> dict[tuple[str, int], list[float]]:
    """The searches of ``evals`` evaluations recorded in ``path``: (method, seed) -> values."""
    curves: dict[tuple[str, int], list[float]] = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if len(record["values"]) == evals:
                    curves[record["method"], record["seed"]] = record["values"]
    return curves


def evaluations_to_reach(values: list[float], target: float) -> float:
    """The 1-based count of evaluations after which the best value is >= ``target`` (inf:
    never)."""
    hits = np.flatnonzero(np.maximum.accumulate(values) >= target - 1e-12)
    return float(hits[0] + 1) if len(hits) else math.inf


def _cell(counts: list[float], limit: int) -> str:
    """Median [quartiles] of evaluation counts (a search that never got there counts as more
    than ``limit``) and how many got there."""
    reached = [c for c in counts if math.isfinite(c)]
    # observed counts, the higher one where a quantile falls between two: never a number
    # halfway to a search that did not get there
    q1, median, q3 = np.percentile(np.minimum(counts, limit + 1), [25, 50, 75], method="higher")

    def show(x: float) -> str:
        return f">{limit}" if x > limit else f"{x:.0f}"

    return f"{show(median)} [{show(q1)}, {show(q3)}] ({len(reached)}/{len(counts)})"


def plot(
    curves: dict[str, list[list[float]]], grid_best: float, n_grid: int, band: float, path: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for method, runs in curves.items():
        best = np.array([np.maximum.accumulate(r) for r in runs])
        x = np.arange(1, best.shape[1] + 1)
        ax.plot(x, np.median(best, axis=0), label=method, lw=1.4)
    ax.axhline(grid_best, color="black", ls="--", lw=1, label=f"grid best ({n_grid} evaluations)")
    ax.axhspan(grid_best - band, grid_best, color="grey", alpha=0.12, label=f"within {band}")
    ax.axvline(n_grid / 3, color="grey", ls=":", lw=1, label="a third of the grid")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best 1 - pion misidentification (median of seeds)")
    ax.set_ylim(grid_best - 0.01, grid_best + 0.001)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", default="study/grid", help="output directory of the grid")
    parser.add_argument("--workers", type=int, default=2, help="workers training the grid")
    parser.add_argument(
        "--as-is", action="store_true", help="use the grid directory as it is, train nothing"
    )
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument(
        "--evals",
        type=int,
        default=100,
        help="evaluations per search (default 100, half the grid: the study's budget)",
    )
    parser.add_argument(
        "--tolerances", default="0.0003,0.003", help="comma-separated margins below the best"
    )
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default="study/table.md", help="markdown table to write")
    parser.add_argument("--plot", default="docs/img/study_grid_vs_bo.png")
    args = parser.parse_args()
    methods = args.methods.split(",")
    for method in methods:
        if method not in METHODS:
            parser.error(f"unknown method {method!r}, expected some of {', '.join(METHODS)}")

    from problems.hgcal_pid.topology import problem

    if not args.as_is:
        run_grid(args.grid, args.workers)
    table = GridTable(load_results(args.grid, problem.space))
    evals = args.evals
    tolerances = [0.0, *map(float, args.tolerances.split(","))]
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    records = f"{os.path.splitext(args.out)[0]}.jsonl"
    curves = load_curves(records, evals)
    jobs = [
        (m, s, args.grid, evals) for m in methods for s in range(args.seeds) if (m, s) not in curves
    ]
    with Pool(args.processes) as pool, open(records, "a") as log:
        for method, seed, values in pool.imap_unordered(search, jobs, chunksize=1):
            curves[method, seed] = values
            log.write(json.dumps({"method": method, "seed": seed, "values": values}) + "\n")
            log.flush()

    best, n = table.best, len(table)
    third_of_grid = math.ceil(n / 3)
    reach = [int((table.values >= best - t - 1e-12).sum()) for t in tolerances]
    lines = [
        f"Grid: {n} topologies trained, best {best:.4f} (grid points within "
        + ", ".join(f"{t}: {r}" for t, r in zip(tolerances, reach, strict=True))
        + f"). A third of the grid is {third_of_grid} evaluations. "
        f"Searches: {args.seeds} seeds, {evals} sequential evaluations each.",
        "",
        "| method | evaluations to the grid's best | "
        + " | ".join(f"to within {t}" for t in tolerances[1:])
        + f" | best after {third_of_grid} |",
        "|---" * (len(tolerances) + 2) + "|",
        "| grid, shuffled order (expected) | "
        + " | ".join(f"{(n + 1) / (r + 1):.0f}" for r in reach)
        + " | |",
    ]
    for method in methods:
        runs = [curves[method, s] for s in range(args.seeds)]
        cells = [
            _cell([evaluations_to_reach(r, best - t) for r in runs], evals) for t in tolerances
        ]
        third = [max(r[:third_of_grid]) for r in runs]
        q1, median, q3 = np.percentile(third, [25, 50, 75])
        lines.append(f"| {method} | {' | '.join(cells)} | {median:.4f} [{q1:.4f}, {q3:.4f}] |")
    lines += [
        "",
        f"Median [quartiles] over seeds (seeds that got there within {evals}). "
        f"{datetime.date.today()}, {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}.",
    ]
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.plot:
        by_method = {m: [curves[m, s] for s in range(args.seeds)] for m in methods}
        plot(by_method, best, n, max(tolerances), args.plot)
        print("plot:", args.plot)


if __name__ == "__main__":
    main()
