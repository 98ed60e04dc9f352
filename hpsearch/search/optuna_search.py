"""Optuna's samplers behind the ask/tell interface: an in-memory study on the master.

Every configuration asked is a trial of the study, running until it is told, so samplers
that account for running trials (TPE with ``constant_liar``) see the evaluations still
running on workers. A failed or cancelled evaluation is a failed trial; a proposal the
constraints reject is a pruned trial (TPE counts it among the worst), one already taken a
failed trial. Conditional dimensions are suggested only when active. Optuna is imported
when an optimizer is built, so that ``--help`` works without it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from hpsearch.problem import Problem
from hpsearch.search.base import Optimizer, Seed, UnsuitedProblem
from hpsearch.space import Categorical, Config, Dimension, Integer, Real

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

#: The samplers of ``--sampler``: name -> class in ``optuna.samplers``.
SAMPLERS = {
    "tpe": "TPESampler",
    "cmaes": "CmaEsSampler",
    "gp": "GPSampler",
    "nsga2": "NSGAIISampler",
    "qmc": "QMCSampler",
    "random": "RandomSampler",
}
#: Keyword arguments a sampler gets unless ``sampler_args`` sets them: TPE lies about running
#: trials, QMC's points depend on the seed, and samplers that fall back to independent
#: sampling say so once (at build) rather than on every trial.
DEFAULT_ARGS: dict[str, dict[str, Any]] = {
    "tpe": {"constant_liar": True},
    "cmaes": {"warn_independent_sampling": False},
    "qmc": {"scramble": True, "warn_independent_sampling": False},
}
INSTALL = "pip install 'hpsearch[optuna]'"
#: Samplers that need a package Optuna imports only once they sample: name -> (module, install).
NEEDS = {"gp": ("torch", "pip install torch")}


def require_optuna() -> ModuleType:
    """The optuna module; ValueError with the install line when it is missing."""
    try:
        import optuna
    except ImportError:
        raise ValueError(f"the optuna method needs Optuna: {INSTALL}") from None
    return optuna


def make_sampler(
    name: str, sampler_args: Mapping[str, Any], seed: int
) -> optuna.samplers.BaseSampler:
    """Optuna's sampler ``name`` with ``sampler_args`` (over :data:`DEFAULT_ARGS`) and ``seed``.

    Raises ValueError naming what is wrong: the sampler, an argument or a missing package.
    """
    if name not in SAMPLERS:
        raise ValueError(f"unknown --sampler {name!r}, expected one of {', '.join(SAMPLERS)}")
    if "seed" in sampler_args:
        raise ValueError("--sampler-args: give the seed with --seed, not as a sampler argument")
    optuna = require_optuna()
    if name in NEEDS and importlib.util.find_spec(NEEDS[name][0]) is None:
        module, install = NEEDS[name]
        raise ValueError(f"the {name} sampler needs {module}: {install}")
    cls = getattr(optuna.samplers, SAMPLERS[name])
    kwargs = {**DEFAULT_ARGS.get(name, {}), **sampler_args, "seed": seed}
    try:
        with warnings.catch_warnings():  # the user chose the sampler, experimental or not
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(**kwargs)
    except ImportError as err:
        raise ValueError(f"the {name} sampler needs {err.name or 'a package'}: {INSTALL}") from None
    except (TypeError, ValueError) as err:
        raise ValueError(f"--sampler-args {json.dumps(dict(sampler_args))}: {err}") from None


def distribution(dim: Dimension) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution of a dimension: log scales and integer steps kept, ordinal
    dimensions categorical."""
    optuna = require_optuna()
    if isinstance(dim, Real):
        return optuna.distributions.FloatDistribution(dim.low, dim.high, log=dim.log)
    if isinstance(dim, Integer):
        return optuna.distributions.IntDistribution(dim.low, dim.high, log=dim.log, step=1)
    if isinstance(dim, Categorical):
        return optuna.distributions.CategoricalDistribution(list(dim.choices))
    raise ValueError(f"the {dim.kind} dimension {dim.name!r} has no Optuna distribution")


