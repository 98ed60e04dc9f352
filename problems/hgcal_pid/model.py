"""Problem definition and training for electron/pion identification from shower profiles."""

from __future__ import annotations

import os
import time
from functools import cache

import numpy as np

from hpsearch import MLPSpace, Problem, count_macs, count_neurons, count_params
from hpsearch.predictions import save_predictions
from hpsearch.trial import Trial
from problems.hgcal_pid.showers import N_LAYERS, generate, misidentification

#: HPSEARCH_QUICK=1: 2,000 training showers and 2 epochs, for tests.
QUICK = os.environ.get("HPSEARCH_QUICK") == "1"
#: HPSEARCH_HGCAL_MULTI=1: two objectives, [1 - pion misidentification, -hidden neurons].
MULTI = os.environ.get("HPSEARCH_HGCAL_MULTI") == "1"
N_TRAIN, N_VAL = (2_000, 1_000) if QUICK else (20_000, 10_000)
EPOCHS = 2 if QUICK else 40
PATIENCE = 5
#: Electron efficiency at which pion misidentification is measured.
EFFICIENCY = 0.95
#: Most hidden neurons a network may have (the trigger FPGA's budget).
NEURON_BUDGET = 256

problem = Problem("hgcal_pid", direction="maximize")
problem.add_architecture(
    MLPSpace(
        max_layers=15,
        units=(4, 64, "log-uniform"),
        activations=["relu", "tanh", "elu"],
        defaults={"n_layers": 3, "units_0": 32, "units_1": 32, "units_2": 16},
    )
)
problem.add_hyperparameter("learning_rate", (1e-4, 3e-2, "log-uniform"), default=3e-3)
problem.add_hyperparameter("batch_size", [64, 128, 256, 512], ordinal=True, default=256)
problem.add_hyperparameter("schedule", ["constant", "one_cycle"], default="one_cycle")
#: What population methods may change during training (the rest shapes the network).
problem.mutable = ["learning_rate", "batch_size"]
problem.add_constraint(lambda config: count_neurons(config) <= NEURON_BUDGET)


def purity(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """1 - pion misidentification at EFFICIENCY: the objective of electron probabilities."""
    return 1.0 - misidentification(y_pred, y_true, EFFICIENCY)


#: An ensemble's objective, from its averaged electron probabilities.
problem.score_predictions = purity


@cache
def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Generated training and validation showers (fixed seeds, so every worker agrees)."""
    X_train, y_train = generate(N_TRAIN, seed=1)
    X_val, y_val = generate(N_VAL, seed=2)
    return X_train, X_val, y_train, y_val


def run(config: dict, trial: Trial | None = None) -> dict:
    """Train the classifier of ``config``; objective: 1 - pion misidentification at 95% eff.

    The objective is measured after every epoch (``val_purity``) and the one returned is that
    of the epoch with the best validation loss, the weights early stopping keeps. With a
    trial: reports it after every epoch (training loss as ``loss``; with two objectives, the
    first), saves a checkpoint before each report, continues ``trial.restore_from`` when given,
    ends at epoch ``trial.max_steps`` (default EPOCHS) and stops when the search asks.
    A segment of a population member (PBT, replica exchange) never stops early and returns
    the purity of its last epoch: the network as the member carries it on.
    With a trial, the validation electron probabilities of the network as checkpointed (its
    last epoch) are saved too, for :mod:`hpsearch.ensemble`.
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
    stop = EarlyStopping(
        monitor="val_loss",
        patience=PATIENCE,
        restore_best_weights=False,
        segment=in_population(trial),
    )

    def build() -> keras.Model:
        normalise = keras.layers.Normalization()
        normalise.adapt(X_train)
        model = keras.Sequential(
            [keras.Input((N_LAYERS,)), normalise, build_model(config, N_LAYERS, 1, "sigmoid")]
        )
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=config["learning_rate"]),
            loss="binary_crossentropy",
        )
        return model

    model, start = continue_or_build(trial, build, stop, config["learning_rate"])
    end = (trial.max_steps if trial is not None else None) or EPOCHS
    steps = -(-len(X_train) // config["batch_size"])
    schedule = schedule_callbacks(
        config["schedule"], config["learning_rate"], steps * max(EPOCHS, end)
    )

    def add_purity(epoch: int, logs: dict) -> None:
        scores = keras.ops.convert_to_numpy(model(X_val, training=False))
        logs["val_purity"] = purity(y_val, scores)

    # Purity first, so early stopping keeps it among the best epoch's logs.
    callbacks = [keras.callbacks.LambdaCallback(on_epoch_end=add_purity), stop, *schedule]
    if trial is not None:
        callbacks.append(
            TrialCallback(trial, "val_purity", state=lambda: {"early_stopping": stop.state()})
        )
    t0 = time.time()
    model.fit(
        X_train[order],
        y_train[order],
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
    judged = stop.judged_logs["val_purity"]
    neurons = count_neurons(config)
    return {
        "objective": [judged, -float(neurons)] if MULTI else judged,
        "pion_misid": 1.0 - judged,
        "n_neurons": neurons,
        "n_params": count_params(config, N_LAYERS, 1),
        "n_macs": count_macs(config, N_LAYERS, 1),
        **stop.report(),
        "train_seconds": time.time() - t0,
    }
