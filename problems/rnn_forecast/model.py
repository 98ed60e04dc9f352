"""Problem definition and training for the recurrent forecaster."""

from __future__ import annotations

import os
import time

import numpy as np

from hpsearch import Problem
from problems.rnn_forecast.series import N_VARIABLES, generate, windows

#: HPSEARCH_QUICK=1: a 400-step series and 1 epoch, for tests.
QUICK = os.environ.get("HPSEARCH_QUICK") == "1"
LENGTH = 400 if QUICK else 4000
EPOCHS = 1 if QUICK else 20
PATIENCE = 3
VALIDATION = 0.2

problem = Problem("rnn_forecast", direction="minimize")
problem.add_hyperparameter("cell", ["lstm", "gru"], default="gru")
problem.add_hyperparameter("recurrent_layers", (1, 2), default=1)
problem.add_hyperparameter("units", (8, 64, "log-uniform"), default=32)
problem.add_hyperparameter("lookback", (8, 64, "log-uniform"), default=24)
problem.add_hyperparameter("dropout", (0.0, 0.3), default=0.0)
problem.add_hyperparameter("learning_rate", (1e-4, 3e-2, "log-uniform"), default=3e-3)
problem.add_hyperparameter("batch_size", [32, 64, 128], ordinal=True, default=64)


def build(config: dict):
    import keras

    cell = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[config["cell"]]
    layers: list = [keras.Input((config["lookback"], N_VARIABLES))]
    for k in range(config["recurrent_layers"]):
        last = k == config["recurrent_layers"] - 1
        layers.append(cell(config["units"], return_sequences=not last, dropout=config["dropout"]))
    layers.append(keras.layers.Dense(N_VARIABLES))
    return keras.Sequential(layers)


def run(config: dict) -> dict:
    """Train the forecaster; objective: validation MSE of the next step (all variables)."""
    import keras

    from hpsearch.keras import EarlyStopping

    X, y = windows(generate(LENGTH), config["lookback"])
    split = int(len(X) * (1 - VALIDATION))  # chronological: validate on the future
    keras.utils.set_random_seed(0)
    model = build(config)
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]), loss="mse")
    stop = EarlyStopping(patience=PATIENCE)
    t0 = time.time()
    history = model.fit(
        X[:split],
        y[:split],
        validation_data=(X[split:], y[split:]),
        epochs=EPOCHS,
        batch_size=config["batch_size"],
        callbacks=[stop],
        verbose=0,
    )
    persistence = float(np.mean((X[split:, -1] - y[split:]) ** 2))
    return {
        "objective": float(min(history.history["val_loss"])),
        "persistence_mse": persistence,
        **stop.report(),
        "n_params": int(model.count_params()),
        "train_seconds": time.time() - t0,
    }
