"""Surrogate models: predict a mean and an uncertainty (sigma) of the objective at new points.

Every surrogate learns from surrogate features (:meth:`Space.features`) and values to minimise.
:meth:`Surrogate.posterior` fixes a set of candidate points and lets the caller add *lies*
(assumed outcomes of running evaluations) cheaply, which is what constant-liar multipoint
search needs: forests update their leaf means in place, the GP refits with its kernel fixed.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.ensemble import (
    ExtraTreesRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

SURROGATES = ("RF", "ET", "GBRT", "GP")


class Posterior:
    """Mean and sigma on fixed candidates, updatable with lies at new points."""

    candidates: np.ndarray

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def add(self, X: np.ndarray, y: np.ndarray) -> None:
        """Condition on extra observations (e.g. lies for running points)."""
        raise NotImplementedError

    def add_at_candidates(self, indices: np.ndarray, y: np.ndarray) -> None:
        """Condition on observations at some of the candidates (e.g. lies for points just
        picked from them)."""
        self.add(self.candidates[indices], y)


class Surrogate:
    """A regression model with ``fit(X, y)``, ``predict(X) -> (mean, sigma)`` and ``posterior``."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> Surrogate:
        raise NotImplementedError

    def update(self, X: np.ndarray, y: np.ndarray) -> Surrogate:
        """Refit on ``X, y``, the data of the last fit plus new points (or new targets for
        it); a model may reuse what it learnt. By default, a full fit."""
        return self.fit(X, y)

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def posterior(self, candidates: np.ndarray) -> Posterior:
        raise NotImplementedError


class _RefitPosterior(Posterior):
    """Generic posterior: refit a copy of the model on the data plus lies (for GBRT and GP)."""

    def __init__(self, model: _RefitSurrogate, candidates: np.ndarray) -> None:
        self.model = model
        self.candidates = candidates
        self.X = model.X_
        self.y = model.y_
        self._pred = model.predict(candidates)

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        return self._pred

    def add(self, X: np.ndarray, y: np.ndarray) -> None:
        if not len(X):
            return
        self.X = np.vstack([self.X, X])
        self.y = np.concatenate([self.y, y])
        self._pred = self.model.refit_fixed(self.X, self.y).predict(self.candidates)


class _RefitSurrogate(Surrogate):
    X_: np.ndarray
    y_: np.ndarray

    def refit_fixed(self, X: np.ndarray, y: np.ndarray) -> Surrogate:
        """A copy fitted on ``X, y`` as cheaply as possible (hyperparameters kept)."""
        raise NotImplementedError

    def posterior(self, candidates: np.ndarray) -> Posterior:
        return _RefitPosterior(self, candidates)


