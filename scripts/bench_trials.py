"""Trials against the code before them: no regression, and the cost of reporting progress.

One run, one machine state, two measurements:

1. No regression. The same measurements on two code trees, the baseline (``--baseline REF``,
   checked out into a temporary git worktree that is removed at the end) and this checkout,
   alternating between them (baseline, current, current, baseline, ...) for ``--repeats``
   rounds so that drift in the machine's load, and going first, touch both alike:

   - AMBS (RF) ask(8)+tell(8) seconds on ackley10 after ``--points`` finished points (median
     of 3), by ``overhead`` of scripts/bench_optimizers.py (this checkout's copy) in a Python
     process whose ``hpsearch`` is that tree's (checked: the process names the file it got);
   - utilisation and hand-out latency (median, 99th percentile) of
     ``mpirun -n WORKERS+1 python -m hpsearch.ambs --problem problems.ackley`` with
     evaluations sleeping 0.5-1.5 s for ``--seconds`` of wall time, read from results.csv.

   The table gives the median over rounds per tree, current / baseline, and whether the two
   are within 10%.

2. The cost of reporting, this checkout only: the same searches with
   ``HPSEARCH_ACKLEY_REPORT=0.01`` (every evaluation reports every 10 ms of its sleep), for
   each of ``--methods``, under ``mpirun`` and in the local process pool: utilisation (target
   >= 0.95), hand-out latency (target: median < 2 ms), reports recorded per second (rows of
   steps.csv / the span utilisation is counted over) and what one ``trial.report`` call cost
   the run (``m:report_median_us``, ``m:report_p99_us`` of the finished jobs: the median over
   jobs of each, and the largest per-job 99th percentile).

    .venv/bin/python scripts/bench_trials.py --out bench_trials.md

A full default run takes about 6-7 minutes on 2 cores (more on a loaded machine).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pandas as pd
from bench_mpi import run_command, run_once

from hpsearch.results import load_results, load_steps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLEEP = "0.5,1.5"
REPORT_EVERY = "0.01"

#: Run in a tree's own Python process: ``overhead`` of this checkout's bench_optimizers.py.
OVERHEAD_CODE = """
import importlib.util, json, sys
import hpsearch
spec = importlib.util.spec_from_file_location("bench_optimizers", sys.argv[1])
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
seconds = {n: bench.overhead("ambs-RF", int(n)) for n in sys.argv[2].split(",")}
print(json.dumps({"hpsearch": hpsearch.__file__, "seconds": seconds}))
"""

#: Run in a tree's environment under mpirun: which files the ranks import.
WHICH_CODE = """
import json, hpsearch, problems.ackley
print(json.dumps([hpsearch.__file__, problems.ackley.__file__]))
"""


def _tree_env(tree: str) -> dict[str, str]:
    return {"PYTHONPATH": tree}


def _inside(path: str, tree: str) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(tree) + os.sep)


def check_imports(tree: str, timeout: float) -> None:
    """Raise unless a rank started by mpirun in ``tree``'s environment imports that tree's
    ``hpsearch`` and ``problems.ackley``."""
    mpirun = os.path.join(os.path.dirname(sys.executable), "mpirun")
    done = run_command(
        [mpirun, "-n", "1", sys.executable, "-c", WHICH_CODE],
        cwd=tree,
        env={**os.environ, **_tree_env(tree)},
        timeout=timeout,
    )
    files = json.loads(done.stdout.strip().splitlines()[-1])
    wrong = [f for f in files if not _inside(f, tree)]
    if wrong:
        raise RuntimeError(f"in {tree} the ranks imported {', '.join(wrong)}")


def overhead(tree: str, points: str, timeout: float) -> dict[int, float]:
    """AMBS-RF seconds per ask(8)+tell(8) after each number of ``points``, with ``tree``'s code."""
    done = run_command(
        [
            sys.executable,
            "-c",
            OVERHEAD_CODE,
            os.path.join(ROOT, "scripts", "bench_optimizers.py"),
            points,
        ],
        cwd=tree,
        env={**os.environ, **_tree_env(tree)},
        timeout=timeout,
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if not _inside(answer["hpsearch"], tree):
        raise RuntimeError(f"the overhead of {tree} was measured on {answer['hpsearch']}")
    return {int(n): s for n, s in answer["seconds"].items()}


def steady_utilisation(df: pd.DataFrame, workers: int) -> float:
    """Utilisation between the moment the last worker started its first evaluation and the
    moment the first worker finished its last one: the hand-outs only, without the staggered
    start-up (a local pool's workers import the problem one after another) and the tail.
    NaN when some worker never ran an evaluation."""
    rows = df.dropna(subset=["t_start", "t_end"])
    rows = rows[rows["t_end"] > rows["t_start"]]  # a search's cancelled rows held no one
    per_worker = rows.groupby([rows["host"].astype(str), rows["worker"].astype(str)])
    if per_worker.ngroups < workers:
        return float("nan")
    begin, end = per_worker["t_start"].min().max(), per_worker["t_end"].max().min()
    if not end > begin:
        return float("nan")
    busy = (rows["t_end"].clip(upper=end) - rows["t_start"].clip(lower=begin)).clip(lower=0)
    return float(busy.sum() / (workers * (end - begin)))


def reporting(r: dict) -> dict:
    """Report figures of a finished reporting search (``run_once``'s result)."""
    df = load_results(r["output"])
    done = df[df["status"] == "DONE"]
    steps = load_steps(r["output"])
    nan = float("nan")
    median_us, p99_us = (
        done[c].dropna().to_numpy() if c in done else np.array([])
        for c in ("m:report_median_us", "m:report_p99_us")
    )
    return {
        **r,
        "reports": len(steps),
        "reports_per_s": len(steps) / r["wall"] if r["wall"] > 0 else nan,
        "report_median_us": float(np.median(median_us)) if len(median_us) else nan,
        "report_p99_us": float(np.median(p99_us)) if len(p99_us) else nan,
        "report_p99_max_us": float(np.max(p99_us)) if len(p99_us) else nan,
        "steady": steady_utilisation(df, r["workers"]),
    }


def _verdict(ratio: float, higher_is_better: bool) -> str:
    if not np.isfinite(ratio):
        return "-"
    if 0.9 <= ratio <= 1.1:
        return "yes"
    better = ratio > 1.1 if higher_is_better else ratio < 0.9
    return "no (better)" if better else "**no (worse)**"


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", ROOT, *args], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def _describe() -> str:
    """HEAD's short hash, marked when tracked files differ from it (the index is not touched)."""
    changed = _git("--no-optional-locks", "status", "--porcelain", "--untracked-files=no")
    return _git("rev-parse", "--short", "HEAD") + (" with uncommitted changes" if changed else "")


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def _num(x: float, fmt: str) -> str:
    return fmt.format(x) if np.isfinite(x) else "-"


def _ms(x: float) -> str:
    return _num(x, "{:.2f} ms" if x < 10 else "{:.1f} ms")


def _target(text: str, value: float, met: bool) -> str:
    if not np.isfinite(value):
        return "-"
    return f"{text} (met)" if met else f"{text} (**missed**)"


def _few(rows: list[dict], workers: int) -> list[str]:
    """A warning when a search finished under 3 evaluations per worker: start-up took most
    of it, and its figures say little."""
    short = [r for r in rows if r["evals"] < 3 * workers]
    if not short:
        return []
    return [
        "",
        f"**{len(short)} of these searches finished fewer than {3 * workers} evaluations**: "
        "their start-up took most of the search (a loaded machine); their figures say little. "
        "Rerun with more `--seconds` or on a quieter machine.",
    ]


def regression_lines(rounds: dict[str, list[dict]], points: list[int]) -> list[str]:
    """The table of part 1 from each tree's measurements, one dict per round."""
    metrics = [
        *[
            (f"ask(8)+tell(8) after {n} points (s)", f"overhead_{n}", False, "{:.3g}")
            for n in points
        ],
        ("utilisation (mpirun, AMBS)", "utilisation", True, "{:.3f}"),
        ("utilisation after start-up, before the tail", "steady", True, "{:.3f}"),
        ("hand-out median (ms)", "latency_median_ms", False, "{:.2f}"),
        ("hand-out p99 (ms)", "latency_p99_ms", False, "{:.1f}"),
        ("evaluations finished", "evals", True, "{:.0f}"),
        ("CPU s per wall s (whole job)", "cpu_per_wall", False, "{:.2f}"),
    ]
    lines = [
        "| measurement | baseline (each round) | current (each round) | baseline | current "
        "| current / baseline | within 10% |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, key, higher_is_better, fmt in metrics:
        values = {t: [r[key] for r in rounds[t]] for t in rounds}
        med = {t: statistics.median(v) for t, v in values.items()}
        ratio = med["current"] / med["baseline"] if med["baseline"] else float("nan")
        each = {t: ", ".join(_num(v, fmt) for v in values[t]) for t in values}
        lines.append(
            f"| {label} | {each['baseline']} | {each['current']} | "
            f"{_num(med['baseline'], fmt)} | {_num(med['current'], fmt)} | "
            f"{_num(ratio, '{:.2f}')} | {_verdict(ratio, higher_is_better)} |"
        )
    return lines


def report_row(mode: str, r: dict) -> str:
    util = _target(f"{r['utilisation']:.3f}", r["utilisation"], r["utilisation"] >= 0.95)
    latency = _target(
        _ms(r["latency_median_ms"]), r["latency_median_ms"], r["latency_median_ms"] < 2
    )
    cells = [
        mode,
        r["method"],
        str(r["evals"]),
        util,
        _num(r["steady"], "{:.3f}"),
        latency,
        _ms(r["latency_p99_ms"]),
        str(r["reports"]),
        _num(r["reports_per_s"], "{:.0f}"),
        _num(r["report_median_us"], "{:.0f}"),
        _num(r["report_p99_us"], "{:.0f}"),
        _num(r["report_p99_max_us"], "{:.0f}"),
        f"{r['cpu_per_wall']:.2f}",
    ]
    return "| " + " | ".join(cells) + " |"


def regression(args: argparse.Namespace, points: list[int], scratch: str) -> list[str]:
    """Part 1: both trees, rounds alternating between them; returns the markdown."""
    baseline = os.path.join(scratch, "baseline")
    _git("worktree", "add", "--detach", baseline, args.baseline)
    trees = {"baseline": baseline, "current": ROOT}
    rounds: dict[str, list[dict]] = {t: [] for t in trees}
    try:
        for tree in trees.values():
            check_imports(tree, timeout=120)
        for i in range(args.repeats):
            order = list(trees.items())
            for name, tree in order if i % 2 == 0 else order[::-1]:
                over = overhead(tree, args.points, timeout=900)
                r = run_once(
                    "ambs",
                    args.workers,
                    SLEEP,
                    args.seconds,
                    tree,
                    env=_tree_env(tree),
                    output=os.path.join(scratch, f"{name}-{i}"),
                )
                r.update({f"overhead_{n}": over[n] for n in points})
                r["steady"] = steady_utilisation(load_results(r["output"]), args.workers)
                rounds[name].append(r)
                print(
                    f"round {i + 1} {name}: "
                    + ", ".join(f"ask+tell after {n}: {over[n]:.3g} s" for n in points)
                    + f"; utilisation {r['utilisation']:.3f}, hand-out median "
                    f"{r['latency_median_ms']:.2f} ms, p99 {r['latency_p99_ms']:.1f} ms "
                    f"(load {_load()})",
                    flush=True,
                )
    finally:
        _git("worktree", "remove", "--force", baseline)
    return [
        "",
        f"### No regression: baseline {args.baseline} against the current checkout",
        "",
        f"{args.repeats} rounds, baseline first in odd rounds and current first in even ones; "
        "the figures are medians over "
        "the rounds. ask(8)+tell(8): AMBS-RF on ackley10, median of 3 "
        "(scripts/bench_optimizers.py `overhead`). The searches: "
        f"`mpirun -n {args.workers + 1} python -m hpsearch.ambs --problem problems.ackley` "
        f"for {args.seconds:g} s, `HPSEARCH_ACKLEY_SLEEP={SLEEP}`; utilisation from the first "
        "start to the last end, and from the last worker's first start to the first worker's "
        "last end.",
        "",
        *regression_lines(rounds, points),
        *_few(rounds["baseline"] + rounds["current"], args.workers),
    ]


def report_cost(args: argparse.Namespace, scratch: str) -> list[str]:
    """Part 2: reporting searches of the current checkout; returns the markdown."""
    rows = []
    lines = [
        "",
        f"### The cost of reporting: a report every {float(REPORT_EVERY) * 1e3:g} ms",
        "",
        f"`HPSEARCH_ACKLEY_REPORT={REPORT_EVERY} HPSEARCH_ACKLEY_SLEEP={SLEEP}`, current "
        f"checkout, {args.seconds:g} s searches, {args.workers} workers: "
        f"`mpirun -n {args.workers + 1} python -m hpsearch.METHOD` or the local pool "
        f"(`--workers {args.workers}`, no mpirun). Targets: utilisation >= 0.95, hand-out "
        "median < 2 ms. Reports per second: rows of steps.csv / (first start to last end); at "
        f"most {args.workers / float(REPORT_EVERY):.0f} ({args.workers} workers x "
        f"{1 / float(REPORT_EVERY):.0f}) when every worker is always busy. "
        "Utilisation after start-up: from the last worker's first start to the first worker's "
        "last end (a local pool's workers start one after another). "
        "Report cost: one `trial.report` call as the run timed it; the median over finished "
        "jobs of each job's median and of each job's 99th percentile, and the largest "
        "99th percentile of any job.",
        "",
        "| runtime | method | finished | utilisation | after start-up | hand-out median "
        "| hand-out p99 "
        "| reports | reports/s | report median (us) | report p99, median of jobs (us) "
        "| report p99, max (us) | CPU s per wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method in args.methods:
        for mode, mpi in (("mpirun", True), ("local pool", False)):
            r = run_once(
                method,
                args.workers,
                SLEEP,
                args.seconds,
                ROOT,
                env={**_tree_env(ROOT), "HPSEARCH_ACKLEY_REPORT": REPORT_EVERY},
                mpi=mpi,
                output=os.path.join(scratch, f"report-{method}-{'mpi' if mpi else 'pool'}"),
            )
            rows.append(reporting({**r, "workers": args.workers}))
            lines.append(report_row(mode, rows[-1]))
            print(lines[-1] + f" (load {_load()})", flush=True)
    return lines + _few(rows, args.workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="487beda", help="git ref of the code before trials")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0, help="wall time of each search")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over both trees (default 2)")
    parser.add_argument("--points", default="1000,5000", help="history sizes for ask+tell")
    parser.add_argument(
        "--methods", nargs="+", default=["rs", "ambs"], help="methods for the reporting searches"
    )
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["regression", "reporting"], help="parts to skip"
    )
    parser.add_argument("--out", help="also write the markdown to this file")
    args = parser.parse_args()
    points = [int(n) for n in args.points.split(",") if n]
    # the searches must see only the problem settings given here
    for name in [k for k in os.environ if k.startswith("HPSEARCH_ACKLEY_")]:
        del os.environ[name]

    started = time.time()
    head = [
        f"`{shlex.join(['python', 'scripts/bench_trials.py', *sys.argv[1:]])}`",
        "",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), {_cpu_model()}",
        f"- load average (1/5/15 min) before: {_load()}",
        f"- Python {platform.python_version()}, numpy {_version('numpy')}, scikit-learn "
        f"{_version('scikit-learn')}, mpi4py {_version('mpi4py')}, mpich {_version('mpich')}",
        f"- current: {ROOT} at {_describe()}; "
        f"baseline: {args.baseline} ({_git('rev-parse', '--short', args.baseline)})",
        f"- {args.workers} workers, {args.seconds:g} s searches, evaluations sleeping "
        f"{SLEEP.replace(',', '-')} s",
    ]
    print("\n".join(head), flush=True)
    body: list[str] = []
    scratch = tempfile.mkdtemp(prefix="bench-trials-")
    try:
        if "regression" not in args.skip:
            body += regression(args, points, scratch)
        if "reporting" not in args.skip:
            body += report_cost(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    tail = [
        "",
        f"Load average (1/5/15 min) after: {_load()}; the whole run took "
        f"{time.time() - started:.0f} s.",
    ]
    text = "\n".join([*head, *body, *tail])
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
