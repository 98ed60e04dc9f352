"""Training helpers on real Keras models: one-cycle schedule, LR range test, early stopping."""

import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from hpsearch.keras import (  # noqa: E402 (after the skip)
    EarlyStopping,
    OneCycle,
    lr_find,
    one_cycle_schedule,
    schedule_callbacks,
)


def test_one_cycle_values_at_known_steps():
    # 121 steps, warm-up over the first 30: start, peak, half-way down, end
    assert one_cycle_schedule(0, 121, 1.0) == pytest.approx((1.0 / 25, 0.95))
    assert one_cycle_schedule(30, 121, 1.0) == pytest.approx((1.0, 0.85))
    lr, mom = one_cycle_schedule(75, 121, 1.0)  # half-way through the annealing
    assert lr == pytest.approx((1.0 + 1.0 / 25e4) / 2) and mom == pytest.approx(0.9)
    assert one_cycle_schedule(120, 121, 1.0) == pytest.approx((1.0 / 25e4, 0.95))
    lr_mid_warmup, _ = one_cycle_schedule(12, 101, 1.0, pct_start=0.24)
    assert lr_mid_warmup == pytest.approx(0.04 + 0.96 * (1 - math.cos(math.pi / 2)) / 2)
    with pytest.raises(ValueError, match="total_steps >= 2"):
        one_cycle_schedule(0, 1, 1.0)


def _regression(n: int = 512):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 1)).astype("float32")
    return x, 3.0 * x


def _linear(optimizer):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


class _Record(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        opt = self.model.optimizer
        self.seen.append((float(opt.learning_rate), float(opt.beta_1)))


def test_one_cycle_callback_drives_the_optimizer_and_early_stopping_reports():
    x, y = _regression()
    model = _linear(keras.optimizers.Adam())
    record, stop = _Record(), EarlyStopping(patience=50)
    history = model.fit(
        x, y, epochs=4, batch_size=128, validation_split=0.25,
        callbacks=[OneCycle(0.1), record, stop], verbose=0,
    )  # fmt: skip
    expected = [one_cycle_schedule(s, 12, 0.1) for s in range(12)]
    np.testing.assert_allclose(record.seen, expected, rtol=1e-5)
    assert stop.report() == {"epochs": 4, "best_epoch": 4, "stopped_early": False}
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert schedule_callbacks("constant", 0.1) == []
    with pytest.raises(ValueError, match="unknown schedule 'cyclic'"):
        schedule_callbacks("cyclic", 0.1)


def test_early_stopping_stops_and_counts_epochs():
    x, y = _regression(64)
    model = _linear(keras.optimizers.SGD(learning_rate=0.0))  # nothing improves
    stop = EarlyStopping(monitor="loss", patience=2)
    model.fit(x, y, epochs=20, batch_size=64, callbacks=[stop], verbose=0)
    assert stop.report() == {"epochs": 3, "best_epoch": 1, "stopped_early": True}


def test_a_segment_never_stops_early_and_is_judged_by_its_last_epoch():
    x, y = _regression(64)
    model = _linear(keras.optimizers.SGD(learning_rate=1.5))  # diverges: every epoch is worse
    stop = EarlyStopping(monitor="loss", patience=2, segment=True)
    history = model.fit(x, y, epochs=6, batch_size=64, callbacks=[stop], verbose=0)
    assert stop.report()["epochs"] == 6 and not stop.report()["stopped_early"]
    assert stop.judged_logs["loss"] == pytest.approx(history.history["loss"][-1])
    assert stop.best_logs["loss"] == pytest.approx(min(history.history["loss"]))
    assert stop.judged_logs["loss"] > stop.best_logs["loss"]


def test_lr_find_suggests_a_rate_in_the_stable_range():
    # least squares on x ~ N(0, 1): plain gradient descent diverges above lr = 1
    x, y = _regression()
    model = _linear(keras.optimizers.SGD())
    before = [w.copy() for w in model.get_weights()]
    lr = lr_find(model, x, y, batch_size=128)
    assert 1e-2 <= lr < 1.0
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="0 < min_lr < max_lr"):
        lr_find(model, x, y, min_lr=1.0, max_lr=0.1)
