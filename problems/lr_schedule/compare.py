"""Fixed learning rates against a decaying schedule, and against searches already run.

``python -m problems.lr_schedule.compare [OUTPUT ...]`` prints the loss after STEPS steps
for a grid of fixed learning rates, for the hand-made schedule SCHEDULE, and, for each
search output folder given (population-based training, replica exchange), the best network
that trained all the steps, with the learning rates it trained with (followed back through
the ``parent`` column of results.csv).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hpsearch import load_results
from problems.lr_schedule.model import STEPS, THETA_0, loss, sgd_step

#: The hand-made schedule: (first step, learning rate) pairs, a step decay by 5 every 10 steps.
SCHEDULE = [(1, 0.5), (11, 0.1), (21, 0.02), (31, 0.004)]
GRID = np.logspace(-3, 0, 31)


def train(learning_rates: Sequence[float]) -> float:
    """The loss after training from the start with ``learning_rates[i]`` at step ``i + 1``."""
    theta = THETA_0.copy()
    for i, lr in enumerate(learning_rates):
        theta = sgd_step(theta, lr, i + 1)
    return loss(theta)


def per_step(schedule: Sequence[tuple[int, float]], steps: int = STEPS) -> list[float]:
    """The learning rate of each step 1..steps of a schedule of (first step, rate) pairs."""
    return [next(lr for first, lr in reversed(schedule) if first <= s) for s in range(1, steps + 1)]


def segments(learning_rates: Sequence[float]) -> list[tuple[int, float]]:
    """(first step, rate) pairs where the rate changes."""
    out: list[tuple[int, float]] = []
    for s, lr in enumerate(learning_rates, start=1):
        if not out or not math.isclose(out[-1][1], lr):
            out.append((s, lr))
    return out


def best_trained(output: str) -> tuple[float, list[float]] | None:
    """The lowest loss among a search's jobs that ended at its last step, and the learning
    rate of each step that network trained with (None when the search trained no steps)."""
    df = load_results(output)
    if "step_end" not in df:
        return None
    done = df[(df["status"] == "DONE") & df["step_end"].notna()]
    if done.empty:
        return None
    jobs: dict[int, dict] = {int(r["job_id"]): r for r in done.to_dict("records")}
    end = max(r["step_end"] for r in jobs.values())
    row = min((r for r in jobs.values() if r["step_end"] == end), key=lambda r: r["objective"])
    objective = float(row["objective"])
    lrs: dict[int, float] = {}
    while True:
        for s in range(int(row["step_start"]) + 1, int(row["step_end"]) + 1):
            lrs.setdefault(s, float(row["p:learning_rate"]))
        parent = row.get("parent", math.nan)
        if pd.isna(parent):
            break
        row = jobs[int(parent)]
    return objective, [lrs[s] for s in sorted(lrs)]


def describe(schedule: Sequence[tuple[int, float]]) -> str:
    return ", ".join(f"{lr:.3g} from step {first}" for first, lr in schedule)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outputs", nargs="*", help="search output folders to compare")
    args = parser.parse_args(argv)
    fixed = [train([lr] * STEPS) for lr in GRID]
    print(f"loss after {STEPS} steps (start: {loss(THETA_0):.3g})")
    for lr, value in zip(GRID, fixed, strict=True):
        print(f"  fixed {lr:8.4f}: {value:.3g}")
    i = int(np.argmin(fixed))
    best = fixed[i]
    print(f"best fixed learning rate {GRID[i]:.3g}: {best:.3g}")
    hand = train(per_step(SCHEDULE))
    print(f"schedule ({describe(SCHEDULE)}): {hand:.3g}, best fixed / this {best / hand:.1f}")
    for output in args.outputs:
        found = best_trained(output)
        if found is None:
            print(f"{output}: no trained steps to compare")
            continue
        value, lrs = found
        print(f"{output}: best {value:.3g}, best fixed / this {best / value:.1f}")
        print(f"  trained with {describe(segments(lrs))}")


if __name__ == "__main__":
    main()
