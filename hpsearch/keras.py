"""Training helpers for Keras 3 run functions: LR range test, one-cycle schedule, early stopping,
checkpoints and per-epoch reports to a trial.

Importing this module imports Keras (``import hpsearch`` does not). Everything goes through
Keras (``keras.ops``, variables, ``model.save``; no framework calls), so it runs on the
TensorFlow, JAX and PyTorch backends.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from hpsearch.checkpoints import write_atomically

if TYPE_CHECKING:
    from hpsearch.trial import Trial

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

    ``total_steps`` defaults to epochs x steps per epoch of the fit. The step follows the epoch
    numbers of the fit, so a fit continuing a checkpoint with ``initial_epoch`` continues the
    cycle where it was. The optimizer's momentum (``beta_1`` for Adam-like optimizers,
    ``momentum`` for SGD) is made a variable so the compiled training step reads the new value
    each batch; :func:`save_checkpoint` saves it as the plain number it stands for.
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
        if name is None:
            return
        current = getattr(optimizer, name)
        if isinstance(current, keras.Variable):  # made a variable by an earlier fit
            self._momentum = current
        elif float(current or 0) > 0:
            if not optimizer.built:
                # Built first, so the momentum comes after the optimizer's own variables and
                # keeps its place when a checkpoint detaches it.
                optimizer.build(self.model.trainable_variables)
            self._momentum = keras.Variable(
                float(current), trainable=False, name=f"one_cycle_{name}"
            )
            setattr(optimizer, name, self._momentum)

    def values(self, step: int) -> tuple[float, float]:
        """(learning rate, momentum) at ``step``."""
        assert self.total_steps is not None
        return one_cycle_schedule(step, self.total_steps, self.max_lr, **self.schedule)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        steps = self.params.get("steps")
        if steps:
            self.step = epoch * int(steps)

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        lr, momentum = self.values(self.step)
        self.model.optimizer.learning_rate.assign(lr)
        if self._momentum is not None:
            self._momentum.assign(momentum)
        self.step += 1


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras early stopping (best weights restored by default) that reports what it used.

    After ``fit``, :meth:`report` gives ``{"epochs": run, "best_epoch": ..., "stopped_early":
    ...}``, to return as metrics from a run function (they become ``m:`` columns), and
    ``best_logs`` holds the logs of the best epoch (every metric of the weights it keeps).
    :meth:`state` and :meth:`load_state` carry its counters across a checkpoint: a run that
    continues one stops exactly where an uninterrupted run would. The best weights themselves
    are not in a checkpoint: after :meth:`load_state` the weights restored at the end are
    those of the best epoch since the restore, or the restored ones.
    """

    def __init__(
        self, monitor: str = "val_loss", patience: int = 5, segment: bool = False, **kwargs: Any
    ) -> None:
        kwargs.setdefault("restore_best_weights", True)
        # a segment never stops early: the search decides where a population member's
        # training ends, and judges the network as it is
        super().__init__(monitor=monitor, patience=2**31 if segment else patience, **kwargs)
        self.segment = segment
        self.epochs_run = 0
        self.best_logs: dict[str, float] = {}
        self.last_logs: dict[str, float] = {}
        self._loaded: dict[str, Any] | None = None

    @property
    def judged_logs(self) -> dict[str, float]:
        """The logs a run is judged by: the last epoch's for a ``segment`` of a population
        member, else the best epoch's."""
        return self.last_logs if self.segment else self.best_logs

    def state(self) -> dict[str, Any]:
        """The counters to save with a checkpoint (JSON-serialisable)."""
        return {
            "best": None if self.best is None else float(self.best),
            "best_epoch": int(self.best_epoch),
            "wait": int(self.wait),
            "stopped_epoch": int(self.stopped_epoch),
            "epochs_run": self.epochs_run,
            "best_logs": dict(self.best_logs),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state`), now and at the start of the next fit."""
        self._loaded = dict(state)
        self._apply(self._loaded)

    def _apply(self, state: Mapping[str, Any]) -> None:
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.wait = state["wait"]
        self.stopped_epoch = state["stopped_epoch"]
        self.epochs_run = state["epochs_run"]
        self.best_logs = dict(state["best_logs"])

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        if self._loaded is not None:
            self._apply(self._loaded)
            if self.restore_best_weights and self.best is not None:
                # Stands in for the best weights of earlier runs, which were not saved.
                self.best_weights = self.model.get_weights()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epochs_run = epoch + 1
        previous = self.best
        super().on_epoch_end(epoch, logs)
        self.last_logs = {k: float(v) for k, v in (logs or {}).items() if _is_number(v)}
        if self.best is not previous:
            self.best_logs = self.last_logs

    def report(self) -> dict[str, Any]:
        best_epoch = self.best_epoch + 1 if self.epochs_run else 0
        return {
            "epochs": self.epochs_run,
            "best_epoch": best_epoch,
            "stopped_early": bool(self.stopped_epoch),
        }


def _is_number(value: Any) -> bool:
    if isinstance(value, bool | str | bytes):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def schedule_callbacks(
    schedule: str, learning_rate: float, total_steps: int | None = None
) -> list[keras.callbacks.Callback]:
    """Callbacks for the searchable ``schedule`` choice: none (constant) or :class:`OneCycle`.

    ``total_steps`` is the length of the cycle (default: the steps of the fit).
    """
    if schedule == "constant":
        return []
    if schedule == "one_cycle":
        return [OneCycle(learning_rate, total_steps)]
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


#: The file of a checkpoint directory that names its model file and holds its step and state.
CHECKPOINT_FILE = "checkpoint.json"


def save_checkpoint(
    model: keras.Model, directory: str | os.PathLike[str], step: int, **state: Any
) -> Path:
    """Save ``model`` after ``step`` steps (epochs) into ``directory``; return the model file.

    The checkpoint is ``model-<step>.keras`` (architecture, weights, compile settings and the
    optimizer's variables, its iteration counter included) and ``checkpoint.json``: the step,
    the model file's name, ``state`` (any JSON-serialisable values: the best validation value
    so far, an early-stopping counter...) and the random state of the model's layers (dropout
    seeds), so training continues exactly. Each file is written under a temporary name and
    renamed; the JSON is written last and names its model file, so a process killed at any
    point leaves the previous checkpoint or the new one, never a mix. Older model files are
    removed afterwards.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"model-{int(step)}.keras"
    random_state = [
        {"path": v.path, "value": keras.ops.convert_to_numpy(v.value).tolist()}
        for v in _random_variables(model)
    ]
    record = {"step": int(step), "model": name, "state": state, "random_state": random_state}
    text = json.dumps(record, indent=1)  # first: a state that is not JSON changes nothing
    with _plain_optimizer(getattr(model, "optimizer", None)):
        write_atomically(directory, name, model.save)

    def write_json(path: str) -> None:
        with open(path, "w") as f:
            f.write(text)

    write_atomically(directory, CHECKPOINT_FILE, write_json)
    for old in directory.glob("model-*.keras"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return directory / name


def load_checkpoint(
    directory: str | os.PathLike[str], custom_objects: Mapping[str, Any] | None = None
) -> tuple[keras.Model, int, dict[str, Any]]:
    """The ``(model, step, state)`` saved by :func:`save_checkpoint` in ``directory``.

    The model comes back compiled, with its weights, optimizer variables and layers' random
    state exactly as saved; ``state`` is the keyword arguments given to the save. Pass
    ``custom_objects`` for custom layers, losses or metrics, as to
    ``keras.models.load_model``. Raises FileNotFoundError when ``directory`` holds no
    checkpoint.
    """
    directory = Path(directory)
    path = directory / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint in {directory} ({CHECKPOINT_FILE} is missing)")
    record = json.loads(path.read_text())
    model = keras.models.load_model(
        directory / record["model"], custom_objects=dict(custom_objects or {})
    )
    variables = _random_variables(model)
    saved = record["random_state"]
    if len(saved) != len(variables):
        raise ValueError(
            f"checkpoint in {directory} has {len(saved)} random-state variables, "
            f"its model has {len(variables)}"
        )
    for variable, entry in zip(variables, saved, strict=True):
        variable.assign(np.asarray(entry["value"], dtype=variable.dtype))
    return model, int(record["step"]), dict(record["state"])


def _random_variables(model: keras.Model) -> list[Any]:
    """Variables of ``model`` that are not weights: the states of its layers' seed generators."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


@contextlib.contextmanager
def _plain_optimizer(optimizer: Any) -> Iterator[None]:
    """Within the block, hyperparameters a callback made variables are plain numbers again.

    :class:`OneCycle` turns ``beta_1``/``momentum`` into a variable tracked by the optimizer,
    so the compiled step reads each new value. Saved as such, it would be written into the
    optimizer's config as a tensor and among its variables, and the file would not load into a
    fresh optimizer; so it is detached for the save and put back in its place afterwards.
    """
    if optimizer is None:
        yield
        return
    swapped = {
        name: value
        for name in optimizer.get_config()
        if name != "learning_rate"
        and isinstance(value := getattr(optimizer, name, None), keras.Variable)
    }
    tracked = optimizer.variables
    positions = [i for i, v in enumerate(tracked) if any(v is s for s in swapped.values())]
    if not positions:
        yield
        return
    # Keras has no public way to drop a variable from an optimizer: its own private methods
    # do it. Everything from the first detached variable on is re-added in the same order.
    tail = tracked[positions[0] :]
    for variable in tail:
        optimizer._untrack_variable(variable)
    for name, variable in swapped.items():
        setattr(optimizer, name, float(variable))
    try:
        yield
    finally:
        for variable in tail:
            optimizer._track_variable(variable)
        for name, variable in swapped.items():
            setattr(optimizer, name, variable)


def in_population(trial: Trial | None) -> bool:
    """True when ``trial`` is a segment of a population member (PBT, replica exchange): the
    search moves its hyperparameters between segments and judges it by its last epoch, so
    build its :class:`EarlyStopping` with ``segment=True``."""
    return trial is not None and trial.member is not None


def continue_or_build(
    trial: Any, build: Callable[[], keras.Model], stop: EarlyStopping, learning_rate: float
) -> tuple[keras.Model, int]:
    """The model a run trains and the epoch it starts from.

    With a checkpoint to continue (``trial.restore_from``), the model, epoch and
    early-stopping state saved there (by a :class:`TrialCallback` whose ``state`` holds
    ``{"early_stopping": stop.state()}``), with ``learning_rate`` applied after restoring,
    since a population method may have changed it; otherwise ``build()`` (a compiled model)
    from epoch 0.
    """
    if trial is None or trial.restore_from is None:
        return build(), 0
    model, start, state = load_checkpoint(trial.restore_from)
    stop.load_state(state["early_stopping"])
    model.optimizer.learning_rate.assign(learning_rate)
    return model, start


class TrialCallback(keras.callbacks.Callback):
    """After every epoch: save a checkpoint into the trial's directory, then report to it.

    The report is ``trial.report(epoch + 1, logs[objective], **{name: logs[key] for name, key
    in metrics.items()})`` (default metrics: ``loss``); when it returns True the fit stops
    after this epoch. ``state`` returns the extra state to save with the checkpoint (see
    :func:`save_checkpoint`), e.g. ``lambda: {"early_stopping": stop.state()}``. List it after
    the callbacks whose state it saves or whose logs it reads, so it sees their epoch's end.
    No checkpoint is written when the trial has no ``checkpoint_dir``.
    """

    def __init__(
        self,
        trial: Trial,
        objective: str,
        metrics: Mapping[str, str] | None = None,
        state: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self.trial = trial
        self.objective = objective
        self.metrics = dict(metrics) if metrics is not None else {"loss": "loss"}
        self.state = state

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        step = epoch + 1
        if self.trial.checkpoint_dir is not None:
            extra = dict(self.state()) if self.state is not None else {}
            save_checkpoint(self.model, self.trial.checkpoint_dir, step, **extra)
        metrics = {name: logs.get(key) for name, key in self.metrics.items()}
        if self.trial.report(step, logs.get(self.objective), **metrics):
            self.model.stop_training = True
