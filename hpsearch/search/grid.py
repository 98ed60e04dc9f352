"""Grid search: every configuration of a grid over the space, each once, then the search ends.

Categorical and ordinal dimensions take their declared choices; real and integer ranges
``--grid-points`` values each (evenly spaced, on the log scale for log dimensions; integers
rounded and deduplicated), or the values the problem lists in ``problem.grid``. An integer
range without either takes every integer. A conditional dimension that is inactive adds one
configuration, not one per value; constraints remove configurations before the search starts.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from hpsearch.arguments import positive_int
from hpsearch.problem import Problem
from hpsearch.search.base import Optimizer, Seed
from hpsearch.space import Categorical, Config, Dimension, Integer, Real

log = logging.getLogger(__name__)

ORDERS = ("shuffled", "declared")
#: Largest grid searched unless ``max_grid`` says otherwise.
MAX_GRID = 1_000_000


def dimension_values(
    dim: Dimension, grid_points: int | None, listed: Sequence[Any] | None = None
) -> list[Any]:
    """The values dimension ``dim`` takes on the grid, distinct and as a configuration holds
    them: ``listed`` (checked against the dimension), its choices, or ``grid_points`` values
    over its range.

    Raises ValueError naming the dimension when a range has no number of points.
    """
    if listed is not None:
        if isinstance(listed, str) or not isinstance(listed, Sequence) or not listed:
            raise ValueError(
                f"problem.grid[{dim.name!r}] must be a non-empty list of values, got {listed!r}"
            )
        values = [dim.check_value(v, what="grid value") for v in listed]
    elif isinstance(dim, Categorical):
        values = list(dim.choices)
    elif isinstance(dim, Integer) and grid_points is None:
        values = list(range(dim.low, dim.high + 1))
    elif isinstance(dim, Real | Integer):
        if grid_points is None:
            raise ValueError(
                f"the real dimension {dim.name!r} needs --grid-points N or values in problem.grid"
            )
        # evenly spaced on the dimension's own scale: linear, or logarithmic for log ranges
        ends = dim.to_unit([dim.low, dim.high])
        values = dim.from_unit(np.linspace(ends[0], ends[1], grid_points))
    else:
        raise ValueError(f"the {dim.kind} dimension {dim.name!r} needs values in problem.grid")
    # as the search's unit points decode them, so that keys match the configurations evaluated
    return list(dict.fromkeys(dim.from_unit(dim.to_unit(values))))


def grid_size(problem: Problem, values: Sequence[Sequence[Any]], limit: int) -> int:
    """How many configurations the grid holds before constraints; with conditional
    dimensions counted up to ``limit + 1`` only, so that a huge grid is never walked."""
    if not problem.space.is_conditional:
        return math.prod(len(v) for v in values)
    return sum(1 for _ in itertools.islice(_rows(problem, values), limit + 1))


def _rows(problem: Problem, values: Sequence[Sequence[Any]]) -> Iterator[tuple[int, ...]]:
    """The grid's rows of value indices in declaration order (the first dimension varies
    slowest); an inactive dimension has index -1 and one row, not one per value."""
    dims = list(problem.space)
    partial: Config = {}

    def walk(j: int) -> Iterator[tuple[int, ...]]:
        if j == len(dims):
            yield ()
            return
        dim = dims[j]
        if dim.condition is not None and not dim.condition(partial):
            partial[dim.name] = None
            for rest in walk(j + 1):
                yield (-1, *rest)
            return
        for i, value in enumerate(values[j]):
            partial[dim.name] = value
            for rest in walk(j + 1):
                yield (i, *rest)

    if not problem.space.is_conditional:
        return itertools.product(*(range(len(v)) for v in values))
    return walk(0)


class GridSearch(Optimizer):
    """Propose every configuration of a grid once, in a seeded shuffled or the declared order.

    ``grid_points`` values per real or integer range (``problem.grid`` lists a dimension's
    values instead); ``max_grid`` bounds the grid's size before constraints. A problem's
    default configuration, when it declares defaults, is asked first (on the grid or not).
    Cancelled (forgotten) configurations are proposed again first. ``ask`` returns fewer
    configurations than asked once the grid runs out, and :attr:`exhausted` turns True.

    >>> opt = GridSearch(problem, grid_points=5, order="declared")  # three real ranges
    >>> opt.size_
    125
    """

    def __init__(
        self,
        problem: Problem,
        grid_points: int | None = None,
        order: str = "shuffled",
        max_grid: int = MAX_GRID,
        seed: Seed = None,
    ) -> None:
        if order not in ORDERS:
            raise ValueError(f"grid order must be one of {', '.join(ORDERS)}, got {order!r}")
        if grid_points is not None and grid_points < 2:
            raise ValueError(f"--grid-points must be >= 2, got {grid_points}")
        unknown = sorted(set(problem.grid) - set(problem.space.names))
        if unknown:
            raise ValueError(f"problem.grid names unknown hyperparameter(s): {', '.join(unknown)}")
        super().__init__(problem, seed)
        self.order = order
        self.values_ = [
            dimension_values(d, grid_points, problem.grid.get(d.name)) for d in self.space
        ]
        size = grid_size(problem, self.values_, max_grid)
        if size > max_grid:
            counted = "" if self.space.is_conditional else f"{size:,} configurations, "
            raise ValueError(
                f"the grid has {counted}more than --max-grid {max_grid:,}: "
                "give fewer --grid-points or values"
            )
        rows = self._feasible(self._all_rows(size))
        if order == "shuffled":
            rows = rows[self.rng.permutation(len(rows))]
        self.rows_ = rows
        #: configurations on the grid after constraints
        self.size_ = len(rows)
        self._next = 0  # the next row to consider
        self._queue: deque[Config] = deque()  # to propose before the next row
        if self.space.has_defaults:
            default = self.space.default_config()
            if problem.is_feasible(default):
                self._queue.append(default)

    def _all_rows(self, size: int) -> np.ndarray:
        d = len(self.space)
        if not self.space.is_conditional:
            return np.indices([len(v) for v in self.values_], dtype=np.int32).reshape(d, -1).T
        rows = _rows(self.problem, self.values_)
        return np.fromiter(rows, dtype=np.dtype((np.int32, d)), count=size)

    def _feasible(self, rows: np.ndarray) -> np.ndarray:
        if not self.problem.constraints:
            return rows
        keep = [self.problem.is_feasible(self._config(row)) for row in rows]
        return rows[np.asarray(keep, dtype=bool)]

    def _config(self, row: np.ndarray) -> Config:
        return {
            dim.name: None if i < 0 else values[i]
            for dim, values, i in zip(self.space, self.values_, row.tolist(), strict=True)
        }

    def _new(self, config: Mapping[str, Any], taken: set[tuple]) -> bool:
        key = self.space.key(config)
        if key in self.seen_ or key in taken:
            return False
        taken.add(key)
        return True

    def _ask(self, n: int) -> np.ndarray:
        found: list[Config] = []
        taken: set[tuple] = set()
        while self._queue and len(found) < n:
            config = self._queue.popleft()
            if self._new(config, taken):
                found.append(config)
        while self._next < len(self.rows_) and len(found) < n:
            config = self._config(self.rows_[self._next])
            self._next += 1
            if self._new(config, taken):
                found.append(config)
        return self.space.encode(found) if found else np.zeros((0, len(self.space)))

    def forget(self, configs: Sequence[Mapping[str, Any]]) -> None:
        cancelled = [
            c for c, k in zip(configs, self.space.keys(configs), strict=True) if k in self.pending_
        ]
        super().forget(configs)
        self._queue.extend(dict(c) for c in cancelled)

    @property
    def exhausted(self) -> bool:
        if self._next < len(self.rows_):
            return False
        return all(self.space.key(c) in self.seen_ for c in self._queue)


def _grid_points(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The grid options of ``python -m hpsearch.grid``."""
    group = parser.add_argument_group("grid search")
    group.add_argument(
        "--grid-points",
        type=_grid_points,
        default=None,
        help="values per real or integer range (>= 2; default: problem.grid, and every "
        "integer of an integer range)",
    )
    group.add_argument(
        "--order",
        choices=ORDERS,
        default="shuffled",
        help="visit the grid in a seeded random order or in declaration order (default shuffled)",
    )
    group.add_argument(
        "--max-grid",
        type=positive_int,
        default=MAX_GRID,
        help=f"refuse a grid of more configurations than this (default {MAX_GRID:,})",
    )


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The grid parameters of a parsed command line, by name (the seed excluded)."""
    return {"grid_points": args.grid_points, "order": args.order, "max_grid": args.max_grid}


def build(problem: Problem, args: argparse.Namespace) -> GridSearch:
    """The grid search configured by the command line; says how many configurations it holds."""
    search = GridSearch(problem, **parameters(args), seed=args.seed)
    log.warning("grid search over %d configurations (%s order)", search.size_, search.order)
    return search
