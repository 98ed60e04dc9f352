"""Checkpoints on real Keras training: exact save and load, and the problems' run(config, trial)
continuing a checkpoint as if never interrupted, reporting every epoch, stopping when asked."""

import importlib
import json
import math
import os
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from hpsearch.evaluation import Job  # noqa: E402 (after the skip)
from hpsearch.keras import OneCycle, load_checkpoint, save_checkpoint  # noqa: E402
from hpsearch.trial import NoChannel, Report, Trial  # noqa: E402

# Keras on TensorFlow warns from inside model.save under NumPy 2; nothing of ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

DIGITS = {
    "n_layers": 2,
    "units_0": 32,
    "units_1": 16,
    "activation": "relu",
    "dropout": 0.2,  # dropout draws random numbers: its seeds must be restored too
    "learning_rate": 3e-3,
    "batch_size": 32,
    "schedule": "constant",
}


def _quick(name: str, **env: str):
    """Problem module ``name`` imported under HPSEARCH_QUICK=1 and ``env`` (then restored)."""
    env = {"HPSEARCH_QUICK": "1", **env}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        # reloaded when already imported: its constants are read from the environment
        module = importlib.reload(sys.modules[name]) if name in sys.modules else None
        module = module or importlib.import_module(name)
    finally:
        for k, v in old.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v
    return module


@pytest.fixture(scope="module")
def digits():
    # Quick data, and a one-cycle schedule spanning the 4 epochs the tests train.
    return _quick("problems.digits.model", HPSEARCH_DIGITS_EPOCHS="4")


