"""Asynchronous model-based search (AMBS): a surrogate model proposes where to evaluate next.

After an initial design, every ``ask(n)`` fits the surrogate to the finished evaluations (only
when new results arrived since the last fit), minimises an acquisition function over a large
candidate set, and picks ``n`` distinct points. Evaluations still running elsewhere are
accounted for with a constant liar, or spread apart with qUCB.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np

from hpsearch.problem import Problem
from hpsearch.search.acquisition import ACQUISITIONS, acquisition, search_candidates
from hpsearch.search.base import Optimizer, Seed
from hpsearch.search.surrogates import SURROGATES, Surrogate, make_surrogate
from hpsearch.space import SAMPLING_METHODS

LIARS = ("cl_max", "cl_min", "cl_mean", "kb", "qUCB")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        among = "{" + ", ".join(repr(c) for c in choices) + "}"
        raise ValueError(
            f"The {name!r} parameter of AMBS must be a str among {among}. Got {value!r} instead."
        )


def _check_number(name: str, value: Any) -> float:
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or float(value) < 0:
        raise ValueError(
            f"The {name!r} parameter of AMBS must be a float >= 0. Got {value!r} instead."
        )
    return float(value)


def log_gap(y: np.ndarray) -> np.ndarray:
    """The values the surrogate learns: ``log(y - min(y) + eps)``, a monotone transform.

    Objectives often span orders of magnitude (a diverging loss next to good ones); on the raw
    scale the bad values dominate the model and flatten the region that matters. On this
    scale the model resolves the differences among the best values, which is where the next
    points should go. ``eps`` is a millionth of the range of ``y``.
    """
    gap = y - y.min()
    return np.log(gap + 1e-6 * gap.max() + np.finfo(float).tiny)


class AMBS(Optimizer):
    """Bayesian optimisation with a surrogate model, for many asynchronous workers.

    - ``surrogate``: ``"RF"`` (random forest), ``"ET"`` (extra trees), ``"GBRT"`` (quantile
      gradient boosting) or ``"GP"`` (Gaussian process, for few dimensions and evaluations).
    - ``acq``: ``"LCB"`` (``mean - kappa * sigma``), ``"EI"`` or ``"PI"`` (with margin ``xi``).
    - ``liar``: how points still running are accounted for. ``"cl_max"`` assumes they return
      the worst value seen (pessimistic), ``"cl_min"`` the best (optimistic),
      ``"cl_mean"`` the mean, ``"kb"`` (kriging believer) the surrogate's own prediction
      there (it lowers sigma around them, not the mean); ``"qUCB"`` does not lie but draws a
      different kappa per point
      from an exponential distribution of mean ``kappa`` (needs ``acq="LCB"``).
    - ``n_initial`` points come from the ``initial`` design (``random``, ``lhs``, ``sobol``).

    >>> opt = AMBS(problem, surrogate="RF", seed=0)
    >>> configs = opt.ask(8)
    >>> opt.tell(configs, objectives)
    """

    def __init__(
        self,
        problem: Problem,
        surrogate: str = "RF",
        acq: str = "LCB",
        kappa: float = 1.96,
        xi: float = 0.01,
        liar: str = "cl_max",
        n_initial: int = 10,
        initial: str = "lhs",
        seed: Seed = None,
    ) -> None:
        _check_choice("surrogate", surrogate, SURROGATES)
        _check_choice("acq", acq, ACQUISITIONS)
        _check_choice("liar", liar, LIARS)
        _check_choice("initial", initial, SAMPLING_METHODS)
        self.kappa = _check_number("kappa", kappa)
        self.xi = _check_number("xi", xi)
        if (
            not isinstance(n_initial, int | np.integer)
            or isinstance(n_initial, bool)
            or n_initial < 1
        ):
            raise ValueError(
                "The 'n_initial' parameter of AMBS must be an int in the range [1, inf). "
                f"Got {n_initial!r} instead."
            )
        if liar == "qUCB" and acq != "LCB":
            raise ValueError(
                f"The 'liar' parameter 'qUCB' of AMBS needs acq='LCB'. Got acq={acq!r} instead."
            )
        super().__init__(problem, seed)
        self.surrogate, self.acq, self.liar = surrogate, acq, liar
        self.n_initial, self.initial = int(n_initial), initial
        self.model_: Surrogate = make_surrogate(surrogate, self.rng)
        self._features: list[np.ndarray] = []
        self._design: np.ndarray | None = None
        self._fitted_on: tuple | None = None  # what the model was fitted on (see _fit)

    # ---- ask/tell core -----------------------------------------------------------------
    def _tell(self, U: np.ndarray, y: np.ndarray) -> None:
        self._features.append(self.space.features(U))

    def _ask(self, n: int) -> np.ndarray:
        found = self._initial_points(n)
        if len(found) < n:
            if self._finite_count() >= 2:
                found = np.vstack([found, self._model_points(n - len(found), found)])
            else:
                taken = set(self.space.keys(self.space.decode(found)))
                found = np.vstack([found, self._sample_new(n - len(found), exclude=taken)])
        return found

    def _finite_count(self) -> int:
        return int(np.isfinite(self._targets()).sum()) if self.n_told else 0

    def _initial_points(self, n: int) -> np.ndarray:
        """The next points of the initial design not yet asked (an empty array once used up)."""
        if self._design is None:
            self._design = self._sample_new(self.n_initial, self.initial)
        available = self._filter_new_feasible(self._design, limit=n)
        used = self.n_told + self.n_pending
        if used >= self.n_initial:
            return np.zeros((0, len(self.space)))
        return available[: self.n_initial - used]

    def _training_data(self) -> tuple[np.ndarray, np.ndarray]:
        y = self._targets().copy()
        finite = np.isfinite(y)
        # Failed evaluations look like the worst success: steers away without wild values.
        y[~finite] = y[finite].max()
        return np.vstack(self._features), log_gap(y)

    def _fit(self) -> np.ndarray:
        X, y = self._training_data()
        # Multi-objective targets change with the weights redrawn on each ask.
        weights = None if self.weights_ is None else tuple(self.weights_)
        if self._fitted_on != (self.n_told, weights):
            self.model_.update(X, y)
            self._fitted_on = (self.n_told, weights)
        return y

    def _model_points(self, n: int, taken: np.ndarray) -> np.ndarray:
        y = self._fit()
        y_best = float(y.min())
        U_told = np.asarray(self.X_)
        best = U_told[np.argsort(y)[: min(10, len(y))]]
        exclude = set(self.space.keys(self.space.decode(taken)))

        def new_feasible(U: np.ndarray) -> np.ndarray:
            return self._filter_new_feasible(U, exclude=exclude)

        def score(U: np.ndarray) -> np.ndarray:
            mean, sigma = self.model_.predict(self.space.features(U))
            return acquisition(self.acq, mean, sigma, kappa=self.kappa, xi=self.xi, y_best=y_best)

        candidates = search_candidates(score, new_feasible, best, self.rng)
        chosen = self._choose(candidates, n, y)
        picked = candidates[chosen]
        if len(picked) < n:  # tiny or exhausted space: whatever new points remain
            exclude |= set(self.space.keys(self.space.decode(picked)))
            picked = np.vstack([picked, self._sample_new(n - len(picked), exclude=exclude)])
        return picked

    def _choose(self, candidates: np.ndarray, n: int, y: np.ndarray) -> list[int]:
        """Indices of ``n`` distinct candidates picked one after the other."""
        if not len(candidates):
            return []
        posterior = self.model_.posterior(self.space.features(candidates))
        lying = self.liar != "qUCB"
        # a constant lie, or None for the believer's (the model's own mean at the point)
        lie = {"cl_max": y.max(), "cl_min": y.min(), "cl_mean": y.mean()}.get(self.liar)
        if lying and self.pending_:
            pending = self.space.features(np.array(list(self.pending_.values())))
            lies = self.model_.predict(pending)[0] if lie is None else np.full(len(pending), lie)
            posterior.add(pending, lies)
        open_ = np.ones(len(candidates), dtype=bool)
        chosen: list[int] = []
        picks = min(n, len(candidates))
        for k in range(picks):
            kappa = self.rng.exponential(self.kappa) if self.liar == "qUCB" else self.kappa
            mean, sigma = posterior.mean_std()
            scores = acquisition(self.acq, mean, sigma, kappa=kappa, xi=self.xi, y_best=y.min())
            scores[~open_] = np.inf
            i = int(np.argmin(scores))
            chosen.append(i)
            open_[i] = False
            if lying and k + 1 < picks:  # no refit after the last pick
                posterior.add_at_candidates(
                    np.array([i]), np.array([mean[i] if lie is None else lie])
                )
        return chosen


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The AMBS options of ``python -m hpsearch.ambs``."""
    group = parser.add_argument_group("AMBS")
    group.add_argument(
        "--surrogate", choices=SURROGATES, default="RF", help="surrogate model (default RF)"
    )
    group.add_argument(
        "--acq", choices=ACQUISITIONS, default="LCB", help="acquisition function (default LCB)"
    )
    group.add_argument(
        "--kappa", type=float, default=1.96, help="LCB exploration weight (default 1.96)"
    )
    group.add_argument(
        "--xi", type=float, default=0.01, help="EI/PI improvement margin (default 0.01)"
    )
    group.add_argument(
        "--liar", choices=LIARS, default="cl_max", help="multipoint strategy (default cl_max)"
    )
    group.add_argument(
        "--n-initial", type=int, default=10, help="points of the initial design (default 10)"
    )
    group.add_argument(
        "--initial", choices=SAMPLING_METHODS, default="lhs", help="initial design (default lhs)"
    )


#: The AMBS parameters set by flags of the same name (``--n-initial`` for ``n_initial``).
PARAMETERS = ("surrogate", "acq", "kappa", "xi", "liar", "n_initial", "initial")


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The AMBS parameters of a parsed command line, by name (the seed excluded)."""
    return {name: getattr(args, name) for name in PARAMETERS}


def build(problem: Problem, args: argparse.Namespace) -> AMBS:
    """The AMBS optimizer configured by the command line."""
    return AMBS(problem, **parameters(args), seed=args.seed)
