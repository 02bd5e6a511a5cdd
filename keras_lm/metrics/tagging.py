"""Entity-level precision, recall and F1 of tag sequences (seqeval's default definition).

Tags are "O" or "PREFIX-TYPE" with PREFIX one of B, I, E, S (IOB1, IOB2, IOE and IOBES
sequences all work; a bare tag such as "PER" counts as "I-PER", where seqeval would take its
first letter for the prefix). Entities are read with the CoNLL evaluation script's
(conlleval's) chunk rules, as seqeval does in its default mode:

- a chunk starts at B or S, at I or E after O / E / S, and at any typed tag whose type
  differs from the previous tag's;
- a chunk ends before B, S or O after B / I, after E or S, and before a tag whose type differs.

So a stray "I-PER" after "O" starts a PER entity (it is not discarded). Sentences are
concatenated with an "O" between them. An entity is correct when its type, start and end all
match a reference entity; precision = correct / predicted, recall = correct / reference,
F1 their harmonic mean (0 when there is no entity on a side).
"""


def _split_tag(tag):
    if tag == "O":
        return "O", ""
    if "-" in tag:
        prefix, _, kind = tag.partition("-")
        if prefix in ("B", "I", "E", "S"):
            return prefix, kind
    return "I", tag


def _starts(previous, prefix, previous_kind, kind):
    if prefix in ("B", "S"):
        return True
    if prefix in ("I", "E") and previous in ("O", "E", "S"):
        return True
    return prefix != "O" and previous_kind != kind


def _ends(previous, prefix, previous_kind, kind):
    if previous in ("E", "S"):
        return True
    if previous in ("B", "I") and prefix in ("B", "S", "O"):
        return True
    return previous != "O" and previous_kind != kind


def entities(tags):
    """The entities of one tag sequence (or a list of sequences, joined with "O").

    Returns:
        A list of (type, start, end) with `end` inclusive, positions in the joined sequence.

    Example:
    >>> entities(["B-PER", "I-PER", "O", "I-LOC"])
    [('PER', 0, 1), ('LOC', 3, 3)]
    """
    if tags and isinstance(tags[0], (list, tuple)):
        joined = []
        for sequence in tags:
            joined.extend(list(sequence) + ["O"])
        tags = joined
    found = []
    previous, previous_kind, start = "O", "", None
    for position, tag in enumerate(list(tags) + ["O"]):
        prefix, kind = _split_tag(tag)
        if start is not None and _ends(previous, prefix, previous_kind, kind):
            found.append((previous_kind, start, position - 1))
            start = None
        if _starts(previous, prefix, previous_kind, kind):
            start = position
        previous, previous_kind = prefix, kind
    return found


def entity_scores(references, predictions):
    """Micro precision / recall / F1 over entities, and per entity type.

    Args:
        references: list of tag sequences (one per sentence).
        predictions: list of tag sequences of the same lengths.

    Returns:
        A dict: precision, recall, f1, entities (reference count), predicted (count) and, per
        type T, f1_T.

    Raises:
        TypeError: not a list of sentences, each a list (or other sequence) of str tags (a
            flat list of tags is refused, not read as one-tag sentences).
        ValueError: no sentence, or sentence counts or lengths that differ.

    Example:
    >>> scores = entity_scores([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])
    >>> scores["precision"], scores["recall"]
    (0.0, 0.0)
    """
    for name, value in (("references", references), ("predictions", predictions)):
        if value is None or isinstance(value, (str, bytes)):
            raise TypeError(
                f"{name} must be a list of tag sequences (one list of tags per sentence); "
                f"received {type(value).__name__}."
            )
    references, predictions = list(references), list(predictions)
    if len(references) != len(predictions):
        raise ValueError(
            f"references and predictions must hold the same number of sentences. Received: "
            f"{len(references)} and {len(predictions)}."
        )
    if not references:
        raise ValueError("references is empty: there is no sentence to score.")
    for index, (reference, prediction) in enumerate(zip(references, predictions)):
        for name, sentence in (("references", reference), ("predictions", prediction)):
            # A flat list of tags reads as sentences of one str each, split into characters.
            if isinstance(sentence, (str, bytes)) or not hasattr(sentence, "__len__"):
                raise TypeError(
                    f"{name}[{index}] must be a list of tags (one sentence); received "
                    f"{sentence!r:.60} of type {type(sentence).__name__}. Pass one list per "
                    'sentence, e.g. [["B-PER", "I-PER", "O"]].'
                )
            for position, tag in enumerate(sentence):
                if not isinstance(tag, str):
                    raise TypeError(
                        f"{name}[{index}][{position}] must be a str tag; received {tag!r:.60} "
                        f"of type {type(tag).__name__}."
                    )
        if len(reference) != len(prediction):
            raise ValueError(
                f"Sentence {index} has {len(reference)} reference tags but {len(prediction)} "
                "predicted tags; they must match word for word."
            )
    true = set(entities([list(r) for r in references]))
    pred = set(entities([list(p) for p in predictions]))
    scores = _prf(len(true & pred), len(pred), len(true))
    scores.update(entities=len(true), predicted=len(pred))
    for kind in sorted({e[0] for e in true | pred}):
        t = {e for e in true if e[0] == kind}
        p = {e for e in pred if e[0] == kind}
        scores[f"f1_{kind}"] = _prf(len(t & p), len(p), len(t))["f1"]
    return scores


def _prf(correct, predicted, reference):
    precision = correct / predicted if predicted else 0.0
    recall = correct / reference if reference else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
