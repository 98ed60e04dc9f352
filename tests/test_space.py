import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpsearch import Categorical, Integer, Ordinal, Problem, Real, Space
from hpsearch.space import INACTIVE_FEATURE, InvalidHyperparameterError


def full_space() -> Space:
    problem = Problem("p")
    problem.add_hyperparameter("lr", (1e-4, 1e-1, "log-uniform"))
    problem.add_hyperparameter("dropout", (0.0, 0.5))
    problem.add_hyperparameter("units", (8, 512))
    problem.add_hyperparameter("units_log", (8, 512, "log-uniform"))
    problem.add_hyperparameter("activation", ["relu", "tanh", "elu"])
    problem.add_hyperparameter("batch_size", [16, 32, 64, 128], ordinal=True)
    problem.add_hyperparameter("momentum", (0.0, 0.99), default=0.9)
    return problem.space


def test_shorthands_give_the_documented_dimension_types():
    space = full_space()
    kinds = {d.name: (type(d), getattr(d, "log", None)) for d in space}
    assert kinds["lr"] == (Real, True)
    assert kinds["dropout"] == (Real, False)
    assert kinds["units"] == (Integer, False)
    assert kinds["units_log"] == (Integer, True)
    assert kinds["activation"][0] is Categorical
    assert kinds["batch_size"][0] is Ordinal
    assert space["momentum"].default == 0.9


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=7, max_size=7))
def test_decode_gives_typed_values_within_bounds_and_round_trips(u):
    space = full_space()
    config = space.decode(np.array([u]))[0]
    assert 1e-4 <= config["lr"] <= 1e-1 and isinstance(config["lr"], float)
    assert 0.0 <= config["dropout"] <= 0.5
    assert isinstance(config["units"], int) and 8 <= config["units"] <= 512
    assert isinstance(config["units_log"], int) and 8 <= config["units_log"] <= 512
    assert config["activation"] in ("relu", "tanh", "elu")
    assert config["batch_size"] in (16, 32, 64, 128)
    again = space.decode(space.encode([config]))[0]
    assert again["units"] == config["units"] and again["units_log"] == config["units_log"]
    assert (
        again["activation"] == config["activation"] and again["batch_size"] == config["batch_size"]
    )
    assert math.isclose(again["lr"], config["lr"], rel_tol=1e-9)
    assert math.isclose(again["dropout"], config["dropout"], rel_tol=1e-9, abs_tol=1e-12)


def test_encode_is_within_the_unit_cube_and_canonical_is_idempotent():
    space = full_space()
    configs = space.sample(500, rng=0)
    U = space.encode(configs)
    assert U.shape == (500, 7) and (U >= 0).all() and (U <= 1).all()
    C = space.canonical(U)
    np.testing.assert_allclose(space.canonical(C), C)


def test_integers_get_equal_shares_of_the_unit_interval():
    dim = Integer("k", low=1, high=4)
    values = dim.from_unit(np.random.default_rng(0).random(40_000))
    counts = np.bincount(values)[1:]
    assert counts.min() > 9_400 and counts.max() < 10_600  # each ~10,000


def test_log_scale_samples_each_decade_equally():
    dim = Real("lr", low=1e-4, high=1e-1, log=True)
    values = np.array(dim.from_unit(np.random.default_rng(1).random(30_000)))
    decades = np.histogram(np.log10(values), bins=[-4, -3, -2, -1])[0]
    assert decades.min() > 9_500 and decades.max() < 10_500


def test_features_one_hot_categoricals_and_rank_ordinals():
    space = Space([Categorical("a", choices=["x", "y", "z"]), Ordinal("b", choices=[1, 2, 4])])
    X = space.features(space.encode([{"a": "y", "b": 4}]))
    np.testing.assert_allclose(X, [[0, 1, 0, 5 / 6]])


def test_conditional_dimension_is_none_when_inactive_and_feature_is_flagged():
    space = Space(
        [
            Integer("layers", low=1, high=2),
            Integer("units_2", low=4, high=8, condition=lambda c: c["layers"] >= 2),
        ]
    )
    configs = space.decode(np.array([[0.1, 0.5], [0.9, 0.5]]))
    assert configs[0] == {"layers": 1, "units_2": None}
    assert configs[1]["layers"] == 2 and configs[1]["units_2"] == 6
    X = space.features(space.encode(configs))
    assert X[0, 1] == INACTIVE_FEATURE and X[1, 1] != INACTIVE_FEATURE


