import pytest

from keras_lm.metrics import tagging


def test_entities_follow_the_conlleval_chunk_rules():
    assert tagging.entities(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]
    # A stray I- after O starts an entity; a type change splits one.
    assert tagging.entities(["O", "I-PER", "I-PER", "I-LOC"]) == [("PER", 1, 2), ("LOC", 3, 3)]
    # B- after I- of the same type starts a new entity.
    assert tagging.entities(["B-ORG", "I-ORG", "B-ORG"]) == [("ORG", 0, 1), ("ORG", 2, 2)]
    # IOBES: S is a single-token entity, E closes one.
    assert tagging.entities(["S-PER", "B-LOC", "E-LOC", "I-LOC"]) == [
        ("PER", 0, 0), ("LOC", 1, 2), ("LOC", 3, 3)]
    # Sentences are joined with an "O": an entity at the end of one stops there.
    assert tagging.entities([["B-PER"], ["I-PER"]]) == [("PER", 0, 0), ("PER", 2, 2)]


def test_hand_computed_scores():
    references = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    predictions = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "B-MISC"]]
    scores = tagging.entity_scores(references, predictions)
    # Reference {PER 0-1, LOC 3, ORG 5}; predicted {PER 0-1, ORG 3, ORG 5, MISC 6}: 2 correct.
    assert scores["precision"] == pytest.approx(2 / 4)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3))
    assert (scores["entities"], scores["predicted"]) == (3, 4)
    assert scores["f1_PER"] == 1.0 and scores["f1_LOC"] == 0.0
    assert scores["f1_ORG"] == pytest.approx(2 / 3)  # 1 correct of 2 predicted, 1 reference
    # A partially matching span is wrong.
    assert tagging.entity_scores([["B-PER", "I-PER"]], [["B-PER", "O"]])["f1"] == 0.0
    assert tagging.entity_scores([["O"]], [["O"]])["f1"] == 0.0


def test_matches_seqeval(rng):
    seqeval = pytest.importorskip("seqeval.metrics")
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-ORG"]
    for _ in range(20):
        references, predictions = [], []
        for _ in range(5):
            n = int(rng.integers(1, 10))
            references.append([tags[i] for i in rng.integers(0, len(tags), n)])
            predictions.append([tags[i] for i in rng.integers(0, len(tags), n)])
        ours = tagging.entity_scores(references, predictions)
        assert ours["precision"] == pytest.approx(
            seqeval.precision_score(references, predictions, zero_division=0))
        assert ours["recall"] == pytest.approx(
            seqeval.recall_score(references, predictions, zero_division=0))
        assert ours["f1"] == pytest.approx(
            seqeval.f1_score(references, predictions, zero_division=0))


def test_length_mismatch_errors():
    with pytest.raises(ValueError, match="Sentence 0 has 2 reference tags but 1"):
        tagging.entity_scores([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="same number of sentences"):
        tagging.entity_scores([["O"]], [])


def test_iobes_and_iob1_entities_match_seqeval(rng):
    seqeval = pytest.importorskip("seqeval.metrics.sequence_labeling")
    tags = ["O"] + [f"{p}-{t}" for p in "BIES" for t in ("PER", "LOC")]
    for _ in range(300):
        sentences = [[tags[i] for i in rng.integers(0, len(tags), rng.integers(0, 7))]
                     for _ in range(int(rng.integers(1, 4)))]
        assert sorted(tagging.entities(sentences)) == sorted(seqeval.get_entities(sentences))


def test_bad_input_is_named():
    # Before the fix, a flat list of tags was read as sentences of one str each, split into
    # characters ("B-PER" -> types "B", "-", "P", ...), and scored without complaint.
    with pytest.raises(TypeError, match=r"references\[0\] must be a list of tags"):
        tagging.entity_scores(["B-PER", "O"], ["B-LOC", "O"])
    with pytest.raises(TypeError, match=r"predictions\[0\] must be a list of tags"):
        tagging.entity_scores([["B-PER"]], ["B-PER"])
    with pytest.raises(TypeError, match=r"references\[0\]\[1\] must be a str tag"):
        tagging.entity_scores([["O", None]], [["O", "O"]])
    with pytest.raises(TypeError, match="references must be a list of tag sequences"):
        tagging.entity_scores(None, [["O"]])
    with pytest.raises(ValueError, match="references is empty"):
        tagging.entity_scores([], [])
    # Tuples and empty sentences are fine.
    assert tagging.entity_scores([("B-PER",), ()], [("B-PER",), ()])["f1"] == 1.0
