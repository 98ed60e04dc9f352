"""N replicas of a small regression network as one Keras model (replica axis in the weights).

Every :class:`ReplicaDense` layer holds a kernel of shape ``(n_replicas, n_in, n_out)``; the
model maps inputs ``(batch, n_in)`` to predictions ``(batch, n_replicas)``. The loss sums the
replicas' own losses, so each replica's gradient (and its Adam update, which is elementwise)
is exactly what it would get trained alone: one ``fit`` call trains the whole ensemble.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops


class ReplicaDense(keras.layers.Layer):
    """A dense layer with one independent kernel and bias per replica."""

    def __init__(self, n_replicas: int, units: int, activation: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.n_replicas, self.units = n_replicas, units
        self.activation = keras.activations.get(activation)

    def build(self, input_shape: Sequence[int | None]) -> None:
        n_in = int(input_shape[-1])  # type: ignore[arg-type]
        self.kernel = self.add_weight(
            shape=(self.n_replicas, n_in, self.units), initializer="glorot_uniform", name="kernel"
        )
        self.bias = self.add_weight(
            shape=(self.n_replicas, self.units), initializer="zeros", name="bias"
        )

    def call(self, x):
        if len(x.shape) == 2:  # shared input: (batch, n_in)
            y = ops.einsum("bi,rio->bro", x, self.kernel)
        else:  # per-replica input: (batch, n_replicas, n_in)
            y = ops.einsum("bri,rio->bro", x, self.kernel)
        return self.activation(y + self.bias)


def replica_sum_mse(y_true, y_pred):
    """Per-sample sum over replicas of the squared error (targets ``(batch, n_replicas)``)."""
    return ops.sum(ops.square(y_true - y_pred), axis=-1)


def build_replica_model(
    n_replicas: int, n_inputs: int, hidden: Sequence[int], activation: str = "tanh"
) -> keras.Model:
    """The ensemble model: inputs ``(batch, n_inputs)``, outputs ``(batch, n_replicas)``."""
    inputs = keras.Input((n_inputs,))
    x = inputs
    for k, units in enumerate(hidden):
        x = ReplicaDense(n_replicas, units, activation, name=f"replica_dense_{k}")(x)
    x = ReplicaDense(n_replicas, 1, name="replica_output")(x)
    outputs = keras.layers.Reshape((n_replicas,))(x)
    return keras.Model(inputs, outputs)


def build_single_model(n_inputs: int, hidden: Sequence[int], activation: str = "tanh"):
    """One replica as an ordinary Dense network (for comparisons with the ensemble)."""
    layers: list[Any] = [keras.Input((n_inputs,))]
    layers += [keras.layers.Dense(units, activation=activation) for units in hidden]
    layers.append(keras.layers.Dense(1))
    return keras.Sequential(layers)


def replica_weights(model: keras.Model, r: int) -> list:
    """The weights of replica ``r`` of an ensemble, in the order of :func:`build_single_model`."""
    weights = []
    for layer in model.layers:
        if isinstance(layer, ReplicaDense):
            weights += [layer.kernel.numpy()[r], layer.bias.numpy()[r]]
    return weights