class ForestSurrogate(Surrogate):
    """Random forest (``RF``) or extra trees (``ET``); sigma is the spread of the trees.

    Each tree predicts the mean of the training values in its leaf (all of them, not only its
    bootstrap sample), so adding an observation only updates the leaf sums it falls in: a lie
    costs one ``apply`` on one point, not a refit.

    Long histories stay cheap: ``max_samples`` caps the points each tree is grown on, and
    from ``regrow_from`` points on, :meth:`update` regrows only the ``regrow`` oldest trees and
    keeps the others, whose leaf statistics take in the new points.
    """

    def __init__(
        self,
        kind: str = "RF",
        n_estimators: int = 32,
        min_samples_leaf: int = 2,
        max_samples: int = 1000,
        regrow: int = 8,
        regrow_from: int = 500,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        self.kind = kind
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_samples = max_samples
        self.regrow = regrow
        self.regrow_from = regrow_from
        self.rng = np.random.default_rng(seed)
        self.trees_: list = []

    def fit(self, X: np.ndarray, y: np.ndarray) -> ForestSurrogate:
        return self._grow(X, y, self.n_estimators)

    def update(self, X: np.ndarray, y: np.ndarray) -> ForestSurrogate:
        # Where a tree grown on hundreds of points splits hardly moves with a few more, so
        # regrowing a quarter of the trees per update keeps the forest current at a quarter
        # of the cost; each tree is at most n_estimators / regrow updates old.
        partial = (
            len(X) >= self.regrow_from
            and bool(self.trees_)
            and self.trees_[0].n_features_in_ == X.shape[1]
        )
        return self._grow(X, y, self.regrow if partial else self.n_estimators)

    def _grow(self, X: np.ndarray, y: np.ndarray, n_trees: int) -> ForestSurrogate:
        """Grow ``n_trees`` new trees on ``X, y`` in place of the oldest ones."""
        n = len(X)
        seed = int(self.rng.integers(2**31))
        if self.kind == "RF":
            forest: RandomForestRegressor | ExtraTreesRegressor = RandomForestRegressor(
                n_estimators=n_trees,
                min_samples_leaf=self.min_samples_leaf,
                max_features=0.5 if X.shape[1] > 2 else 1.0,
                max_samples=min(n, self.max_samples),
                random_state=seed,
            )
        else:
            forest = ExtraTreesRegressor(
                n_estimators=n_trees,
                min_samples_leaf=self.min_samples_leaf,
                bootstrap=n > self.max_samples,
                max_samples=min(n, self.max_samples) if n > self.max_samples else None,
                random_state=seed,
            )
        new = forest.fit(X, y).estimators_
        self.trees_ = self.trees_[n_trees:] + new
        # Offsets turning per-tree node ids into one flat index over all trees.
        sizes = np.array([tree.tree_.node_count for tree in self.trees_])
        self.offsets_ = np.cumsum(sizes) - sizes
        self.n_nodes_ = int(sizes.sum())
        self.sums_, self.counts_ = self._leaf_stats(X, y)
        return self

    def _leaves(self, X: np.ndarray) -> np.ndarray:
        # Tree by tree: the forest's own apply() dispatches through joblib, whose overhead
        # dominates on the small batches a search asks for.
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        leaves = [tree.apply(X32, check_input=False) for tree in self.trees_]
        return np.column_stack(leaves) + self.offsets_

    def _leaf_stats(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        leaves = self._leaves(X).ravel()
        weights = np.repeat(y, len(self.trees_))
        sums = np.bincount(leaves, weights=weights, minlength=self.n_nodes_)
        counts = np.bincount(leaves, minlength=self.n_nodes_).astype(float)
        return sums, counts

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _leaf_mean_std(self.sums_, self.counts_, self._leaves(X))

    def posterior(self, candidates: np.ndarray) -> Posterior:
        return _ForestPosterior(self, candidates)


def _leaf_mean_std(
    sums: np.ndarray, counts: np.ndarray, leaves: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    per_tree = sums[leaves] / counts[leaves]
    return per_tree.mean(axis=1), per_tree.std(axis=1)


class _ForestPosterior(Posterior):
    def __init__(self, model: ForestSurrogate, candidates: np.ndarray) -> None:
        self.model = model
        self.candidates = candidates
        self.leaves = model._leaves(candidates)
        self.sums = model.sums_.copy()
        self.counts = model.counts_.copy()

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        return _leaf_mean_std(self.sums, self.counts, self.leaves)

    def add(self, X: np.ndarray, y: np.ndarray) -> None:
        if len(X):
            self._add_leaves(self.model._leaves(X), y)

    def add_at_candidates(self, indices: np.ndarray, y: np.ndarray) -> None:
        self._add_leaves(self.leaves[indices], y)

    def _add_leaves(self, leaves: np.ndarray, y: np.ndarray) -> None:
        np.add.at(self.sums, leaves.ravel(), np.repeat(y, leaves.shape[1]))
        np.add.at(self.counts, leaves.ravel(), 1.0)


class GBRTSurrogate(_RefitSurrogate):
    """Gradient-boosted trees with quantile losses: median as mean, (q84 - q16) / 2 as sigma."""

    quantiles = (0.16, 0.5, 0.84)

    def __init__(self, max_iter: int = 60, seed: int | np.random.Generator | None = None) -> None:
        self.max_iter = max_iter
        self.rng = np.random.default_rng(seed)

    def fit(self, X: np.ndarray, y: np.ndarray) -> GBRTSurrogate:
        self.X_, self.y_ = X, y
        seed = int(self.rng.integers(2**31))
        self.models_ = [
            HistGradientBoostingRegressor(
                loss="quantile",
                quantile=q,
                max_iter=self.max_iter,
                min_samples_leaf=min(20, max(2, len(X) // 10)),
                early_stopping=False,
                random_state=seed,
            ).fit(X, y)
            for q in self.quantiles
        ]
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        low, mid, high = (m.predict(X) for m in self.models_)
        return mid, np.maximum(high - low, 0.0) / 2

    def refit_fixed(self, X: np.ndarray, y: np.ndarray) -> Surrogate:
        return GBRTSurrogate(self.max_iter, self.rng).fit(X, y)


class GPSurrogate(_RefitSurrogate):
    """Gaussian process (Matern 5/2 with a noise term) on normalised targets.

    Fits on at most ``max_points`` points (the best half and a random half of the rest):
    a GP costs cubic time in the number of points.
    """

    def __init__(
        self, max_points: int = 500, seed: int | np.random.Generator | None = None
    ) -> None:
        self.max_points = max_points
        self.rng = np.random.default_rng(seed)

    def _subset(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(X) <= self.max_points:
            return X, y
        order = np.argsort(y)
        half = self.max_points // 2
        rest = self.rng.choice(order[half:], self.max_points - half, replace=False)
        keep = np.concatenate([order[:half], rest])
        return X[keep], y[keep]

    def fit(self, X: np.ndarray, y: np.ndarray) -> GPSurrogate:
        self.X_, self.y_ = self._subset(X, y)
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(
            length_scale=np.full(X.shape[1], 0.5), length_scale_bounds=(1e-3, 1e2), nu=2.5
        ) + WhiteKernel(1e-4, (1e-8, 1e-1))
        self.gp_ = GaussianProcessRegressor(
            kernel,
            normalize_y=True,
            n_restarts_optimizer=1,
            random_state=int(self.rng.integers(2**31)),
        )
        with warnings.catch_warnings():
            # Kernel parameters at their bounds are expected (e.g. noise-free objectives).
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.gp_.fit(self.X_, self.y_)
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self.gp_.predict(X, return_std=True)
        return mean, std

    def refit_fixed(self, X: np.ndarray, y: np.ndarray) -> Surrogate:
        fixed = GPSurrogate(self.max_points, self.rng)
        fixed.X_, fixed.y_ = X, y
        fixed.gp_ = GaussianProcessRegressor(
            self.gp_.kernel_, normalize_y=True, optimizer=None
        ).fit(X, y)
        return fixed


def make_surrogate(name: str, seed: int | np.random.Generator | None = None) -> Surrogate:
    """Build the named surrogate (one of :data:`SURROGATES`)."""
    if name in ("RF", "ET"):
        return ForestSurrogate(name, seed=seed)
    if name == "GBRT":
        return GBRTSurrogate(seed=seed)
    if name == "GP":
        return GPSurrogate(seed=seed)
    raise ValueError(f"surrogate must be one of {', '.join(SURROGATES)}, got {name!r}")
