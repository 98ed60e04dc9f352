"""Search spaces: typed dimensions and the one mapping between configurations and the unit cube.

Every optimizer works on points of the unit cube ``[0, 1)^d`` (one column per dimension, in
declaration order) and never parses a dimension itself. :class:`Space` converts batches both
ways and builds the numeric features surrogate models learn from (categorical dimensions
one-hot encoded, inactive conditional dimensions set to a constant).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import qmc

Config = dict[str, Any]
Condition = Callable[[Mapping[str, Any]], bool]

#: Distribution strings accepted in the tuple shorthand ``(low, high, "log-uniform")``.
DISTRIBUTIONS = ("uniform", "log-uniform")
#: Initial designs accepted by :meth:`Space.sample_unit`.
SAMPLING_METHODS = ("random", "lhs", "sobol")
#: Feature value of a conditional dimension that is inactive (outside the unit interval,
#: so a tree can split it off from every active value).
INACTIVE_FEATURE = -1.0


class InvalidHyperparameterError(ValueError):
    """A hyperparameter declaration that cannot define a dimension."""


@dataclass
class Dimension:
    """One hyperparameter. Subclasses map values to and from ``[0, 1)``, column-wise.

    ``condition``, when given, is called with the values of the dimensions declared before
    this one; the dimension is *active* only when it returns True. Inactive dimensions are
    neither searched nor reported: their value in a configuration is ``None``.
    """

    name: str
    default: Any = field(default=None, kw_only=True)
    condition: Condition | None = field(default=None, kw_only=True, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise InvalidHyperparameterError(
                f"hyperparameter name must be a Python identifier, but got {self.name!r}"
            )
        self._validate()
        if self.default is not None:
            self.default = self.check_value(self.default, what="default")

    def _fail(self, message: str) -> InvalidHyperparameterError:
        return InvalidHyperparameterError(f"hyperparameter {self.name!r}: {message}")

    def _validate(self) -> None:
        """Raise InvalidHyperparameterError when the declaration is inconsistent."""

    # The three methods below are the whole contract a dimension fulfils.
    def to_unit(self, values: Sequence[Any]) -> np.ndarray:
        """Map values of this dimension to points in ``[0, 1)`` (1-D array)."""
        raise NotImplementedError

    def from_unit(self, u: np.ndarray) -> list[Any]:
        """Map points of ``[0, 1]`` to values of this dimension (a list of Python scalars)."""
        raise NotImplementedError

    def check_value(self, value: Any, what: str = "value") -> Any:
        """Return ``value`` converted to the dimension's type, or raise if it is outside it."""
        raise NotImplementedError

    @property
    def n_features(self) -> int:
        """Number of numeric features this dimension contributes to a surrogate's input."""
        return 1

    def features(self, u: np.ndarray) -> np.ndarray:
        """Surrogate features of unit points ``u`` (shape ``(n, n_features)``)."""
        return u.reshape(-1, 1)

    @property
    def kind(self) -> str:
        return type(self).__name__


def _round_significant(x: np.ndarray, digits: int = 12) -> np.ndarray:
    """Round to ``digits`` significant digits, so that 3e-3 decodes to 3e-3, not 2.999...e-3."""
    tiny = np.abs(x) < 1e-280  # leave (near-)zero alone: its scale would overflow
    magnitude = np.floor(np.log10(np.abs(np.where(tiny, 1.0, x))))
    scale = 10.0 ** (digits - 1 - magnitude)
    return np.where(tiny, x, np.round(x * scale) / scale)


def _key_column(values: list[Any]) -> list[Any]:
    """``values`` with the floats rounded to 12 decimals, so that floats equal to that
    precision give equal keys. All floats go through the same (numpy) rounding: mixing it
    with Python's ``round`` could round one value two ways."""
    at = [i for i, v in enumerate(values) if isinstance(v, float)]
    if at:
        rounded = np.round(np.array([values[i] for i in at]), 12).tolist()
        for i, r in zip(at, rounded, strict=True):
            values[i] = r
    return values


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)


