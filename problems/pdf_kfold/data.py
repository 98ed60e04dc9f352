"""Pseudo-data for a structure-function fit: central values, uncertainties, replicas, folds."""

from __future__ import annotations

import numpy as np


def truth(x: np.ndarray) -> np.ndarray:
    """The underlying function, shaped like a parton distution: 5 x^0.5 (1 - x)^3 (1 + sqrt x)."""
    return 5.0 * x**0.5 * (1 - x) ** 3 * (1 + np.sqrt(x))


def dataset(n_points: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(features, data, sigma)``: ``n_points`` measurements at log-spaced x in [1e-3, 0.9].

    Uncertainties are 5% of the value plus 0.01; the data fluctuate once around the truth.
    Features are ``(x, ln x)``, the inputs an NNPDF-style network sees.
    """
    rng = np.random.default_rng(seed)
    x = np.geomspace(1e-3, 0.9, n_points)
    sigma = 0.05 * truth(x) + 0.01
    data = truth(x) + sigma * rng.normal(size=n_points)
    features = np.stack([x, np.log(x)], axis=1).astype("float32")
    return features, data, sigma


def replicas(data: np.ndarray, sigma: np.ndarray, n_replicas: int, seed: int = 1) -> np.ndarray:
    """Pseudo-data replicas fluctuated within the uncertainties: shape ``(n_points, n_replicas)``."""
    rng = np.random.default_rng(seed)
    return data[:, None] + sigma[:, None] * rng.normal(size=(len(data), n_replicas))


def folds(n_points: int, n_folds: int, seed: int = 2) -> list[np.ndarray]:
    """Indices of the points held out in each fold (a fixed random partition)."""
    if not 2 <= n_folds <= n_points:
        raise ValueError(f"need 2 <= n_folds <= {n_points}, got n_folds={n_folds}")
    order = np.random.default_rng(seed).permutation(n_points)
    return [np.sort(order[k::n_folds]) for k in range(n_folds)]
