"""AMBS: parameters, acquisition, multipoint proposals, mixed spaces, constraints, quality, CLI."""

import copy
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from hpsearch import load_results
from hpsearch.problem import Problem
from hpsearch.search import AMBS, RandomSearch
from hpsearch.search.acquisition import acquisition, perturb
from hpsearch.space import Categorical, Ordinal


def quadratic_problem():
    problem = Problem("quadratic", direction="minimize")
    problem.add_hyperparameter("x", (-5.0, 5.0))
    problem.add_hyperparameter("y", (-5.0, 5.0))
    return problem


def quadratic(config):
    return (config["x"] - 1.0) ** 2 + (config["y"] + 2.0) ** 2


def run_search(optimizer, f, n_evals, batch=1):
    while optimizer.n_told < n_evals:
        configs = optimizer.ask(batch)
        optimizer.tell(configs, [f(c) for c in configs])
    return optimizer


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kappa": -1}, "The 'kappa' parameter of AMBS must be a float >= 0. Got -1 instead."),
        ({"xi": "a"}, "The 'xi' parameter of AMBS must be a float >= 0. Got 'a' instead."),
        (
            {"surrogate": "SVM"},
            "The 'surrogate' parameter of AMBS must be a str among {'RF', 'ET', 'GBRT', 'GP'}. "
            "Got 'SVM' instead.",
        ),
        ({"acq": "UCB"}, "The 'acq' parameter of AMBS must be a str among"),
        ({"liar": "cl_worst"}, "The 'liar' parameter of AMBS must be a str among"),
        ({"initial": "grid"}, "The 'initial' parameter of AMBS must be a str among"),
        (
            {"n_initial": 0},
            r"The 'n_initial' parameter of AMBS must be an int in the range \[1, inf\)",
        ),
    ],
)
def test_bad_parameters_are_named(kwargs, message):
    with pytest.raises(
        ValueError,
        match=message.replace("(", r"\(").replace(")", r"\)") if "[" not in message else message,
    ):
        AMBS(quadratic_problem(), **kwargs)


def test_lcb_prefers_low_mean_then_high_sigma():
    kw = {"kappa": 1.96, "xi": 0.0, "y_best": 0.0}
    assert np.argmin(acquisition("LCB", np.array([0.0, 1.0]), np.zeros(2), **kw)) == 0
    assert np.argmin(acquisition("LCB", np.zeros(2), np.array([0.1, 1.0]), **kw)) == 1
    for acq in ("EI", "PI"):
        assert np.argmin(acquisition(acq, np.array([0.0, 1.0]), np.full(2, 0.5), **kw)) == 0
    # EI values uncertainty where PI, at equal means above the best, also does.
    assert np.argmin(acquisition("EI", np.full(2, 1.0), np.array([0.1, 1.0]), **kw)) == 1


def test_local_steps_move_few_coordinates_and_stay_in_the_cube():
    centre = np.full((1, 10), 0.5)
    points = perturb(centre, 2000, np.random.default_rng(0), (0.05,))
    moved = (points != centre).sum(axis=1)
    assert points.min() >= 0.0 and points.max() < 1.0
    assert moved.min() >= 1  # every point moves
    # About three coordinates step on average, and one in eighty is redrawn: far fewer than ten.
    assert 2.0 < moved.mean() < 4.5 and np.mean(moved >= 8) < 0.01
    far = np.abs(points - centre) > 0.3  # beyond six step scales: only a redraw gets there
    # A redraw lands that far with probability 0.4: 2000 * 10 * 0.0125 * 0.4 = 100 expected.
    assert 70 < far.sum() < 130


def test_lies_change_the_later_picks_of_a_batch_but_not_the_first():
    # The first pick minimises the acquisition; each later one is chosen after a lie for the
    # picks before it, so liars that lie differently pick different batches from one state.
    base = run_search(AMBS(quadratic_problem(), seed=0), quadratic, 30, 10)
    batches = {}
    for liar in ("cl_max", "cl_min", "kb"):
        opt = copy.deepcopy(base)
        opt.liar = liar
        batches[liar] = opt.space.encode(opt.ask(8))
    for other in ("cl_min", "kb"):
        np.testing.assert_array_equal(batches["cl_max"][0], batches[other][0])
        assert not np.array_equal(batches["cl_max"][1:], batches[other][1:])


@pytest.mark.parametrize("surrogate", ["RF", "GP"])
def test_a_believer_lie_keeps_the_mean_and_lowers_the_spread_where_it_is_told(surrogate):
    opt = run_search(AMBS(quadratic_problem(), surrogate=surrogate, seed=0), quadratic, 30, 10)
    opt.ask(1)  # fits the surrogate to the 30 results
    rng = np.random.default_rng(1)
    candidates = opt.space.features(rng.random((200, 2)))
    posterior = opt.model_.posterior(candidates)
    mean, sigma = posterior.mean_std()
    i = int(np.argmax(sigma))
    posterior.add_at_candidates(np.array([i]), mean[[i]])
    mean_after, sigma_after = posterior.mean_std()
    assert sigma_after[i] < 0.8 * sigma[i]
    assert abs(mean_after[i] - mean[i]) < 0.2 * sigma[i]


