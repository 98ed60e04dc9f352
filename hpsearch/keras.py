"""Training helpers for Keras 3 run functions: LR range test, one-cycle schedule, early stopping.

Importing this module imports Keras (``import hpsearch`` does not). Everything uses
``keras.ops`` and optimizer variables only, so it runs on the TensorFlow, JAX and PyTorch
backends.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

#: Values of the searchable ``schedule`` hyperparameter understood by :func:`schedule_callbacks`.
SCHEDULES = ("constant", "one_cycle")


def one_cycle_schedule(
    step: int,
    total_steps: int,
    max_lr: float,
    pct_start: float = 0.25,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    momenta: tuple[float, float] = (0.95, 0.85),
) -> tuple[float, float]:
    """Learning rate and momentum (or Adam's beta_1) of the one-cycle policy at ``step``.

    The rate rises from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of
    the steps, then falls to ``max_lr / (div_factor * final_div_factor)``, both with cosine
    interpolation; the momentum follows the inverted path, from ``momenta[0]`` down to
    ``momenta[1]`` and back.
    """
    if total_steps < 2 or not 0 < pct_start < 1:
        raise ValueError(
            f"one-cycle needs total_steps >= 2 and 0 < pct_start < 1, "
            f"but got (total_steps={total_steps}, pct_start={pct_start})"
        )
    warmup = max(1, round(pct_start * (total_steps - 1)))
    start_lr, end_lr = max_lr / div_factor, max_lr / (div_factor * final_div_factor)
    high_mom, low_mom = momenta

    def cosine(a: float, b: float, fraction: float) -> float:
        return b + (a - b) * (1 + math.cos(math.pi * fraction)) / 2

    step = min(max(step, 0), total_steps - 1)
    if step <= warmup:
        f = step / warmup
        return cosine(start_lr, max_lr, f), cosine(high_mom, low_mom, f)
    f = (step - warmup) / (total_steps - 1 - warmup)
    return cosine(max_lr, end_lr, f), cosine(low_mom, high_mom, f)


def _momentum_attribute(optimizer: Any) -> str | None:
    for name in ("beta_1", "momentum"):
        if hasattr(optimizer, name):
            return name
    return None


class OneCycle(keras.callbacks.Callback):
    """Set the learning rate and momentum/beta_1 of the one-cycle policy before every batch.

    ``total_steps`` defaults to epochs x steps per epoch of the fit. The optimizer's momentum
    (``beta_1`` for Adam-like optimizers, ``momentum`` for SGD) is made a variable so the
    compiled training step reads the new value each batch.
    """

    def __init__(self, max_lr: float, total_steps: int | None = None, **schedule: Any) -> None:
        super().__init__()
        self.max_lr = max_lr
        self.total_steps = total_steps
        self.schedule = schedule
        self.step = 0
        self._momentum: Any = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.total_steps is None:
            steps, epochs = self.params.get("steps"), self.params.get("epochs")
            if not steps or not epochs:
                raise ValueError("OneCycle needs total_steps when fit() does not know its steps")
            self.total_steps = int(steps) * int(epochs)
        optimizer = self.model.optimizer
        name = _momentum_attribute(optimizer)
        if name is not None and float(getattr(optimizer, name) or 0) > 0:
            self._momentum = keras.Variable(
                float(getattr(optimizer, name)), trainable=False, name=f"one_cycle_{name}"
            )
            setattr(optimizer, name, self._momentum)

    def values(self, step: int) -> tuple[float, float]:
        """(learning rate, momentum) at ``step``."""
        assert self.total_steps is not None
        return one_cycle_schedule(step, self.total_steps, self.max_lr, **self.schedule)

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        lr, momentum = self.values(self.step)
        self.model.optimizer.learning_rate.assign(lr)
        if self._momentum is not None:
            self._momentum.assign(momentum)
        self.step += 1


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras early stopping (best weights restored by default) that reports what it used.

    After ``fit``, :meth:`report` gives ``{"epochs": run, "best_epoch": ..., "stopped_early":
    ...}``, to return as metrics from a run function (they become ``m:`` columns).
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, **kwargs: Any) -> None:
        kwargs.setdefault("restore_best_weights", True)
        super().__init__(monitor=monitor, patience=patience, **kwargs)
        self.epochs_run = 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epochs_run = epoch + 1
        super().on_epoch_end(epoch, logs)

    def report(self) -> dict[str, Any]:
        best_epoch = self.best_epoch + 1 if self.epochs_run else 0
        return {
            "epochs": self.epochs_run,
            "best_epoch": best_epoch,
            "stopped_early": bool(self.stopped_epoch),
        }


def schedule_callbacks(schedule: str, learning_rate: float) -> list[keras.callbacks.Callback]:
    """Callbacks for the searchable ``schedule`` choice: none (constant) or :class:`OneCycle`."""
    if schedule == "constant":
        return []
    if schedule == "one_cycle":
        return [OneCycle(learning_rate)]
    raise ValueError(f"unknown schedule {schedule!r}, expected one of {', '.join(SCHEDULES)}")


def lr_find(
    model: keras.Model,
    x: Any,
    y: Any,
    batch_size: int = 32,
    min_lr: float = 1e-6,
    max_lr: float = 10.0,
    n_steps: int = 100,
    seed: int = 0,
) -> float:
    """Learning-rate range test (Smith): the suggested learning rate for a compiled ``model``.

    Trains ``n_steps`` mini-batches with the rate growing exponentially from ``min_lr`` to
    ``max_lr`` (stopping once the loss explodes), smooths the loss curve, and suggests a tenth
    of the rate at its minimum. Weights and optimizer state are restored afterwards.
    """
    if not 0 < min_lr < max_lr or n_steps < 2:
        raise ValueError(
            f"lr_find needs 0 < min_lr < max_lr and n_steps >= 2, "
            f"but got (min_lr={min_lr}, max_lr={max_lr}, n_steps={n_steps})"
        )
    x, y = np.asarray(x), np.asarray(y)
    optimizer = model.optimizer
    weights = model.get_weights()
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    saved = [v.numpy() for v in optimizer.variables]
    rng = np.random.default_rng(seed)
    lrs = np.geomspace(min_lr, max_lr, n_steps)
    losses: list[float] = []
    smooth, beta = 0.0, 0.9
    for i, lr in enumerate(lrs):
        idx = rng.choice(len(x), size=min(batch_size, len(x)), replace=False)
        optimizer.learning_rate.assign(float(lr))
        out = model.train_on_batch(x[idx], y[idx], return_dict=True)
        loss = float(out["loss"])
        smooth = beta * smooth + (1 - beta) * loss
        value = smooth / (1 - beta ** (i + 1))
        if not math.isfinite(value) or (losses and value > 4 * min(losses)):
            break
        losses.append(value)
    model.set_weights(weights)
    for variable, value in zip(optimizer.variables, saved, strict=True):
        variable.assign(value)
    if len(losses) < 2:
        return float(min_lr)
    return float(lrs[int(np.argmin(losses))] / 10.0)
