"""scripts/bench_quality.py: its asynchronous workers and its problems, on tiny searches."""

from __future__ import annotations

import importlib.util
import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "scripts"))
import bench_quality

from hpsearch.testfunctions import make_problem

needs_coco = pytest.mark.skipif(
    importlib.util.find_spec("cocoex") is None,
    reason="cocoex (coco-experiment, in the bench extra) is not installed",
)


class Recording(bench_quality.External):
    """Random points; counts the points asked and not yet told at every ask."""

    def __init__(self, problem, seed, evals):
        super().__init__(problem, seed, evals)
        self.rng = np.random.default_rng(seed)
        self.asked, self.told = 0, 0
        self.pending_at_ask: list[int] = []

    def ask(self):
        self.pending_at_ask.append(self.asked - self.told)
        self.asked += 1
        return self.space.decode(self.space.sample_unit(1, self.rng))[0]

    def tell(self, config, value):
        self.told += 1


@pytest.mark.parametrize("q", [1, 4])
def test_an_emulated_optimizer_is_asked_with_q_minus_1_pending(q):
    problem, run = make_problem("branin")
    optimizer = Recording(problem, 0, 12)
    values, pending = bench_quality.emulated(optimizer, run, q, 12, seed=0)
    assert len(values) == 12 and optimizer.told == 12
    assert optimizer.pending_at_ask == list(range(q)) + [q - 1] * (12 - q)
    assert pending == optimizer.pending_at_ask


def test_the_emulation_has_the_search_loops_workers_and_durations():
    """Random search draws the same points however it is asked, so the same values in the
    same finishing order show the same schedule of q=4 workers."""
    problem, run = make_problem("branin")
    loop, _ = bench_quality.in_search_loop(bench_quality._random(problem, 3), 4, 20, seed=3)
    direct = bench_quality.Direct(problem, 3, 20, bench_quality._random)
    emulated, _ = bench_quality.emulated(direct, run, 4, 20, seed=3)
    assert loop == emulated
    assert loop != sorted(loop)  # the finishing order is not the order of the values


def _check(record, optimizer, name, q):
    trace = record["trace"]
    assert (record["optimizer"], record["problem"], record["q"]) == (optimizer, name, q)
    assert len(trace) == 6 and all(math.isfinite(v) and v >= 0 for v in trace)
    assert (np.diff(trace) <= 0).all()


@pytest.mark.parametrize("optimizer", ["ambs-RF", "random"])
@pytest.mark.parametrize("q", [1, 4])
def test_a_tuning_task_is_searched_and_cached(tmp_path, optimizer, q):
    name = "elasticnet-diabetes"
    record = bench_quality.run_one((optimizer, name, q, 0, 6, str(tmp_path)))
    _check(record, optimizer, name, q)
    problem = bench_quality.tuning_problem(name, str(tmp_path))
    config = {"alpha": 0.1, "l1_ratio": 0.5, "tol": 1e-4, "selection": "cyclic"}
    assert problem.run(config) == problem.run(config) > 0
    assert os.listdir(tmp_path)  # joblib's cache


@needs_coco
@pytest.mark.parametrize("optimizer", ["ambs-RF", "random"])
@pytest.mark.parametrize("q", [1, 4])
def test_a_bbob_function_gives_regrets(optimizer, q):
    name = "bbob-f1-d2-i1"
    record = bench_quality.run_one((optimizer, name, q, 0, 6, None))
    _check(record, optimizer, name, q)


@needs_coco
def test_the_bbob_optimum_is_cocos():
    problem, f_opt = bench_quality.bbob_problem(10, 5, 1)
    assert round(f_opt, 2) == -54.94  # as COCO's maintainers list it for bbob_f010_i01_d05
    assert [(d.low, d.high) for d in problem.space] == [(-5.0, 5.0)] * 5
    rng = np.random.default_rng(0)
    values = [problem.run(c) for c in problem.space.decode(problem.space.sample_unit(50, rng))]
    assert min(values) > f_opt


@needs_coco
def test_the_report_instances_are_other_problems():
    design, f_design = bench_quality.bbob_problem(10, 5, 1)
    report, f_report = bench_quality.bbob_problem(10, 5, 6)
    assert report.name == "bbob-f10-d5-i6" and f_report != f_design
    config = {f"x{i}": 0.5 for i in range(5)}
    assert report.run(config) != design.run(config)


def test_functions_and_instances_are_ranges_and_lists():
    assert bench_quality._numbers("1-3,7") == [1, 2, 3, 7]
    assert bench_quality._numbers("") == []
