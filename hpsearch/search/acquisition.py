"""Acquisition functions and the candidate-set search that minimises them.

All scores are *to minimise* and all objective values are values to minimise: LCB is
``mean - kappa * sigma``; EI and PI are negated so that the best point has the lowest score.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import norm

ACQUISITIONS = ("LCB", "EI", "PI")

Scorer = Callable[[np.ndarray], np.ndarray]


def acquisition(
    acq: str, mean: np.ndarray, sigma: np.ndarray, *, kappa: float, xi: float, y_best: float
) -> np.ndarray:
    """Score points from the surrogate's ``mean`` and ``sigma``; lower is more promising.

    ``y_best`` is the best value seen (EI and PI measure improvement over ``y_best - xi``).
    """
    if acq == "LCB":
        return mean - kappa * sigma
    safe = np.maximum(sigma, 1e-12)
    improvement = y_best - xi - mean
    z = improvement / safe
    if acq == "EI":
        return -(improvement * norm.cdf(z) + safe * norm.pdf(z))
    if acq == "PI":
        return -norm.cdf(z)
    raise ValueError(f"acquisition must be one of {', '.join(ACQUISITIONS)}, got {acq!r}")


def perturb(
    centres: np.ndarray, n: int, rng: np.random.Generator, scales: tuple[float, ...]
) -> np.ndarray:
    """``n`` points of the unit cube near ``centres``.

    Each point takes a Gaussian step, of a scale drawn from ``scales``, along a few
    coordinates (each with probability 2/d, at least one), and has each coordinate redrawn
    uniformly with probability 1/(8d) (so categorical and integer dimensions also move to
    other values).
    """
    # Steps along few axes rather than all d at once: tree surrogates split one coordinate
    # at a time and many objectives are close to separable, so a move in one or two
    # coordinates is the one the model can judge, and it can leave a local minimum that a
    # step in every coordinate, mostly uphill somewhere, cannot.
    d = centres.shape[1]
    origin = centres[rng.integers(len(centres), size=n)]
    scale = rng.choice(np.asarray(scales), size=(n, 1))
    moves = rng.random((n, d)) < min(1.0, 2.0 / d)
    moves[np.arange(n), rng.integers(d, size=n)] = True
    points = origin + rng.normal(size=(n, d)) * scale * moves
    # A redraw is a long jump, and far from the data a forest's spread makes such a point look
    # promising: at 1/d, 63% of local candidates carried one and won over true local steps,
    # so the search kept leaving the basin it was refining. At 1/(8d) it is 12%.
    redraw = rng.random((n, d)) < 0.125 / d
    points[redraw] = rng.random(int(redraw.sum()))
    return np.clip(points, 0.0, np.nextafter(1.0, 0.0))


def search_candidates(
    score: Scorer,
    new_feasible: Callable[[np.ndarray], np.ndarray],
    best: np.ndarray,
    rng: np.random.Generator,
    *,
    n_random: int = 1000,
    n_local: int = 1000,
    n_rounds: int = 2,
    n_top: int = 8,
) -> np.ndarray:
    """Build the candidate set an acquisition is minimised over.

    Starts from uniform points and local perturbations of ``best`` (unit points of the best
    finished configurations, best first), then runs ``n_rounds`` rounds of finer
    perturbations around the ``n_top`` best-scoring candidates. ``new_feasible`` snaps points
    to canonical ones and drops infeasible or already-seen points and duplicates; ``score``
    maps unit points to acquisition values. Returns the distinct canonical candidates
    (possibly fewer than asked), nearest to ``best[0]`` first.
    """
    d = best.shape[1]
    raw = [rng.random((n_random, d))]
    if len(best):
        raw.append(perturb(best, n_local, rng, (0.01, 0.05, 0.15)))
    candidates = new_feasible(np.vstack(raw))
    for scale in (0.03, 0.01)[:n_rounds]:
        if not len(candidates):
            break
        top = candidates[np.argsort(score(candidates))[:n_top]]
        local = new_feasible(perturb(top, n_local // 4, rng, (scale,)))
        candidates = np.unique(np.vstack([candidates, local]), axis=0)
    if not len(best):
        return candidates[rng.permutation(len(candidates))]
    # Ties in the acquisition are common with tree surrogates (constant over a leaf); a
    # minimiser takes the first, so order by distance to the best finished point: among
    # points the model cannot tell apart, the one nearest the best is the better bet.
    distance = np.linalg.norm(candidates - best[0], axis=1)
    return candidates[np.argsort(distance, kind="stable")]
