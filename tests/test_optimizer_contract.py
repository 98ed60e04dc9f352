"""The ask/tell contract of :class:`hpsearch.search.base.Optimizer`, checked for every optimizer.

Every test runs over random search, grid search, Optuna with each of its samplers and AMBS
with each surrogate, acquisition and liar it accepts (the combinations come from the constants
the package exports, so a new sampler, surrogate, acquisition or liar is checked without
editing this file).
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import threadpoolctl

from hpsearch import MLPSpace, Problem, count_neurons
from hpsearch.search import Optimizer, RandomSearch
from hpsearch.search.acquisition import ACQUISITIONS
from hpsearch.search.ambs import AMBS, LIARS
from hpsearch.search.grid import GridSearch
from hpsearch.search.optuna_search import NEEDS, SAMPLERS, OptunaSearch
from hpsearch.search.surrogates import SURROGATES
from hpsearch.space import Categorical, Config, Integer, Real, Space

SEED = 11
#: Initial design of every AMBS under test: small, so that a few rounds reach the surrogate.
N_INITIAL = 4
#: Rounds past the initial design; GBRT refits three boosted models per lie, so it gets fewer.
MODEL_ROUNDS = {"GBRT": 1}
DEFAULT_MODEL_ROUNDS = 2


def qucb_refuses(acq: str, liar: str) -> bool:
    return liar == "qUCB" and acq != "LCB"


@dataclass(frozen=True)
class Spec:
    """How to build one optimizer under test, and how long to run it."""

    name: str
    make: Callable[[Problem, int], Optimizer]
    n_initial: int  # evaluations before a surrogate proposes (0: never)
    model_rounds: int


def _ambs_spec(surrogate: str, acq: str, liar: str) -> Spec:
    def make(problem: Problem, seed: int) -> Optimizer:
        return AMBS(
            problem, surrogate=surrogate, acq=acq, liar=liar, n_initial=N_INITIAL, seed=seed
        )

    rounds = MODEL_ROUNDS.get(surrogate, DEFAULT_MODEL_ROUNDS)
    return Spec(f"ambs-{surrogate}-{acq}-{liar}", make, N_INITIAL, rounds)


def _grid(problem: Problem, seed: int) -> Optimizer:
    # 8 points per range on the small spaces; the mixed space's grid would be millions
    return GridSearch(problem, grid_points=8 if len(problem.space) <= 3 else 3, seed=seed)


def _optuna_spec(sampler: str) -> Spec:
    def make(problem: Problem, seed: int) -> Optimizer:
        return OptunaSearch(problem, sampler=sampler, seed=seed)

    return Spec(f"optuna-{sampler}", make, 0, DEFAULT_MODEL_ROUNDS)


SPECS = [
    Spec("random", lambda problem, seed: RandomSearch(problem, seed=seed), 0, DEFAULT_MODEL_ROUNDS),
    Spec("grid", _grid, 0, DEFAULT_MODEL_ROUNDS),
    *(_optuna_spec(sampler) for sampler in SAMPLERS),
    *(
        _ambs_spec(surrogate, acq, liar)
        for surrogate in SURROGATES
        for acq in ACQUISITIONS
        for liar in LIARS
        if not qucb_refuses(acq, liar)
    ),
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The fits here are tiny: OpenMP threads (gradient boosting) only contend for the cores,
    # and on a loaded machine that makes them tens of times slower.
    with threadpoolctl.threadpool_limits(1):
        yield


def _param(spec: Spec) -> object:
    """``spec``, skipped with the reason when its sampler's package is not installed."""
    sampler = spec.name.removeprefix("optuna-")
    missing = sampler in NEEDS and importlib.util.find_spec(NEEDS[sampler][0]) is None
    reason = f"the {sampler} sampler needs {NEEDS.get(sampler, ('',))[0]}, not installed"
    return pytest.param(spec, marks=pytest.mark.skipif(missing, reason=reason), id=spec.name)


@pytest.fixture(scope="module", params=[_param(s) for s in SPECS])
def spec(request: pytest.FixtureRequest) -> Spec:
    return request.param


# ---- problems ------------------------------------------------------------------------------
def bowl_problem(direction: str = "minimize") -> Problem:
    """Two reals; the constraint rejects half the square and cuts off the bowl's minimum."""
    problem = Problem("bowl", direction=direction)
    problem.add_hyperparameter("x", (-5.0, 5.0))
    problem.add_hyperparameter("y", (-5.0, 5.0))
    problem.add_constraint(lambda c: c["x"] + c["y"] >= 0.0)
    return problem


