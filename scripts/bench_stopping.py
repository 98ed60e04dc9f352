"""Early stopping: the best value found for the epochs spent, and worker utilisation.

``quality``: on one problem, random search and AMBS without stopping, with ``asha`` and with
``median``, each for ``--seeds`` seeds, at equal compute: ``--workers`` simulated workers for
the same virtual time, a full training of ``--max-steps`` steps taking 60 virtual seconds
spread evenly over its steps (a stopped trial frees its worker early). Every run is the real
search loop, stopper and run function (``python -m hpsearch.simulate``, master time counted
as zero). Variants ending in ``-last`` tell AMBS a stopped trial's last value as if final
(``--stopped-as last``) instead of no better than the worst final value. ``topk`` is the
baseline without a stopper: half the compute trains random configurations for one step each
(a simulated random search), the other half trains the best of them to ``--max-steps``, a
worker's worth at a time. One line per run goes to ``<out>/quality.csv``: the best value of a
trial trained to its end, and the steps spent.

``utilisation``: ``mpirun -n 9`` random search with ASHA on tests/problem_files/curves.py,
whose steps sleep, for a fixed number of trials: utilisation and hand-out latency from
results.csv (``<out>/utilisation.csv``).

``plot``: markdown tables from the CSV files, with the best value reached within a third of
the compute.

    python scripts/bench_stopping.py quality --problem problems.hgcal_pid --out results/stop
    python scripts/bench_stopping.py utilisation --out results/stop   # alone on the machine
    python scripts/bench_stopping.py plot --out results/stop
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import recorded_curves
from bench_mpi import run_command
from bench_population import append_row, markdown_table

from hpsearch.evaluation import Job, evaluate
from hpsearch.problem import load_problem
from hpsearch.report import utilisation
from hpsearch.results import configs_from_frame, load_results, stopped_mask

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = [
    "rs",
    "rs-asha",
    "rs-median",
    "ambs",
    "ambs-asha",
    "ambs-median",
    "ambs-asha-last",
    "ambs-median-last",
    "topk",
]
#: The environment variable of each problem's default step budget (None: the problem takes
#: trial.max_steps), and whether it is maximised.
PROBLEMS = {
    "problems.digits": ("HPSEARCH_DIGITS_EPOCHS", True),
    "problems.hgcal_pid": (None, True),
    "problems.rnn_forecast": (None, False),
    "problems.lr_schedule": ("HPSEARCH_LRS_STEPS", False),
}
#: Virtual seconds of a full training.
FULL_TRAINING = 60.0


def full_trainings(output: str) -> pd.DataFrame:
    """The trials of one run that trained to their end: ``t_end`` (virtual seconds) and
    ``objective``."""
    topk = os.path.join(output, "topk.csv")
    if os.path.exists(topk):
        return pd.read_csv(topk)[["t_end", "objective"]]
    df = load_results(output)
    full = df[(df["status"] == "DONE") & ~stopped_mask(df)]
    return pd.DataFrame({"t_end": full["t_end"], "objective": full["objective"].astype(float)})


def best_final(full: pd.DataFrame, maximize: bool, until: float = math.inf) -> float:
    """The best objective of a trial trained to its end by virtual time ``until`` (NaN: none)."""
    values = full.loc[full["t_end"] <= until, "objective"]
    if values.empty:
        return math.nan
    return float(values.max() if maximize else values.min())


def simulate(args: argparse.Namespace, method: str, seed: int, output: str, *options) -> None:
    """One simulated search of ``method`` on ``args.problem`` into ``output``."""
    steps_env = PROBLEMS[args.problem][0]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.path.join(ROOT, "scripts")])}
    if steps_env:
        env[steps_env] = str(args.max_steps)
    command = [sys.executable, "-m", "hpsearch.simulate", method]
    command += ["--problem", args.problem, "--workers", str(args.workers)]
    if args.recorded:
        env["HPSEARCH_RECORDED_CURVES"] = os.path.abspath(args.recorded)
        command += ["--curves", "recorded_curves:nearest"]
    command += ["--master-time", "zero", "--seed", str(seed), "--grace", "0", "--output", output]
    command += [str(option) for option in options]
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)


def run_topk(args: argparse.Namespace, seed: int, output: str) -> None:
    """The top-k baseline into ``output``: a random search of one-step trainings for half the
    compute, then the best ``k`` trained to ``max_steps`` (``topk.csv``)."""
    screened = args.budget * args.max_steps // 2
    step_seconds = FULL_TRAINING / args.max_steps
    simulate(args, "rs", seed, output, "--duration", f"fixed:{step_seconds}", "--max-steps", 1,
             "--max-evals", screened)  # fmt: skip
    df = load_results(output)
    done = df[df["status"] == "DONE"]
    k = args.budget // 2
    top = done.sort_values("objective", ascending=not PROBLEMS[args.problem][1]).head(k)
    problem = load_problem(args.problem)
    assert problem.run is not None
    start = float(df["t_end"].max())
    rows = []
    for i, (job_id, config) in enumerate(
        zip(top["job_id"], configs_from_frame(top, problem.space), strict=True)
    ):
        if args.recorded:
            os.environ["HPSEARCH_RECORDED_CURVES"] = os.path.abspath(args.recorded)
            objective = recorded_curves.nearest(config, args.max_steps)
        else:
            job = Job(int(job_id), config, max_steps=args.max_steps)
            job.checkpoint_dir = os.path.join(output, "topk", str(job_id))
            objective = evaluate(problem.run, job).objective
        t_end = start + (i // args.workers + 1) * FULL_TRAINING
        rows.append({"job_id": job_id, "t_end": t_end, "objective": objective})
    pd.DataFrame(rows).to_csv(os.path.join(output, "topk.csv"), index=False)


def run_quality(args: argparse.Namespace) -> None:
    maximize = PROBLEMS[args.problem][1]
    # the virtual time of --budget full trainings on --workers workers
    timeout = args.budget * FULL_TRAINING / args.workers
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for variant in args.variants.split(","):
            method, _, stopping = variant.partition("-")
            stopper, _, stopped_as = stopping.partition("-")
            output = os.path.join(args.out, args.problem, variant, str(seed))
            shutil.rmtree(output, ignore_errors=True)
            t0 = time.time()
            if method == "topk":
                run_topk(args, seed, output)
            else:
                options = ["--duration", f"fixed:{FULL_TRAINING}", "--timeout", timeout]
                options += ["--max-evals", 100000, "--max-steps", args.max_steps]
                if stopper:
                    options += ["--stopper", stopper, "--min-steps", args.min_steps]
                    options += ["--stopped-as", stopped_as or "worst"]
                simulate(args, method, seed, output, *options)
            df = load_results(output)
            done = df[df["status"] == "DONE"]
            full = full_trainings(output)
            row = {
                "problem": args.problem,
                "variant": variant,
                "seed": seed,
                "workers": args.workers,
                "budget_trainings": args.budget,
                "max_steps": args.max_steps,
                "trials": len(done),
                "trained_to_end": len(full),
                "steps": int(df["step_end"].fillna(0).sum())
                + (len(full) * args.max_steps if method == "topk" else 0),
                "best": best_final(full, maximize),
                "best_third": best_final(full, maximize, timeout / 3),
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


def steps_to_best(full: pd.DataFrame, maximize: bool, workers: int, max_steps: int) -> float:
    """Steps the workers had trained (all busy) when a trial trained to its end first reached
    the run's final best value."""
    best = best_final(full, maximize)
    first = full.loc[np.isclose(full["objective"], best), "t_end"].min()
    return float(first) * workers * max_steps / FULL_TRAINING


