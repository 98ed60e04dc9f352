"""Random search: independent uniform draws from the space (constraints applied)."""

from __future__ import annotations

import numpy as np

from hpsearch.search.base import Optimizer


class RandomSearch(Optimizer):
    """Propose configurations drawn uniformly at random (log dimensions on their log scale).

    >>> opt = RandomSearch(problem, seed=0)
    >>> configs = opt.ask(8)
    >>> opt.tell(configs, objectives)
    """

    def _ask(self, n: int) -> np.ndarray:
        return self._sample_new(n)