def bowl(config: Mapping[str, Any]) -> float:
    return (config["x"] - 1.0) ** 2 + (config["y"] + 2.0) ** 2


def mixed_problem() -> Problem:
    problem = Problem("mixed", direction="maximize")
    problem.add_hyperparameter("lr", (1e-4, 1e-1, "log-uniform"))
    problem.add_hyperparameter("epochs", (1, 20))
    problem.add_hyperparameter("patience", (1, 64, "log-uniform"))
    problem.add_hyperparameter("optimizer", ["adam", "sgd", "rmsprop"])
    problem.add_hyperparameter("batch_size", [16, 32, 64, 128], ordinal=True)
    problem.add_architecture(
        MLPSpace(max_layers=3, units=(4, 64, "log-uniform"), activations=["relu", "tanh"])
    )
    problem.add_constraint(lambda c: count_neurons(c) <= 40)
    return problem


def mixed_score(config: Mapping[str, Any]) -> float:
    value = -((math.log10(config["lr"]) + 2.5) ** 2) - abs(config["epochs"] - 12) / 10
    value -= {"adam": 0.0, "sgd": 0.5, "rmsprop": 1.0}[config["optimizer"]]
    return value - abs(count_neurons(config) - 24) / 24 - math.log2(config["batch_size"]) / 10


# ---- checks --------------------------------------------------------------------------------
def key(config: Mapping[str, Any]) -> tuple:
    """Identity of a configuration; floats equal to 10 significant digits count as equal."""
    return tuple(
        sorted((k, float(f"{v:.10g}") if isinstance(v, float) else v) for k, v in config.items())
    )


def assert_distinct(configs: Sequence[Mapping[str, Any]]) -> None:
    keys = [key(c) for c in configs]
    repeated = [c for c, k in zip(configs, keys, strict=True) if keys.count(k) > 1]
    assert not repeated, f"proposed more than once: {repeated}"


def assert_well_formed(space: Space, config: Mapping[str, Any]) -> None:
    """Every hyperparameter present, typed and in range; inactive conditional ones None."""
    assert set(config) == set(space.names), config
    for dim in space:
        value = config[dim.name]
        if dim.condition is not None and not dim.condition(config):
            assert value is None, f"{dim.name} is inactive in {config}"
        elif isinstance(dim, Real):
            assert type(value) is float and dim.low <= value <= dim.high, (dim.name, value)
        elif isinstance(dim, Integer):
            assert type(value) is int and dim.low <= value <= dim.high, (dim.name, value)
        elif isinstance(dim, Categorical):
            assert any(type(c) is type(value) and c == value for c in dim.choices), (
                dim.name,
                value,
            )
        else:
            raise AssertionError(f"no check for dimension {dim!r}")


def assert_best_is(optimizer: Optimizer, told: Sequence[tuple[Config, Any]], direction: str):
    finite = [(c, o) for c, o in told if o is not None and math.isfinite(o)]
    pick = min if direction == "minimize" else max
    config, objective = pick(finite, key=lambda pair: pair[1])
    assert optimizer.best() == (config, objective)


# ---- a recorded search, shared by the tests that inspect it --------------------------------
@dataclass
class Trace:
    """Everything a scripted search asked, told and forgot, and the counts it saw."""

    optimizer: Optimizer
    requested: list[int] = field(default_factory=list)
    batches: list[list[Config]] = field(default_factory=list)
    #: keys of the configurations pending or finished just before each ask
    taken_before: list[set[tuple]] = field(default_factory=list)
    #: (step, n_pending, n_told) as reported, and as the calls made them
    counts: list[tuple[str, int, int]] = field(default_factory=list)
    expected_counts: list[tuple[str, int, int]] = field(default_factory=list)
    told: list[tuple[Config, Any]] = field(default_factory=list)
    failures_told_at: int = 0  # index in counts of the tell with failures
    failures_at: int = 0  # index of the first batch asked after failures were told
    forgotten_at: int = 0  # index of the first batch asked after a forget
    told_before_last_ask: int = 0


