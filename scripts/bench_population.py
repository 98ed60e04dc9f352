"""Population methods against full trainings at equal compute, and what they cost the master.

``quality``: on one problem, PBT, replica exchange, replica exchange with its swaps switched
off (``--burn-in`` = ``--max-steps``: the same replicas, segments and checkpoints, no
exchange), AMBS and random search, each for ``--seeds`` seeds, at the same total training
steps: a population of P members trains S steps each, AMBS and random search train P
networks of S steps from scratch (the problem's step budget is set to S). Every run is the
real search loop and the real run function on simulated workers (``python -m
hpsearch.simulate``, one process per run, P workers, fixed durations, the master's time
counted as zero), so the result depends on the methods, not on this machine's load. One line
per run goes to ``<out>/quality.csv``; run two of these processes side by side with
different ``--methods`` on two cores.

``schedule``: on problems.lr_schedule, every learning rate of a grid trained at a fixed rate,
and PBT (``--seeds`` seeds): the final losses, and the learning rate of PBT's best member over
the steps (``<out>/schedule.csv``, ``<out>/schedule_pbt_<seed>.csv``).

``cost``: decisions per second of the master (PBT and replica exchange on 1,024 simulated
workers, master time measured) and utilisation of 8 real workers under ``mpirun``
(``<out>/cost.csv``).

``plot``: figures under docs/img/ and markdown tables from the CSV files.

    python scripts/bench_population.py quality --problem problems.lr_schedule --out results/pop
    python scripts/bench_population.py schedule --out results/pop
    python scripts/bench_population.py cost --out results/pop
    python scripts/bench_population.py plot --out results/pop
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from bench_mpi import run_command

from hpsearch.report import utilisation
from hpsearch.results import load_results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMG = os.path.join(ROOT, "docs", "img")
METHODS = ["pbt", "rex", "rex-noswap", "ambs", "rs"]
#: What each problem needs: the environment variable of its step budget, its ladder for
#: replica exchange and whether its objective is maximised.
PROBLEMS = {
    "problems.lr_schedule": {
        "steps_env": "HPSEARCH_LRS_STEPS",
        "ladder": "learning_rate=0.01:1:log",
        "maximize": False,
    },
    "problems.digits": {
        "steps_env": "HPSEARCH_DIGITS_EPOCHS",
        "ladder": "learning_rate=0.0003:0.03:log",
        "maximize": True,
    },
}


def append_row(path: str, row: dict) -> None:
    fresh = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if fresh:
            writer.writeheader()
        writer.writerow(row)


def simulate_command(method: str, args: argparse.Namespace, seed: int, output: str) -> list[str]:
    """``python -m hpsearch.simulate`` for one run of ``method`` at the benchmark's budget."""
    p, s, interval = args.population, args.max_steps, args.interval
    name = "rex" if method.startswith("rex") else method
    command = [sys.executable, "-m", "hpsearch.simulate", name, "--problem", args.problem]
    command += ["--workers", str(p), "--duration", "fixed:60", "--master-time", "zero"]
    command += ["--seed", str(seed), "--output", output]
    if method == "pbt":
        command += ["--population", str(p), "--interval", str(interval), "--max-steps", str(s)]
    elif name == "rex":
        burn_in = s if method == "rex-noswap" else interval
        command += ["--replicas", str(p), "--ladder", PROBLEMS[args.problem]["ladder"]]
        command += ["--exchange-every", str(interval), "--burn-in", str(burn_in)]
        command += ["--max-steps", str(s), "--coefficient", str(args.coefficient)]
    else:  # full trainings of the problem's step budget, as many as the population trains
        command += ["--max-evals", str(p)]
    return command


