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
import contextlib
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from hpsearch import load_results
from hpsearch.report import utilisation

RANGES = {"0.5-1.5 s": "0.5,1.5", "0.1 s": "0.05,0.15", "0.01 s": "0.005,0.015"}


def _session(sid: int) -> list[int]:
    """Live processes of session ``sid`` (zombies, which nothing can kill, are left out)."""
    pids = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(name))
    return pids


def run_command(
    command: list[str], cwd: str, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess:
    """Run ``command`` in a session of its own; return it finished (stdout, stderr as text).

    Raises RuntimeError when it fails, runs past ``timeout`` seconds or leaves a process
    behind (an MPI rank or an evaluation child); whatever of it is left is killed first, so
    the next measurement starts on a quiet machine.
    """
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    problem = ""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        problem = f"ran past its {timeout:g} s timeout"
    if not problem and process.returncode != 0:
        problem = f"exited with status {process.returncode}"
    # ranks and evaluation children may take a moment to go after the launcher returns
    end = time.time() + 10
    while (left := _session(process.pid)) and time.time() < end:
        time.sleep(0.2)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    if left and not problem:
        problem = f"left {len(left)} processes behind (killed)"
    if problem:
        tail = "\n".join(stderr.strip().splitlines()[-20:])
        raise RuntimeError(f"{' '.join(command)} {problem}; its stderr ends:\n{tail}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def run_once(
    method: str,
    workers: int,
    sleep: str,
    seconds: float,
    root: str,
    env: dict[str, str] | None = None,
    mpi: bool = True,
    output: str | None = None,
) -> dict:
    """One search of ``seconds`` on problems.ackley whose evaluations sleep ``sleep``
    ("LOW,HIGH" seconds); its figures, read from results.csv.

    It runs in ``root`` (the tree whose ``problems`` package is used; put that tree in
    ``PYTHONPATH`` in ``env`` for its ``hpsearch`` too), with ``env`` added to the environment,
    under ``mpirun -n workers+1``, or in the local pool of ``workers`` processes when ``mpi``
    is False. Results go to ``output`` (default: a new temporary directory), returned as
    ``"output"``; ``"wall"`` is the span utilisation is counted over (first start to last end).
    """
    out = output or tempfile.mkdtemp(prefix=f"bench-mpi-{method}-")
    low, high = (float(v) for v in sleep.split(","))
    max_evals = int(workers * seconds / ((low + high) / 2) * 1.2) + workers
    search = [
        sys.executable, "-m", f"hpsearch.{method}",
        "--problem", "problems.ackley", "--max-evals", str(max_evals), "--output", out,
        "--timeout", str(seconds), "--grace", "5", "--seed", "0",
    ]  # fmt: skip
    if mpi:
        mpirun = os.path.join(os.path.dirname(sys.executable), "mpirun")
        command = [mpirun, "-n", str(workers + 1), *search]
    else:
        command = [*search, "--workers", str(workers)]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    run_command(
        command,
        cwd=root,
        env={**os.environ, **(env or {}), "HPSEARCH_ACKLEY_SLEEP": sleep},
        timeout=seconds + 120,
    )
    wall = time.time() - t0
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    df = load_results(out)
    latency = df["handout_latency"].dropna().to_numpy()
    span = df["t_end"].max() - df["t_start"].min()
    return {
        "method": method,
        "evals": int((df["status"] == "DONE").sum()),
        "utilisation": utilisation(df, n_workers=workers),
        "latency_median_ms": 1e3 * float(np.median(latency)) if len(latency) else float("nan"),
        "latency_p99_ms": 1e3 * float(np.percentile(latency, 99)) if len(latency) else float("nan"),
        "cpu_per_wall": cpu / wall,
        "wall": float(span),
        "output": out,
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
