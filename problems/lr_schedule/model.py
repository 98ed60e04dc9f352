"""The noisy quadratic model trained by SGD, in steps that report and checkpoint."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from hpsearch import Problem
from hpsearch.trial import Trial

#: Dimensions of the quadratic.
DIM = 1000
#: Curvatures, log-spaced from H_MAX down to H_MIN (the condition number is H_MAX / H_MIN).
H_MAX, H_MIN = 1.0, 1e-2
#: Variance of the gradient noise per unit of curvature (sigma^2 / batch size).
NOISE = 1e-4
#: SGD updates per step (a step is the unit of reports, checkpoints and --max-steps).
UPDATES_PER_STEP = 50
#: Steps of a run without a budget; HPSEARCH_LRS_STEPS overrides.
STEPS = int(os.environ.get("HPSEARCH_LRS_STEPS", "40"))
#: Seed of the gradient noise: the noise of step s is drawn from (SEED, s), whatever the run.
SEED = 0
CHECKPOINT_FILE = "state.npz"

CURVATURES = np.logspace(np.log10(H_MAX), np.log10(H_MIN), DIM)
#: The start: every direction holds the same loss, the total is 1.
THETA_0 = np.sqrt(2.0 / (DIM * CURVATURES))

problem = Problem("lr_schedule", direction="minimize")
problem.add_hyperparameter("learning_rate", (1e-3, 1.0, "log-uniform"), default=0.1)
problem.mutable = ["learning_rate"]


def loss(theta: np.ndarray) -> float:
    """The exact expected (validation) loss: 1/2 sum_i h_i theta_i^2, 0 at the optimum."""
    return 0.5 * float(np.dot(CURVATURES, theta * theta))


def noise_floor(learning_rate: float) -> float:
    """The loss SGD settles at with a constant ``learning_rate`` (its expected value)."""
    h = CURVATURES
    return float(np.sum(learning_rate * NOISE * h / (2.0 * (2.0 - learning_rate * h))))


def sgd_step(theta: np.ndarray, learning_rate: float, step: int) -> np.ndarray:
    """Train ``theta`` through step ``step`` (1-based): UPDATES_PER_STEP SGD updates with the
    gradient ``h * theta + noise``, the noise N(0, NOISE * h) drawn from (SEED, step)."""
    rng = np.random.default_rng([SEED, step])
    scale = np.sqrt(NOISE * CURVATURES)
    noise = rng.standard_normal((UPDATES_PER_STEP, DIM)) * scale
    theta = theta.copy()
    for eps in noise:
        theta -= learning_rate * (CURVATURES * theta + eps)
    return theta


def save(trial: Trial, theta: np.ndarray, step: int, lrs: np.ndarray) -> None:
    """Write the checkpoint beside the job's folder, then rename it in (a kill mid-write
    leaves the previous checkpoint, which the last report vouches for)."""
    assert trial.checkpoint_dir is not None
    tmp = trial.checkpoint_dir.parent / f".{trial.id}.{CHECKPOINT_FILE}.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, theta=theta, step=step, learning_rates=lrs)
    os.replace(tmp, trial.checkpoint_dir / CHECKPOINT_FILE)


def restore(directory: Path) -> tuple[np.ndarray, int, np.ndarray]:
    with np.load(directory / CHECKPOINT_FILE) as saved:
        theta, step, lrs = saved["theta"], int(saved["step"]), saved["learning_rates"]
    if theta.shape != (DIM,):
        raise ValueError(f"{directory}: a checkpoint of {theta.shape} weights, not ({DIM},)")
    return theta, step, lrs


def run(config: dict, trial: Trial | None = None) -> dict[str, Any]:
    """Train with SGD at ``config["learning_rate"]``; objective: the loss after the last step.

    With a trial: continues ``trial.restore_from`` (its weights and step; the learning rate
    is the one given now), trains up to ``trial.max_steps`` (default STEPS), saves a
    checkpoint and reports the loss after every step, and stops when the search asks.
    """
    learning_rate = float(config["learning_rate"])
    theta, step, lrs = THETA_0.copy(), 0, np.zeros(0)
    if trial is not None and trial.restore_from is not None:
        theta, step, lrs = restore(trial.restore_from)
    end = (trial.max_steps if trial is not None else None) or STEPS
    t0 = time.perf_counter()
    while step < end:
        theta = sgd_step(theta, learning_rate, step + 1)
        step += 1
        lrs = np.append(lrs, learning_rate)
        if trial is None:
            continue
        save(trial, theta, step, lrs)
        if trial.report(step, loss(theta), learning_rate=learning_rate):
            break
    return {
        "objective": loss(theta),
        "steps": step,
        "noise_floor": noise_floor(learning_rate),
        "train_seconds": time.perf_counter() - t0,
    }
