import pytest

from keras_lm.metrics import squad


def test_normalization():
    assert squad.normalize_answer("The Denver  Broncos!") == "denver broncos"
    assert squad.normalize_answer("an apple, a pear") == "apple pear"
    # Articles only as whole words; punctuation goes before articles are looked for.
    assert squad.normalize_answer("Theater (the) A-team") == "theater ateam"
    assert squad.normalize_answer("  ") == ""


def test_hand_computed_exact_match_and_f1():
    assert squad.exact_match("the Broncos", "Broncos.") == 1.0
    assert squad.exact_match("Denver", "Denver Broncos") == 0.0
    # prediction "denver broncos team" vs "broncos": overlap 1, P 1/3, R 1 -> F1 0.5
    assert squad.f1("Denver Broncos team", "the Broncos") == pytest.approx(0.5)
    # repeated tokens count by multiplicity: "a b b" vs "b b c" -> here 'a' is an article:
    # "b b" vs "b b c": overlap 2, P 1, R 2/3 -> 0.8
    assert squad.f1("a b b", "b b c") == pytest.approx(0.8)
    assert squad.f1("", "") == 0.0
    scores = squad.squad_scores(
        {"q1": "Denver Broncos", "q2": "in 2016", "q3": "nothing"},
        {"q1": ["Denver Broncos", "Broncos"], "q2": ["2016", "February 2016"],
         "q3": ["something"], "q4": ["missing"]})
    # q1: EM 1, F1 1. q2: EM 0; F1 max("in 2016" vs "2016": P 1/2 R 1 -> 2/3,
    # vs "february 2016": P 1/2 R 1/2 -> 1/2) = 2/3. q3: 0, 0. q4 (no prediction): 0, 0.
    assert scores["exact_match"] == pytest.approx(100 * 1 / 4)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3) / 4)
    assert scores["questions"] == 4


def test_errors():
    with pytest.raises(ValueError, match="empty"):
        squad.squad_scores({}, {})
    with pytest.raises(ValueError, match="'q' has no reference"):
        squad.squad_scores({"q": "x"}, {"q": []})


def official_normalize(s):
    """evaluate-v1.1.py's normalize_answer, transcribed."""
    import re
    import string

    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def test_normalization_matches_the_official_script():
    for text in ["The Eiffel Tower!", "A.D. 1066", "an-the a", "Théâtre «the» Ünïcode",
                 "  rock'n'roll,\tthe\nend ", "THEA the-a", "ça a été", "1,000.5 km"]:
        assert squad.normalize_answer(text) == official_normalize(text)
    # Predictions of questions not in the references are ignored (as officially).
    scores = squad.squad_scores({"q": "x", "other": "y"}, {"q": ["x"]})
    assert scores == {"exact_match": 100.0, "f1": 100.0, "questions": 1}


def test_bad_input_is_named():
    # Before the fix, one answer str was read as a list of its characters ('B', 'r', ...)
    # and the question silently scored 0.
    with pytest.raises(TypeError, match=r"references\['q'\] must be a list of answer texts"):
        squad.squad_scores({"q": "Broncos"}, {"q": "Broncos"})
    with pytest.raises(TypeError, match=r"references\['q'\] must hold str answers; received None"):
        squad.squad_scores({"q": "x"}, {"q": [None]})
    with pytest.raises(TypeError, match=r"predictions\['q'\] must be the answer text"):
        squad.squad_scores({"q": None}, {"q": ["x"]})
    with pytest.raises(TypeError, match="predictions must be a dict keyed by question id"):
        squad.squad_scores(["x"], {"q": ["x"]})
    with pytest.raises(TypeError, match="references must be a dict"):
        squad.squad_scores({"q": "x"}, None)
    # Ids of another type: every question would score 0.
    with pytest.raises(ValueError, match="None of the 1 predictions' question ids"):
        squad.squad_scores({1: "x"}, {"1": ["x"]})
    # No prediction at all is a legitimate 0 (the official script's unanswered questions).
    assert squad.squad_scores({}, {"q": ["x"]})["f1"] == 0.0
