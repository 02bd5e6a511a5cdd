"""SQuAD v1.1 exact match and F1, with the official answer normalisation.

normalize_answer: lower-case, drop ASCII punctuation (`string.punctuation`), drop the
articles "a", "an", "the" as whole words, and collapse white space, in that order (the
official evaluate-v1.1.py). Exact match of a prediction is 1 when its normalised text equals
a reference's; F1 is the bag-of-words F1 of the normalised tokens; both take the maximum over
the references of a question, and are averaged over questions and reported in percent, as
the official script does.
"""

import collections
import collections.abc
import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text):
    """The official SQuAD v1.1 normalisation.

    Example:
    >>> normalize_answer("The  Denver Broncos!")
    'denver broncos'
    """
    text = text.lower()
    text = "".join(c for c in text if c not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction, reference):
    """1.0 when the normalised texts are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def f1(prediction, reference):
    """Bag-of-words F1 of the normalised tokens; 0 when they share no token (as officially,
    also when both are empty)."""
    predicted = normalize_answer(prediction).split()
    expected = normalize_answer(reference).split()
    common = collections.Counter(predicted) & collections.Counter(expected)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(predicted)
    recall = overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions, references):
    """Mean exact match and F1 in percent over questions.

    Args:
        predictions: dict question id -> predicted answer text.
        references: dict question id -> list of reference answer texts.

    Returns:
        {"exact_match": float, "f1": float, "questions": int}; a question without a
        prediction scores 0 (as in the official script), and predictions of questions not in
        `references` are ignored.

    Raises:
        TypeError: a dict is missing, an answer list is one str, or an answer is not a str.
        ValueError: no reference, a question without answers, or predictions (not empty)
            none of whose ids is a reference question.

    Example:
    >>> squad_scores({"q": "the Broncos"}, {"q": ["Denver Broncos", "Broncos"]})
    {'exact_match': 100.0, 'f1': 100.0, 'questions': 1}
    """
    for name, value in (("predictions", predictions), ("references", references)):
        if not isinstance(value, collections.abc.Mapping):
            raise TypeError(
                f"{name} must be a dict keyed by question id; received {type(value).__name__}."
            )
    if not references:
        raise ValueError("references is empty: there is nothing to score.")
    if predictions and not any(question in references for question in predictions):
        # Almost surely ids of another type or split (e.g. 1 against "1"): every question
        # would silently score 0.
        some_prediction, some_reference = next(iter(predictions)), next(iter(references))
        raise ValueError(
            f"None of the {len(predictions)} predictions' question ids is a question of "
            f"references; e.g. prediction id {some_prediction!r} "
            f"({type(some_prediction).__name__}), reference id {some_reference!r} "
            f"({type(some_reference).__name__})."
        )
    total_em = total_f1 = 0.0
    for question, answers in references.items():
        if isinstance(answers, str) or not isinstance(answers, collections.abc.Iterable):
            hint = " (wrap one answer in a list: [text])" if isinstance(answers, str) else ""
            raise TypeError(
                f"references[{question!r}] must be a list of answer texts; received "
                f"{type(answers).__name__}{hint}."
            )
        answers = list(answers)
        if not answers:
            raise ValueError(f"Question {question!r} has no reference answer.")
        for answer in answers:
            if not isinstance(answer, str):
                raise TypeError(
                    f"references[{question!r}] must hold str answers; received {answer!r:.60} "
                    f"of type {type(answer).__name__}."
                )
        if question not in predictions:
            continue
        prediction = predictions[question]
        if not isinstance(prediction, str):
            raise TypeError(
                f"predictions[{question!r}] must be the answer text (str); received "
                f"{prediction!r:.60} of type {type(prediction).__name__}."
            )
        total_em += max(exact_match(prediction, a) for a in answers)
        total_f1 += max(f1(prediction, a) for a in answers)
    count = len(references)
    return {"exact_match": 100.0 * total_em / count, "f1": 100.0 * total_f1 / count,
            "questions": count}