class StopAfter:
    """A channel whose search asks the job to stop once it has ``n`` reports."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.sent: list[Report] = []

    def send(self, report: Report) -> None:
        self.sent.append(report)

    def stop_requested(self, job_id: int) -> bool:
        return len(self.sent) >= self.n


def _trial(tmp_path, job_id, config, channel=None, **job):
    channel = channel if channel is not None else NoChannel()
    checkpoint_dir = str(tmp_path / str(job_id))
    return Trial(Job(job_id, config, checkpoint_dir=checkpoint_dir, **job), channel), channel


def _values(variables):
    return [keras.ops.convert_to_numpy(v.value) for v in variables]


def test_save_then_load_gives_identical_weights_optimizer_and_random_state(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 8)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("int32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    # one-cycle makes Adam's beta_1 a variable of the optimizer while it trains
    model.fit(x, y, epochs=2, batch_size=32, callbacks=[OneCycle(1e-2)], verbose=0)
    save_checkpoint(model, tmp_path, 2, best=0.75, wait=1)
    save_checkpoint(model, tmp_path, 3, best=0.8, wait=0)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.json", "model-3.keras"]  # no leftovers
    assert json.loads((tmp_path / "checkpoint.json").read_text())["model"] == "model-3.keras"

    loaded, step, state = load_checkpoint(tmp_path)

    assert step == 3 and state == {"best": 0.8, "wait": 0}
    # weights, batch-norm statistics and the dropout layer's seed state
    assert len(loaded.variables) == len(model.variables) == 9
    for a, b in zip(_values(model.variables), _values(loaded.variables), strict=True):
        assert np.array_equal(a, b)
    own = [v for v in model.optimizer.variables if not v.path.startswith("one_cycle")]
    assert len(own) == len(loaded.optimizer.variables)
    for a, b in zip(_values(own), _values(loaded.optimizer.variables), strict=True):
        assert np.array_equal(a, b)
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == 8
    assert isinstance(model.optimizer.beta_1, keras.Variable)  # still scheduled after the save
    with pytest.raises(TypeError, match="not JSON serializable"):
        save_checkpoint(model, tmp_path, 4, best=object())  # a failed save changes nothing
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.json", "model-3.keras"]
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing")


def test_digits_continued_from_a_checkpoint_trains_as_if_uninterrupted(digits, tmp_path):
    # one-cycle: the schedule must continue where it was, besides the optimizer and the data
    config = {**DIGITS, "schedule": "one_cycle"}
    whole, whole_reports = _trial(tmp_path, 0, config, max_steps=4)
    first, first_reports = _trial(tmp_path, 1, config, max_steps=2)
    uninterrupted = digits.run(dict(config), whole)
    digits.run(dict(config), first)
    second, second_reports = _trial(
        tmp_path, 2, config, step=2, max_steps=4, restore_from=str(first.checkpoint_dir)
    )
    continued = digits.run(dict(config), second)

    # One report per epoch, steps counted from the start of training, finite objectives.
    assert [r.step for r in whole_reports.sent] == [1, 2, 3, 4]
    assert [r.step for r in first_reports.sent] == [1, 2]
    assert [r.step for r in second_reports.sent] == [3, 4]
    for r in whole_reports.sent + second_reports.sent:
        assert r.error == "" and math.isfinite(r.objective) and math.isfinite(r.metrics["loss"])
    # The same batches in the same order, the optimizer's moments and iteration counter and
    # the dropout seeds restored: training continues bit for bit, so equality is exact.
    resumed = first_reports.sent + second_reports.sent
    assert [r.objective for r in resumed] == [r.objective for r in whole_reports.sent]
    assert [r.metrics["loss"] for r in resumed] == [r.metrics["loss"] for r in whole_reports.sent]
    assert continued["objective"] == uninterrupted["objective"]
    assert continued["objective"] == max(r.objective for r in whole_reports.sent)
    assert (continued["epochs"], continued["best_epoch"]) == (4, uninterrupted["best_epoch"])
    for trial in (whole, second):
        _, step, state = load_checkpoint(trial.checkpoint_dir)
        assert step == 4 and state["early_stopping"]["epochs_run"] == 4


def test_digits_without_a_trial_trains_the_same_and_writes_nothing(digits, tmp_path):
    before = set(os.listdir(tmp_path))
    plain = digits.run(dict(DIGITS))
    trial, channel = _trial(tmp_path, 0, DIGITS)  # max_steps None: the problem's EPOCHS
    with_trial = digits.run(dict(DIGITS), trial)
    assert plain["objective"] == with_trial["objective"]
    assert plain["epochs"] == with_trial["epochs"] == digits.EPOCHS == len(channel.sent)
    assert set(os.listdir(tmp_path)) == before | {"0"}


def test_digits_stops_when_the_search_asks(digits, tmp_path):
    trial, channel = _trial(tmp_path, 0, DIGITS, StopAfter(2), max_steps=6)
    result = digits.run(dict(DIGITS), trial)
    assert [r.step for r in channel.sent] == [1, 2]
    assert trial.stopped and result["epochs"] == 2 and not result["stopped_early"]
    assert result["objective"] == max(r.objective for r in channel.sent)
    assert load_checkpoint(trial.checkpoint_dir)[1] == 2


@pytest.mark.parametrize("name", ["rnn_forecast", "hgcal_pid"])
def test_problem_continues_its_checkpoint(tmp_path, name):
    problem = _quick(f"problems.{name}.model")
    config = problem.problem.space.default_config()
    first, first_reports = _trial(tmp_path, 0, config, max_steps=1)
    problem.run(dict(config), first)
    second, second_reports = _trial(
        tmp_path, 1, config, step=1, max_steps=2, restore_from=str(first.checkpoint_dir)
    )
    result = problem.run(dict(config), second)
    steps = [r.step for r in first_reports.sent + second_reports.sent]
    assert steps == [1, 2] and result["epochs"] == 2
    assert all(r.error == "" for r in first_reports.sent + second_reports.sent)
    objective = result["objective"]
    primary = objective[0] if isinstance(objective, list) else objective
    assert primary in [r.objective for r in first_reports.sent + second_reports.sent]