def test_mixed_space_with_log_integer_categorical_ordinal_and_conditions():
    problem = Problem("mixed", direction="maximize")
    problem.add_hyperparameter("lr", (1e-5, 1e-1, "log-uniform"))
    problem.add_hyperparameter("units", (1, 64))
    problem.add_hyperparameter("act", ["relu", "tanh", "sigmoid"])
    problem.add_hyperparameter("size", ["s", "m", "l", "xl"], ordinal=True)
    problem.add_hyperparameter(
        Categorical("momentum", choices=[0.0, 0.9], condition=lambda c: c["act"] == "relu")
    )
    problem.add_hyperparameter(
        Ordinal("depth", choices=[1, 2, 3], condition=lambda c: c["units"] > 32)
    )

    def score(c):
        value = -((math.log10(c["lr"]) + 3) ** 2) - {"relu": 0, "tanh": 3, "sigmoid": 6}[c["act"]]
        return value - abs(["s", "m", "l", "xl"].index(c["size"]) - 2)

    opt = run_search(AMBS(problem, seed=0), score, 60, batch=4)
    configs = opt.space.decode(np.array(opt.X_))
    for c in configs:
        assert (c["momentum"] is None) == (c["act"] != "relu")
        assert (c["depth"] is None) == (c["units"] <= 32)
        assert 1e-5 <= c["lr"] <= 1e-1 and isinstance(c["units"], int)
    model_based = configs[10:]
    assert sum(c["act"] == "relu" for c in model_based) > len(model_based) / 2
    best, value = opt.best()
    assert best["act"] == "relu" and best["size"] == "l" and value > -1.0


def test_failed_evaluations_are_avoided():
    def fails_on_the_left(c):  # 40% of the space, away from the optimum at x = 1
        return None if c["x"] < -1 else quadratic(c)

    opt = run_search(AMBS(quadratic_problem(), seed=0), fails_on_the_left, 50, batch=5)
    model_based = opt.space.decode(np.array(opt.X_[20:]))
    assert sum(c["x"] < -1 for c in model_based) < len(model_based) * 0.15
    assert opt.best()[1] < 5.0


def test_telling_a_history_at_once_costs_one_fit():
    problem = quadratic_problem()
    opt = AMBS(problem, seed=0)
    configs = problem.space.sample(300, 0)
    opt.tell(configs, [quadratic(c) for c in configs])
    fits = []
    original = opt.model_.update
    opt.model_.update = lambda X, y: fits.append(len(X)) or original(X, y)
    opt.ask(4)
    opt.ask(4)  # nothing new told: no refit
    assert fits == [300]


def test_beats_random_search_on_a_quadratic():
    # AMBS must win on at least 9 of 10 seeds: under "no better than random" that has
    # probability 11/1024 (about 1%), and AMBS must at least halve the median error.
    wins, ratios = 0, []
    for seed in range(10):
        ambs = run_search(AMBS(quadratic_problem(), seed=seed), quadratic, 60, batch=3)
        rand = run_search(RandomSearch(quadratic_problem(), seed=seed), quadratic, 60, batch=3)
        wins += ambs.best()[1] < rand.best()[1]
        ratios.append(ambs.best()[1] / rand.best()[1])
    assert wins >= 9
    assert np.median(ratios) < 0.5


def ambs_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "hpsearch.ambs", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_runs_a_search_in_the_local_pool(repo_root, tmp_path):
    out = tmp_path / "out"
    args = ["--problem", "problems.ackley", "--max-evals", "14", "--workers", "2"]
    args += ["--output", str(out), "--surrogate", "ET", "--liar", "cl_mean", "--n-initial", "4"]
    done = ambs_cli(*args, "--initial", "sobol", "--seed", "3", cwd=repo_root)
    assert done.returncode == 0, done.stderr
    results = load_results(os.path.join(out, "results.csv"))
    assert len(results) >= 14 and results["objective"].notna().all()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--kappa", "-1"], "The 'kappa' parameter of AMBS must be a float >= 0"),
        (["--liar", "max"], "argument --liar: invalid choice: 'max'"),
        (["--acq", "EI", "--liar", "qUCB"], "needs acq='LCB'"),
    ],
)
def test_cli_bad_flags_exit_2(repo_root, tmp_path, flags, message):
    args = ["--problem", "problems.ackley", "--output", str(tmp_path / "out"), *flags]
    done = ambs_cli(*args, cwd=repo_root)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
