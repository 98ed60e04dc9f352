"""Problem definition and training for the digits MLP."""

from __future__ import annotations

import os
import time
from functools import cache

import numpy as np

from hpsearch import Problem

#: Epochs per evaluation; HPSEARCH_DIGITS_EPOCHS shortens it for tests.
EPOCHS = int(os.environ.get("HPSEARCH_DIGITS_EPOCHS", "20"))

problem = Problem("digits", direction="maximize")
problem.add_hyperparameter("learning_rate", (1e-4, 1e-1, "log-uniform"), default=3e-3)
problem.add_hyperparameter("units", (16, 512, "log-uniform"), default=128)
problem.add_hyperparameter("layers", (1, 3), default=2)
problem.add_hyperparameter("activation", ["relu", "tanh", "elu"], default="relu")
problem.add_hyperparameter("dropout", (0.0, 0.5), default=0.1)
problem.add_hyperparameter("batch_size", [16, 32, 64, 128], ordinal=True, default=32)


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
    return X_train, X_val, y_train, y_val


def build_model(config: dict, n_inputs: int, n_classes: int):
    import keras

    model = keras.Sequential([keras.Input((n_inputs,))])
    for _ in range(config["layers"]):
        model.add(keras.layers.Dense(config["units"], activation=config["activation"]))
        if config["dropout"] > 0:
            model.add(keras.layers.Dropout(config["dropout"]))
    model.add(keras.layers.Dense(n_classes, activation="softmax"))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def run(config: dict) -> dict:
    """Train the MLP of ``config``; objective: best validation accuracy over the epochs."""
    import keras

    X_train, X_val, y_train, y_val = load_data()
    keras.utils.set_random_seed(0)
    model = build_model(config, X_train.shape[1], 10)
    t0 = time.time()
    history = model.fit(
        X_train,
        y_train,
        validation_data=(X_val, y_val),
        epochs=EPOCHS,
        batch_size=config["batch_size"],
        verbose=0,
    )
    val_acc = history.history["val_accuracy"]
    return {
        "objective": float(max(val_acc)),
        "best_epoch": int(np.argmax(val_acc)) + 1,
        "train_seconds": time.time() - t0,
        "n_params": int(model.count_params()),
    }
