"""Statistics for k-fold x replica objectives (NNPDF-style fits of an ensemble of replicas).

Each fold ``k`` holds out some data points; each replica ``r`` is a network fitted (to its own
fluctuated pseudo-data) on the other folds. ``predictions[k]`` has shape ``(n_replicas,
n_points_k)``: the replicas' predictions on the points held out in fold ``k``, compared with the
central values ``data[k]`` and their uncertainties ``sigma[k]`` (both ``(n_points_k,)``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Arrays = Sequence[np.ndarray]


def chi2(predictions: np.ndarray, data: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """chi2 per point, ``mean(((pred - data) / sigma)^2)`` over the last axis (uncorrelated errors)."""
    predictions, data, sigma = (np.asarray(a, dtype=float) for a in (predictions, data, sigma))
    if np.any(sigma <= 0):
        raise ValueError("uncertainties sigma must all be > 0")
    return np.mean(((predictions - data) / sigma) ** 2, axis=-1)


def fold_replica_chi2(predictions: Arrays, data: Arrays, sigma: Arrays) -> np.ndarray:
    """chi2 of every replica on every held-out fold: an array of shape ``(n_folds, n_replicas)``."""
    if not len(predictions) == len(data) == len(sigma) > 0:
        raise ValueError(
            f"need one predictions/data/sigma entry per fold, but got {len(predictions)}, "
            f"{len(data)} and {len(sigma)}"
        )
    return np.stack(
        [chi2(np.atleast_2d(p), d, s) for p, d, s in zip(predictions, data, sigma, strict=True)]
    )


def mean_chi2(predictions: Arrays, data: Arrays, sigma: Arrays) -> float:
    """Mean of chi2 over folds and replicas: ``1/(n_k N) sum_k sum_r chi2_{k,r}``."""
    return float(np.mean(fold_replica_chi2(predictions, data, sigma)))


def chi2_of_mean(predictions: Arrays, data: Arrays, sigma: Arrays) -> float:
    """chi2 of the replica mean (the central fit), averaged over the held-out folds."""
    means = [np.atleast_2d(p).mean(axis=0) for p in predictions]
    return float(np.mean(fold_replica_chi2([m[None] for m in means], data, sigma)))


def mean_abs_chi2_minus_one(predictions: Arrays, data: Arrays, sigma: Arrays) -> float:
    """Mean of ``|chi2 - 1|`` over folds and replicas: a fit should neither under- nor overfit."""
    return float(np.mean(np.abs(fold_replica_chi2(predictions, data, sigma) - 1.0)))


#: The statistics by name (the ``statistic`` option of k-fold problems).
STATISTICS: dict[str, Callable[[Arrays, Arrays, Arrays], float]] = {
    "mean_chi2": mean_chi2,
    "chi2_of_mean": chi2_of_mean,
    "mean_abs_chi2_minus_one": mean_abs_chi2_minus_one,
}


def kfold_statistic(name: str, predictions: Arrays, data: Arrays, sigma: Arrays) -> float:
    """The statistic called ``name`` (one of :data:`STATISTICS`); lower is better."""
    if name not in STATISTICS:
        raise ValueError(
            f"unknown k-fold statistic {name!r}, expected one of {', '.join(STATISTICS)}"
        )
    return STATISTICS[name](predictions, data, sigma)