def _quartiles(values: pd.Series, maximize: bool) -> str:
    """Median [q1, q3] of the runs' best values; a run without a trial trained to its end
    counts as the worst and shows as "-"."""
    goodness = (values if maximize else -values).fillna(-np.inf)
    q1, med, q3 = np.percentile(goodness, [25, 50, 75], method="nearest")
    low, high = (q1, q3) if maximize else (q3, q1)

    def text(g: float) -> str:
        return "-" if math.isinf(g) else f"{(g if maximize else -g):.4g}"

    return f"{text(med)} [{text(low)}, {text(high)}]"


def run_plot(args: argparse.Namespace) -> None:
    path = os.path.join(args.out, "quality.csv")
    if os.path.exists(path):
        summary = pd.read_csv(path)
        for problem, rows in summary.groupby("problem"):
            maximize = PROBLEMS[str(problem)][1]
            print(f"\n{problem}\n")
            print("| variant | best, median [q1, q3] | best within a third of the compute | "
                  "steps when first reached | trials | trained to the end | steps | seeds |")  # fmt: skip
            print("|---|---|---|---|---|---|---|---|")
            for variant in [v for v in VARIANTS if v in set(rows["variant"])]:
                r = rows[rows["variant"] == variant]
                reached = [
                    steps_to_best(
                        full_trainings(os.path.join(args.out, str(problem), variant, str(x.seed))),
                        maximize,
                        x.workers,
                        x.max_steps,
                    )
                    for x in r.itertuples()
                ]
                print(
                    f"| {variant} | {_quartiles(r['best'], maximize)} "
                    f"| {_quartiles(r['best_third'], maximize)} "
                    f"| {np.median(reached):.0f} | {r['trials'].median():.0f} "
                    f"| {r['trained_to_end'].median():.0f} | {r['steps'].median():.0f} | {len(r)} |"
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
    quality.add_argument("--first-seed", type=int, default=0)
    quality.add_argument(
        "--recorded",
        default=None,
        help="replay the learning curves of this search directory (scripts/recorded_curves.py) "
        "instead of training",
    )
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
