"""Optimizer quality on COCO's BBOB functions and scikit-learn tuning tasks, on q asynchronous
workers, plus the optimizers' ask/tell overhead.

    python scripts/bench_quality.py --functions 10,21 --dims 5 --instances design --tasks '' \\
        --optimizers ambs-RF,optuna-tpe,random --q 8 --seeds 3 --out quality-bbob.md
    python scripts/bench_quality.py --functions '' --tasks svc-digits,rf-wine --q 8 --seeds 3 \\
        --out quality-tuning.md
    python scripts/bench_quality.py --functions 1-24 --dims 5,10 --q 1,8,64 --seeds 10 \\
        --processes 2 --out quality-full.md   # the full grid, design instances
    python scripts/bench_quality.py --functions '' --tasks '' --overhead-points 1000,5000 \\
        --out overhead.md
    python scripts/bench_quality.py --functions 1,10,15,21 --dims 5 --tasks '' \\
        --optimizers 'ambs-RF,ambs[liar=kb],ambs[acq=EI]' --q 8 --out variants.md  # AMBS variants

Workers: every search runs ``--evals`` evaluations on q workers whose evaluation times are
drawn from a lognormal (median 600 virtual seconds, sigma 0.5) seeded by the search's seed, so
every optimizer of a seed sees the same sequence of durations. Whenever one evaluation
finishes, the optimizer learns that one result and proposes the next point while the others
are still running, as under mpirun. hpsearch's optimizers (``ambs-RF``, ``random``,
``optuna-tpe``) run in hpsearch's own search loop through :func:`hpsearch.simulate.simulate`,
so the suggestion buffer and the constant liar run as in a real search; that loop keeps a
suggestion or two ready beyond the free workers, so their asks see q-1 running points plus the
ready ones (the table gives the median count). scikit-optimize, SMAC3 and ``ambs-RF-direct``
(AMBS asked and told directly, without the loop) run in an event-driven emulation of the same
workers and durations, asked with exactly q-1 pending.

Problems: BBOB functions (``--functions``, 1-24) in ``--dims`` on COCO's domain [-5, 5]^d,
instances 1-5 (``--instances design``, the ones to look at while changing an optimizer) or 6-10
(``report``, the ones to publish), or some of them (``--instances 6,7``); the score is the
log10 of the regret f - f_opt (floored at COCO's final target precision 1e-8), pooled over
instances and seeds per function and dimension. Tuning tasks (``--tasks``): scikit-learn models
on scikit-learn's bundled datasets, 3-fold cross-validated loss, each configuration computed
once and cached on disk beside ``--out``; the score is bayesmark's normalisation, (best loss -
best any search found) / (random search's median best loss at the same q - best any search
found): 0 is the best found by any optimizer, 1 is random search's median.

Every finished search is appended to a ``.jsonl`` file beside ``--out`` and the markdown is
rewritten as results come in; a rerun with the same ``--out`` runs only the missing searches.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import heapq
import importlib.util
import json
import logging
import math
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import Pool
from typing import Any

import numpy as np
from benchlib import cell, git_commit, load_records, one_thread

from hpsearch.problem import Problem
from hpsearch.results import load_results
from hpsearch.search.base import Optimizer
from hpsearch.simulate import parse_duration, simulate
from hpsearch.space import Categorical, Config, Integer, Real
from hpsearch.testfunctions import make_problem

DURATION = parse_duration("lognormal:600,0.5")
INSTANCES = {"design": [1, 2, 3, 4, 5], "report": [6, 7, 8, 9, 10]}
REGRET_FLOOR = 1e-8  # COCO's final target: f_opt + 1e-8
CHECKPOINTS = (50, 100, 200)
KEY = ("optimizer", "problem", "q", "seed", "evals")


# ---- problems ------------------------------------------------------------------------------
def bbob_problem(function: int, dim: int, instance: int) -> tuple[Problem, float]:
    """BBOB function ``function`` in ``dim`` dimensions, instance ``instance``, as a problem
    ``x0 .. x{d-1}`` on COCO's bounds, and its optimal value f_opt."""
    import cocoex

    def load():  # the suite's default instances are 1-5 and 71-80: ask for this one by number
        only = f"function_indices:{function} dimensions:{dim}"
        suite = cocoex.Suite("bbob", f"instances: {instance}", only)
        return suite.get_problem_by_function_dimension_instance(function, dim, instance)

    coco = load()
    # COCO keeps f_opt out of its interface on purpose; its maintainers read the optimum's
    # location from the file _best_parameter("print") writes, in the working directory.
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        probe = load()  # a separate copy, so that evaluating the optimum leaves coco untouched
        probe._best_parameter("print")
        f_opt = float(probe(np.loadtxt("._bbob_problem_best_parameter.txt", ndmin=1)))
        if not probe.final_target_hit:  # within 1e-8 of the true optimum, as COCO judges it
            raise RuntimeError(f"{coco.id}: no optimum from COCO's best parameter")
    problem = Problem(f"bbob-f{function}-d{dim}-i{instance}", direction="minimize")
    names = [f"x{i}" for i in range(dim)]
    for name, low, high in zip(names, coco.lower_bounds, coco.upper_bounds, strict=True):
        problem.add_hyperparameter(name, (float(low), float(high)))

    def run(config: Config) -> float:
        return float(coco(np.array([config[n] for n in names])))

    problem.run = run
    return problem, f_opt


