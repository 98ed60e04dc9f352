"""Early stopping: the best value found for the epochs spent, and worker utilisation.

``quality``: on one problem, random search and AMBS without stopping, with ``asha`` and with
``median``, each for ``--seeds`` seeds, at equal compute: ``--workers`` simulated workers for
the same virtual time, a full training of ``--max-steps`` steps taking 60 virtual seconds
spread evenly over its steps (a stopped trial frees its worker early). Every run is the real
search loop, stopper and run function (``python -m hpsearch.simulate``, master time counted
as zero). One line per run goes to ``<out>/quality.csv``: the best value of a trial trained
to its end, and the steps spent.

``utilisation``: ``mpirun -n 9`` random search with ASHA on tests/problem_files/curves.py,
whose steps sleep, for a fixed number of trials: utilisation and hand-out latency from
results.csv (``<out>/utilisation.csv``).

``plot``: markdown tables from the CSV files.

    python scripts/bench_stopping.py quality --problem problems.digits --out results/stop
    python scripts/bench_stopping.py utilisation --out results/stop   # alone on the machine
    python scripts/bench_stopping.py plot --out results/stop
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
from bench_mpi import run_command
from bench_population import append_row, markdown_table

from hpsearch.report import utilisation
from hpsearch.results import load_results, stopped_mask

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ["rs", "rs-asha", "rs-median", "ambs", "ambs-asha", "ambs-median"]
#: The environment variable of each problem's step budget, and whether it is maximised.
PROBLEMS = {
    "problems.digits": ("HPSEARCH_DIGITS_EPOCHS", True),
    "problems.lr_schedule": ("HPSEARCH_LRS_STEPS", False),
}


def best_final(df: pd.DataFrame, maximize: bool) -> float:
    """The best objective of a trial that trained to its end."""
    full = df[(df["status"] == "DONE") & ~stopped_mask(df)]
    values = full["objective"].astype(float)
    return float(values.max() if maximize else values.min())


def run_quality(args: argparse.Namespace) -> None:
    steps_env, maximize = PROBLEMS[args.problem]
    env = {**os.environ, steps_env: str(args.max_steps), "PYTHONPATH": ROOT}
    # the virtual time of --budget full trainings on --workers workers
    timeout = args.budget * 60.0 / args.workers
    for seed in range(args.seeds):
        for variant in args.variants.split(","):
            method, _, stopper = variant.partition("-")
            output = os.path.join(args.out, args.problem, variant, str(seed))
            shutil.rmtree(output, ignore_errors=True)
            command = [sys.executable, "-m", "hpsearch.simulate", method]
            command += ["--problem", args.problem, "--workers", str(args.workers)]
            command += ["--duration", "fixed:60", "--master-time", "zero", "--seed", str(seed)]
            command += ["--timeout", str(timeout), "--grace", "0", "--max-evals", "100000"]
            command += ["--max-steps", str(args.max_steps), "--output", output]
            if stopper:
                command += ["--stopper", stopper, "--min-steps", str(args.min_steps)]
            t0 = time.time()
            subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
            df = load_results(output)
            done = df[df["status"] == "DONE"]
            row = {
                "problem": args.problem,
                "variant": variant,
                "seed": seed,
                "workers": args.workers,
                "budget_trainings": args.budget,
                "max_steps": args.max_steps,
                "trials": len(done),
                "trained_to_end": int((~stopped_mask(done)).sum()),
                "steps": int(df["step_end"].fillna(0).sum()),
                "best": best_final(df, maximize),
                "real_s": round(time.time() - t0, 1),
            }
            append_row(os.path.join(args.out, "quality.csv"), row)
            print(json.dumps(row), flush=True)


def run_utilisation(args: argparse.Namespace) -> None:
    curves = os.path.join(ROOT, "tests", "problem_files", "curves.py")
    mpirun = os.path.join(os.path.dirname(sys.executable), "mpirun")
    env = {**os.environ, "PYTHONPATH": ROOT, "HPSEARCH_CURVES_SLEEP": str(args.step_seconds)}
    for stopper in ("none", "asha"):
        output = os.path.join(args.out, "utilisation", stopper)
        shutil.rmtree(output, ignore_errors=True)
        command = [mpirun, "-n", "9", sys.executable, "-m", "hpsearch.rs", "--problem", curves]
        command += ["--max-evals", str(args.trials), "--max-steps", "9", "--stopper", stopper]
        command += ["--output", output, "--seed", "0"]
        t0 = time.time()
        run_command(command, ROOT, env, timeout=900)
        df = load_results(output)
        latency = df["handout_latency"].dropna() * 1000
        row = {
            "stopper": stopper,
            "workers": 8,
            "trials": len(df),
            "stopped": int(df["stopped"].sum()),
            "steps": int(df["step_end"].sum()),
            "utilisation": round(utilisation(df, 8), 4),
            "handout_median_ms": round(float(latency.median()), 2),
            "handout_p99_ms": round(float(np.percentile(latency, 99)), 2),
            "wall_s": round(time.time() - t0, 1),
        }
        append_row(os.path.join(args.out, "utilisation.csv"), row)
        print(json.dumps(row), flush=True)


def steps_to_best(df: pd.DataFrame, maximize: bool, workers: int, max_steps: int) -> float:
    """Steps the workers had trained (all busy, a full training 60 virtual seconds) when a
    trial trained to its end first reached the search's final best value."""
    full = df[(df["status"] == "DONE") & ~stopped_mask(df)].sort_values("t_end")
    best = best_final(df, maximize)
    first = full.loc[np.isclose(full["objective"].astype(float), best), "t_end"].min()
    return float(first) * workers * max_steps / 60.0


