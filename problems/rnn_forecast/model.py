"""Problem definition and training for the recurrent forecaster."""

from __future__ import annotations

import os
import time

import numpy as np

from hpsearch import Problem
from hpsearch.trial import Trial
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
#: What population methods may change during training (the rest shapes the network).
problem.mutable = ["learning_rate", "batch_size"]


def build(config: dict):
    import keras

    cell = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[config["cell"]]
    layers: list = [keras.Input((config["lookback"], N_VARIABLES))]
    for k in range(config["recurrent_layers"]):
        last = k == config["recurrent_layers"] - 1
        layers.append(cell(config["units"], return_sequences=not last, dropout=config["dropout"]))
    layers.append(keras.layers.Dense(N_VARIABLES))
    return keras.Sequential(layers)


def run(config: dict, trial: Trial | None = None) -> dict:
    """Train the forecaster; objective: validation MSE of the next step (all variables).

    With a trial: reports the validation MSE after every epoch (training loss as ``loss``),
    saves a checkpoint before each report, continues ``trial.restore_from`` when given, ends
    at epoch ``trial.max_steps`` (default EPOCHS) and stops when the search asks.
    A segment of a population member (PBT, replica exchange) never stops early and returns
    the validation MSE of its last epoch: the network as the member carries it on.
    """
    import keras

    from hpsearch.keras import EarlyStopping, TrialCallback, continue_or_build, in_population

    X, y = windows(generate(LENGTH), config["lookback"])
    split = int(len(X) * (1 - VALIDATION))  # chronological: validate on the future
    # The training windows in one fixed order, the same every epoch, so a run continuing a
    # checkpoint sees the batches an uninterrupted run would.
    order = np.random.default_rng(0).permutation(split)
    keras.utils.set_random_seed(0)
    stop = EarlyStopping(
        patience=PATIENCE, restore_best_weights=False, segment=in_population(trial)
    )

    def compiled() -> keras.Model:
        model = build(config)
        model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]), loss="mse")
        return model

    model, start = continue_or_build(trial, compiled, stop, config["learning_rate"])
    callbacks: list = [stop]
    if trial is not None:
        callbacks.append(
            TrialCallback(trial, "val_loss", state=lambda: {"early_stopping": stop.state()})
        )
    t0 = time.time()
    model.fit(
        X[order],
        y[order],
        validation_data=(X[split:], y[split:]),
        initial_epoch=start,
        epochs=(trial.max_steps if trial is not None else None) or EPOCHS,
        batch_size=config["batch_size"],
        shuffle=False,
        callbacks=callbacks,
        verbose=0,
    )
    persistence = float(np.mean((X[split:, -1] - y[split:]) ** 2))
    return {
        "objective": stop.judged_logs["val_loss"],
        "persistence_mse": persistence,
        **stop.report(),
        "n_params": int(model.count_params()),
        "train_seconds": time.time() - t0,
    }