@dataclass(frozen=True)
class Task:
    """A model on a dataset: its space (``add_hyperparameter`` shorthands), how to build the
    estimator from a configuration, and the loss (``log_loss``, ``error`` or ``mse``)."""

    model: str
    dataset: str
    loss: str
    space: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.model}-{self.dataset}"


def _estimator(task: Task, config: Config):
    from sklearn import ensemble, linear_model, neural_network, pipeline, preprocessing, svm

    c = dict(config)
    if task.model == "svc":
        model = svm.SVC(**c, random_state=0)
    elif task.model == "rf":
        model = ensemble.RandomForestClassifier(**c, random_state=0)
    elif task.model == "hgb":
        model = ensemble.HistGradientBoostingClassifier(**c, early_stopping=False, random_state=0)
    elif task.model == "gb":
        model = ensemble.GradientBoostingRegressor(**c, random_state=0)
    elif task.model == "mlp":
        c["hidden_layer_sizes"] = (c.pop("units"),)
        model = neural_network.MLPClassifier(**c, max_iter=40, random_state=0)
    elif task.model == "elasticnet":
        model = linear_model.ElasticNet(**c, max_iter=5000, random_state=0)
    elif task.model == "lasso":
        model = linear_model.Lasso(**c, random_state=0)
    else:
        raise ValueError(f"unknown model {task.model!r}")
    return pipeline.make_pipeline(preprocessing.StandardScaler(), model)


_LOG = "log-uniform"
TASKS = {
    t.name: t
    for t in [
        Task(
            "svc",
            "digits",
            "error",
            {
                "C": (1e-2, 1e3, _LOG),
                "gamma": (1e-5, 1.0, _LOG),
                "tol": (1e-5, 1e-1, _LOG),
                "kernel": ["rbf", "sigmoid"],
            },
        ),
        Task(
            "rf",
            "wine",
            "log_loss",
            {
                "n_estimators": (10, 100, _LOG),
                "max_depth": (1, 15),
                "max_features": (0.05, 1.0),
                "min_samples_split": (2, 20),
                "min_samples_leaf": (1, 20),
                "criterion": ["gini", "entropy"],
            },
        ),
        Task(
            "hgb",
            "breast_cancer",
            "log_loss",
            {
                "learning_rate": (1e-3, 1.0, _LOG),
                "max_iter": (10, 200, _LOG),
                "max_leaf_nodes": (4, 64, _LOG),
                "min_samples_leaf": (2, 64, _LOG),
                "l2_regularization": (1e-6, 10.0, _LOG),
                "max_features": (0.2, 1.0),
            },
        ),
        Task(
            "mlp",
            "digits",
            "log_loss",
            {
                "units": (16, 256, _LOG),
                "alpha": (1e-6, 10.0, _LOG),
                "batch_size": (16, 256, _LOG),
                "learning_rate_init": (1e-5, 1e-1, _LOG),
                "beta_1": (0.5, 0.99),
                "activation": ["relu", "tanh"],
            },
        ),
        Task(
            "mlp",
            "iris",
            "log_loss",
            {
                "units": (4, 128, _LOG),
                "alpha": (1e-6, 10.0, _LOG),
                "batch_size": (8, 64, _LOG),
                "learning_rate_init": (1e-4, 1.0, _LOG),
                "activation": ["relu", "tanh", "logistic"],
            },
        ),
        Task(
            "gb",
            "diabetes",
            "mse",
            {
                "n_estimators": (10, 200, _LOG),
                "learning_rate": (1e-3, 1.0, _LOG),
                "max_depth": (1, 8),
                "subsample": (0.3, 1.0),
                "min_samples_leaf": (1, 30, _LOG),
                "max_features": (0.1, 1.0),
                "loss": ["squared_error", "huber", "absolute_error"],
            },
        ),
        Task(
            "elasticnet",
            "diabetes",
            "mse",
            {
                "alpha": (1e-5, 10.0, _LOG),
                "l1_ratio": (0.01, 1.0),
                "tol": (1e-6, 1e-1, _LOG),
                "selection": ["cyclic", "random"],
            },
        ),
        Task(
            "lasso",
            "diabetes",
            "mse",
            {
                "alpha": (1e-5, 10.0, _LOG),
                "tol": (1e-6, 1e-1, _LOG),
                "max_iter": (10, 2000, _LOG),
                "selection": ["cyclic", "random"],
            },
        ),
    ]
}


