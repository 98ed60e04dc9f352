"""A noisy quadratic trained by SGD, where the best learning rate changes during training.

A toy for population-based training and replica exchange (numpy only, milliseconds a step):
the loss 1/2 sum_i h_i theta_i^2 with curvatures h_i spread over two decades and gradient
noise proportional to the curvature (the noisy quadratic model of Zhang et al. 2019). A
large learning rate makes fast progress early but stalls at a noise floor; a small one is
slow; a decaying schedule beats every fixed rate. Objective: the exact expected loss after
the last step (minimise). See README.md for the numbers.
"""

from problems.lr_schedule.model import problem, run

__all__ = ["problem", "run"]