@dataclass
class Real(Dimension):
    """A float in ``[low, high]``; ``log=True`` searches it on a log scale."""

    low: float = 0.0
    high: float = 1.0
    log: bool = False

    def _validate(self) -> None:
        if not (_is_number(self.low) and _is_number(self.high)):
            raise self._fail(
                f"bounds must be numbers, but got (low={self.low!r}, high={self.high!r})"
            )
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise self._fail(f"bounds must be finite, but got (low={self.low}, high={self.high})")
        if not self.low < self.high:
            raise self._fail(f"`low < high` must hold, but got (low={self.low}, high={self.high})")
        if self.log and self.low <= 0:
            raise self._fail(f"a log-uniform range needs `low > 0`, but got low={self.low}")
        self.low, self.high = float(self.low), float(self.high)

    def _span(self) -> tuple[float, float]:
        if self.log:
            return math.log(self.low), math.log(self.high)
        return self.low, self.high

    def to_unit(self, values: Sequence[Any]) -> np.ndarray:
        x = np.asarray(values, dtype=float)
        lo, hi = self._span()
        if self.log:
            x = np.log(x)
        return np.clip((x - lo) / (hi - lo), 0.0, 1.0)

    def from_unit(self, u: np.ndarray) -> list[Any]:
        lo, hi = self._span()
        x = lo + np.clip(u, 0.0, 1.0) * (hi - lo)
        if self.log:
            x = np.exp(x)
        return np.clip(_round_significant(x), self.low, self.high).tolist()

    def check_value(self, value: Any, what: str = "value") -> float:
        if not _is_number(value) or not self.low <= float(value) <= self.high:
            raise self._fail(
                f"{what} must be a number in [{self.low}, {self.high}], but got {value!r}"
            )
        return float(value)


@dataclass
class Integer(Dimension):
    """An int in ``[low, high]`` (both included); ``log=True`` searches it on a log scale.

    Each integer owns an equal-width bin of the unit interval (on the log scale when
    ``log``), so that uniform sampling in the cube gives every integer its fair share.
    """

    low: int = 0
    high: int = 1
    log: bool = False

    def _validate(self) -> None:
        for bound in (self.low, self.high):
            if not (isinstance(bound, int | np.integer) and not isinstance(bound, bool)):
                raise self._fail(
                    f"bounds must be ints, but got (low={self.low!r}, high={self.high!r})"
                )
        if not self.low < self.high:
            raise self._fail(f"`low < high` must hold, but got (low={self.low}, high={self.high})")
        if self.log and self.low <= 0:
            raise self._fail(f"a log-uniform range needs `low > 0`, but got low={self.low}")
        self.low, self.high = int(self.low), int(self.high)

    def _span(self) -> tuple[float, float]:
        lo, hi = self.low - 0.5, self.high + 0.5
        if self.log:
            return math.log(lo), math.log(hi)
        return lo, hi

    def to_unit(self, values: Sequence[Any]) -> np.ndarray:
        x = np.asarray(values, dtype=float)
        lo, hi = self._span()
        if self.log:
            x = np.log(x)
        return np.clip((x - lo) / (hi - lo), 0.0, 1.0)

    def from_unit(self, u: np.ndarray) -> list[Any]:
        lo, hi = self._span()
        x = lo + np.clip(u, 0.0, 1.0) * (hi - lo)
        if self.log:
            x = np.exp(x)
        return np.clip(np.round(x), self.low, self.high).astype(int).tolist()

    def check_value(self, value: Any, what: str = "value") -> int:
        ok = _is_number(value) and float(value).is_integer() and self.low <= value <= self.high
        if not ok:
            raise self._fail(
                f"{what} must be an int in [{self.low}, {self.high}], but got {value!r}"
            )
        return int(value)


@dataclass
class Categorical(Dimension):
    """One of an unordered list of choices (strings, numbers, booleans, None excluded).

    Surrogates see it one-hot encoded, so no order is implied between the choices.
    """

    choices: Sequence[Any] = ()

    def _validate(self) -> None:
        # numpy scalars become Python ones, so that results and journals hold plain values
        self.choices = [c.item() if isinstance(c, np.generic) else c for c in self.choices]
        if not self.choices:
            raise self._fail("the list of choices is empty")
        if any(c is None for c in self.choices):
            raise self._fail("None cannot be a choice (it marks an inactive dimension)")
        if len({repr(c) for c in self.choices}) != len(self.choices):
            raise self._fail(f"choices must be distinct, but got {self.choices!r}")

    def index(self, value: Any) -> int:
        """The position of ``value`` among the choices, of the same type first."""
        for i, c in enumerate(self.choices):
            if type(c) is type(value) and c == value:
                return i
        for i, c in enumerate(self.choices):  # 32 == np.int64(32), 1.0 == 1
            if c == value:
                return i
        raise self._fail(f"value must be one of {self.choices!r}, but got {value!r}")

    def to_unit(self, values: Sequence[Any]) -> np.ndarray:
        k = len(self.choices)
        return np.array([(self.index(v) + 0.5) / k for v in values], dtype=float)

    def from_unit(self, u: np.ndarray) -> list[Any]:
        k = len(self.choices)
        idx = np.clip(np.floor(np.asarray(u, dtype=float) * k), 0, k - 1).astype(int)
        return [self.choices[i] for i in idx]

    def check_value(self, value: Any, what: str = "value") -> Any:
        try:
            return self.choices[self.index(value)]
        except InvalidHyperparameterError:
            raise self._fail(f"{what} must be one of {self.choices!r}, but got {value!r}") from None

    @property
    def n_features(self) -> int:
        return len(self.choices)

    def features(self, u: np.ndarray) -> np.ndarray:
        k = len(self.choices)
        idx = np.clip(np.floor(u * k), 0, k - 1).astype(int)
        return np.eye(k)[idx]