def _dataset(name: str):
    from sklearn import datasets

    return getattr(datasets, f"load_{name}")(return_X_y=True)


def cross_validated_loss(task_name: str, config: tuple[tuple[str, Any], ...]) -> float:
    """3-fold cross-validated loss of ``config`` on the task; a configuration that fails
    (or gives NaN) scores as the constant predictor."""
    from sklearn import dummy, model_selection

    task = TASKS[task_name]
    X, y = _dataset(task.dataset)
    regression = task.loss == "mse"
    cv = (model_selection.KFold if regression else model_selection.StratifiedKFold)(
        3, shuffle=True, random_state=0
    )
    scoring = {"log_loss": "neg_log_loss", "error": "accuracy", "mse": "neg_mean_squared_error"}

    def loss(estimator) -> float:
        scores = model_selection.cross_val_score(
            estimator, X, y, cv=cv, scoring=scoring[task.loss], error_score=np.nan
        )
        mean = float(np.mean(scores))
        return 1.0 - mean if task.loss == "error" else -mean

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = loss(_estimator(task, dict(config)))
        if not math.isfinite(value):
            constant = dummy.DummyRegressor() if regression else dummy.DummyClassifier()
            value = loss(constant)
    return value


def tuning_problem(name: str, cache: str | None) -> Problem:
    """The task ``name`` as a problem to minimise; values cached in the directory ``cache``."""
    import joblib

    task = TASKS[name]
    problem = Problem(name, direction="minimize")
    for key, spec in task.space.items():
        problem.add_hyperparameter(key, spec)
    evaluate = joblib.Memory(cache, verbose=0).cache(cross_validated_loss)
    problem.run = lambda config: evaluate(name, tuple(sorted(config.items())))
    return problem


# ---- optimizers ----------------------------------------------------------------------------
class External:
    """An optimizer asked for one configuration at a time and told one result at a time,
    for a search of ``evals`` evaluations."""

    def __init__(self, problem: Problem, seed: int, evals: int) -> None:
        self.problem = problem
        self.space = problem.space
        self.seed = seed

    def ask(self) -> Config:
        raise NotImplementedError

    def tell(self, config: Config, value: float) -> None:
        raise NotImplementedError


