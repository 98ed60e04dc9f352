"""Compare hpsearch's optimizers with public ones: best value found and time per ask+tell.

Quality: every optimizer minimises the standard test functions (``hpsearch.testfunctions``)
for ``--evals`` evaluations, in sequential mode (ask 1 / tell 1) and batch mode (ask 8 /
tell 8, as 8 asynchronous workers would), over several seeds run in parallel processes.
The table gives the median [first quartile, third quartile] of the best value after 50, 100
and 200 evaluations. Overhead: the time of one ask(8)+tell(8) on ackley10 after N finished
evaluations, for every optimizer in the same run (absolute times drift, ratios hold).

Every finished search is appended to a ``.jsonl`` file beside ``--out`` and the markdown is
rewritten as results come in, so a long grid can be stopped and resumed: a rerun with the same
``--out`` reuses the searches already recorded there and runs only the missing ones.

    python scripts/bench_optimizers.py --out bench.md
    python scripts/bench_optimizers.py --functions branin --optimizers ambs-RF,random --seeds 3
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import logging
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from multiprocessing import Pool

import numpy as np
from benchlib import cell, git_commit, load_records, one_thread

from hpsearch.testfunctions import make_problem

FUNCTIONS = ["ackley5", "ackley10", "hartmann6", "levy10", "rosenbrock10", "branin"]
CHECKPOINTS = (50, 100, 200)


class Adapter:
    """ask(n) -> list of points (arrays), tell(points, values) with values to minimise."""

    def __init__(self, name: str, q: int, seed: int) -> None:
        self.problem, self.run = make_problem(name)
        self.names = self.problem.space.names
        self.bounds = [(d.low, d.high) for d in self.problem.space]  # type: ignore[attr-defined]
        self.q, self.seed = q, seed

    def ask(self, n: int) -> list[np.ndarray]:
        raise NotImplementedError

    def tell(self, points: list[np.ndarray], values: list[float]) -> None:
        raise NotImplementedError


class HpsearchAdapter(Adapter):
    def __init__(self, name: str, q: int, seed: int, make: Callable) -> None:
        super().__init__(name, q, seed)
        self.opt = make(self.problem, seed)

    def ask(self, n):
        return [np.array([c[k] for k in self.names]) for c in self.opt.ask(n)]

    def tell(self, points, values):
        self.opt.tell([dict(zip(self.names, map(float, p), strict=True)) for p in points], values)


class SkoptAdapter(Adapter):
    def __init__(self, name, q, seed):
        super().__init__(name, q, seed)
        from skopt import Optimizer

        self.opt = Optimizer(
            self.bounds, base_estimator="ET", acq_func="LCB", n_initial_points=10, random_state=seed
        )

    def ask(self, n):
        xs = self.opt.ask() if n == 1 else self.opt.ask(n_points=n, strategy="cl_max")
        return [np.array(x) for x in ([xs] if n == 1 else xs)]

    def tell(self, points, values):
        self.opt.tell([list(map(float, p)) for p in points], list(values))


class OptunaAdapter(Adapter):
    def __init__(self, name, q, seed):
        super().__init__(name, q, seed)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=q > 1)
        self.study = optuna.create_study(sampler=sampler)
        self.dists = {
            k: optuna.distributions.FloatDistribution(lo, hi)
            for k, (lo, hi) in zip(self.names, self.bounds, strict=True)
        }
        self.trials: dict[bytes, object] = {}

    def ask(self, n):
        points = []
        for _ in range(n):
            trial = self.study.ask(self.dists)
            point = np.array([trial.params[k] for k in self.names])
            self.trials[point.tobytes()] = trial
            points.append(point)
        return points

    def tell(self, points, values):
        for p, v in zip(points, values, strict=True):
            key = np.asarray(p, dtype=float).tobytes()
            if key in self.trials:
                self.study.tell(self.trials.pop(key), v)
            else:  # a history given at once (overhead measurement)
                import optuna

                self.study.add_trial(
                    optuna.trial.create_trial(
                        params=dict(zip(self.names, map(float, p), strict=True)),
                        distributions=self.dists,
                        value=v,
                    )
                )


class DeepHyperAdapter(Adapter):
    """DeepHyper CBO with RF/LCB, sampling acquisition optimiser and cl_max (it maximises)."""

    def __init__(self, name, q, seed):
        super().__init__(name, q, seed)
        from deephyper.hpo import CBO, HpProblem

        space = HpProblem()
        for k, (lo, hi) in zip(self.names, self.bounds, strict=True):
            space.add_hyperparameter((lo, hi), k)
        self.tmp = tempfile.TemporaryDirectory()
        self.opt = CBO(
            space,
            random_state=seed,
            log_dir=self.tmp.name,
            surrogate_model="RF",
            acq_func="UCB",
            acq_optimizer="sampling",
            multi_point_strategy="cl_max",
            checkpoint_history_to_csv=False,
            n_initial_points=10,
        )

    def ask(self, n):
        return [np.array([c[k] for k in self.names]) for c in self.opt.ask(n)]

    def tell(self, points, values):
        self.opt.tell(
            [
                (dict(zip(self.names, map(float, p), strict=True)), -v)
                for p, v in zip(points, values, strict=True)
            ]
        )


def _ambs(surrogate: str, liar: str = "cl_max") -> Callable:
    def make(problem, seed):
        from hpsearch.search.ambs import AMBS

        return AMBS(problem, surrogate=surrogate, liar=liar, seed=seed)

    return make


def _random(problem, seed):
    from hpsearch.search.random import RandomSearch

    return RandomSearch(problem, seed=seed)


OPTIMIZERS: dict[str, tuple[Callable[[str, int, int], Adapter], str | None]] = {
    "ambs-RF": (lambda f, q, s: HpsearchAdapter(f, q, s, _ambs("RF")), None),
    "ambs-ET": (lambda f, q, s: HpsearchAdapter(f, q, s, _ambs("ET")), None),
    "ambs-GBRT": (lambda f, q, s: HpsearchAdapter(f, q, s, _ambs("GBRT")), None),
    "ambs-GP": (lambda f, q, s: HpsearchAdapter(f, q, s, _ambs("GP")), None),
    "ambs-RF-qUCB": (lambda f, q, s: HpsearchAdapter(f, q, s, _ambs("RF", "qUCB")), None),
    "random": (lambda f, q, s: HpsearchAdapter(f, q, s, _random), None),
    "skopt": (SkoptAdapter, "skopt"),
    "optuna-tpe": (OptunaAdapter, "optuna"),
    "deephyper-rf": (DeepHyperAdapter, "deephyper"),
}


def available(names: list[str]) -> list[str]:
    out = []
    for name in names:
        if name not in OPTIMIZERS:
            raise SystemExit(f"unknown optimizer {name!r}, expected one of {', '.join(OPTIMIZERS)}")
        module = OPTIMIZERS[name][1]
        if module is None or importlib.util.find_spec(module) is not None:
            out.append(name)
        else:
            print(f"skipping {name}: {module} is not installed")
    return out


def run_one(job: tuple[str, str, int, int, int]) -> tuple[str, str, int, int, list[float], float]:
    """One search: returns the best-so-far value after each evaluation and the wall time."""
    optimizer, function, q, seed, evals = job
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    adapter = OPTIMIZERS[optimizer][0](function, q, seed)
    values: list[float] = []
    start = time.perf_counter()
    while len(values) < evals:
        points = adapter.ask(min(q, evals - len(values)))
        ys = [adapter.run(dict(zip(adapter.names, map(float, p), strict=True))) for p in points]
        adapter.tell(points, ys)
        values.extend(ys)
    return (
        optimizer,
        function,
        q,
        seed,
        list(np.minimum.accumulate(values)),
        time.perf_counter() - start,
    )


def overhead(optimizer: str, n_points: int, repeats: int = 3) -> float:
    """Median seconds of one ask(8)+tell(8) on ackley10 after ``n_points`` finished points."""
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    adapter = OPTIMIZERS[optimizer][0]("ackley10", 8, 0)
    rng = np.random.default_rng(0)
    low, high = np.array(adapter.bounds).T
    history = list(low + rng.random((n_points, len(low))) * (high - low))
    adapter.tell(history, [adapter.run(dict(zip(adapter.names, p, strict=True))) for p in history])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        points = adapter.ask(8)
        adapter.tell(
            points,
            [adapter.run(dict(zip(adapter.names, map(float, p), strict=True))) for p in points],
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


PUBLIC = ("skopt", "optuna-tpe", "deephyper-rf")


def _verdicts(
    table: dict[tuple[str, int, str], list[list[float]]],
    functions: list[str],
    modes: list[int],
    optimizers: list[str],
    evals: int,
) -> list[str]:
    """AMBS-RF's median best after the last evaluation against random search and against the
    best public optimiser of the run (by median), per function and mode."""
    if "ambs-RF" not in optimizers:
        return []

    def median(o: str, f: str, q: int) -> float | None:
        traces = table.get((f, q, o))
        return float(np.median([t[-1] for t in traces])) if traces else None

    lines = [
        "",
        f"### AMBS-RF against random search and the best public optimiser (median after {evals})",
        "",
        "| function | q | AMBS-RF | random | best public | beats random | >= best public |",
        "|---|---|---|---|---|---|---|",
    ]
    for q in modes:
        matched = 0
        for f in functions:
            ours, rand = median("ambs-RF", f, q), median("random", f, q)
            if ours is None:
                continue
            public = [(m, o) for o in PUBLIC if (m := median(o, f, q)) is not None]
            best = min(public) if public else None
            lines.append(
                f"| {f} | {q} | {ours:.4g} | "
                + (f"{rand:.4g}" if rand is not None else "-")
                + " | "
                + (f"{best[0]:.4g} ({best[1]})" if best else "-")
                + " | "
                + ("-" if rand is None else "yes" if ours < rand else "**no**")
                + " | "
                + ("-" if best is None else "yes" if ours <= best[0] else "no")
                + " |"
            )
            matched += best is not None and ours <= best[0]
        lines.append(f"| **q={q}** | | | | | | **{matched} of {len(functions)}** |")
    return lines


def _record(result: tuple, commit: str) -> dict:
    optimizer, function, q, seed, trace, seconds = result
    return {
        "optimizer": optimizer,
        "function": function,
        "q": q,
        "seed": seed,
        "evals": len(trace),
        "trace": trace,
        "seconds": seconds,
        "date": datetime.date.today().isoformat(),
        "commit": commit,
    }


def _quality_lines(
    records: list[dict], functions: list[str], modes: list[int], optimizers: list[str], evals: int
) -> list[str]:
    checkpoints = [c for c in CHECKPOINTS if c < evals] + [evals]
    table: dict[tuple[str, int, str], list[list[float]]] = {}
    for r in records:
        table.setdefault((r["function"], r["q"], r["optimizer"]), []).append(r["trace"])
    dates = sorted({r["date"] for r in records})
    commits = sorted({r["commit"] for r in records})
    lines = [
        f"{len(records)} searches, run {' to '.join(dict.fromkeys([dates[0], dates[-1]]))} "
        f"at commit {', '.join(commits)}; {sum(r['seconds'] for r in records):.0f} "
        "process-seconds of search.",
        "",
        "### Best value found (median [q1, q3] over seeds; lower is better)",
        "",
        "| function | q | optimizer | seeds | "
        + " | ".join(f"after {c}" for c in checkpoints)
        + " |",
        "|---|---|---|---|" + "---|" * len(checkpoints),
    ]
    for f in functions:
        for q in modes:
            for o in optimizers:
                traces = table.get((f, q, o), [])
                if not traces:
                    continue
                cells = [cell([t[min(c, len(t)) - 1] for t in traces]) for c in checkpoints]
                lines.append(f"| {f} | {q} | {o} | {len(traces)} | " + " | ".join(cells) + " |")
    return lines + _verdicts(table, functions, modes, optimizers, evals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--functions", default=",".join(FUNCTIONS))
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    parser.add_argument("--seeds", type=int, default=10, help="seeds per optimizer (default 10)")
    parser.add_argument(
        "--slow-seeds",
        default="",
        help="fewer seeds for slow optimizers, e.g. 'skopt=3,deephyper-rf=3'",
    )
    parser.add_argument("--modes", default="1,8", help="batch sizes q (default 1,8)")
    parser.add_argument("--evals", type=int, default=200)
    parser.add_argument("--overhead-points", default="100,1000,5000")
    parser.add_argument("--overhead-optimizers", default="ambs-RF,skopt,optuna-tpe,deephyper-rf")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--out",
        default="bench_optimizers.md",
        help="markdown output; every finished search is appended to the .jsonl beside it, "
        "and a rerun reuses the searches found there (delete it to start afresh)",
    )
    args = parser.parse_args()

    optimizers = available(args.optimizers.split(",") if args.optimizers else [])
    functions = args.functions.split(",") if args.functions else []
    modes = [int(m) for m in args.modes.split(",")]
    seeds = {name: args.seeds for name in optimizers}
    for item in filter(None, args.slow_seeds.split(",")):
        name, _, count = item.partition("=")
        seeds[name] = int(count)
    jobs = [
        (o, f, q, s, args.evals)
        for f in functions
        for q in modes
        for o in optimizers
        for s in range(seeds[o])
    ]
    jsonl = os.path.splitext(args.out)[0] + ".jsonl"
    earlier = load_records(jsonl, ("optimizer", "function", "q", "seed", "evals"))
    done = [earlier[j] for j in jobs if j in earlier]
    todo = [j for j in jobs if j not in earlier]
    todo.sort(key=lambda j: j[0] in ("skopt", "deephyper-rf", "ambs-GP", "ambs-GBRT"), reverse=True)
    print(f"{len(done)} searches reused from {jsonl}, {len(todo)} to run", flush=True)
    header = (
        f"Run on {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {args.processes} processes."
    )

    def write(lines: list[str]) -> None:
        with open(args.out, "w") as f:
            f.write("\n".join([header, "", *lines]) + "\n")

    commit = git_commit()
    start = time.time()
    with Pool(args.processes, one_thread) as pool, open(jsonl, "a") as log:
        for i, result in enumerate(pool.imap_unordered(run_one, todo), 1):
            done.append(_record(result, commit))
            log.write(json.dumps(done[-1]) + "\n")
            log.flush()
            print(
                f"{i}/{len(todo)} {result[0]} {result[1]} q={result[2]} seed={result[3]}: "
                f"{result[4][-1]:.4g} in {result[5]:.0f} s",
                flush=True,
            )
            write(_quality_lines(done, functions, modes, optimizers, args.evals))
    lines = _quality_lines(done, functions, modes, optimizers, args.evals) if done else []
    if todo:
        load = os.getloadavg()[0]
        lines.insert(
            1,
            f"This run: {len(todo)} searches in {time.time() - start:.0f} s; "
            f"load average after them {load:.2f}.",
        )

    over: dict[str, dict[int, float]] = {}
    points = [int(n) for n in args.overhead_points.split(",") if n]
    for o in available([x for x in args.overhead_optimizers.split(",") if x] if points else []):
        over[o] = {n: overhead(o, n) for n in points}
    if over:
        load = os.getloadavg()
        lines += [
            "",
            f"### Seconds per ask(8)+tell(8) on ackley10 after N finished points "
            f"(median of 3; {datetime.date.today().isoformat()}, load average {load[0]:.2f})",
            "",
            "| optimizer | " + " | ".join(f"N={n}" for n in points) + " |",
            "|---|" + "---|" * len(points),
        ]
        for o, row in over.items():
            lines.append(f"| {o} | " + " | ".join(f"{row[n]:.3g}" for n in points) + " |")
        if "ambs-RF" in over:
            for other in over:
                if other != "ambs-RF":
                    ratios = ", ".join(
                        f"N={n}: {over[other][n] / over['ambs-RF'][n]:.1f}x" for n in points
                    )
                    lines.append(f"\n{other} / ambs-RF: {ratios}")
    write(lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
