"""A trial's learning curve as the master sees it: the values its reports carried, by step."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass
class Curve:
    """Values (to minimise) by step, in step order."""

    steps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, step: float, value: float) -> None:
        """Record ``value`` at ``step``; what was recorded at or after it is dropped (the
        weights that reported it no longer exist)."""
        cut = bisect.bisect_left(self.steps, step)
        del self.steps[cut:], self.values[cut:]
        self.steps.append(step)
        self.values.append(value)

    def at(self, step: float) -> float | None:
        """The value reported last at or before ``step`` (None: nothing reported by then)."""
        i = bisect.bisect_right(self.steps, step)
        return self.values[i - 1] if i else None

    def until(self, step: float) -> Curve:
        """A copy holding the values up to ``step``."""
        i = bisect.bisect_right(self.steps, step)
        return Curve(self.steps[:i], self.values[:i])

    @property
    def last_step(self) -> float | None:
        return self.steps[-1] if self.steps else None