@dataclass
class Ordinal(Categorical):
    """One of an ordered list of choices: surrogates see its rank, so neighbours are close."""

    def features(self, u: np.ndarray) -> np.ndarray:
        k = len(self.choices)
        idx = np.clip(np.floor(u * k), 0, k - 1)
        return ((idx + 0.5) / k).reshape(-1, 1)

    @property
    def n_features(self) -> int:
        return 1


def dimension_from_spec(
    name: str, spec: Any, *, ordinal: bool = False, default: Any = None
) -> Dimension:
    """Build a dimension from the ``add_hyperparameter`` shorthands.

    ``(low, high)`` of floats gives :class:`Real`, of ints :class:`Integer`; a third element
    ``"log-uniform"`` (or ``"uniform"``) picks the scale; a list gives :class:`Categorical`,
    or :class:`Ordinal` with ``ordinal=True``. A :class:`Dimension` is returned as it is.
    """
    if isinstance(spec, Dimension):
        return spec
    if isinstance(spec, list):
        cls = Ordinal if ordinal else Categorical
        return cls(name, choices=spec, default=default)
    if isinstance(spec, tuple):
        if ordinal:
            raise InvalidHyperparameterError(
                f"hyperparameter {name!r}: ordinal=True needs a list of choices, but got the range {spec!r}"
            )
        if len(spec) not in (2, 3):
            raise InvalidHyperparameterError(
                f"hyperparameter {name!r}: a range is (low, high) or (low, high, distribution), "
                f"but got {spec!r}"
            )
        low, high = spec[0], spec[1]
        distribution = spec[2] if len(spec) == 3 else "uniform"
        if distribution not in DISTRIBUTIONS:
            raise InvalidHyperparameterError(
                f"hyperparameter {name!r}: unknown distribution {distribution!r}, "
                f"expected one of {', '.join(DISTRIBUTIONS)}"
            )
        log = distribution == "log-uniform"
        both_int = all(
            isinstance(b, int | np.integer) and not isinstance(b, bool) for b in (low, high)
        )
        if both_int:
            return Integer(name, low=low, high=high, log=log, default=default)
        return Real(name, low=low, high=high, log=log, default=default)
    raise InvalidHyperparameterError(
        f"hyperparameter {name!r}: expected a (low, high[, distribution]) tuple, a list of choices "
        f"or a Dimension, but got {spec!r}"
    )


