"""Learning-curve models for ``hpsearch simulate --curves``: ``function(config, step)`` gives
the objective (minimised) a configuration's training reports at a step.

- ``ordered``: ``x + 1 / step``, the trial with the lowest ``x`` is ahead at every step;
- ``crossing``: ``x`` decides the end, but a low ``x`` starts slow (``x + 2 (1 - x) / step``),
  as a small learning rate or a warm-up does: early values rank the trials the wrong way;
- ``overfitting``: ``x + step / 27``, every trial gets worse as it trains on, so a value at an
  early stop is better than any final value.
"""


def ordered(config: dict, step: int) -> float:
    return config["x"] + 1.0 / step


def crossing(config: dict, step: int) -> float:
    return config["x"] + 2.0 * (1.0 - config["x"]) / step


def overfitting(config: dict, step: int) -> float:
    return config["x"] + step / 27.0
