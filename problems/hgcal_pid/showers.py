"""A generator of longitudinal shower profiles in a 28-layer sampling calorimeter.

Electromagnetic showers (electrons) follow the Gamma profile of Longo and Sestili,
``dE/dt = E b (bt)^(a-1) e^(-bt) / Gamma(a)`` with ``t`` in radiation lengths and
``(a - 1)/b = ln(E/E_c) - 0.5``. Charged pions mostly cross the first layers as minimum-ionising
particles, start a hadronic shower at an exponentially distributed depth (interaction length
about 28 X0 here), and deposit an electromagnetic fraction (from neutral pions) with an EM
profile plus a longer, wider hadronic component. Deposits fluctuate (Gamma-distributed
sampling, larger for hadronic energy) and carry electronic noise.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

N_LAYERS = 28
LAYER_X0 = 0.95  # radiation lengths per layer (about 26.6 X0 in all)
CRITICAL_ENERGY = 0.0074  # GeV, lead
INTERACTION_LENGTH_X0 = 28.0
MIP = 0.0005  # GeV deposited by a minimum-ionising particle in one layer
NOISE = 0.0005  # GeV of electronic noise per layer


def _gamma_profile(t0: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fraction of a Gamma(a, 1/b) profile starting at depth ``t0`` in each layer: (n, layers)."""
    edges = np.arange(N_LAYERS + 1) * LAYER_X0
    depth = np.clip(edges[None, :] - t0[:, None], 0.0, None)
    cdf = stats.gamma.cdf(depth * b[:, None], a[:, None])
    return np.diff(cdf, axis=1)


def _sample(mean: np.ndarray, quantum: float, rng: np.random.Generator) -> np.ndarray:
    """Sampling fluctuations: a Gamma with the given mean and variance ``quantum * mean``."""
    mean = np.clip(mean, 1e-9, None)
    return rng.gamma(mean / quantum, quantum)


def electrons(n: int, rng: np.random.Generator) -> np.ndarray:
    energy = rng.uniform(10.0, 100.0, n)
    b = 0.5 * rng.lognormal(0.0, 0.08, n)
    tmax = np.log(energy / CRITICAL_ENERGY) - 0.5
    a = 1.0 + b * tmax * rng.lognormal(0.0, 0.08, n)
    start = rng.exponential(0.7, n)  # first conversion
    mean = energy[:, None] * _gamma_profile(start, a, b) * 0.01  # sampling fraction
    return _sample(mean, 0.002, rng)


def pions(n: int, rng: np.random.Generator) -> np.ndarray:
    energy = rng.uniform(10.0, 100.0, n)
    start = rng.exponential(INTERACTION_LENGTH_X0, n)
    em_fraction = rng.beta(2.0, 2.5, n)
    b_em = 0.5 * rng.lognormal(0.0, 0.15, n)
    a_em = 1.0 + b_em * (np.log(em_fraction * energy / CRITICAL_ENERGY) - 0.5)
    b_had = 0.12 * rng.lognormal(0.0, 0.3, n)
    a_had = 1.5 * rng.lognormal(0.0, 0.3, n)
    em = (em_fraction * energy)[:, None] * _gamma_profile(start, np.clip(a_em, 1.0, None), b_em)
    had = ((1 - em_fraction) * energy)[:, None] * _gamma_profile(start, a_had, b_had)
    depth = (np.arange(N_LAYERS) + 0.5) * LAYER_X0
    mip = np.where(depth[None, :] < start[:, None], MIP, 0.0)
    return (
        _sample(0.01 * em, 0.002, rng) + _sample(0.01 * had, 0.02, rng) + _sample(mip, MIP / 4, rng)
    )


def generate(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` showers, half electrons (label 1) and half pions (label 0), shuffled.

    Returns ``(X, y)``: ``X`` of shape ``(n, 28)``, log-scaled per-layer energies (float32).
    """
    rng = np.random.default_rng(seed)
    n_e = n // 2
    deposits = np.vstack([electrons(n_e, rng), pions(n - n_e, rng)])
    deposits += rng.normal(0.0, NOISE, deposits.shape)
    labels = np.r_[np.ones(n_e), np.zeros(n - n_e)].astype("int32")
    order = rng.permutation(n)
    X = np.log1p(np.clip(deposits, 0.0, None) / MIP).astype("float32")
    return X[order], labels[order]


def misidentification(scores: np.ndarray, labels: np.ndarray, efficiency: float = 0.95) -> float:
    """Fraction of pions scored at or above the threshold that keeps ``efficiency`` of electrons."""
    scores, labels = np.asarray(scores).ravel(), np.asarray(labels).ravel()
    threshold = np.quantile(scores[labels == 1], 1.0 - efficiency)
    return float(np.mean(scores[labels == 0] >= threshold))
