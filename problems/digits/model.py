"""Problem definition and training for the digits MLP."""

from __future__ import annotations

import os
import time
from functools import cache

import numpy as np

from hpsearch import MLPSpace, Problem, count_params

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


def run(config: dict) -> dict:
    """Train the MLP of ``config``; objective: best validation accuracy over the epochs."""
    import keras

    from hpsearch.arch import build_model
    from hpsearch.keras import EarlyStopping, schedule_callbacks

    X_train, X_val, y_train, y_val = load_data()
    keras.utils.set_random_seed(0)
    model = build_model(config, N_INPUTS, N_CLASSES, "softmax")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    stop = EarlyStopping(monitor="val_accuracy", patience=PATIENCE)
    t0 = time.time()
    history = model.fit(
        X_train,
        y_train,
        validation_data=(X_val, y_val),
        epochs=EPOCHS,
        batch_size=config["batch_size"],
        callbacks=[stop, *schedule_callbacks(config["schedule"], config["learning_rate"])],
        verbose=0,
    )
    return {
        "objective": float(max(history.history["val_accuracy"])),
        **stop.report(),
        "train_seconds": time.time() - t0,
        "n_params": count_params(config, N_INPUTS, N_CLASSES),
    }