def progress(df: pd.DataFrame, population: bool, maximize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Steps trained so far and the best network's value after each finished row.

    A population's best network is the best of its members' latest values (a member's earlier,
    better value describes weights it no longer has); a plain search's is the best of its
    finished trainings.
    """
    df = df[df["status"] == "DONE"].sort_values("t_end")
    trained = (df["step_end"] - df["step_start"].fillna(0)).to_numpy(dtype=float)
    sign = -1.0 if maximize else 1.0
    best: list[float] = []
    if population:
        latest: dict[int, float] = {}
        for member, value in zip(df["member"], df["objective"], strict=True):
            latest[int(member)] = sign * float(value)
            best.append(sign * min(latest.values()))
    else:
        best = list(sign * np.minimum.accumulate(sign * df["objective"].to_numpy(dtype=float)))
    return np.cumsum(trained), np.asarray(best)


def run_quality(args: argparse.Namespace) -> None:
    spec = PROBLEMS[args.problem]
    env = {**os.environ, spec["steps_env"]: str(args.max_steps), "PYTHONPATH": ROOT}
    summary = os.path.join(args.out, "quality.csv")
    for seed in range(args.seeds):
        for method in args.methods.split(","):
            output = os.path.join(args.out, args.problem, method, str(seed))
            shutil.rmtree(output, ignore_errors=True)
            t0 = time.time()
            command = simulate_command(method, args, seed, output)
            subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
            df = load_results(output)
            steps, best = progress(df, method in ("pbt", "rex", "rex-noswap"), spec["maximize"])
            row = {
                "problem": args.problem,
                "method": method,
                "seed": seed,
                "population": args.population,
                "max_steps": args.max_steps,
                "steps_trained": int(steps[-1]),
                "jobs": len(df),
                # PBT trains more than the budget when members copy checkpoints from behind
                "at_budget": float(best[steps <= args.population * args.max_steps][-1]),
                "final": float(best[-1]),
                "real_s": round(time.time() - t0, 1),
            }
            append_row(summary, row)
            print(json.dumps(row), flush=True)


def member_schedule(df: pd.DataFrame, job_id: int, name: str) -> pd.DataFrame:
    """The segments that made the network of job ``job_id``, oldest first, with their value
    of hyperparameter ``name``: follow the parents back to a job without one."""
    rows = df.set_index("job_id")
    chain = []
    while True:
        row = rows.loc[job_id]
        chain.append((int(row["step_start"]), int(row["step_end"]), float(row[f"p:{name}"])))
        if pd.isna(row["parent"]):
            break
        job_id = int(row["parent"])
    return pd.DataFrame(chain[::-1], columns=["step_start", "step_end", name])


def run_schedule(args: argparse.Namespace) -> None:
    sys.path.insert(0, ROOT)
    os.environ["HPSEARCH_LRS_STEPS"] = str(args.max_steps)
    from problems.lr_schedule import run

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "schedule.csv")
    if os.path.exists(path):
        os.remove(path)
    for lr in np.geomspace(args.lr_low, args.lr_high, args.grid):
        loss = run({"learning_rate": float(lr)})["objective"]
        append_row(path, {"run": "fixed", "learning_rate": float(lr), "seed": "", "loss": loss})
    quality = argparse.Namespace(**{**vars(args), "problem": "problems.lr_schedule"})
    env = {**os.environ, "PYTHONPATH": ROOT}
    for seed in range(args.seeds):
        output = os.path.join(args.out, "schedule-pbt", str(seed))
        shutil.rmtree(output, ignore_errors=True)
        command = simulate_command("pbt", quality, seed, output)
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
        df = load_results(output)
        latest = df[df["status"] == "DONE"].sort_values("t_end").groupby("member").tail(1)
        best = latest.loc[latest["objective"].idxmin()]
        chain = member_schedule(df, int(best["job_id"]), "learning_rate")
        chain.to_csv(os.path.join(args.out, f"schedule_pbt_{seed}.csv"), index=False)
        row = {"run": "pbt", "learning_rate": "", "seed": seed, "loss": float(best["objective"])}
        append_row(path, row)
        print(json.dumps(row), flush=True)


def run_cost(args: argparse.Namespace) -> None:
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "cost.csv")
    env = {**os.environ, "PYTHONPATH": ROOT, "HPSEARCH_STEPPER_SLEEP": "0"}
    stepper = os.path.join(ROOT, "tests", "problem_files", "stepper.py")
    workers = args.simulated
    for method in ("pbt", "rex"):
        output = os.path.join(args.out, "cost", f"{method}-{workers}")
        shutil.rmtree(output, ignore_errors=True)
        command = [sys.executable, "-m", "hpsearch.simulate", method, "--problem", stepper]
        command += ["--workers", str(workers), "--duration", "lognormal:60,0.3"]
        command += ["--master-time", "measured", "--output", output, "--seed", "0"]
        command += ["--max-steps", "12"]
        t0 = time.time()
        if method == "pbt":
            command += ["--population", str(workers), "--interval", "2"]
        else:
            command += ["--replicas", str(workers), "--ladder", "rate=0.1:1:log"]
            command += ["--exchange-every", "2"]
        proc = subprocess.run(
            command, cwd=ROOT, env=env, check=True, capture_output=True, text=True
        )
        df = load_results(output)
        master = float(proc.stdout.split("master ")[1].split(" s")[0])
        row = {
            "method": method,
            "workers": workers,
            "kind": "simulated",
            "segments": len(df),
            "master_s": master,
            "decisions_per_s": round(len(df) / master) if master > 0 else math.inf,
            "utilisation": round(utilisation(df, workers), 4),
            "steady_utilisation": round(steady_utilisation(df, workers), 4),
            "wall_s": round(time.time() - t0, 1),
        }
        append_row(path, row)
        print(json.dumps(row), flush=True)
    mpirun = os.path.join(os.path.dirname(sys.executable), "mpirun")
    env["HPSEARCH_STEPPER_SLEEP"] = str(args.step_seconds)
    for method in ("pbt", "rex"):
        output = os.path.join(args.out, "cost", f"{method}-real-8")
        shutil.rmtree(output, ignore_errors=True)
        command = [mpirun, "-n", "9", sys.executable, "-m", f"hpsearch.{method}"]
        command += ["--problem", stepper, "--output", output, "--seed", "0", "--max-steps", "20"]
        if method == "pbt":
            command += ["--population", "8", "--interval", "2"]
        else:
            command += ["--replicas", "8", "--ladder", "rate=0.1:1:log", "--exchange-every", "2"]
        t0 = time.time()
        run_command(command, ROOT, env, timeout=600)
        df = load_results(output)
        row = {
            "method": method,
            "workers": 8,
            "kind": "mpirun",
            "segments": len(df),
            "master_s": "",
            "decisions_per_s": "",
            "utilisation": round(utilisation(df, 8), 4),
            "steady_utilisation": round(steady_utilisation(df, 8), 4),
            "wall_s": round(time.time() - t0, 1),
        }
        append_row(path, row)
        print(json.dumps(row), flush=True)


def steady_utilisation(df: pd.DataFrame, workers: int) -> float:
    """Busy fraction of ``workers`` from the first start until the first member has trained
    all its steps: after that the population shrinks below the workers, which no master can
    help."""
    first_done = df.groupby("member")["t_end"].max().min()
    start = df["t_start"].min()
    busy = (df["t_end"].clip(upper=first_done) - df["t_start"]).clip(lower=0).sum()
    return float(busy / (workers * (first_done - start)))


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` as a markdown table, empty cells for missing values."""
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    for row in frame.fillna("").itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def _quartiles(values: Sequence[float]) -> str:
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return f"{med:.4g} [{q1:.4g}, {q3:.4g}]"


def plot_quality(out: str, problem: str, maximize: bool) -> tuple[str, list[str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = pd.read_csv(os.path.join(out, "quality.csv"))
    summary = summary[summary["problem"] == problem]
    fig, ax = plt.subplots(figsize=(7, 4))
    lines = [
        "| method | best network after P x S steps, median [q1, q3] | at the end | steps trained (median) | seeds |",
        "|---|---|---|---|---|",
    ]
    for method in [m for m in METHODS if m in set(summary["method"])]:
        rows = summary[summary["method"] == method]
        budget = int(rows["population"].iloc[0] * rows["max_steps"].iloc[0])
        grid = np.linspace(0, budget, 200)
        curves = []
        for seed in rows["seed"]:
            df = load_results(os.path.join(out, problem, method, str(seed)))
            steps, best = progress(df, method in ("pbt", "rex", "rex-noswap"), maximize)
            index = np.searchsorted(steps, grid, side="right") - 1
            curves.append(np.where(index >= 0, best[np.clip(index, 0, None)], np.nan))
        values = np.array(curves)
        reached = np.isfinite(values).any(axis=0)  # some seed has a value by then
        median = np.full(len(grid), np.nan)
        median[reached] = np.nanmedian(values[:, reached], axis=0)
        ax.plot(grid, median, label=method)
        lines.append(
            f"| {method} | {_quartiles(rows['at_budget'])} | {_quartiles(rows['final'])} "
            f"| {int(rows['steps_trained'].median())} "
            f"| {len(rows)} |"
        )
    ax.set_xlabel("training steps, all networks together")
    ax.set_ylabel("best network's value (median over seeds)")
    if not maximize:
        ax.set_yscale("log")
    ax.set_title(problem)
    ax.legend()
    name = f"population_{problem.split('.')[-1]}.png"
    fig.tight_layout()
    fig.savefig(os.path.join(IMG, name), dpi=110)
    plt.close(fig)
    return name, lines


def plot_schedule(out: str) -> tuple[str, list[str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = pd.read_csv(os.path.join(out, "schedule.csv"))
    fixed = table[table["run"] == "fixed"]
    pbt = table[table["run"] == "pbt"]
    best_fixed = fixed.loc[fixed["loss"].idxmin()]
    fig, ax = plt.subplots(figsize=(7, 4))
    for seed in pbt["seed"]:
        chain = pd.read_csv(os.path.join(out, f"schedule_pbt_{int(seed)}.csv"))
        xs = np.r_[chain["step_start"].to_numpy(), chain["step_end"].iloc[-1]]
        ys = np.r_[chain["learning_rate"].to_numpy(), chain["learning_rate"].iloc[-1]]
        ax.step(xs, ys, where="post", alpha=0.8, label=f"PBT best member, seed {int(seed)}")
    ax.axhline(best_fixed["learning_rate"], color="k", ls="--", label="best fixed rate")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.legend(fontsize=8)
    fig.tight_layout()
    name = "population_schedule.png"
    fig.savefig(os.path.join(IMG, name), dpi=110)
    plt.close(fig)
    lines = [
        "| run | final loss |",
        "|---|---|",
        *[f"| fixed rate {r.learning_rate:.3g} | {r.loss:.4g} |" for r in fixed.itertuples()],
        f"| PBT, median [q1, q3] over {len(pbt)} seeds | {_quartiles(pbt['loss'])} |",
    ]
    return name, lines


def run_plot(args: argparse.Namespace) -> None:
    os.makedirs(IMG, exist_ok=True)
    if os.path.exists(os.path.join(args.out, "quality.csv")):
        problems = pd.read_csv(os.path.join(args.out, "quality.csv"))["problem"].unique()
        for problem in problems:
            name, lines = plot_quality(args.out, problem, PROBLEMS[problem]["maximize"])
            print(f"\n{problem}: docs/img/{name}\n" + "\n".join(lines))
    if os.path.exists(os.path.join(args.out, "schedule.csv")):
        name, lines = plot_schedule(args.out)
        print(f"\nschedule: docs/img/{name}\n" + "\n".join(lines))
    if os.path.exists(os.path.join(args.out, "cost.csv")):
        print("\n" + markdown_table(pd.read_csv(os.path.join(args.out, "cost.csv"))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    quality = sub.add_parser("quality")
    quality.add_argument("--problem", choices=sorted(PROBLEMS), default="problems.lr_schedule")
    quality.add_argument("--methods", default=",".join(METHODS))
    schedule = sub.add_parser("schedule")
    schedule.add_argument("--grid", type=int, default=9, help="fixed learning rates")
    schedule.add_argument("--lr-low", type=float, default=0.01)
    schedule.add_argument("--lr-high", type=float, default=1.0)
    for p in (quality, schedule):
        p.add_argument("--population", type=int, default=8)
        p.add_argument("--max-steps", type=int, default=40)
        p.add_argument("--interval", type=int, default=4)
        p.add_argument("--coefficient", type=float, default=1.0)
        p.add_argument("--seeds", type=int, default=5)
    cost = sub.add_parser("cost")
    cost.add_argument("--simulated", type=int, default=1024)
    cost.add_argument("--step-seconds", type=float, default=0.25)
    plot = sub.add_parser("plot")
    for p in (quality, schedule, cost, plot):
        p.add_argument("--out", default="results/population")
    args = parser.parse_args()
    {"quality": run_quality, "schedule": run_schedule, "cost": run_cost, "plot": run_plot}[
        args.command
    ](args)


if __name__ == "__main__":
    main()
