"""Classification metrics on predicted label ids: accuracy, per-class and macro F1.

Macro-F1 follows scikit-learn's `f1_score(average="macro")`: the unweighted mean of the
per-class F1 over the classes present in the references or the predictions (a class with no
true and no predicted example has no F1 and is left out); F1 of a class is
2 TP / (2 TP + FP + FN), 0 when a class is predicted but never right.
"""

import numpy as np


def accuracy(y_true, y_pred):
    """Fraction of predictions equal to the reference.

    Example:
    >>> accuracy([0, 1, 2, 2], [0, 1, 1, 2])
    0.75
    """
    y_true, y_pred = _check(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def per_class_f1(y_true, y_pred):
    """{class id: F1} for every class in the references or the predictions.

    Example:
    >>> per_class_f1([0, 0, 1], [0, 1, 1])
    {0: 0.6666666666666666, 1: 0.6666666666666666}
    """
    y_true, y_pred = _check(y_true, y_pred)
    scores = {}
    for label in sorted(set(y_true.tolist()) | set(y_pred.tolist())):
        tp = int(np.sum((y_true == label) & (y_pred == label)))
        fp = int(np.sum((y_true != label) & (y_pred == label)))
        fn = int(np.sum((y_true == label) & (y_pred != label)))
        scores[label] = 2 * tp / (2 * tp + fp + fn)
    return scores


def macro_f1(y_true, y_pred):
    """Unweighted mean of `per_class_f1` (see the module docstring).

    Example:
    >>> macro_f1([0, 0, 1, 1], [0, 0, 0, 1])  # F1 0.8 and 0.6667
    0.7333333333333334
    """
    scores = per_class_f1(y_true, y_pred)
    return float(np.mean(list(scores.values())))


def confusion_matrix(y_true, y_pred, num_labels):
    """int64 [C, C] counts: row = reference class, column = predicted class."""
    y_true, y_pred = _check(y_true, y_pred)
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        outside = values[(values < 0) | (values >= num_labels)]
        if outside.size:
            raise ValueError(
                f"{name} holds class id {int(outside[0])}, outside [0, {num_labels}) of a "
                f"confusion matrix with num_labels={num_labels}."
            )
    matrix = np.zeros((num_labels, num_labels), np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def classification_metrics(y_true, y_pred, label_names=None):
    """accuracy, macro_f1, examples and (with `label_names`) f1_<name> per class.

    Example:
    >>> classification_metrics([0, 1], [0, 0], ["neg", "pos"])["f1_pos"]
    0.0
    """
    metrics = {"accuracy": accuracy(y_true, y_pred), "macro_f1": macro_f1(y_true, y_pred),
               "examples": int(len(y_true))}
    if label_names is not None:
        label_names = list(label_names)
        for label in per_class_f1(y_true, y_pred):
            if not 0 <= label < len(label_names):
                raise ValueError(
                    f"Class id {label} has no name: label_names holds {len(label_names)} names "
                    f"(ids 0 to {len(label_names) - 1})."
                )
        for label, score in per_class_f1(y_true, y_pred).items():
            metrics[f"f1_{label_names[label]}"] = score
    return metrics


def _check(y_true, y_pred):
    y_true, y_pred = _label_ids(y_true, "y_true"), _label_ids(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must have the same length. Received: {y_true.shape[0]} "
            f"references and {y_pred.shape[0]} predictions."
        )
    if y_true.size == 0:
        raise ValueError("y_true is empty: there is nothing to score.")
    return y_true, y_pred


def _label_ids(values, name):
    """`values` as a 1-D int64 array; refuses None, scores [N, C] and non-integer ids (which a
    cast to int would silently truncate)."""
    if values is None or isinstance(values, (str, bytes)):
        raise TypeError(
            f"{name} must be a sequence of integer class ids; received {type(values).__name__}."
        )
    array = np.asarray(values)
    if sum(size != 1 for size in array.shape) > 1:
        raise ValueError(
            f"{name} must be 1-D class ids; received shape {array.shape}. For scores or "
            "probabilities [N, C], pass their argmax(-1)."
        )
    array = array.reshape(-1)
    if array.dtype.kind in "biu":
        return array.astype(np.int64)
    if array.dtype.kind == "f":
        bad = array[~np.isfinite(array) | (array != np.round(array))]
        if bad.size:
            raise ValueError(
                f"{name} must hold integer class ids; received {float(bad[0])}. For scores or "
                "probabilities, pass the predicted class ids (argmax), not the values."
            )
        return array.astype(np.int64)
    bad = [v for v in array.tolist() if not isinstance(v, (int, np.integer))]
    if not bad:  # Python ints that numpy kept as objects
        return array.astype(np.int64)
    bad = bad[0]
    raise TypeError(
        f"{name} must hold integer class ids; received {bad!r:.60} of type "
        f"{type(bad).__name__}."
    )
