"""Next-step forecasting of a generated 3-variable time series with an LSTM or GRU network.

Hyperparameters: the recurrent cell, depth and width, the lookback window, dropout, learning
rate and batch size. Objective: validation MSE (minimise). ``HPSEARCH_QUICK=1`` shrinks the
series and epochs for tests.
"""

from problems.rnn_forecast.model import problem, run

__all__ = ["problem", "run"]