def _suggest(trial: optuna.trial.Trial, dim: Dimension) -> Any:
    if isinstance(dim, Real):
        return trial.suggest_float(dim.name, dim.low, dim.high, log=dim.log)
    if isinstance(dim, Integer):
        return trial.suggest_int(dim.name, dim.low, dim.high, step=1, log=dim.log)
    if isinstance(dim, Categorical):
        return trial.suggest_categorical(dim.name, list(dim.choices))
    raise ValueError(f"the {dim.kind} dimension {dim.name!r} has no Optuna distribution")


class OptunaSearch(Optimizer):
    """Ask an Optuna sampler (``"tpe"``, ``"cmaes"``, ``"gp"``, ``"nsga2"``, ``"qmc"``,
    ``"random"``)
    for configurations, with ``sampler_args`` as the sampler's keyword arguments.

    The study minimises the objectives as :class:`Optimizer` stores them; it becomes
    multi-objective when the first successful evaluation returns several objectives.
    A sampler that proposes only infeasible or taken configurations ``max_proposals`` times
    in a row gets a new feasible one drawn at random instead.

    >>> opt = OptunaSearch(problem, sampler="tpe", seed=0)
    >>> configs = opt.ask(8)
    >>> opt.tell(configs, objectives)
    """

    max_proposals = 20

    def __init__(
        self,
        problem: Problem,
        sampler: str = "tpe",
        sampler_args: Mapping[str, Any] | None = None,
        seed: Seed = None,
    ) -> None:
        super().__init__(problem, seed)
        for dim in self.space:
            distribution(dim)  # every dimension maps to Optuna, or this says which does not
        self.sampler = sampler
        self.sampler_args = dict(sampler_args or {})
        self.sampler_ = make_sampler(sampler, self.sampler_args, int(self.rng.integers(2**31)))
        self.study_ = require_optuna().create_study(sampler=self.sampler_, direction="minimize")
        self._running: dict[tuple, optuna.trial.Trial] = {}  # pending key -> its trial
        if self.space.has_defaults:
            self.study_.enqueue_trial(_active(self.space.default_config()))

    # ---- trials ------------------------------------------------------------------------
    def _suggest_config(self, trial: optuna.trial.Trial) -> Config:
        """The configuration a trial suggests (inactive dimensions None, never suggested),
        as the search's unit points decode it."""
        config: Config = {}
        for dim in self.space:
            active = dim.condition is None or dim.condition(config)
            config[dim.name] = _suggest(trial, dim) if active else None
        return self.space.decode(self.space.encode([config]))[0]

    def _fixed_trial(self, params: Mapping[str, Any]) -> optuna.trial.Trial:
        """A running trial with the given values (a configuration the sampler did not pick)."""
        self.study_.enqueue_trial(dict(params))
        trial = self.study_.ask()
        self._suggest_config(trial)
        return trial

    def _propose(self, taken: set[tuple]) -> Config:
        from optuna.trial import TrialState

        for _ in range(self.max_proposals):
            trial = self.study_.ask()
            config = self._suggest_config(trial)
            key = self.space.key(config)
            if not self.problem.is_feasible(config):
                self.study_.tell(trial, state=TrialState.PRUNED)
            elif key in self.seen_ or key in taken:
                self.study_.tell(trial, state=TrialState.FAIL)
            else:
                taken.add(key)
                self._running[key] = trial
                return config
        config = self.space.decode(self._sample_new(1, exclude=taken))[0]
        key = self.space.key(config)
        taken.add(key)
        self._running[key] = self._fixed_trial(_active(config))
        return config

    # ---- ask/tell core -----------------------------------------------------------------
    def _ask(self, n: int) -> np.ndarray:
        taken: set[tuple] = set()
        return self.space.encode([self._propose(taken) for _ in range(n)])

    def _tell(self, U: np.ndarray, y: np.ndarray) -> None:
        import optuna
        from optuna.trial import TrialState

        vectors = self.Y_[len(self.Y_) - len(U) :]
        k = max((len(v) for v in vectors if v is not None), default=1)
        if k > 1 and len(self.study_.directions) == 1 and not self._any_complete():
            self._become_multi_objective(k)
        n_directions = len(self.study_.directions)
        configs = self.space.decode(U)
        for config, key, value, vector in zip(
            configs, self.space.keys(configs), y, vectors, strict=True
        ):
            values = [float(value)] if vector is None else [float(v) for v in vector]
            failed = math.isnan(value) or len(values) != n_directions
            trial = self._running.pop(key, None)
            if trial is None:  # learned from an earlier run (resume)
                params = _active(config)
                self.study_.add_trial(
                    optuna.trial.create_trial(
                        state=TrialState.FAIL if failed else TrialState.COMPLETE,
                        values=None if failed else values,
                        params=params,
                        distributions={name: distribution(self.space[name]) for name in params},
                    )
                )
            elif failed:
                self.study_.tell(trial, state=TrialState.FAIL)
            else:
                self.study_.tell(trial, values)

    def _any_complete(self) -> bool:
        from optuna.trial import TrialState

        return bool(self.study_.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    def _become_multi_objective(self, k: int) -> None:
        """Start a study with ``k`` objectives, holding the old one's failed, pruned and
        running trials (nothing has completed: the first success returned ``k`` objectives)."""
        import optuna
        from optuna.trial import TrialState

        if isinstance(self.sampler_, optuna.samplers.CmaEsSampler):
            raise UnsuitedProblem(
                f"problem {self.problem.name!r} returns {k} objectives, and CMA-ES handles one: "
                "use --sampler nsga2 (or tpe)"
            )
        old = self.study_
        self.study_ = optuna.create_study(sampler=self.sampler_, directions=["minimize"] * k)
        for trial in old.get_trials(deepcopy=False, states=(TrialState.FAIL, TrialState.PRUNED)):
            self.study_.add_trial(trial)
        self._running = {key: self._fixed_trial(t.params) for key, t in self._running.items()}

    def mark_pending(self, configs: Sequence[Mapping[str, Any]]) -> None:
        configs = [self.space.validate(c) for c in configs]
        super().mark_pending(configs)
        # keyed as _tell will look them up: the configurations their unit points decode to
        configs = self.space.decode(self.space.encode(configs))
        for config, key in zip(configs, self.space.keys(configs), strict=True):
            if key not in self._running:
                self._running[key] = self._fixed_trial(_active(config))

    def forget(self, configs: Sequence[Mapping[str, Any]]) -> None:
        from optuna.trial import TrialState

        for key in self.space.keys(configs):
            trial = self._running.pop(key, None)
            if trial is not None:  # cancelled: it will never be told
                self.study_.tell(trial, state=TrialState.FAIL)
        super().forget(configs)


def _active(config: Mapping[str, Any]) -> dict[str, Any]:
    """The values of the active dimensions (a trial's parameters)."""
    return {name: value for name, value in config.items() if value is not None}


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object of keyword arguments, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m hpsearch.optuna``."""
    group = parser.add_argument_group("Optuna")
    group.add_argument(
        "--sampler", choices=SAMPLERS, default="tpe", help="Optuna sampler (default tpe)"
    )
    group.add_argument(
        "--sampler-args",
        type=_json_object,
        default={},
        help="the sampler's keyword arguments as a JSON object, e.g. '{\"n_startup_trials\": 5}'",
    )


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The Optuna parameters of a parsed command line (the seed excluded)."""
    return {"sampler": args.sampler, "sampler_args": args.sampler_args}


def build(problem: Problem, args: argparse.Namespace) -> OptunaSearch:
    """The Optuna search configured by the command line (Optuna's own log kept to warnings)."""
    optuna = require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = OptunaSearch(problem, **parameters(args), seed=args.seed)
    if args.sampler == "cmaes":
        independent = [d.name for d in problem.space if isinstance(d, Categorical) or d.condition]
        if independent:
            log.warning(
                "CMA-ES samples %s independently (categorical or conditional)",
                ", ".join(independent),
            )
    return search
