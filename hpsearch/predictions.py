"""Validation predictions a run function saves for ensembles (numpy only, cheap to import).

``save_predictions(trial, y_pred, y_true)`` at the end of ``run`` writes the network's
validation predictions and targets into the trial's checkpoint directory; ``hpsearch
ensemble`` (:mod:`hpsearch.ensemble`) reads them back with :func:`load_predictions`.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hpsearch.checkpoints import write_atomically

if TYPE_CHECKING:
    from hpsearch.trial import Trial

#: The file :func:`save_predictions` writes into a checkpoint directory.
PREDICTIONS_FILE = "val_predictions.npz"
TASKS = ("classification", "regression")


@dataclass
class Predictions:
    """Validation predictions of one network: ``y_pred``, the targets ``y_true`` and the task."""

    y_pred: np.ndarray
    y_true: np.ndarray
    task: str


def squeezed(values: np.ndarray) -> np.ndarray:
    """``(n, 1)`` as ``(n,)``: a sigmoid's or a single regression output's column."""
    return values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values


def checked_predictions(y_pred: Any, y_true: Any, task: str) -> Predictions:
    """``y_pred`` and ``y_true`` as arrays of the shapes the task needs; ValueError otherwise.

    Classification: ``y_true`` holds ``n`` integer labels, ``y_pred`` class probabilities
    ``(n, classes)`` or, for a binary sigmoid, the probability of class 1 as ``(n,)`` or
    ``(n, 1)``. Regression: ``y_pred`` and ``y_true`` have the same shape, ``(n,)`` or
    ``(n, outputs)`` (a column ``(n, 1)`` becomes ``(n,)``).
    """
    if task not in TASKS:
        raise ValueError(f"The 'task' parameter must be one of {TASKS}. Got {task!r} instead.")
    pred = squeezed(np.asarray(y_pred, dtype=float))
    true = squeezed(np.asarray(y_true))
    if pred.ndim == 0 or len(pred) != len(true) or not len(pred):
        raise ValueError(
            f"y_pred and y_true must hold the same number (>= 1) of examples, "
            f"but got shapes {np.shape(y_pred)} and {np.shape(y_true)}"
        )
    if not np.isfinite(pred).all():
        raise ValueError("y_pred holds values that are not finite")
    if task == "regression":
        if pred.shape != true.shape:
            raise ValueError(
                f"regression: y_pred and y_true must have the same shape, "
                f"but got {np.shape(y_pred)} and {np.shape(y_true)}"
            )
        if true.dtype.kind not in "biuf" or not np.isfinite(true).all():
            raise ValueError("regression: y_true must hold finite numbers")
        return Predictions(pred, true.astype(float), task)
    classes = 2 if pred.ndim == 1 else pred.shape[1]
    numeric = true.dtype.kind in "biuf"
    if true.ndim != 1 or pred.ndim > 2 or not numeric or not np.all(np.mod(true, 1) == 0):
        raise ValueError(
            f"classification: y_true must be n integer labels and y_pred (n,) or (n, classes) "
            f"probabilities, but got shapes {np.shape(y_true)} and {np.shape(y_pred)}"
        )
    labels = true.astype(np.int64)
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(
            f"classification: labels must lie in [0, {classes - 1}] for predictions of shape "
            f"{np.shape(y_pred)}, but got labels from {labels.min()} to {labels.max()}"
        )
    return Predictions(pred, labels, task)


def save_predictions(
    trial: Trial | None, y_pred: Any, y_true: Any, task: str = "classification"
) -> Path | None:
    """Save a network's validation predictions and targets into ``trial.checkpoint_dir``.

    Call it at the end of ``run``, with the network as it is checkpointed (the model that
    :func:`hpsearch.keras.load_checkpoint` gives back), so that an ensemble's
    :meth:`Ensemble.predict` reproduces what it selected on. Shapes: see
    :func:`checked_predictions` (class probabilities for classification, values for
    regression). Written under a temporary name, then renamed. Returns the file, or None (and
    does nothing) when ``trial`` is None or has no checkpoint directory. Raises ValueError
    for predictions that do not fit the task.
    """
    directory = getattr(trial, "checkpoint_dir", None)
    if directory is None:
        return None
    checked = checked_predictions(y_pred, y_true, task)

    def write(path: str) -> None:
        with open(path, "wb") as f:
            np.savez(f, y_pred=checked.y_pred, y_true=checked.y_true, task=np.array(task))

    return write_atomically(directory, PREDICTIONS_FILE, write)


def load_predictions(directory: str | os.PathLike[str]) -> Predictions:
    """The predictions :func:`save_predictions` wrote into ``directory``; FileNotFoundError
    when there are none, ValueError when the file does not hold them."""
    path = Path(directory) / PREDICTIONS_FILE
    try:
        with np.load(path, allow_pickle=False) as data:
            return checked_predictions(data["y_pred"], data["y_true"], str(data["task"]))
    except FileNotFoundError:
        raise
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} holds no predictions: {err}") from None


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of examples whose most probable class (probability >= 0.5 for a sigmoid) is
    the label."""
    labels = (y_pred >= 0.5).astype(np.int64) if y_pred.ndim == 1 else np.argmax(y_pred, axis=1)
    return float(np.mean(labels == np.asarray(y_true)))