def record_search(spec: Spec, seed: int) -> Trace:
    """Some configurations stay pending throughout (slow workers), one batch partly fails,
    one is cancelled, and the search runs ``spec.model_rounds`` rounds past the initial design."""
    problem = bowl_problem()
    s = Trace(spec.make(problem, seed))
    opt = s.optimizer
    pending: dict[tuple, Config] = {}
    n_pending = 0

    def record(step: str) -> None:
        s.counts.append((step, opt.n_pending, opt.n_told))
        s.expected_counts.append((step, n_pending, len(s.told)))

    def ask(n: int) -> list[Config]:
        nonlocal n_pending
        s.taken_before.append(set(pending) | {key(c) for c, _ in s.told})
        s.told_before_last_ask = len(s.told)
        batch = opt.ask(n)
        s.requested.append(n)
        s.batches.append(batch)
        pending.update((key(c), c) for c in batch)
        n_pending += n
        record(f"ask {len(s.batches)}")
        return batch

    def tell(batch: list[Config], objectives: list[Any]) -> None:
        nonlocal n_pending
        opt.tell(batch, objectives)
        for c in batch:
            pending.pop(key(c), None)
        n_pending -= len(batch)
        s.told.extend(zip(batch, objectives, strict=True))
        record(f"tell after ask {len(s.batches)}")

    held = ask(2)
    batch = ask(3)
    tell(batch, [bowl(c) for c in batch])
    batch = ask(3)
    tell(batch, [None, math.nan, bowl(batch[2])])
    s.failures_told_at = len(s.counts) - 1
    s.failures_at = len(s.batches)
    cancelled = ask(2)
    opt.forget(cancelled)
    for c in cancelled:
        pending.pop(key(c), None)
    n_pending -= len(cancelled)
    record("forget")
    s.forgotten_at = len(s.batches)
    for _ in range(spec.model_rounds):
        batch = ask(3)
        tell(batch, [bowl(c) for c in batch])
    tell(held, [bowl(c) for c in held])
    return s


@pytest.fixture(scope="module")
def trace(spec: Spec) -> Trace:
    return record_search(spec, SEED)


def test_ask_returns_as_many_distinct_configurations_as_asked(trace):
    for n, batch in zip(trace.requested, trace.batches, strict=True):
        assert len(batch) == n
        assert_distinct(batch)


def test_asked_configurations_are_well_formed_and_honour_the_constraints(trace):
    problem = trace.optimizer.problem
    for batch in trace.batches:
        for config in batch:
            assert_well_formed(problem.space, config)
            assert config["x"] + config["y"] >= 0.0, config


def test_ask_never_repeats_a_pending_or_finished_configuration(trace):
    for taken, batch in zip(trace.taken_before, trace.batches, strict=True):
        repeated = [c for c in batch if key(c) in taken]
        assert not repeated, f"proposed again while pending or finished: {repeated}"


def test_configurations_stay_pending_until_told_or_forgotten(trace):
    assert trace.counts == trace.expected_counts
    assert trace.optimizer.n_pending == 0


def test_failed_evaluations_are_counted_and_the_search_goes_on(trace):
    i = trace.failures_told_at
    assert trace.counts[i] == trace.expected_counts[i]
    later = trace.batches[trace.failures_at :]
    requested = trace.requested[trace.failures_at :]
    assert later and [len(b) for b in later] == requested


def test_best_ignores_failed_evaluations(trace):
    assert_best_is(trace.optimizer, trace.told, "minimize")


def test_forgotten_configurations_leave_pending_and_the_search_goes_on(trace):
    steps = [step for step, _, _ in trace.counts]
    before, after = trace.counts[steps.index("forget") - 1 : steps.index("forget") + 1]
    assert after[1] == before[1] - 2 and after[2] == before[2]
    later = trace.batches[trace.forgotten_at :]
    assert later and all(len(b) == 3 for b in later)


def test_the_same_seed_fed_the_same_results_proposes_the_same_configurations(spec, trace):
    assert trace.told_before_last_ask >= spec.n_initial  # the surrogate has proposed
    assert record_search(spec, SEED).batches == trace.batches


def test_different_seeds_propose_different_configurations(spec, trace):
    other = spec.make(bowl_problem(), SEED + 1)
    assert other.ask(len(trace.batches[0])) != trace.batches[0]


# ---- contract tests on fresh optimizers ----------------------------------------------------
def test_ask_zero_returns_nothing_and_a_negative_count_raises(spec):
    opt = spec.make(bowl_problem(), SEED)
    assert opt.ask(0) == []
    assert opt.n_pending == 0
    with pytest.raises(ValueError):
        opt.ask(-1)
    assert opt.n_pending == 0