class Space:
    """An ordered collection of dimensions with batch conversions to and from the unit cube."""

    def __init__(self, dimensions: Iterable[Dimension] = ()) -> None:
        self.dimensions: list[Dimension] = []
        for dim in dimensions:
            self.add(dim)

    def add(self, dim: Dimension) -> Dimension:
        if dim.name in self.names:
            raise InvalidHyperparameterError(f"hyperparameter {dim.name!r} is declared twice")
        self.dimensions.append(dim)
        return dim

    def __len__(self) -> int:
        return len(self.dimensions)

    def __iter__(self):
        return iter(self.dimensions)

    def __getitem__(self, name: str) -> Dimension:
        for dim in self.dimensions:
            if dim.name == name:
                return dim
        raise KeyError(name)

    def __repr__(self) -> str:
        return f"Space({self.dimensions!r})"

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    @property
    def is_conditional(self) -> bool:
        return any(d.condition is not None for d in self.dimensions)

    @property
    def n_features(self) -> int:
        return sum(d.n_features for d in self.dimensions)

    # ---- conversions -------------------------------------------------------------------
    def decode(self, U: np.ndarray) -> list[Config]:
        """Turn unit points (shape ``(n, len(space))``) into configurations.

        Conditional dimensions whose condition is false get the value ``None``.
        """
        U = np.atleast_2d(np.asarray(U, dtype=float))
        columns = [dim.from_unit(U[:, j]) for j, dim in enumerate(self.dimensions)]
        names = self.names
        configs = [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
        if self.is_conditional:
            for config in configs:
                self._blank_inactive(config)
        return configs

    def encode(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Turn configurations into unit points; inactive dimensions map to 0.5."""
        U = np.full((len(configs), len(self)), 0.5)
        for j, dim in enumerate(self.dimensions):
            values = [c.get(dim.name) for c in configs]
            rows = [i for i, v in enumerate(values) if v is not None]
            if rows:
                U[rows, j] = dim.to_unit([values[i] for i in rows])
        return U

    def canonical(self, U: np.ndarray) -> np.ndarray:
        """Snap unit points to what they decode to (bin centres, inactive columns at 0.5)."""
        return self.encode(self.decode(U))

    def active_mask(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Boolean array ``(n, len(space))``: which dimensions are active in each config."""
        return np.array(
            [[c.get(name) is not None for name in self.names] for c in configs], dtype=bool
        ).reshape(len(configs), len(self))

    def features(self, U: np.ndarray) -> np.ndarray:
        """Surrogate input for unit points: one-hot categoricals, inactive dimensions at -1."""
        U = np.atleast_2d(np.asarray(U, dtype=float))
        blocks = [dim.features(U[:, j]) for j, dim in enumerate(self.dimensions)]
        X = np.hstack(blocks) if blocks else np.zeros((len(U), 0))
        if self.is_conditional:
            active = self.active_mask(self.decode(U))
            widths = [d.n_features for d in self.dimensions]
            X[~np.repeat(active, widths, axis=1)] = INACTIVE_FEATURE
        return X

    def key(self, config: Mapping[str, Any]) -> tuple:
        """Hashable identity of a configuration (used to avoid proposing duplicates)."""
        return self.keys([config])[0]

    def keys(self, configs: Sequence[Mapping[str, Any]]) -> list[tuple]:
        """:meth:`key` of each configuration, computed column by column (fast on many)."""
        columns = [_key_column([c.get(name) for c in configs]) for name in self.names]
        return list(zip(*columns, strict=True)) if columns else [() for _ in configs]

    def _blank_inactive(self, config: Config) -> None:
        for dim in self.dimensions:
            if dim.condition is not None and not dim.condition(config):
                config[dim.name] = None

    # ---- checks and special points -----------------------------------------------------
    def validate(self, config: Mapping[str, Any]) -> Config:
        """Return a copy of ``config`` with typed values; raise ValueError naming what is wrong."""
        unknown = set(config) - set(self.names)
        if unknown:
            raise InvalidHyperparameterError(
                f"unknown hyperparameter(s): {', '.join(sorted(unknown))}"
            )
        out: Config = {}
        for dim in self.dimensions:
            active = dim.condition is None or dim.condition(out)
            value = config.get(dim.name)
            if not active:
                out[dim.name] = None
            elif value is None:
                raise InvalidHyperparameterError(f"hyperparameter {dim.name!r} is missing")
            else:
                out[dim.name] = dim.check_value(value)
        return out

    def default_config(self) -> Config:
        """Each dimension's declared default, or the centre of its range when it has none."""
        centre = self.decode(np.full((1, len(self)), 0.5))[0]
        config = {d.name: d.default if d.default is not None else centre[d.name] for d in self}
        self._blank_inactive(config)
        return config

    @property
    def has_defaults(self) -> bool:
        return any(d.default is not None for d in self.dimensions)

    # ---- sampling ----------------------------------------------------------------------
    def sample_unit(self, n: int, rng: np.random.Generator, method: str = "random") -> np.ndarray:
        """Draw ``n`` points of the unit cube: i.i.d. uniform, Latin hypercube or scrambled Sobol."""
        d = len(self)
        if n <= 0:
            return np.zeros((0, d))
        if method == "random":
            return rng.random((n, d))
        if method == "lhs":
            return qmc.LatinHypercube(d=d, rng=rng).random(n)
        if method == "sobol":
            m = max(1, math.ceil(math.log2(n)))
            return qmc.Sobol(d=d, scramble=True, rng=rng).random_base2(m)[:n]
        raise ValueError(
            f"sampling method must be one of {', '.join(SAMPLING_METHODS)}, got {method!r}"
        )

    def sample(
        self, n: int, rng: np.random.Generator | int | None = None, method: str = "random"
    ) -> list[Config]:
        """Draw ``n`` configurations (ignores constraints; optimizers apply those)."""
        return self.decode(self.sample_unit(n, np.random.default_rng(rng), method))
