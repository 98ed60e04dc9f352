"""Handwritten digits (scikit-learn's bundled 8x8 images) classified by a Keras MLP.

The default problem of ``make demo``. Objective: validation accuracy (maximise). The space is
an :class:`hpsearch.MLPSpace` (1-3 hidden layers, conditional widths) plus the learning rate,
batch size and LR schedule. Keras is imported inside ``run`` only, so the search master never
loads a framework. ``HPSEARCH_QUICK=1`` shrinks the data and epochs for tests.
"""

from problems.digits.model import problem, run

__all__ = ["problem", "run"]