def test_tell_with_mismatched_lengths_raises_and_records_nothing(spec):
    opt = spec.make(bowl_problem(), SEED)
    configs = opt.ask(2)
    with pytest.raises(ValueError):
        opt.tell(configs, [1.0])
    with pytest.raises(ValueError):
        opt.tell(configs[:1], [1.0, 2.0])
    assert (opt.n_pending, opt.n_told) == (2, 0)
    assert opt.best() is None


def defaults_problem() -> Problem:
    problem = Problem("defaults")
    problem.add_hyperparameter("momentum", (0.0, 0.99), default=0.9)
    problem.add_hyperparameter("act", ["relu", "tanh"], default="tanh")
    problem.add_hyperparameter("n", (1, 9))  # no default: the centre of its range
    return problem


def test_the_default_configuration_is_asked_first(spec):
    first = spec.make(defaults_problem(), SEED).ask(2)
    assert first[0] == {"momentum": 0.9, "act": "tanh", "n": 5}
    assert first[1] != first[0]


def test_a_first_batch_larger_than_the_initial_design_is_distinct(spec):
    n = spec.n_initial + 2
    first = spec.make(defaults_problem(), SEED).ask(n)
    assert len(first) == n
    assert_distinct(first)


def test_an_optimizer_told_only_failures_keeps_proposing(spec):
    problem = bowl_problem()
    opt = spec.make(problem, SEED)
    configs = opt.ask(4)
    opt.tell(configs, [None, math.nan, math.inf, -math.inf])
    assert opt.best() is None
    more = opt.ask(3)
    assert len(more) == 3
    assert_distinct(configs + more)


def test_a_forgotten_configuration_can_be_proposed_again(spec, caplog):
    problem = Problem("six", direction="minimize")  # six configurations in all
    problem.add_hyperparameter("a", ["x", "y", "z"])
    problem.add_hyperparameter("b", [1, 2], ordinal=True)
    opt = spec.make(problem, SEED)

    def score(c: Mapping[str, Any]) -> float:
        return "xyz".index(c["a"]) + c["b"]

    told = opt.ask(4)
    opt.tell(told, [score(c) for c in told])
    cancelled = opt.ask(2)
    assert_distinct(told + cancelled)
    # A finished configuration in the list must stay finished: never proposed again.
    opt.forget([*cancelled, told[0]])
    assert (opt.n_pending, opt.n_told) == (0, 4)
    with caplog.at_level(logging.WARNING):
        again = opt.ask(2)
    assert {key(c) for c in again} == {key(c) for c in cancelled}
    assert "exhausted" not in caplog.text


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_best_is_the_best_told_configuration_in_the_problem_direction(spec, direction):
    sign = 1.0 if direction == "minimize" else -1.0
    opt = spec.make(bowl_problem(direction), SEED)
    assert opt.best() is None
    configs = opt.ask(max(spec.n_initial, 3))
    told = [(c, sign * bowl(c)) for c in configs]
    opt.tell(configs, [o for _, o in told])
    assert_best_is(opt, told, direction)
    # An infinity that would win in the problem's direction is a failure, not a best.
    configs = opt.ask(3)
    objectives = [-sign * math.inf, math.nan, sign * bowl(configs[2])]
    opt.tell(configs, objectives)
    told += zip(configs, objectives, strict=True)
    assert_best_is(opt, told, direction)


def test_a_mixed_space_with_a_conditional_architecture_works(spec):
    problem = mixed_problem()
    opt = spec.make(problem, SEED)
    asked: list[Config] = []
    told: list[tuple[Config, Any]] = []
    for n in [max(spec.n_initial, 3)] + [3] * spec.model_rounds:
        configs = opt.ask(n)
        assert len(configs) == n
        for config in configs:
            assert_well_formed(problem.space, config)
            assert count_neurons(config) <= 40, config
        asked += configs
        objectives = [mixed_score(c) for c in configs]
        opt.tell(configs, objectives)
        told += zip(configs, objectives, strict=True)
    assert_distinct(asked)
    assert len(told) > spec.n_initial
    assert_best_is(opt, told, "maximize")


def test_ambs_refuses_qucb_with_an_acquisition_other_than_lcb():
    refused = [acq for acq in ACQUISITIONS if qucb_refuses(acq, "qUCB")]
    assert refused
    for acq in refused:
        with pytest.raises(ValueError, match="needs acq='LCB'"):
            AMBS(bowl_problem(), acq=acq, liar="qUCB")
