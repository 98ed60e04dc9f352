"""Search-method scaling: simulated workers up to 4,096, real workers on this machine, and a
check of the simulator against a real run.

``simulated``: AMBS with the pessimistic constant liar (``cl_max``), AMBS with qUCB and random
search on ackley10, each on W simulated workers for a fixed virtual wall-time budget, with
evaluation times drawn from a log-normal of minute scale and the master's ask/tell time measured
for real and added to the clock. One line per run goes to ``<out>/summary.csv``; run several
of these processes side by side with different ``--methods``.

``real``: the same methods under ``mpirun -n N`` (1 master + N-1 workers) on problems.ackley,
whose evaluations sleep, for a fixed wall time.

``check``: one real run on 8 workers (``--runtime process`` or ``mpi``) and its simulation with
the same duration model over the same window (from the first evaluation's start to the last
end, so the launcher's start-up is left out); prints utilisation and evaluation counts.

``plot``: figures under docs/img/ and a markdown table from ``<out>/summary.csv``.

    python scripts/bench_scaling.py simulated --methods ambs-cl_max --out results/scaling
    python scripts/bench_scaling.py check --runtime process --out results/scaling
    python scripts/bench_scaling.py plot --out results/scaling
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import shutil
import subprocess
import sys
import time

import pandas as pd

from hpsearch.report import load_runs, plot_best, utilisation
from hpsearch.results import load_results
from hpsearch.search.base import Optimizer
from hpsearch.search.random import RandomSearch
from hpsearch.simulate import simulate
from hpsearch.testfunctions import make_problem

METHODS = ("ambs-cl_max", "ambs-qUCB", "rs")
SUMMARY_COLUMNS = [
    "kind",
    "method",
    "workers",
    "duration",
    "budget_s",
    "n_evals",
    "best",
    "utilisation",
    "master_s",
    "master_busy",
    "n_asks",
    "real_s",
    "loadavg",
]


def make_optimizer(method: str, problem, seed: int) -> Optimizer:
    if method == "rs":
        return RandomSearch(problem, seed=seed)
    from hpsearch.search.ambs import AMBS

    return AMBS(problem, liar=method.split("-", 1)[1], seed=seed)


def append_summary(out: str, row: dict) -> None:
    path = os.path.join(out, "summary.csv")
    new = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, SUMMARY_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)
    print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)


def run_simulated(args: argparse.Namespace) -> None:
    for method in args.methods.split(","):
        for w in (int(x) for x in args.workers.split(",")):
            run_dir = os.path.join(args.out, "sim", f"W{w}-{method}")
            shutil.rmtree(run_dir, ignore_errors=True)
            problem, _ = make_problem(args.problem)
            t = time.perf_counter()
            out = simulate(
                make_optimizer(method, problem, args.seed),
                w,
                args.duration,
                run_dir,
                max_evals=10**9,
                timeout=args.budget,
                grace=0.0,
                master_time="measured",
                seed=args.seed,
            )
            append_summary(
                args.out,
                {
                    "kind": "simulated",
                    "method": method,
                    "workers": w,
                    "duration": args.duration,
                    "budget_s": args.budget,
                    "n_evals": out.n_finished,
                    "best": out.best_objective,
                    "utilisation": round(out.utilisation, 4),
                    "master_s": round(out.master_seconds, 2),
                    "master_busy": round(out.master_seconds / out.wall_time, 4),
                    "n_asks": out.n_asks,
                    "real_s": round(time.perf_counter() - t, 1),
                    "loadavg": "/".join(f"{x:.2f}" for x in os.getloadavg()),
                },
            )


def real_search(
    method: str, workers: int, runtime: str, sleep: str, budget: float, out_dir: str, seed: int
) -> tuple[pd.DataFrame, float]:
    """One real search on ``workers`` workers for ``budget`` seconds; its rows and real time."""
    shutil.rmtree(out_dir, ignore_errors=True)
    name, *liar = method.split("-", 1)
    argv = [
        "-m",
        f"hpsearch.{name}",
        "--problem",
        "problems.ackley.ackley10",
        "--max-evals",
        "1000000",
        "--timeout",
        str(budget),
        "--grace",
        "0",
        "--output",
        out_dir,
        "--seed",
        str(seed),
        *(["--liar", liar[0]] if liar else []),
    ]
    env = dict(os.environ, HPSEARCH_ACKLEY_SLEEP=sleep)
    python = sys.executable
    if runtime == "mpi":
        mpirun = os.path.join(os.path.dirname(python), "mpirun")
        command = [mpirun, "-n", str(workers + 1), python, *argv]
    else:
        command = [python, *argv, "--workers", str(workers)]
    t = time.perf_counter()
    subprocess.run(command, env=env, check=True, timeout=budget + 120, stdout=subprocess.DEVNULL)
    return load_results(out_dir), time.perf_counter() - t


def real_row(method, workers, sleep, budget, df, real_s) -> dict:
    done = df[df["status"].isin(["DONE", "FAILED", "TIMEOUT"])]
    return {
        "kind": "real",
        "method": method,
        "workers": workers,
        "duration": f"uniform:{sleep}",
        "budget_s": budget,
        "n_evals": len(done),
        "best": float(done["objective"].min()),
        # from the first evaluation's start: the launcher's start-up is not the search's doing
        "utilisation": round(utilisation(df, workers), 4),
        "master_s": "",
        "master_busy": "",
        "n_asks": "",
        "real_s": round(real_s, 1),
        "loadavg": "/".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def run_real(args: argparse.Namespace) -> None:
    for n in (int(x) for x in args.ranks.split(",")):
        for method in args.methods.split(","):
            out_dir = os.path.join(args.out, "real", f"N{n}-{method}")
            df, real_s = real_search(
                method, n - 1, "mpi", args.sleep, args.budget, out_dir, args.seed
            )
            append_summary(args.out, real_row(method, n - 1, args.sleep, args.budget, df, real_s))


def run_check(args: argparse.Namespace) -> None:
    """8 real workers and their simulation, same method, duration model and budget."""
    out_dir = os.path.join(args.out, "check", f"real-{args.runtime}")
    df, real_s = real_search(
        args.check_method, 8, args.runtime, args.sleep, args.budget, out_dir, args.seed
    )
    row = real_row(args.check_method, 8, args.sleep, args.budget, df, real_s)
    row["kind"] = f"check-real-{args.runtime}"
    append_summary(args.out, row)
    # simulate the window in which the real workers ran (after the runtime's start-up)
    window = float(df["t_end"].max() - df["t_start"].min())
    problem, _ = make_problem("ackley10")
    sim_dir = os.path.join(args.out, "check", "simulated")
    shutil.rmtree(sim_dir, ignore_errors=True)
    t = time.perf_counter()
    out = simulate(
        make_optimizer(args.check_method, problem, args.seed),
        8,
        f"uniform:{args.sleep}",
        sim_dir,
        max_evals=10**9,
        timeout=window,
        grace=0.0,
        seed=args.seed,
    )
    sim = load_results(sim_dir)
    append_summary(
        args.out,
        {
            **real_row(args.check_method, 8, args.sleep, window, sim, time.perf_counter() - t),
            "kind": "check-simulated",
            "master_s": round(out.master_seconds, 2),
            "master_busy": round(out.master_seconds / out.wall_time, 4),
            "n_asks": out.n_asks,
        },
    )


def run_plot(args: argparse.Namespace) -> None:
    df = pd.read_csv(os.path.join(args.out, "summary.csv"))
    sim = df[df["kind"] == "simulated"].sort_values(["method", "workers"])
    os.makedirs(args.img, exist_ok=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    for method, rows in sim.groupby("method"):
        axes[0].plot(rows["workers"], rows["utilisation"], "o-", label=method)
        axes[1].plot(rows["workers"], rows["master_busy"], "o-", label=method)
        axes[2].plot(rows["workers"], rows["best"], "o-", label=method)
    for ax, title in zip(
        axes, ["worker utilisation", "master busy fraction", "best ackley10 at budget"], strict=True
    ):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("simulated workers")
        ax.set_title(title)
    axes[0].set_ylim(0, 1.05)
    axes[1].set_ylim(0, 1.05)
    axes[0].legend(fontsize="small")
    fig.savefig(
        os.path.join(args.img, "scaling_simulated.png"), dpi=100, metadata={"Software": None}
    )
    for w in (int(x) for x in args.curves_at.split(",")):
        dirs = sorted(
            os.path.join(args.out, "sim", d)
            for d in os.listdir(os.path.join(args.out, "sim"))
            if d.startswith(f"W{w}-")
        )
        if dirs:
            plot_best(
                load_runs(dirs),
                os.path.join(args.img, f"scaling_best_vs_time_W{w}.png"),
                "t_end",
                maximize=False,
            )
    print("| method | W | evaluations | best | utilisation | master busy | asks | real s | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for _, r in df.iterrows():
        best = "-" if isinstance(r["best"], float) and math.isnan(r["best"]) else f"{r['best']:.3g}"
        print(
            f"| {r['kind']} {r['method']} | {r['workers']} | {r['n_evals']} | {best} | "
            f"{r['utilisation']:.3f} | {r['master_busy']} | {r['n_asks']} | {r['real_s']} | "
            f"{r['loadavg']} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", default="results/scaling", help="output directory")
    common.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("simulated", parents=[common])
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--workers", default="1,8,32,128,512,2048,4096")
    p.add_argument("--duration", default="lognormal:60,0.3")
    p.add_argument("--budget", type=float, default=300.0, help="virtual seconds")
    p.add_argument("--problem", default="ackley10")
    p = sub.add_parser("real", parents=[common])
    p.add_argument("--methods", default="ambs-cl_max,rs")
    p.add_argument("--ranks", default="2,4,8,16")
    p.add_argument("--sleep", default="0.5,1.5", help="evaluation sleep LOW,HIGH seconds")
    p.add_argument("--budget", type=float, default=60.0, help="wall seconds per run")
    p = sub.add_parser("check", parents=[common])
    p.add_argument("--runtime", choices=["process", "mpi"], default="mpi")
    p.add_argument("--check-method", default="ambs-cl_max")
    p.add_argument("--sleep", default="0.5,1.5", help="evaluation sleep LOW,HIGH seconds")
    p.add_argument("--budget", type=float, default=60.0, help="wall seconds")
    p = sub.add_parser("plot", parents=[common])
    p.add_argument("--img", default="docs/img", help="where the figures go")
    p.add_argument("--curves-at", default="128,4096", help="W values for best-vs-time curves")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    {"simulated": run_simulated, "real": run_real, "check": run_check, "plot": run_plot}[
        args.command
    ](args)


if __name__ == "__main__":
    main()
