"""The ask/tell interface every optimizer implements, and the bookkeeping they share."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hpsearch.problem import Problem
from hpsearch.space import Config

log = logging.getLogger(__name__)

Seed = int | np.random.Generator | None


def is_failure(objective: Any) -> bool:
    """True for the objective of a failed evaluation: None, NaN or an infinity (in any component)."""
    if objective is None:
        return True
    if isinstance(objective, list | tuple | np.ndarray):
        return len(objective) == 0 or any(is_failure(o) for o in objective)
    try:
        return not math.isfinite(float(objective))
    except (TypeError, ValueError):
        return True


class UnsuitedProblem(ValueError):
    """The problem's results do not suit the method (several objectives for a method that
    minimises one): the search stops with this one-line message, keeping what finished."""


class Optimizer:
    """Proposes configurations (``ask``) and learns from their outcomes (``tell``).

    Objectives are given in the problem's direction; this class converts them, once, into
    values to minimise (``y``, NaN for a failed evaluation). It remembers the points asked
    but not yet told (*pending*: running on some worker) so that subclasses can account for
    them and never propose a configuration that is pending or already finished.

    Subclasses implement :meth:`_ask` and, if they learn, :meth:`_tell`.

    Multi-objective problems (a run returns a list of objectives, all in the problem's
    direction) keep every objective in ``Y_``; ``y_`` and :meth:`best` follow the first, primary
    one, and :meth:`_targets` scalarises them with random weights redrawn on each ask
    (augmented Chebyshev, as in ParEGO), so a surrogate explores the whole Pareto front.
    """

    #: Weight of the sum term in the augmented Chebyshev scalarisation.
    chebyshev_rho = 0.05

    #: How many random draws per wanted point before giving up on finding a new feasible one.
    max_draws_per_point = 1000

    def __init__(self, problem: Problem, seed: Seed = None) -> None:
        self.problem = problem
        self.space = problem.space
        self.rng = np.random.default_rng(seed)
        self.X_: list[np.ndarray] = []  # unit points told, in order
        self.y_: list[float] = []  # minimisation values, NaN for failures
        self.Y_: list[np.ndarray | None] = []  # all objectives (minimised) when several
        self.weights_: np.ndarray | None = None  # scalarisation weights of the current ask
        self.pending_: dict[tuple, np.ndarray] = {}
        self.seen_: set[tuple] = set()
        self.n_asks_ = 0  # calls of ask() that proposed something
        self._warned_exhausted = False

    # ---- public API --------------------------------------------------------------------
    def ask(self, n: int = 1) -> list[Config]:
        """Return ``n`` new feasible configurations, marked pending until told."""
        if not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"ask() needs a count n >= 0, but got {n!r}")
        if n == 0:
            return []
        self.n_asks_ += 1
        k = self.n_objectives
        if k > 1:
            self.weights_ = self.rng.dirichlet(np.ones(k))
        U = self._ask(int(n))
        configs = self.space.decode(U)
        for u, key in zip(U, self.space.keys(configs), strict=True):
            self.pending_[key] = u
            self.seen_.add(key)
        return configs

    def tell(self, configs: Sequence[Mapping[str, Any]], objectives: Sequence[Any]) -> None:
        """Record finished evaluations; objectives in the problem's direction, None/NaN = failed."""
        if len(configs) != len(objectives):
            raise ValueError(
                f"tell() needs one objective per configuration, but got {len(configs)} "
                f"configurations and {len(objectives)} objectives"
            )
        if not configs:
            return
        configs = [self.space.validate(c) for c in configs]
        U = self.space.encode(configs)
        vectors = [
            None
            if is_failure(o) or not isinstance(o, list | tuple | np.ndarray)
            else self.problem.sign * np.asarray(o, dtype=float)
            for o in objectives
        ]
        y = np.array(
            [
                math.nan
                if is_failure(o)
                else (v[0] if v is not None else self.problem.sign * float(o))
                for o, v in zip(objectives, vectors, strict=True)
            ]
        )
        for u, key, value, vector in zip(U, self.space.keys(configs), y, vectors, strict=True):
            self.pending_.pop(key, None)
            self.seen_.add(key)
            self.X_.append(u)
            self.y_.append(float(value))
            self.Y_.append(vector)
        self._tell(U, y)

    def mark_pending(self, configs: Sequence[Mapping[str, Any]]) -> None:
        """Count configurations asked elsewhere (jobs run again on resume) as pending: the
        liar covers them and they are not proposed again until told or forgotten."""
        if not configs:
            return
        configs = [self.space.validate(c) for c in configs]
        for u, key in zip(self.space.encode(configs), self.space.keys(configs), strict=True):
            self.pending_[key] = u
            self.seen_.add(key)

    def forget(self, configs: Sequence[Mapping[str, Any]]) -> None:
        """Drop pending configurations that will never be told (cancelled evaluations)."""
        for key in self.space.keys(configs):
            if self.pending_.pop(key, None) is not None:
                self.seen_.discard(key)

    @property
    def exhausted(self) -> bool:
        """True when ``ask`` will never propose a configuration again (a finite method's end)."""
        return False

    @property
    def n_told(self) -> int:
        return len(self.y_)

    @property
    def n_pending(self) -> int:
        return len(self.pending_)

    @property
    def n_objectives(self) -> int:
        """How many objectives the finished evaluations returned (1 until a vector is told)."""
        return max((len(v) for v in self.Y_ if v is not None), default=1)

    def best(self) -> tuple[Config, float] | None:
        """The best finished configuration and its objective (problem's direction), if any."""
        y = np.asarray(self.y_)
        if not np.isfinite(y).any():
            return None
        i = int(np.nanargmin(y))
        return self.space.decode(self.X_[i])[0], float(self.problem.sign * y[i])

    # ---- for subclasses ----------------------------------------------------------------
    def _ask(self, n: int) -> np.ndarray:
        """Return ``n`` canonical unit points, feasible and neither pending nor finished."""
        raise NotImplementedError

    def _tell(self, U: np.ndarray, y: np.ndarray) -> None:
        """Learn from new finished points (unit points, minimisation values with NaN = failed)."""

    def _targets(self) -> np.ndarray:
        """The values a surrogate should learn, one per told point (to minimise, NaN = failed).

        With several objectives: each is scaled to [0, 1] over the finished points, then
        combined as ``max_i(w_i f_i) + rho * sum_i(w_i f_i)`` with the weights of this ask.
        """
        y = np.asarray(self.y_, dtype=float)
        k = self.n_objectives
        if k == 1:
            return y
        F = np.full((len(y), k), math.nan)
        for i, vector in enumerate(self.Y_):
            if vector is not None and len(vector) == k:
                F[i] = vector
        ok = np.isfinite(F).all(axis=1)
        if not ok.any():
            return np.full(len(y), math.nan)
        low, high = F[ok].min(axis=0), F[ok].max(axis=0)
        F = (F - low) / np.where(high > low, high - low, 1.0)
        if self.weights_ is None:
            self.weights_ = np.full(k, 1.0 / k)
        wF = self.weights_ * F
        return np.where(ok, wF.max(axis=1) + self.chebyshev_rho * wF.sum(axis=1), math.nan)

    def _filter_new_feasible(
        self, U: np.ndarray, limit: int | None = None, exclude: set[tuple] | None = None
    ) -> np.ndarray:
        """Keep the rows of ``U`` (in order, snapped to canonical points) that decode to
        feasible configurations, distinct from each other and from the seen (and ``exclude``) ones."""
        if not len(U):
            return np.zeros((0, len(self.space)))
        configs = self.space.decode(U)
        taken = set(exclude or ())
        keep: list[int] = []
        for i, (config, key) in enumerate(zip(configs, self.space.keys(configs), strict=True)):
            if key in self.seen_ or key in taken or not self.problem.is_feasible(config):
                continue
            taken.add(key)
            keep.append(i)
            if limit is not None and len(keep) >= limit:
                break
        return self.space.encode([configs[i] for i in keep])

    def _sample_new(
        self, n: int, method: str = "random", exclude: set[tuple] | None = None
    ) -> np.ndarray:
        """Draw ``n`` feasible, unseen, distinct canonical points (random/LHS/Sobol design),
        none of them among the keys in ``exclude`` (points already picked for this ask).

        The very first point asked is the problem's default configuration when it declares
        defaults, as a user who gives defaults expects them to be tried.
        """
        exclude = exclude or set()
        found = np.zeros((0, len(self.space)))
        if self.space.has_defaults and not self.seen_:
            default = self.space.encode([self.space.default_config()])
            found = self._filter_new_feasible(default, exclude=exclude)
        draws = 0
        while len(found) < n:
            want = n - len(found)
            batch = self.space.sample_unit(want if not draws else max(want, 16), self.rng, method)
            draws += len(batch)
            method = "random"  # a design is drawn once; top up with random points
            taken = set(self.space.keys(self.space.decode(found))) | exclude
            found = np.vstack([found, self._filter_new_feasible(batch, want, exclude=taken)])
            if len(found) < n and draws > self.max_draws_per_point * n:
                found = np.vstack([found, self._fallback(n - len(found))])
        return found[:n]

    def _fallback(self, n: int) -> np.ndarray:
        """Points for when no new feasible configuration can be found: feasible repeats."""
        if not self._warned_exhausted:
            log.warning(
                "problem %r: no new feasible configuration found after %d draws; "
                "the space looks exhausted, repeating configurations",
                self.problem.name,
                self.max_draws_per_point,
            )
            self._warned_exhausted = True
        for _ in range(self.max_draws_per_point):
            U = self.space.sample_unit(64, self.rng)
            configs = self.space.decode(U)
            ok = [c for c in configs if self.problem.is_feasible(c)]
            if ok:
                return self.space.encode([ok[i % len(ok)] for i in range(n)])
        raise RuntimeError(
            f"problem {self.problem.name!r}: the constraints reject every sampled configuration"
        )
