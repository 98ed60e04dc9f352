"""Compare hpsearch's optimizers with public ones: best value found and time per ask+tell.

Quality: every optimizer minimises the standard test functions (``hpsearch.testfunctions``)
for ``--evals`` evaluations, in sequential mode (ask 1 / tell 1) and batch mode (ask 8 /
tell 8, as 8 asynchronous workers would), over several seeds run in parallel processes.
The table gives the median [first quartile, third quartile] of the best value after 50, 100
and 200 evaluations. Overhead: the time of one ask(8)+tell(8) on ackley10 after N finished
evaluations, for every optimizer in the same run (absolute times drift, ratios hold).

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


def _cell(values: list[float]) -> str:
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return f"{med:.4g} [{q1:.4g}, {q3:.4g}]"


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
    parser.add_argument("--out", default="bench_optimizers.md", help="markdown output (and .json)")
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
    jobs.sort(key=lambda j: j[0] in ("skopt", "deephyper-rf", "ambs-GP", "ambs-GBRT"), reverse=True)
    start = time.time()
    with Pool(args.processes) as pool:
        results = pool.map(run_one, jobs, chunksize=1)
    quality_time = time.time() - start
    load_after_quality = os.getloadavg()

    lines = [
        f"Run {datetime.date.today().isoformat()} on {platform.machine()}, Python "
        f"{platform.python_version()}, {args.processes} processes; {len(jobs)} searches took "
        f"{quality_time:.0f} s; load average after them {load_after_quality[0]:.2f}.",
        "",
        "### Best value found (median [q1, q3] over seeds; lower is better)",
        "",
        "| function | q | optimizer | seeds | after 50 | after 100 | after 200 |",
        "|---|---|---|---|---|---|---|",
    ]
    table: dict[tuple[str, int, str], list[list[float]]] = {}
    for o, f, q, _s, trace, _t in results:
        table.setdefault((f, q, o), []).append(trace)
    for f in functions:
        for q in modes:
            for o in optimizers:
                traces = table.get((f, q, o), [])
                if not traces:
                    continue
                cells = [
                    _cell([t[min(c, len(t)) - 1] for t in traces])
                    for c in CHECKPOINTS
                    if c <= args.evals
                ]
                lines.append(f"| {f} | {q} | {o} | {len(traces)} | " + " | ".join(cells) + " |")

    lines += _verdicts(table, functions, modes, optimizers, args.evals)

    over: dict[str, dict[int, float]] = {}
    points = [int(n) for n in args.overhead_points.split(",") if n]
    for o in available([x for x in args.overhead_optimizers.split(",") if x]):
        over[o] = {n: overhead(o, n) for n in points}
    if over:
        load = os.getloadavg()
        lines += [
            "",
            f"### Seconds per ask(8)+tell(8) on ackley10 after N finished points "
            f"(median of 3; load average {load[0]:.2f})",
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
    text = "\n".join(lines) + "\n"
    print(text)
    with open(args.out, "w") as f:
        f.write(text)
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump({"quality": results, "overhead": over}, f)


if __name__ == "__main__":
    main()
