"""annlab's NumPy scores equal scikit-learn's on the same predictions (edge cases included)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from annlab.evaluation.metrics import confusion_matrix, per_class_scores, regression_scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_scores_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, 200)
    pred = np.where(rng.random(200) < 0.6, y, rng.integers(0, 5, 200))
    pred[pred == 4] = 3  # class 4 is never predicted: precision undefined, scored 0
    matrix = confusion_matrix(y, pred, 6)  # class 5 never occurs at all
    np.testing.assert_array_equal(matrix, sk.confusion_matrix(y, pred, labels=range(6)))
    expected = sk.precision_recall_fscore_support(y, pred, labels=range(6), zero_division=0)
    for ours, theirs in zip(per_class_scores(matrix), expected, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


@pytest.mark.parametrize("constant", [False, True])
def test_regression_scores_match_scikit_learn(constant):
    rng = np.random.default_rng(0)
    y = np.full(50, 2.5, np.float32) if constant else rng.normal(size=50).astype(np.float32)
    pred = (y + rng.normal(scale=0.3, size=50)).astype(np.float32)
    ours = regression_scores(y, pred)
    y64, p64 = y.astype(np.float64), pred.astype(np.float64)
    assert ours["mse"] == pytest.approx(sk.mean_squared_error(y64, p64), rel=1e-12)
    assert ours["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(y64, p64)), rel=1e-12)
    assert ours["mae"] == pytest.approx(sk.mean_absolute_error(y64, p64), rel=1e-12)
    assert ours["r2"] == pytest.approx(sk.r2_score(y64, p64), rel=1e-12)
    assert regression_scores(y, y)["r2"] == 1.0
