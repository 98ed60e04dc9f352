"""A generated multivariate time series with seasonal, lagged and autoregressive structure."""

from __future__ import annotations

import numpy as np

N_VARIABLES = 3


def generate(length: int, seed: int = 0) -> np.ndarray:
    """Series of shape ``(length, 3)``: two mixed seasonalities, a lagged noisy copy of them,
    and an AR(1) process driven by the second; standardised per variable (float32)."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    season = np.sin(2 * np.pi * t / 50) + 0.5 * np.sin(2 * np.pi * t / 13 + 1.0)
    first = season + 0.1 * rng.normal(size=length)
    second = 0.8 * np.roll(first, 5) + 0.2 * rng.normal(size=length)
    third = np.zeros(length)
    for i in range(1, length):
        third[i] = 0.9 * third[i - 1] + 0.3 * second[i - 1] + 0.1 * rng.normal()
    series = np.stack([first, second, third], axis=1)
    return ((series - series.mean(0)) / series.std(0)).astype("float32")


def windows(series: np.ndarray, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(n, lookback, variables)`` and next-step targets ``(n, variables)``."""
    n = len(series) - lookback
    index = np.arange(lookback)[None, :] + np.arange(n)[:, None]
    return series[index], series[lookback:]