def _python(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class Direct(External):
    """An hpsearch optimizer asked and told directly, without the search loop."""

    def __init__(self, problem, seed, evals, make: Callable[[Problem, int], Optimizer]) -> None:
        super().__init__(problem, seed, evals)
        self.optimizer = make(problem, seed)

    def ask(self):
        return self.optimizer.ask(1)[0]

    def tell(self, config, value):
        self.optimizer.tell([config], [value])


class Skopt(External):
    """scikit-optimize with extra trees and LCB (as in bench_optimizers); a point asked while
    others are pending comes from a copy told the lie min(y) for them (skopt's cl_min)."""

    def __init__(self, problem, seed, evals):
        super().__init__(problem, seed, evals)
        import skopt
        from skopt import space as sk

        dims = []
        for d in self.space:
            if isinstance(d, Categorical):
                dims.append(sk.Categorical(list(d.choices), name=d.name))
            elif isinstance(d, Integer | Real):
                cls = sk.Integer if isinstance(d, Integer) else sk.Real
                prior = "log-uniform" if d.log else "uniform"
                dims.append(cls(d.low, d.high, prior=prior, name=d.name))
        self.names = [d.name for d in self.space]
        self.opt = skopt.Optimizer(
            dims, base_estimator="ET", acq_func="LCB", n_initial_points=10, random_state=seed
        )
        self.pending: list[list] = []
        self.rng = np.random.default_rng(seed)

    def ask(self):
        opt = self.opt
        if self.pending:
            opt = self.opt.copy(random_state=int(self.rng.integers(2**31)))
            lie = min(opt.yi) if opt.yi else 0.0
            opt.tell(self.pending, [lie] * len(self.pending))
        x = [_python(v) for v in opt.ask()]
        self.pending.append(x)
        return dict(zip(self.names, x, strict=True))

    def tell(self, config, value):
        x = [config[n] for n in self.names]
        self.pending.remove(x)
        self.opt.tell(x, value)


class Smac(External):
    """SMAC3's HyperparameterOptimizationFacade (random forest, log-scaled EI), deterministic:
    one trial per configuration, asked and told one trial at a time."""

    def __init__(self, problem, seed, evals):
        super().__init__(problem, seed, evals)
        import ConfigSpace as cs
        from smac import HyperparameterOptimizationFacade, Scenario

        space = cs.ConfigurationSpace(seed=seed)
        for d in self.space:
            if isinstance(d, Categorical):
                space.add(cs.CategoricalHyperparameter(d.name, list(d.choices)))
            elif isinstance(d, Integer):
                space.add(cs.UniformIntegerHyperparameter(d.name, d.low, d.high, log=d.log))
            elif isinstance(d, Real):
                space.add(cs.UniformFloatHyperparameter(d.name, d.low, d.high, log=d.log))
        self.tmp = tempfile.TemporaryDirectory()
        scenario = Scenario(
            space,
            deterministic=True,
            n_trials=evals,  # sizes SMAC's initial design (a quarter of the budget at most)
            seed=seed,
            output_directory=self.tmp.name,
        )
        self.smac = HyperparameterOptimizationFacade(
            scenario, lambda config, seed=0: 0.0, overwrite=True, logging_level=40
        )
        self.trials: dict[tuple, Any] = {}

    def ask(self):
        info = self.smac.ask()
        config = {k: _python(v) for k, v in dict(info.config).items()}
        self.trials.setdefault(self.space.key(config), []).append(info)
        return config

    def tell(self, config, value):
        from smac.runhistory import TrialValue

        self.smac.tell(self.trials[self.space.key(config)].pop(), TrialValue(cost=value))


def _ambs(problem, seed, **options):
    from hpsearch.search.ambs import AMBS

    return AMBS(problem, **{"surrogate": "RF", **options}, seed=seed)


def _random(problem, seed):
    from hpsearch.search.random import RandomSearch

    return RandomSearch(problem, seed=seed)


def _tpe(problem, seed):
    from hpsearch.search.optuna_search import OptunaSearch

    return OptunaSearch(problem, sampler="tpe", seed=seed)


#: name -> (hpsearch optimizer run in the search loop | external one emulated, needed module)
OPTIMIZERS: dict[str, tuple[Callable, bool, str | None]] = {
    "ambs-RF": (_ambs, True, None),
    "random": (_random, True, None),
    "optuna-tpe": (_tpe, True, "optuna"),
    "ambs-RF-direct": (lambda p, s, n: Direct(p, s, n, _ambs), False, None),
    "skopt": (Skopt, False, "skopt"),
    "smac": (Smac, False, "smac"),
}


def optimizer_entry(name: str) -> tuple[Callable, bool, str | None]:
    """The entry of ``name`` in OPTIMIZERS; ``ambs[key=value,...]`` is AMBS (RF unless said)
    with those parameters, e.g. ``ambs[liar=kb,kappa=1]``."""
    if name in OPTIMIZERS:
        return OPTIMIZERS[name]
    if name.startswith("ambs[") and name.endswith("]"):
        options: dict[str, Any] = {}
        for item in name[5:-1].split(","):
            key, _, text = item.partition("=")
            try:
                options[key] = int(text)
            except ValueError:
                try:
                    options[key] = float(text)
                except ValueError:
                    options[key] = text
        return (lambda p, s: _ambs(p, s, **options)), True, None
    raise SystemExit(
        f"unknown optimizer {name!r}, expected one of {', '.join(OPTIMIZERS)} or ambs[k=v,...]"
    )


def available(names: list[str]) -> list[str]:
    """The optimizers of ``names`` whose library is installed (the others skipped, said so)."""
    out = []
    for name in names:
        module = optimizer_entry(name)[2]
        if module is None or importlib.util.find_spec(module) is not None:
            out.append(name)
        else:
            print(f"skipping {name}: {module} is not installed")
    return out


# ---- asynchronous workers ------------------------------------------------------------------
def in_search_loop(
    optimizer: Optimizer, q: int, evals: int, seed: int
) -> tuple[list[float], list[int]]:
    """Run ``optimizer`` in hpsearch's search loop on ``q`` simulated workers; the values in
    the order the evaluations finished, and the points pending at each ask."""
    pending: list[int] = []
    ask = optimizer.ask

    def counted_ask(n: int = 1) -> list[Config]:  # how many points the liar stands in for
        pending.append(optimizer.n_pending)
        return ask(n)

    optimizer.ask = counted_ask  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as out:
        simulate(optimizer, q, DURATION, out, evals, master_time="zero", seed=seed)
        df = load_results(out)
    done = df[df["status"] == "DONE"].sort_values(["t_end", "job_id"])
    return [float(v) for v in done["objective"]], pending


def emulated(
    optimizer: External, run: Callable[[Config], float], q: int, evals: int, seed: int
) -> tuple[list[float], list[int]]:
    """Run ``optimizer`` on ``q`` emulated workers with the search loop's durations (drawn in
    the order the evaluations start, from the same seed): each finished evaluation is told,
    then one configuration is asked. The values in finishing order, and the points pending at
    each ask."""
    rng = np.random.default_rng(seed)
    running: list[tuple[float, int, Config, float]] = []  # a heap on end time, then start
    values: list[float] = []
    pending: list[int] = []
    now, started = 0.0, 0

    def start() -> None:
        nonlocal started
        pending.append(len(running))
        config = optimizer.ask()
        end = now + DURATION(config, rng)
        heapq.heappush(running, (end, started, config, float(run(config))))
        started += 1

    for _ in range(min(q, evals)):
        start()
    while running:
        now, _, config, value = heapq.heappop(running)
        optimizer.tell(config, value)
        values.append(value)
        if started < evals:
            start()
    return values, pending


def problem_for(name: str, cache: str | None) -> tuple[Problem, float]:
    """The problem called ``name`` (``bbob-f10-d5-i1`` or a task) and the value subtracted to
    give the score (f_opt for BBOB, 0 for a task)."""
    if name.startswith("bbob-"):
        f, d, i = (int(part[1:]) for part in name.split("-")[1:])
        return bbob_problem(f, d, i)
    return tuning_problem(name, cache), 0.0


def run_one(job: tuple[str, str, int, int, int, str | None]) -> dict:
    """One search: the best-so-far score after each evaluation, the points pending at each
    ask, and the wall time."""
    optimizer, name, q, seed, evals, cache = job
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    problem, offset = problem_for(name, cache)
    make, in_loop, _ = optimizer_entry(optimizer)
    start = time.perf_counter()
    if in_loop:
        values, pending = in_search_loop(make(problem, seed), q, evals, seed)
    else:
        assert problem.run is not None
        values, pending = emulated(make(problem, seed, evals), problem.run, q, evals, seed)
    trace = np.minimum.accumulate(np.asarray(values) - offset)
    return {
        "optimizer": optimizer,
        "problem": name,
        "q": q,
        "seed": seed,
        "evals": evals,
        "trace": trace.tolist(),
        "pending": statistics.median(pending),
        "seconds": time.perf_counter() - start,
    }


# ---- overhead ------------------------------------------------------------------------------
def overhead(optimizer: str, n_points: int, repeats: int = 3) -> tuple[float, float]:
    """Median seconds of ask(1) with 7 pending and of tell(1), after ``n_points`` finished
    random points on ackley10."""
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    make, in_loop, _ = optimizer_entry(optimizer)
    if not in_loop:
        raise SystemExit(f"overhead is measured for hpsearch's optimizers, not {optimizer!r}")
    problem, run = make_problem("ackley10")
    opt = make(problem, 0)
    rng = np.random.default_rng(0)
    history = problem.space.decode(problem.space.sample_unit(n_points, rng))
    opt.tell(history, [run(c) for c in history])
    opt.ask(7)
    asks, tells = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        config = opt.ask(1)
        t1 = time.perf_counter()
        opt.tell(config, [run(config[0])])
        asks.append(t1 - t0)
        tells.append(time.perf_counter() - t1)
    return statistics.median(asks), statistics.median(tells)


# ---- tables --------------------------------------------------------------------------------
def group(name: str) -> str:
    """The problem a search counts for: a BBOB function and dimension pools its instances."""
    return name.rsplit("-", 1)[0] if name.startswith("bbob-") else name


def scores(records: list[dict]) -> dict[tuple[str, int, str], list[float]]:
    """Final score of every search, by (problem, q, optimizer): log10 regret for BBOB,
    the normalised loss for a task (NaN where random search has not run at that q)."""
    out: dict[tuple[str, int, str], list[float]] = {}
    best: dict[str, float] = {}
    for r in records:
        g = group(r["problem"])
        best[g] = min(best.get(g, math.inf), r["trace"][-1])
    random_median = {
        (g, q): statistics.median(v)
        for (g, q, o), v in _finals(records).items()
        if o == "random" and not g.startswith("bbob-")
    }
    for (g, q, o), finals in _finals(records).items():
        if g.startswith("bbob-"):
            out[(g, q, o)] = [math.log10(max(v, REGRET_FLOOR)) for v in finals]
        else:
            span = random_median.get((g, q), math.nan) - best[g]
            out[(g, q, o)] = [(v - best[g]) / span if span > 0 else math.nan for v in finals]
    return out


def _finals(records: list[dict]) -> dict[tuple[str, int, str], list[float]]:
    out: dict[tuple[str, int, str], list[float]] = {}
    for r in records:
        out.setdefault((group(r["problem"]), r["q"], r["optimizer"]), []).append(r["trace"][-1])
    return out


def _at_least_as_good(
    table: dict[tuple[str, int, str], list[float]], optimizers: list[str], modes: list[int]
) -> list[str]:
    """Per q, on how many problems each optimizer's median score is <= every other's, and
    AMBS-RF against TPE and SMAC3 one to one."""
    problems = sorted({g for g, _, _ in table})
    med = {k: float(np.median(v)) for k, v in table.items() if not np.isnan(v).all()}
    lines = [
        "",
        "### Problems where an optimizer is at least as good as every other (median score)",
        "",
        "| q | problems | " + " | ".join(optimizers) + " |",
        "|---|---|" + "---|" * len(optimizers),
    ]
    for q in modes:
        ran = [g for g in problems if all((g, q, o) in med for o in optimizers)]
        counts = [
            sum(med[(g, q, o)] <= min(med[(g, q, p)] for p in optimizers) for g in ran)
            for o in optimizers
        ]
        lines.append(f"| {q} | {len(ran)} | " + " | ".join(map(str, counts)) + " |")
    pairs = [("ambs-RF", o) for o in ("optuna-tpe", "smac") if o in optimizers]
    if "ambs-RF" in optimizers and pairs:
        lines += [
            "",
            "### AMBS-RF one to one: problems where it is at least as good (median score)",
            "",
            "| q | " + " | ".join(f"vs {o}" for _, o in pairs) + " |",
            "|---|" + "---|" * len(pairs),
        ]
        for q in modes:
            row = []
            for a, b in pairs:
                both = [g for g in problems if (g, q, a) in med and (g, q, b) in med]
                wins = sum(med[(g, q, a)] <= med[(g, q, b)] for g in both)
                row.append(f"{wins} of {len(both)}")
            lines.append(f"| {q} | " + " | ".join(row) + " |")
    return lines


def quality_lines(records: list[dict], optimizers: list[str], modes: list[int]) -> list[str]:
    evals = max(r["evals"] for r in records)
    checkpoints = [c for c in CHECKPOINTS if c < evals] + [evals]
    dates = sorted({r["date"] for r in records})
    commits = sorted({r["commit"] for r in records})
    lines = [
        f"{len(records)} searches, run {' to '.join(dict.fromkeys([dates[0], dates[-1]]))} "
        f"at commit {', '.join(commits)}; {sum(r['seconds'] for r in records):.0f} "
        "process-seconds of search.",
    ]
    traces: dict[tuple[str, int, str], list[dict]] = {}
    for r in records:
        traces.setdefault((group(r["problem"]), r["q"], r["optimizer"]), []).append(r)
    table = scores(records)
    bbob = sorted({g for g, _, _ in traces if g.startswith("bbob-")}, key=_natural)
    tasks = sorted({g for g, _, _ in traces if not g.startswith("bbob-")})
    if bbob:
        lines += [
            "",
            "### BBOB: log10 regret (median [q1, q3] over instances x seeds; lower is better)",
            "",
            "| function | q | optimizer | runs | pending at ask | "
            + " | ".join(f"after {c}" for c in checkpoints)
            + " |",
            "|---|---|---|---|---|" + "---|" * len(checkpoints),
        ]
        for g in bbob:
            for q in modes:
                for o in optimizers:
                    rs = traces.get((g, q, o), [])
                    if not rs:
                        continue
                    cells = [
                        cell(
                            [
                                math.log10(max(r["trace"][min(c, evals) - 1], REGRET_FLOOR))
                                for r in rs
                            ],
                            ".2f",
                        )
                        for c in checkpoints
                    ]
                    pending = statistics.median(r["pending"] for r in rs)
                    lines.append(
                        f"| {g} | {q} | {o} | {len(rs)} | {pending:g} | " + " | ".join(cells) + " |"
                    )
        lines += _at_least_as_good(
            {k: v for k, v in table.items() if k[0] in bbob}, optimizers, modes
        )
    if tasks:
        lines += [
            "",
            "### Tuning tasks: best cross-validated loss and normalised score "
            "(median [q1, q3] over seeds; 0 = best any search found, 1 = random search's median)",
            "",
            "| task | q | optimizer | seeds | pending at ask | best loss | normalised |",
            "|---|---|---|---|---|---|---|",
        ]
        for g in tasks:
            for q in modes:
                for o in optimizers:
                    rs = traces.get((g, q, o), [])
                    if not rs:
                        continue
                    norm = table[(g, q, o)]
                    pending = statistics.median(r["pending"] for r in rs)
                    lines.append(
                        f"| {g} | {q} | {o} | {len(rs)} | {pending:g} | "
                        f"{cell([r['trace'][-1] for r in rs], '.6g')} | "
                        + ("-" if np.isnan(norm).any() else cell(norm, ".3f"))
                        + " |"
                    )
        lines += _at_least_as_good(
            {k: v for k, v in table.items() if k[0] in tasks}, optimizers, modes
        )
    return lines


def _natural(name: str) -> tuple:
    return tuple(int(p[1:]) for p in name.split("-")[1:])


def _numbers(text: str) -> list[int]:
    """``1-3,7`` -> [1, 2, 3, 7]."""
    out: list[int] = []
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        out += list(range(int(low), int(high or low) + 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--functions", default="1-24", help="BBOB functions, e.g. 1-24 or 10,21")
    parser.add_argument("--dims", default="5,10", help="BBOB dimensions (default 5,10)")
    parser.add_argument(
        "--instances",
        default="design",
        help="BBOB instances: design (1-5), report (6-10) or numbers such as 6,7 (default design)",
    )
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"of {', '.join(TASKS)}")
    parser.add_argument(
        "--optimizers", default="ambs-RF,random,optuna-tpe,ambs-RF-direct,skopt,smac"
    )
    parser.add_argument("--q", default="1,8,64", help="workers (default 1,8,64)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    parser.add_argument(
        "--slow-seeds", default="", help="fewer seeds for slow optimizers, e.g. 'smac=1'"
    )
    parser.add_argument("--evals", type=int, default=200)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--overhead-points", default="", help="e.g. 1000,5000")
    parser.add_argument("--overhead-optimizers", default="ambs-RF,optuna-tpe")
    parser.add_argument(
        "--out",
        default="bench_quality.md",
        help="markdown output; every finished search is appended to the .jsonl beside it, "
        "tuning values are cached in the -cache directory beside it",
    )
    args = parser.parse_args()

    optimizers = available(args.optimizers.split(",") if args.optimizers else [])
    seeds = dict.fromkeys(optimizers, args.seeds)
    for item in filter(None, args.slow_seeds.split(",")):
        name, _, count = item.partition("=")
        seeds[name] = int(count)
    try:
        functions, dims, modes = (_numbers(a) for a in (args.functions, args.dims, args.q))
        instances = INSTANCES.get(args.instances) or _numbers(args.instances)
    except ValueError:
        parser.error(
            "--functions, --dims, --q and --instances take numbers such as 1-5,7 "
            "(--instances also design or report)"
        )
    if functions and importlib.util.find_spec("cocoex") is None:
        print("skipping the BBOB functions: cocoex (coco-experiment) is not installed")
        functions = []
    problems = [f"bbob-f{f}-d{d}-i{i}" for d in dims for f in functions for i in instances] + [
        t for t in args.tasks.split(",") if t
    ]
    for name in problems:
        if not name.startswith("bbob-") and name not in TASKS:
            raise SystemExit(f"unknown task {name!r}, expected one of {', '.join(TASKS)}")
    cache = os.path.abspath(os.path.splitext(args.out)[0] + "-cache")
    jobs = [
        (o, p, q, s, args.evals)
        for p in problems
        for q in modes
        for o in optimizers
        for s in range(seeds[o])
    ]
    jsonl = os.path.splitext(args.out)[0] + ".jsonl"
    earlier = load_records(jsonl, KEY)
    done = [earlier[j] for j in jobs if j in earlier]
    todo = [j for j in jobs if j not in earlier]
    print(f"{len(done)} searches reused from {jsonl}, {len(todo)} to run", flush=True)
    header = (
        f"Run on {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {args.processes} processes; durations {DURATION.text}."
    )

    def write(lines: list[str]) -> None:
        with open(args.out, "w") as f:
            f.write("\n".join([header, "", *lines]) + "\n")

    commit = git_commit()
    start = time.time()
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(open(jsonl, "a"))
        if args.processes > 1:
            pool = stack.enter_context(Pool(args.processes, one_thread))
            results = pool.imap_unordered(run_one, [(*j, cache) for j in todo])
        else:
            one_thread()
            results = (run_one((*j, cache)) for j in todo)
        for i, record in enumerate(results, 1):
            record.update(date=datetime.date.today().isoformat(), commit=commit)
            done.append(record)
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(
                f"{i}/{len(todo)} {record['optimizer']} {record['problem']} q={record['q']} "
                f"seed={record['seed']}: {record['trace'][-1]:.4g} in {record['seconds']:.0f} s",
                flush=True,
            )
            write(quality_lines(done, optimizers, modes))
    lines = quality_lines(done, optimizers, modes) if done else []
    if todo:
        lines.insert(
            1,
            f"This run: {len(todo)} searches in {time.time() - start:.0f} s; "
            f"load average after them {os.getloadavg()[0]:.2f}.",
        )
    points = [int(n) for n in args.overhead_points.split(",") if n]
    names = [o for o in args.overhead_optimizers.split(",") if o] if points else []
    over = {o: {n: overhead(o, n) for n in points} for o in available(names)}
    if over:
        lines += [
            "",
            "### Seconds of ask(1) with 7 pending / tell(1) on ackley10 after N finished points "
            f"(median of 3; {datetime.date.today().isoformat()}, "
            f"load average {os.getloadavg()[0]:.2f})",
            "",
            "| optimizer | " + " | ".join(f"N={n}" for n in points) + " |",
            "|---|" + "---|" * len(points),
        ]
        for o, row in over.items():
            lines.append(
                f"| {o} | " + " | ".join(f"{a:.3g} / {t:.3g}" for a, t in row.values()) + " |"
            )
    write(lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
