"""Architecture spaces: multilayer perceptrons whose depth and widths are searched.

:class:`MLPSpace` declares the dimensions of a fully connected network, with the width of
layer ``k`` (``units_k``) active only when the network has more than ``k`` layers.
:func:`build_model` turns a configuration into a Keras model (Keras is imported there, never
when this module is imported); :func:`count_params`, :func:`count_neurons` and
:func:`count_macs` say what a topology costs, so that a problem can constrain it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from hpsearch.space import Categorical, Dimension, Integer, Real, dimension_from_spec

#: Names of the dimensions an :class:`MLPSpace` declares (``units_<k>`` for layer k).
N_LAYERS = "n_layers"
ACTIVATION = "activation"
DROPOUT = "dropout"
SKIP = "skip_connections"
BATCH_NORM = "batch_norm"


def units_name(k: int) -> str:
    """Name of the dimension holding the width of hidden layer ``k`` (0-based)."""
    return f"units_{k}"


def _layer_active(k: int):
    def condition(config: Mapping[str, Any]) -> bool:
        return config.get(N_LAYERS) is not None and config[N_LAYERS] > k

    return condition


@dataclass
class MLPSpace:
    """The dimensions of a multilayer perceptron with ``min_layers`` to ``max_layers`` hidden layers.

    ``units`` is a shorthand range such as ``(16, 256, "log-uniform")`` or a list of widths;
    ``activations`` and ``batch_norm`` are lists of choices (one choice: fixed, still logged);
    ``dropout`` is a ``(low, high)`` range or None (no dropout); ``skip_connections=True``
    searches whether every hidden layer after the first adds its input to its output (through
    a linear projection when the widths differ).

    >>> problem.add_architecture(MLPSpace(max_layers=5, units=(8, 128, "log-uniform")))
    """

    max_layers: int = 3
    units: tuple | list = (16, 256, "log-uniform")
    activations: Sequence[str] = ("relu",)
    dropout: tuple[float, float] | None = None
    skip_connections: bool = False
    batch_norm: Sequence[bool] | bool = False
    min_layers: int = 1
    defaults: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.max_layers, int) or not 1 <= self.min_layers <= self.max_layers:
            raise ValueError(
                f"MLPSpace needs 1 <= min_layers <= max_layers, but got "
                f"(min_layers={self.min_layers!r}, max_layers={self.max_layers!r})"
            )
        if isinstance(self.activations, str) or not self.activations:
            raise ValueError(
                f"MLPSpace activations must be a non-empty list of names, got {self.activations!r}"
            )

    def dimensions(self) -> list[Dimension]:
        """The dimensions, in order: depth, widths (conditional), then the per-network choices."""
        dims: list[Dimension] = []
        if self.max_layers > self.min_layers:
            dims.append(Integer(N_LAYERS, low=self.min_layers, high=self.max_layers))
        else:
            dims.append(Categorical(N_LAYERS, choices=[self.max_layers]))
        for k in range(self.max_layers):
            spec = self.units
            dim = dimension_from_spec(units_name(k), spec, ordinal=isinstance(spec, list))
            if k >= self.min_layers:
                dim.condition = _layer_active(k)
            dims.append(dim)
        dims.append(Categorical(ACTIVATION, choices=list(self.activations)))
        if self.dropout is not None:
            low, high = self.dropout
            dims.append(Real(DROPOUT, low=low, high=high))
        if self.skip_connections:
            dims.append(Categorical(SKIP, choices=[False, True]))
        if isinstance(self.batch_norm, bool):
            if self.batch_norm:
                dims.append(Categorical(BATCH_NORM, choices=[True]))
        else:
            dims.append(Categorical(BATCH_NORM, choices=list(self.batch_norm)))
        for dim in dims:
            if dim.name in self.defaults:
                dim.default = dim.check_value(self.defaults[dim.name], what="default")
        return dims


# ---- reading a configuration ---------------------------------------------------------------
def hidden_units(config: Mapping[str, Any]) -> list[int]:
    """Widths of the hidden layers of ``config``, in order (``n_layers`` of them)."""
    n = int(config[N_LAYERS])
    widths = [config.get(units_name(k)) for k in range(n)]
    missing = [units_name(k) for k, w in enumerate(widths) if w is None]
    if missing:
        raise ValueError(f"configuration with n_layers={n} has no value for {', '.join(missing)}")
    return [int(w) for w in widths if w is not None]


def _flag(config: Mapping[str, Any], name: str) -> bool:
    return bool(config.get(name) or False)


def _projected(config: Mapping[str, Any]) -> list[tuple[int, int]]:
    """(input width, output width) of the hidden layers whose skip needs a projection."""
    if not _flag(config, SKIP):
        return []
    widths = hidden_units(config)
    return [(a, b) for a, b in pairwise(widths) if a != b]


# ---- costs ---------------------------------------------------------------------------------
def count_neurons(config: Mapping[str, Any]) -> int:
    """Total number of hidden neurons (the resource an FPGA budget usually limits)."""
    return sum(hidden_units(config))


def count_macs(config: Mapping[str, Any], n_inputs: int, n_outputs: int) -> int:
    """Multiply-accumulates of one forward pass (dense kernels and skip projections)."""
    widths = [n_inputs, *hidden_units(config), n_outputs]
    dense = sum(a * b for a, b in pairwise(widths))
    return dense + sum(a * b for a, b in _projected(config))


def count_params(config: Mapping[str, Any], n_inputs: int, n_outputs: int) -> int:
    """Number of weights of the model :func:`build_model` makes (equal to Keras' count_params)."""
    widths = [n_inputs, *hidden_units(config), n_outputs]
    dense = sum(a * b + b for a, b in pairwise(widths))
    batch_norm = 4 * sum(widths[1:-1]) if _flag(config, BATCH_NORM) else 0
    return dense + batch_norm + sum(a * b for a, b in _projected(config))


# ---- building ------------------------------------------------------------------------------
def build_model(
    config: Mapping[str, Any],
    input_shape: int | Sequence[int],
    n_outputs: int,
    output_activation: str | None = None,
):
    """The Keras model of ``config`` (not compiled): hidden layers ``dense_<k>``, output ``output``.

    Each hidden layer is Dense -> [BatchNormalization] -> activation -> [Dropout]; with skip
    connections, layer k >= 1 adds its input (projected by ``skip_<k>`` if widths differ).
    """
    import keras

    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    inputs = keras.Input(shape)
    x = keras.layers.Flatten()(inputs) if len(shape) > 1 else inputs
    activation = config.get(ACTIVATION) or "relu"
    dropout = float(config.get(DROPOUT) or 0.0)
    batch_norm, skip = _flag(config, BATCH_NORM), _flag(config, SKIP)
    previous = None
    for k, width in enumerate(hidden_units(config)):
        h = keras.layers.Dense(width, use_bias=True, name=f"dense_{k}")(x)
        if batch_norm:
            h = keras.layers.BatchNormalization(name=f"batch_norm_{k}")(h)
        h = keras.layers.Activation(activation, name=f"activation_{k}")(h)
        if skip and previous is not None:
            shortcut = x
            if previous != width:
                shortcut = keras.layers.Dense(width, use_bias=False, name=f"skip_{k}")(x)
            h = keras.layers.Add(name=f"add_{k}")([h, shortcut])
        if dropout > 0:
            h = keras.layers.Dropout(dropout, name=f"dropout_{k}")(h)
        x, previous = h, width
    outputs = keras.layers.Dense(n_outputs, activation=output_activation, name="output")(x)
    return keras.Model(inputs, outputs)


__all__ = [
    "MLPSpace",
    "build_model",
    "count_macs",
    "count_neurons",
    "count_params",
    "hidden_units",
    "units_name",
]
