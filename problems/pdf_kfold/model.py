"""Problem definition and k-fold x replica training for the structure-function fit."""

from __future__ import annotations

import os
import time

import numpy as np

from hpsearch import MLPSpace, Problem
from hpsearch.arch import hidden_units
from hpsearch.objectives import STATISTICS, fold_replica_chi2, kfold_statistic
from problems.pdf_kfold.data import dataset, folds, replicas


def _option(name: str, default: str) -> str:
    return os.environ.get(name, default).strip() or default


#: HPSEARCH_QUICK=1: 4 replicas, 2 folds and 60 training steps, for tests.
QUICK = os.environ.get("HPSEARCH_QUICK") == "1"
#: The statistic to minimise (HPSEARCH_PDF_STATISTIC): one of hpsearch.objectives.STATISTICS.
STATISTIC = _option("HPSEARCH_PDF_STATISTIC", "mean_chi2")
if STATISTIC not in STATISTICS:
    raise ValueError(
        f"HPSEARCH_PDF_STATISTIC must be one of {', '.join(STATISTICS)}, got {STATISTIC!r}"
    )
N_REPLICAS = int(_option("HPSEARCH_PDF_REPLICAS", "4" if QUICK else "20"))
N_FOLDS = int(_option("HPSEARCH_PDF_FOLDS", "2" if QUICK else "4"))
#: Full-batch gradient steps per fold, taken as epochs of STEPS_PER_EPOCH repeated batches.
STEPS = 60 if QUICK else 1500
STEPS_PER_EPOCH = 30 if QUICK else 100

problem = Problem("pdf_kfold", direction="minimize")
problem.add_architecture(
    MLPSpace(
        max_layers=3,
        units=(4, 32),
        activations=["tanh", "sigmoid", "elu"],
        defaults={"n_layers": 2, "units_0": 25, "units_1": 20, "activation": "tanh"},
    )
)
problem.add_hyperparameter("optimizer", ["adam", "nadam"], default="adam")
problem.add_hyperparameter("learning_rate", (1e-4, 1e-1, "log-uniform"), default=3e-3)


def fit_replicas(config: dict, x: np.ndarray, targets: np.ndarray, weights: np.ndarray, seed: int):
    """Train all replicas of ``config`` on ``(x, targets)`` in one fit; return the model."""
    import keras

    from problems.pdf_kfold.replicas import build_replica_model, replica_sum_mse

    keras.utils.set_random_seed(seed)
    model = build_replica_model(
        targets.shape[1], x.shape[1], hidden_units(config), config["activation"]
    )
    optimizer = {"adam": keras.optimizers.Adam, "nadam": keras.optimizers.Nadam}
    model.compile(
        optimizer=optimizer[config["optimizer"]](learning_rate=config["learning_rate"]),
        loss=replica_sum_mse,
    )
    n = len(x)
    model.fit(
        np.tile(x, (STEPS_PER_EPOCH, 1)),
        np.tile(targets, (STEPS_PER_EPOCH, 1)).astype("float32"),
        sample_weight=np.tile(weights, STEPS_PER_EPOCH).astype("float32"),
        batch_size=n,
        epochs=max(1, STEPS // STEPS_PER_EPOCH),
        shuffle=False,
        verbose=0,
    )
    return model


def run(config: dict) -> dict:
    """Fit N replicas on each fold's training points; objective: the chosen held-out statistic."""
    features, data, sigma = dataset()
    pseudo = replicas(data, sigma, N_REPLICAS)
    held_out = folds(len(data), N_FOLDS)
    predictions, t0 = [], time.time()
    for k, test in enumerate(held_out):
        train = np.setdiff1d(np.arange(len(data)), test)
        model = fit_replicas(config, features[train], pseudo[train], sigma[train] ** -2, seed=k)
        predictions.append(model.predict(features[test], verbose=0).T)  # (replicas, points)
    data_k, sigma_k = [data[t] for t in held_out], [sigma[t] for t in held_out]
    statistics = {name: f(predictions, data_k, sigma_k) for name, f in STATISTICS.items()}
    return {
        "objective": kfold_statistic(STATISTIC, predictions, data_k, sigma_k),
        **statistics,
        "chi2_replica_std": float(np.std(fold_replica_chi2(predictions, data_k, sigma_k))),
        "train_seconds": time.time() - t0,
    }
