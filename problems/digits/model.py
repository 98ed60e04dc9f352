"""Problem definition and training for the digits MLP."""

from __future__ import annotations

import os
import time
from functools import cache

import numpy as np

from hpsearch import MLPSpace, Problem, count_params
from hpsearch.predictions import accuracy, save_predictions
from hpsearch.trial import Trial

#: HPSEARCH_QUICK=1: a 300-image training subset and 2 epochs, for tests.
QUICK = os.environ.get("HPSEARCH_QUICK") == "1"
#: Most epochs per evaluation (early stopping may use fewer); HPSEARCH_DIGITS_EPOCHS overrides.
EPOCHS = int(os.environ.get("HPSEARCH_DIGITS_EPOCHS", "2" if QUICK else "30"))
PATIENCE = 8
N_INPUTS, N_CLASSES = 64, 10

problem = Problem("digits", direction="maximize")
problem.add_architecture(
    MLPSpace(
        max_layers=3,
        units=(16, 512, "log-uniform"),
        activations=["relu", "tanh", "elu"],
        dropout=(0.0, 0.5),
        defaults={
            "n_layers": 2,
            "units_0": 128,
            "units_1": 128,
            "activation": "relu",
            "dropout": 0.1,
        },
    )
)
problem.add_hyperparameter("learning_rate", (1e-4, 1e-1, "log-uniform"), default=3e-3)
problem.add_hyperparameter("batch_size", [16, 32, 64, 128], ordinal=True, default=32)
problem.add_hyperparameter("schedule", ["constant", "one_cycle"], default="constant")
#: What population-based training may change during training (the rest shapes the network).
problem.mutable = ["learning_rate", "batch_size"]
#: An ensemble's objective, from its averaged class probabilities.
problem.score_predictions = accuracy


@cache
def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train/validation split (80/20, stratified, fixed) of the digits, scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype("float32")
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=0
    )
    if QUICK:
        X_train, y_train = X_train[:300], y_train[:300]
    return X_train, X_val, y_train, y_val


def run(config: dict, trial: Trial | None = None) -> dict:
    """Train the MLP of ``config``; objective: best validation accuracy over the epochs.

    With a trial: reports the validation accuracy after every epoch (training loss as
    ``loss``), saves a checkpoint before each report, continues ``trial.restore_from`` when
    given, ends at epoch ``trial.max_steps`` (default EPOCHS) and stops when the search asks.
    A segment of a population member (PBT, replica exchange) never stops early and returns
    the validation accuracy of its last epoch: the network as the member carries it on.
    With a trial, the validation class probabilities of the network as checkpointed (its last
    epoch) are saved too, for :mod:`hpsearch.ensemble`.
    """
    import keras

    from hpsearch.arch import build_model
    from hpsearch.keras import (
        EarlyStopping,
        TrialCallback,
        continue_or_build,
        in_population,
        schedule_callbacks,
    )

    X_train, X_val, y_train, y_val = load_data()
    keras.utils.set_random_seed(0)
    # One fixed order, the same every epoch, so a run continuing a checkpoint sees the batches
    # an uninterrupted run would.
    order = np.random.default_rng(0).permutation(len(X_train))
    X_train, y_train = X_train[order], y_train[order]
    stop = EarlyStopping(
        monitor="val_accuracy",
        patience=PATIENCE,
        restore_best_weights=False,
        segment=in_population(trial),
    )

    def build() -> keras.Model:
        model = build_model(config, N_INPUTS, N_CLASSES, "softmax")
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=config["learning_rate"]),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    model, start = continue_or_build(trial, build, stop, config["learning_rate"])
    end = (trial.max_steps if trial is not None else None) or EPOCHS
    steps = -(-len(X_train) // config["batch_size"])
    schedule = schedule_callbacks(
        config["schedule"], config["learning_rate"], steps * max(EPOCHS, end)
    )
    callbacks = [stop, *schedule]
    if trial is not None:
        callbacks.append(
            TrialCallback(trial, "val_accuracy", state=lambda: {"early_stopping": stop.state()})
        )
    t0 = time.time()
    model.fit(
        X_train,
        y_train,
        validation_data=(X_val, y_val),
        initial_epoch=start,
        epochs=end,
        batch_size=config["batch_size"],
        shuffle=False,
        callbacks=callbacks,
        verbose=0,
    )
    if trial is not None:
        save_predictions(trial, model.predict(X_val, verbose=0), y_val)
    return {
        "objective": stop.judged_logs["val_accuracy"],
        **stop.report(),
        "train_seconds": time.time() - t0,
        "n_params": count_params(config, N_INPUTS, N_CLASSES),
    }
