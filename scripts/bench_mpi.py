"""Worker utilisation and hand-out latency of the MPI runtime, measured from results.csv.

Runs ``mpirun -n WORKERS+1 python -m hpsearch.<method>`` on problems.ackley with simulated
evaluation times (the evaluation sleeps a time drawn uniformly in a range), for each method
and each range, and reports per run: evaluations finished, utilisation (busy worker-seconds
/ (workers x wall seconds, first start to last end)), the hand-out latency (a worker's report
to its next job being sent) median and 99th percentile, and the CPU seconds the whole job
burned per wall second (the evaluations sleep, so this is the runtime's own cost: a rank that
spun while waiting would add a whole core).

    python scripts/bench_mpi.py --workers 8 --seconds 30 --out docs/bench_mpi.md
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from hpsearch import load_results
from hpsearch.report import utilisation

RANGES = {"0.5-1.5 s": "0.5,1.5", "0.1 s": "0.05,0.15", "0.01 s": "0.005,0.015"}


def run_once(method: str, workers: int, sleep: str, seconds: float, root: str) -> dict:
    out = tempfile.mkdtemp(prefix=f"bench-mpi-{method}-")
    low, high = (float(v) for v in sleep.split(","))
    max_evals = int(workers * seconds / ((low + high) / 2) * 1.2) + workers
    mpirun = os.path.join(os.path.dirname(sys.executable), "mpirun")
    command = [
        mpirun, "-n", str(workers + 1), sys.executable, "-m", f"hpsearch.{method}",
        "--problem", "problems.ackley", "--max-evals", str(max_evals), "--output", out,
        "--timeout", str(seconds), "--grace", "5", "--seed", "0",
    ]  # fmt: skip
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    subprocess.run(
        command,
        cwd=root,
        env={**os.environ, "HPSEARCH_ACKLEY_SLEEP": sleep},
        check=True,
        capture_output=True,
        timeout=seconds + 120,
    )
    wall = time.time() - t0
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    df = load_results(out)
    latency = df["handout_latency"].dropna().to_numpy()
    return {
        "method": method,
        "evals": int((df["status"] == "DONE").sum()),
        "utilisation": utilisation(df, n_workers=workers),
        "latency_median_ms": 1e3 * float(np.median(latency)) if len(latency) else float("nan"),
        "latency_p99_ms": 1e3 * float(np.percentile(latency, 99)) if len(latency) else float("nan"),
        "cpu_per_wall": cpu / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0, help="wall time of each search")
    parser.add_argument("--methods", nargs="+", default=["rs", "ambs"])
    parser.add_argument("--ranges", nargs="+", default=list(RANGES), choices=list(RANGES))
    parser.add_argument("--out", help="also write the markdown table to this file")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    load = os.getloadavg()
    lines = [
        f"{args.workers} workers (`mpirun -n {args.workers + 1}`), {args.seconds:g} s searches "
        f"on problems.ackley; load average before: {load[0]:.2f}",
        "",
        "| evaluation time | method | finished | utilisation | hand-out median | hand-out p99 | CPU s per wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for label in args.ranges:
        for method in args.methods:
            r = run_once(method, args.workers, RANGES[label], args.seconds, root)
            lines.append(
                f"| {label} | {method} | {r['evals']} | {r['utilisation']:.3f} | "
                f"{r['latency_median_ms']:.2f} ms | {r['latency_p99_ms']:.2f} ms | "
                f"{r['cpu_per_wall']:.2f} |"
            )
            print(lines[-1], flush=True)
    load = os.getloadavg()
    lines.append("")
    lines.append(f"Load average after: {load[0]:.2f}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