def test_keys_tell_configurations_apart_to_12_decimals():
    space = Space(
        [
            Real("x", low=0.0, high=1.0),
            Categorical("act", choices=["relu", "tanh"]),
            Real("y", low=0.0, high=1.0, condition=lambda c: c["act"] == "tanh"),
        ]
    )
    configs = space.decode(np.random.default_rng(0).random((50, 3)))
    keys = space.keys(configs)
    assert keys == [space.key(c) for c in configs]
    assert len(set(keys)) == 50
    assert {k[2] for k in keys if k[1] == "relu"} == {None}
    close = {"x": 0.1 + 0.2, "act": "tanh", "y": 0.5}
    assert space.key(close) == space.key({"x": 0.3, "act": "tanh", "y": 0.5})
    assert space.key(close) != space.key({"x": 0.3 + 1e-9, "act": "tanh", "y": 0.5})
    assert space.keys([]) == []


@pytest.mark.parametrize(
    ("spec", "kwargs", "message"),
    [
        ((0.5, 0.1), {}, r"'bad'.*`low < high` must hold, but got \(low=0.5, high=0.1\)"),
        ((3, 3), {}, r"'bad'.*`low < high` must hold"),
        ((0.0, 1.0, "log-uniform"), {}, r"'bad'.*log-uniform range needs `low > 0`"),
        ((-2, 10, "log-uniform"), {}, r"'bad'.*log-uniform range needs `low > 0`"),
        ([], {}, r"'bad'.*list of choices is empty"),
        ((0.0, 1.0, "normal"), {}, r"'bad'.*unknown distribution 'normal'"),
        ((0.0, 1.0), {"default": 2.0}, r"'bad'.*default must be a number in \[0.0, 1.0\]"),
        (["a", "b"], {"default": "c"}, r"'bad'.*default must be one of"),
        ((1, 2), {"ordinal": True}, r"'bad'.*ordinal=True needs a list"),
        ("nonsense", {}, r"'bad'.*expected a \(low, high\[, distribution\]\) tuple"),
    ],
)
def test_bad_declarations_name_the_hyperparameter_and_the_problem(spec, kwargs, message):
    problem = Problem("myprob")
    with pytest.raises(ValueError, match=r"problem 'myprob'") as info:
        problem.add_hyperparameter("bad", spec, **kwargs)
    assert isinstance(info.value, InvalidHyperparameterError)
    assert info.match(message)


def test_duplicate_name_is_rejected():
    problem = Problem("myprob")
    problem.add_hyperparameter("x", (0.0, 1.0))
    with pytest.raises(ValueError, match=r"problem 'myprob', hyperparameter 'x' is declared twice"):
        problem.add_hyperparameter("x", (0, 3))


def test_unknown_direction_is_rejected():
    with pytest.raises(ValueError, match="direction must be 'maximize' or 'minimize'"):
        Problem("p", direction="up")


def test_explicit_dimension_classes_are_accepted():
    problem = Problem("p")
    problem.add_hyperparameter("lr", Real("lr", low=1e-3, high=1.0, log=True))
    problem.add_hyperparameter(Integer("n", low=1, high=3))
    assert problem.space.names == ["lr", "n"]


def test_validate_types_values_and_reports_missing_or_unknown():
    space = full_space()
    config = space.decode(np.full((1, 7), 0.3))[0]
    assert space.validate({**config, "units": 32.0})["units"] == 32
    with pytest.raises(ValueError, match="'units' is missing"):
        space.validate({k: v for k, v in config.items() if k != "units"})
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        space.validate({**config, "zzz": 1})


@pytest.mark.parametrize("method", ["random", "lhs", "sobol"])
def test_initial_designs_fill_the_cube(method):
    space = Space([Real("a", low=0.0, high=1.0), Real("b", low=0.0, high=1.0)])
    U = space.sample_unit(16, np.random.default_rng(0), method)
    assert U.shape == (16, 2) and (U >= 0).all() and (U < 1).all()
    if method == "lhs":  # one point per row and column stratum
        assert sorted(np.floor(U[:, 0] * 16)) == list(range(16))
