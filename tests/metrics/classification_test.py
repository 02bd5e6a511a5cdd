import numpy as np
import pytest

from keras_lm.metrics import classification


def test_hand_computed_values():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    # class 0: tp 2 fp 0 fn 1 -> 4/5; class 1: tp 1 fp 1 fn 1 -> 2/4; class 2: tp 1 fp 1 fn 0
    # -> 2/3.
    assert classification.accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    assert classification.per_class_f1(y_true, y_pred) == pytest.approx(
        {0: 0.8, 1: 0.5, 2: 2 / 3})
    assert classification.macro_f1(y_true, y_pred) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    # A class only predicted (3) counts with F1 0; a class in neither is left out.
    assert classification.macro_f1([0, 0], [0, 3]) == pytest.approx((2 / 3 + 0) / 2)
    np.testing.assert_array_equal(classification.confusion_matrix(y_true, y_pred, 3),
                                  [[2, 1, 0], [0, 1, 1], [0, 0, 1]])
    metrics = classification.classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert metrics["f1_b"] == pytest.approx(0.5) and metrics["examples"] == 6


def test_matches_scikit_learn(rng):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    for _ in range(5):
        y_true = rng.integers(0, 4, 200)
        y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 5, 200))
        assert classification.macro_f1(y_true, y_pred) == pytest.approx(
            sklearn_metrics.f1_score(y_true, y_pred, average="macro"))
        assert classification.accuracy(y_true, y_pred) == pytest.approx(
            sklearn_metrics.accuracy_score(y_true, y_pred))


def test_errors():
    with pytest.raises(ValueError, match="same length"):
        classification.accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        classification.macro_f1([], [])
