"""Handwritten digits (scikit-learn's bundled 8x8 images) classified by a Keras MLP.

The default problem of ``make demo``. Objective: validation accuracy (maximise). One
evaluation trains for a handful of epochs on 1,437 images and takes a few seconds on a CPU.
Keras is imported inside ``run`` only, so the search master never loads a framework.
"""

from problems.digits.model import problem, run

__all__ = ["problem", "run"]
