"""MLPSpace dimensions, conditional widths, build_model topology and the cost counters."""

import subprocess
import sys

import numpy as np
import pytest

from hpsearch import Problem
from hpsearch.arch import (
    MLPSpace,
    build_model,
    count_macs,
    count_neurons,
    count_params,
    units_name,
)
from hpsearch.search.random import RandomSearch


def _problem(**kwargs) -> Problem:
    problem = Problem("mlp")
    problem.add_architecture(MLPSpace(**kwargs))
    return problem


def test_dimensions_and_names():
    problem = _problem(
        max_layers=3,
        units=(4, 64, "log-uniform"),
        activations=["relu", "tanh"],
        dropout=(0.0, 0.5),
        skip_connections=True,
        batch_norm=[False, True],
    )
    assert problem.space.names == [
        "n_layers",
        "units_0",
        "units_1",
        "units_2",
        "activation",
        "dropout",
        "skip_connections",
        "batch_norm",
    ]
    assert problem.space["units_1"].log


def test_units_active_only_when_the_network_is_deep_enough():
    problem = _problem(max_layers=5, units=(2, 32))
    configs = RandomSearch(problem, seed=1).ask(200)
    for config in configs:
        for k in range(5):
            assert (config[units_name(k)] is not None) == (config["n_layers"] > k)
    assert {c["n_layers"] for c in configs} == {1, 2, 3, 4, 5}
    # inactive widths never distinguish configurations: the features give them one value
    X = problem.space.features(problem.space.encode(configs))
    inactive = np.array([c["units_4"] is None for c in configs])
    assert np.all(X[inactive, 5] == -1.0)


def test_inactive_width_is_rejected_by_validate_and_missing_width_reported():
    problem = _problem(max_layers=2, units=(2, 32))
    config = problem.space.validate({"n_layers": 1, "units_0": 4, "activation": "relu"})
    assert config["units_1"] is None
    with pytest.raises(ValueError, match="'units_1' is missing"):
        problem.space.validate({"n_layers": 2, "units_0": 4, "activation": "relu"})


def test_bad_mlp_space():
    with pytest.raises(ValueError, match="min_layers <= max_layers"):
        MLPSpace(max_layers=0)
    with pytest.raises(ValueError, match="non-empty list"):
        MLPSpace(activations="relu")


def test_counters_hand_counted():
    config = {"n_layers": 2, "units_0": 5, "units_1": 3, "units_2": None}
    assert count_neurons(config) == 8
    # 4 inputs -> 5 -> 3 -> 2 outputs
    assert count_params(config, 4, 2) == (4 * 5 + 5) + (5 * 3 + 3) + (3 * 2 + 2)
    assert count_macs(config, 4, 2) == 4 * 5 + 5 * 3 + 3 * 2
    skip = {**config, "skip_connections": True, "batch_norm": True}
    # projection 5 -> 3 without bias; batch norm: 4 weights per hidden neuron
    assert count_params(skip, 4, 2) == count_params(config, 4, 2) + 5 * 3 + 4 * 8
    assert count_macs(skip, 4, 2) == count_macs(config, 4, 2) + 5 * 3


def test_build_model_has_exactly_the_topology_of_the_config():
    config = {
        "n_layers": 3,
        "units_0": 6,
        "units_1": 6,
        "units_2": 4,
        "units_3": None,
        "activation": "tanh",
        "dropout": 0.2,
        "skip_connections": True,
        "batch_norm": False,
    }
    model = build_model(config, 7, 2, "softmax")
    dense = [layer for layer in model.layers if layer.name.startswith("dense_")]
    assert [layer.units for layer in dense] == [6, 6, 4]
    names = {layer.name for layer in model.layers}
    # layer 1 adds its input unchanged (same width), layer 2 through a projection
    assert {"add_1", "add_2", "skip_2"} <= names and "skip_1" not in names
    assert "add_0" not in names
    assert model.get_layer("output").units == 2
    assert model.count_params() == count_params(config, 7, 2)
    plain = {**config, "skip_connections": False, "dropout": 0.0}
    plain_model = build_model(plain, 7, 2)
    assert not any(layer.name.startswith(("add_", "dropout_")) for layer in plain_model.layers)
    assert plain_model.count_params() == count_params(plain, 7, 2)


def test_constraint_on_neurons_is_honoured():
    problem = _problem(max_layers=6, units=(4, 64))
    problem.add_constraint(lambda c: count_neurons(c) <= 60)
    configs = RandomSearch(problem, seed=0).ask(50)
    assert all(count_neurons(c) <= 60 for c in configs)


def test_importing_hpsearch_loads_no_framework():
    code = (
        "import sys, hpsearch, hpsearch.arch, hpsearch.objectives, hpsearch.pareto\n"
        "loaded = {'keras', 'tensorflow', 'mpi4py'} & set(sys.modules)\n"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
