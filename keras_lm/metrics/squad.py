"""SQuAD v1.1 exact match and F1, with the official answer normalisation.

normalize_answer: lower-case, drop ASCII punctuation (`string.punctuation`), drop the
articles "a", "an", "the" as whole words, and collapse white space, in that order (the
official evaluate-v1.1.py). Exact match of a prediction is 1 when its normalised text equals
a reference's; F1 is the bag-of-words F1 of the normalised tokens; both take the maximum over
the references of a question, and are averaged over questions and reported in percent, as
the official script does.
"""

import collections
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
        prediction scores 0 (as in the official script).

    Example:
    >>> squad_scores({"q": "the Broncos"}, {"q": ["Denver Broncos", "Broncos"]})
    {'exact_match': 100.0, 'f1': 100.0, 'questions': 1}
    """
    if not references:
        raise ValueError("references is empty: there is nothing to score.")
    total_em = total_f1 = 0.0
    for question, answers in references.items():
        if not answers:
            raise ValueError(f"Question {question!r} has no reference answer.")
        if question not in predictions:
            continue
        prediction = predictions[question]
        total_em += max(exact_match(prediction, a) for a in answers)
        total_f1 += max(f1(prediction, a) for a in answers)
    count = len(references)
    return {"exact_match": 100.0 * total_em / count, "f1": 100.0 * total_f1 / count,
            "questions": count}
