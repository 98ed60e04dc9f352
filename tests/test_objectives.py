"""k-fold x replica statistics against values computed by hand."""

import numpy as np
import pytest

from hpsearch.objectives import (
    STATISTICS,
    chi2,
    chi2_of_mean,
    fold_replica_chi2,
    kfold_statistic,
    mean_abs_chi2_minus_one,
    mean_chi2,
)

# two folds, two replicas; fold 0 has two points, fold 1 one point
PRED = [np.array([[1.0, 2.0], [3.0, 2.0]]), np.array([[0.0], [4.0]])]
DATA = [np.array([1.0, 1.0]), np.array([1.0])]
SIGMA = [np.array([1.0, 1.0]), np.array([2.0])]


def test_chi2_per_fold_and_replica():
    # fold 0: r0 (0 + 1)/2 = 0.5, r1 (4 + 1)/2 = 2.5; fold 1: r0 (1/2)^2, r1 (3/2)^2
    np.testing.assert_allclose(fold_replica_chi2(PRED, DATA, SIGMA), [[0.5, 2.5], [0.25, 2.25]])
    assert chi2(np.array([3.0]), np.array([1.0]), np.array([2.0])) == 1.0


def test_statistics():
    assert mean_chi2(PRED, DATA, SIGMA) == pytest.approx((0.5 + 2.5 + 0.25 + 2.25) / 4)
    # replica means: fold 0 (2, 2) -> (1 + 1)/2 = 1; fold 1 (2) -> (1/2)^2 = 0.25
    assert chi2_of_mean(PRED, DATA, SIGMA) == pytest.approx((1.0 + 0.25) / 2)
    assert mean_abs_chi2_minus_one(PRED, DATA, SIGMA) == pytest.approx(
        (0.5 + 1.5 + 0.75 + 1.25) / 4
    )
    for name, function in STATISTICS.items():
        assert kfold_statistic(name, PRED, DATA, SIGMA) == function(PRED, DATA, SIGMA)


def test_bad_input():
    with pytest.raises(ValueError, match="unknown k-fold statistic 'median'"):
        kfold_statistic("median", PRED, DATA, SIGMA)
    with pytest.raises(ValueError, match="one predictions/data/sigma entry per fold"):
        mean_chi2(PRED, DATA[:1], SIGMA)
    with pytest.raises(ValueError, match="sigma must all be > 0"):
        chi2(np.ones(2), np.ones(2), np.zeros(2))
