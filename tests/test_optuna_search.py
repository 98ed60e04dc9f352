"""Optuna's samplers behind the ask/tell interface: the study the master keeps."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hpsearch import MLPSpace, Problem, count_neurons, load_results
from hpsearch.search.optuna_search import OptunaSearch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = os.path.join(ROOT, "tests", "problem_files", "small_grid.py")


def mixed_problem() -> Problem:
    problem = Problem("mixed", direction="minimize")
    problem.add_hyperparameter("lr", (1e-4, 1e-1, "log-uniform"))
    problem.add_hyperparameter("patience", (1, 64, "log-uniform"))
    problem.add_hyperparameter("batch", [16, 32, 64], ordinal=True)
    problem.add_architecture(MLPSpace(max_layers=3, units=(4, 64, "log-uniform")))
    problem.add_constraint(lambda c: count_neurons(c) <= 80)
    return problem


def states(opt: OptunaSearch) -> dict[TrialState, int]:
    trials = opt.study_.get_trials(deepcopy=False)
    return {state: sum(t.state == state for t in trials) for state in TrialState}


def test_the_space_maps_to_optunas_distributions_and_conditions_hold():
    opt = OptunaSearch(mixed_problem(), seed=0)
    configs = opt.ask(30)
    for trial in opt.study_.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        d = trial.distributions
        assert d["lr"] == FloatDistribution(1e-4, 1e-1, log=True)
        assert d["patience"] == IntDistribution(1, 64, log=True, step=1)
        assert d["batch"] == CategoricalDistribution([16, 32, 64])
        n = trial.params["n_layers"]
        # a width is suggested only when its layer exists
        assert {f"units_{k}" for k in range(3)} & set(d) == {f"units_{k}" for k in range(n)}
    assert len(configs) == 30 and all(count_neurons(c) <= 80 for c in configs)


def test_pending_configurations_are_running_trials_until_told():
    opt = OptunaSearch(mixed_problem(), seed=1)
    configs = opt.ask(4)
    assert states(opt)[TrialState.RUNNING] == 4
    opt.tell(configs[:2], [0.5, None])
    opt.forget(configs[2:3])  # cancelled
    counts = states(opt)
    assert counts[TrialState.RUNNING] == 1 and counts[TrialState.COMPLETE] == 1
    # the failed and the cancelled evaluations are failed trials (with any failed proposals)
    assert counts[TrialState.FAIL] >= 2
    (complete,) = opt.study_.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert complete.value == 0.5 and complete.params["lr"] == pytest.approx(configs[0]["lr"])


def test_tpe_lies_about_running_trials():
    def batch_after_startup(sampler_args):
        opt = OptunaSearch(mixed_problem(), sampler_args=sampler_args, seed=0)
        configs = opt.ask(10)  # TPE's random start-up
        opt.tell(configs, [math.log(c["lr"]) ** 2 + count_neurons(c) for c in configs])
        return opt.ask(4)

    lying, blind = batch_after_startup({}), batch_after_startup({"constant_liar": False})
    # the first of the batch sees no running trial; the next ones see it under the liar
    assert lying[0] == blind[0] and lying[1:] != blind[1:]


def test_infeasible_proposals_are_pruned_trials():
    problem = Problem("tight", direction="minimize")
    problem.add_hyperparameter("x", (0.0, 1.0))
    problem.add_constraint(lambda c: c["x"] < 0.2)
    opt = OptunaSearch(problem, sampler="random", seed=0)
    configs = opt.ask(5)
    assert all(c["x"] < 0.2 for c in configs)
    pruned = opt.study_.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    assert pruned and all(t.params["x"] >= 0.2 for t in pruned)


def test_results_of_an_earlier_run_become_trials_of_the_study():
    problem = mixed_problem()
    earlier = OptunaSearch(problem, seed=0)
    done, running = earlier.ask(3), earlier.ask(2)
    resumed = OptunaSearch(problem, seed=0)
    resumed.tell(done, [1.0, math.nan, 2.0])
    resumed.mark_pending(running)
    counts = states(resumed)
    assert counts[TrialState.COMPLETE] == 2 and counts[TrialState.FAIL] == 1
    assert counts[TrialState.RUNNING] == 2 and resumed.n_pending == 2
    resumed.tell(running, [3.0, 4.0])
    assert states(resumed)[TrialState.COMPLETE] == 4 and resumed.best()[1] == 1.0


@pytest.mark.parametrize("sampler", ["nsga2", "tpe"])
def test_several_objectives_make_a_multi_objective_study(sampler):
    problem = mixed_problem()
    opt = OptunaSearch(problem, sampler=sampler, seed=0)
    held = opt.ask(2)
    for _ in range(4):
        configs = opt.ask(4)
        opt.tell(configs, [[c["lr"], count_neurons(c)] for c in configs])
    opt.tell(held, [[0.1, 4], None])
    assert len(opt.study_.directions) == 2
    assert len(opt.study_.get_trials(states=(TrialState.COMPLETE,))) == 17
    assert opt.study_.best_trials and opt.n_pending == 0


def test_cma_es_refuses_several_objectives_naming_the_samplers_that_take_them():
    opt = OptunaSearch(mixed_problem(), sampler="cmaes", seed=0)
    configs = opt.ask(2)
    with pytest.raises(ValueError, match="CMA-ES handles one: use --sampler nsga2"):
        opt.tell(configs, [[1.0, 2.0], [2.0, 1.0]])


TORCH = importlib.util.find_spec("torch") is not None


@pytest.mark.skipif(TORCH, reason="PyTorch is installed: the gp sampler runs")
def test_the_gp_sampler_without_pytorch_is_refused_before_the_search_starts(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hpsearch.optuna", "--problem", SMALL, "--sampler", "gp",
         "--output", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "hpsearch.optuna: error: the gp sampler needs torch: pip install torch"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not TORCH, reason="the gp sampler needs PyTorch, which is not installed")
def test_the_gp_sampler_learns_from_the_results():
    problem = Problem("reals", direction="minimize")
    problem.add_hyperparameter("lr", (1e-4, 1e-1, "log-uniform"))
    opt = OptunaSearch(problem, sampler="gp", sampler_args={"n_startup_trials": 4}, seed=0)
    for _ in range(8):
        configs = opt.ask(1)
        opt.tell(configs, [abs(math.log10(c["lr"]) + 2) for c in configs])
    assert len(opt.study_.get_trials(states=(TrialState.COMPLETE,))) == 8


def test_cma_es_on_two_objectives_stops_in_one_line_keeping_what_finished(tmp_path):
    def optuna_cmaes(*flags):
        return subprocess.run(
            [sys.executable, "-m", "hpsearch.optuna", "--problem", SMALL, "--sampler", "cmaes",
             "--workers", "1", "--max-evals", "12", "--output", str(tmp_path), *flags],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env={**os.environ, "HPSEARCH_SMALL_OBJECTIVES": "2"},
        )  # fmt: skip

    first = optuna_cmaes()
    assert first.returncode == 2, first.stderr
    message = "returns 2 objectives, and CMA-ES handles one: use --sampler nsga2"
    assert first.stderr.strip().splitlines()[-1] == (
        f"hpsearch.optuna: error: problem 'small_grid' {message} (or tpe)"
    )
    assert "Traceback" not in first.stderr
    assert (load_results(str(tmp_path))["status"] == "DONE").sum() >= 1
    again = optuna_cmaes("--resume")  # refused from results.csv alone
    assert again.returncode == 2 and message in again.stderr and "Traceback" not in again.stderr


def test_python_m_hpsearch_optuna_runs_nsga2_on_two_objectives(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hpsearch.optuna", "--problem", SMALL, "--sampler", "nsga2",
         "--sampler-args", '{"population_size": 4}', "--workers", "2", "--max-evals", "12",
         "--output", str(tmp_path), "--seed", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "HPSEARCH_SMALL_OBJECTIVES": "2"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    df = load_results(str(tmp_path))
    assert len(df) == 12 and (df["status"] == "DONE").all()
    assert df["objective_1"].notna().all()
    assert not df.duplicated(["p:x", "p:width", "p:act"]).any()
