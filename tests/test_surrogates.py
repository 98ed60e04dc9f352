"""Surrogate models: mean and sigma on known data, and lies that move the posterior."""

import numpy as np
import pytest

from hpsearch.search.surrogates import SURROGATES, make_surrogate


def bowl(X):
    return ((X - 0.3) ** 2).sum(axis=1)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.random((150, 2))
    return X, bowl(X)


@pytest.mark.parametrize("name", SURROGATES)
def test_mean_follows_the_data_and_sigma_is_non_negative(name, data):
    X, y = data
    model = make_surrogate(name, seed=0).fit(X, y)
    test = np.random.default_rng(1).random((100, 2))
    mean, sigma = model.predict(test)
    assert mean.shape == sigma.shape == (100,)
    assert np.all(sigma >= 0)
    # Mean error well below the spread of the function itself (std about 0.14 here).
    assert np.sqrt(np.mean((mean - bowl(test)) ** 2)) < 0.05
    # The minimum of the mean is near the true minimiser (0.3, 0.3).
    assert np.linalg.norm(test[np.argmin(mean)] - 0.3) < 0.2


def test_extra_trees_sigma_is_the_spread_of_the_trees(data):
    X, y = data
    model = make_surrogate("ET", seed=0).fit(X, y)
    test = np.random.default_rng(2).random((50, 2))
    per_tree = np.array([tree.predict(test) for tree in model.trees_])
    mean, sigma = model.predict(test)
    np.testing.assert_allclose(mean, per_tree.mean(axis=0))
    np.testing.assert_allclose(sigma, per_tree.std(axis=0))


@pytest.mark.parametrize("name", ["RF", "ET"])
def test_update_on_a_long_history_regrows_only_the_oldest_trees(name):
    rng = np.random.default_rng(0)
    X = rng.random((608, 3))
    y = bowl(X)
    model = make_surrogate(name, seed=0).update(X[:600], y[:600])  # a first update grows all
    first = list(model.trees_)
    model.update(X, y)
    kept = model.n_estimators - model.regrow
    assert model.trees_[:kept] == first[model.regrow :]
    assert not {id(tree) for tree in model.trees_[kept:]} & {id(tree) for tree in first}
    # Every tree, kept or new, predicts the mean of all the data in its leaf.
    test = rng.random((20, 3))
    per_tree = np.array(
        [
            [y[tree.apply(X.astype(np.float32)) == leaf].mean() for leaf in tree.apply(test)]
            for tree in model.trees_
        ]
    )
    mean, sigma = model.predict(test)
    np.testing.assert_allclose(mean, per_tree.mean(axis=0))
    np.testing.assert_allclose(sigma, per_tree.std(axis=0))


def test_update_on_a_short_history_regrows_every_tree(data):
    X, y = data
    model = make_surrogate("RF", seed=0).update(X[:100], y[:100])
    first = {id(tree) for tree in model.trees_}
    model.update(X, y)
    assert len(model.trees_) == model.n_estimators
    assert not {id(tree) for tree in model.trees_} & first


@pytest.mark.parametrize("name", ["RF", "ET"])
def test_forest_sigma_vanishes_on_constant_data(name):
    X = np.random.default_rng(0).random((60, 3))
    model = make_surrogate(name, seed=0).fit(X, np.full(60, 7.0))
    mean, sigma = model.predict(np.random.default_rng(1).random((20, 3)))
    np.testing.assert_allclose(mean, 7.0)
    np.testing.assert_allclose(sigma, 0.0, atol=1e-12)


def test_gp_is_sure_at_data_and_unsure_far_from_it():
    X = np.random.default_rng(0).random((30, 1)) * 0.5  # data only in [0, 0.5]
    model = make_surrogate("GP", seed=0).fit(X, np.sin(6 * X[:, 0]))
    mean, sigma = model.predict(np.array([[0.25], [1.0]]))
    assert mean[0] == pytest.approx(np.sin(1.5), abs=0.05)
    assert sigma[0] < 0.05 < sigma[1]


@pytest.mark.parametrize("name", SURROGATES)
def test_a_lie_raises_the_posterior_mean_where_it_is_told(name, data):
    X, y = data
    model = make_surrogate(name, seed=0).fit(X, y)
    candidates = np.array([[0.31, 0.29], [0.9, 0.9]])
    posterior = model.posterior(candidates)
    before, _ = posterior.mean_std()
    np.testing.assert_allclose(before, model.predict(candidates)[0])
    posterior.add(np.array([[0.31, 0.29]] * 5), np.full(5, 10.0))
    after, _ = posterior.mean_std()
    assert after[0] > before[0] + 0.05  # GBRT's median resists lies the most
    assert abs(after[1] - before[1]) < abs(after[0] - before[0])
    np.testing.assert_allclose(model.predict(candidates)[0], before)  # the model is unchanged


@pytest.mark.parametrize("name", ["RF", "ET", "GP"])
def test_a_lie_at_a_candidate_is_the_same_lie_as_at_its_coordinates(name, data):
    X, y = data
    model = make_surrogate(name, seed=0).fit(X, y)
    candidates = np.random.default_rng(3).random((40, 2))
    by_index, by_point = model.posterior(candidates), model.posterior(candidates)
    by_index.add_at_candidates(np.array([7, 21]), np.array([5.0, 6.0]))
    by_point.add(candidates[[7, 21]], np.array([5.0, 6.0]))
    np.testing.assert_allclose(by_index.mean_std(), by_point.mean_std())
    assert not np.allclose(by_index.mean_std()[0], model.predict(candidates)[0])
