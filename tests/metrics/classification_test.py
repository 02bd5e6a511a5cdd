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


def test_refuses_scores_non_integer_ids_and_none():
    # Before the fix, float predictions were cast to int (0.9 -> 0, 1.7 -> 1): accuracy 2/3,
    # and square score matrices [N, C] were flattened into N * C "labels" (accuracy 0.5).
    with pytest.raises(ValueError, match=r"y_pred must hold integer class ids; received 0\.9"):
        classification.accuracy([0, 1, 1], [0.0, 0.9, 1.7])
    with pytest.raises(ValueError, match=r"y_pred must be 1-D class ids; received shape \(2, 2\)"):
        classification.accuracy([0, 1, 1, 0], [[0.1, 0.9], [0.8, 0.2]])
    with pytest.raises(TypeError, match="y_true must be a sequence of integer class ids"):
        classification.macro_f1(None, [0])
    with pytest.raises(TypeError, match="y_true must hold integer class ids; received None"):
        classification.accuracy([0, None], [0, 1])
    with pytest.raises(ValueError, match="y_pred must hold integer class ids; received nan"):
        classification.macro_f1([0, 1], [0, float("nan")])
    # Integer-valued floats and column vectors are ids all the same.
    assert classification.accuracy([[0], [1], [2]], np.array([0.0, 1.0, 1.0])) == pytest.approx(
        2 / 3)


def test_label_ids_outside_the_names_or_matrix_are_refused():
    # Before the fix, -1 wrapped onto the last row of the confusion matrix and onto the last
    # label name; an id past the names raised a bare IndexError.
    with pytest.raises(ValueError, match=r"y_true holds class id -1, outside \[0, 2\)"):
        classification.confusion_matrix([0, -1], [0, 1], 2)
    with pytest.raises(ValueError, match=r"y_pred holds class id 2, outside \[0, 2\)"):
        classification.confusion_matrix([0, 1], [0, 2], 2)
    with pytest.raises(ValueError, match="Class id 2 has no name: label_names holds 2 names"):
        classification.classification_metrics([0, 2], [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="Class id -1 has no name"):
        classification.classification_metrics([0, -1], [0, 0], ["a", "b"])