def _quartiles(values: pd.Series) -> str:
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return f"{med:.4g} [{q1:.4g}, {q3:.4g}]"


def run_plot(args: argparse.Namespace) -> None:
    path = os.path.join(args.out, "quality.csv")
    if os.path.exists(path):
        summary = pd.read_csv(path)
        for problem, rows in summary.groupby("problem"):
            maximize = PROBLEMS[str(problem)][1]
            print(f"\n{problem}\n")
            print("| variant | best trained to its end, median [q1, q3] | steps when first "
                  "reached, median [q1, q3] | trials | trained to the end | steps | seeds |")  # fmt: skip
            print("|---|---|---|---|---|---|---|")
            for variant in [v for v in VARIANTS if v in set(rows["variant"])]:
                r = rows[rows["variant"] == variant]
                reached = [
                    steps_to_best(
                        load_results(os.path.join(args.out, str(problem), variant, str(x.seed))),
                        maximize,
                        x.workers,
                        x.max_steps,
                    )
                    for x in r.itertuples()
                ]
                print(
                    f"| {variant} | {_quartiles(r['best'])} | {_quartiles(pd.Series(reached))} "
                    f"| {r['trials'].median():.0f} | {r['trained_to_end'].median():.0f} "
                    f"| {r['steps'].median():.0f} | {len(r)} |"
                )
    path = os.path.join(args.out, "utilisation.csv")
    if os.path.exists(path):
        print("\n" + markdown_table(pd.read_csv(path)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    quality = sub.add_parser("quality")
    quality.add_argument("--problem", choices=sorted(PROBLEMS), default="problems.digits")
    quality.add_argument("--variants", default=",".join(VARIANTS))
    quality.add_argument("--workers", type=int, default=8)
    quality.add_argument("--budget", type=int, default=16, help="full trainings of compute")
    quality.add_argument("--max-steps", type=int, default=9)
    quality.add_argument("--min-steps", type=int, default=1)
    quality.add_argument("--seeds", type=int, default=5)
    util = sub.add_parser("utilisation")
    util.add_argument("--trials", type=int, default=96)
    util.add_argument("--step-seconds", type=float, default=0.1)
    plot = sub.add_parser("plot")
    for p in (quality, util, plot):
        p.add_argument("--out", default="results/stopping")
    args = parser.parse_args()
    {"quality": run_quality, "utilisation": run_utilisation, "plot": run_plot}[args.command](args)


if __name__ == "__main__":
    main()
