import pytest

from keras_lm.data import alignment

FOLIO = (
    "Long liue the King.\n"
    "Stand and vnfold your selfe.\n"
    "Haue you had quiet Guard?\n"
    "This is a line the other lacks entirely.\n"
    "Not a Mouse stirring.\n"
    "I haue seene nothing"
)
MODERN = (
    "Long live the king!\n"
    "Stand, and unfold yourself.\n"
    "Have you had quiet guard?\n"
    "Not a mouse stirring.\n"
    "I have seen nothing."
)


def test_hand_made_pair_of_texts():
    pairs, stats = alignment.align_texts(FOLIO, MODERN)
    # Cuts fall at the shared sentence ends, also after the unmatched "your selfe" /
    # "yourself". The line only the Folio has becomes a segment with no modern words: dropped
    # by rule (a).
    assert pairs == [
        ("long liue the king", "long live the king"),
        ("stand and vnfold your selfe", "stand and unfold yourself"),
        ("haue you had quiet guard", "have you had quiet guard"),
        ("not a mouse stirring", "not a mouse stirring"),
        ("i haue seene nothing", "i have seen nothing"),
    ]
    assert stats["segments"] == 6 and stats["kept"] == 5 and stats["dropped_length"] == 1
    assert stats["source_words"] == 4 + 5 + 5 + 8 + 4 + 4
    assert stats["target_words"] == 4 + 4 + 5 + 4 + 4
    assert stats["kept_source_words"] == 4 + 5 + 5 + 4 + 4
    assert stats["equal_words"] == 4 + 3 + 5 + 4 + 4


def test_max_chars_drops_long_segments():
    # 24 to 27 characters: the two middle pairs are too long for max_chars=20.
    pairs, stats = alignment.align_texts(FOLIO, MODERN, max_chars=20)
    assert [p[1] for p in pairs] == ["long live the king", "not a mouse stirring",
                                     "i have seen nothing"]
    assert stats["dropped_length"] == 3


def test_gap_rule():
    # A Folio-only clause inside a sentence cannot be cut away: the segment holds a 4-word gap.
    folio = "Long liue the King, and God saue him all.\nI haue seene nothing."
    modern = "Long live the king all!\nI have seen nothing."
    pairs, stats = alignment.align_texts(folio, modern)
    assert pairs == [("i haue seene nothing", "i have seen nothing")]
    assert stats["dropped_gap"] == 1
    assert alignment.align_texts(folio, modern, max_gap=4, min_equal=0.5)[0][0] == (
        "long liue the king and god saue him all", "long live the king all")


def test_long_sentence_is_cut_at_shared_line_ends():
    folio = ("Therefore I haue intreated him along\nWith vs to watch the minutes of this Night,\n"
             "That if againe this Apparition come.")
    modern = ("Therefore I have entreated him along\nWith us to watch the minutes of this night;\n"
              "That, if again this apparition come.")
    lines = [("therefore i haue intreated him along", "therefore i have entreated him along"),
             ("with vs to watch the minutes of this night",
              "with us to watch the minutes of this night"),
             ("that if againe this apparition come", "that if again this apparition come")]
    whole = tuple(" ".join(side) for side in zip(*lines))
    assert alignment.align_texts(folio, modern, max_chars=200)[0] == [whole]
    # Above max_chars the segment ends at the last line end that keeps it short enough.
    assert alignment.align_texts(folio, modern, max_chars=50)[0] == lines
    longest_line = max(len(side) for pair in lines for side in pair)
    assert alignment.align_texts(folio, modern, max_chars=longest_line)[0] == lines
    # Too short for any line: nothing fits, every segment is dropped for its length.
    pairs, stats = alignment.align_texts(folio, modern, max_chars=20)
    assert pairs == [] and stats["dropped_length"] == stats["segments"] > 0


def test_equal_fraction_rule():
    # Four 1:1 replacements by words sharing no letter (gaps of one word, not respellings)
    # between three equal words: 3/7 of the words match.
    source, target = "Ab the cd and ef of gh.", "Xy the zw and uv of rs."
    assert alignment.align_texts(source, target)[1]["dropped_equal_fraction"] == 1
    assert alignment.align_texts(source, target, min_equal=3 / 7)[0] == [
        ("ab the cd and ef of gh", "xy the zw and uv of rs")]
    assert alignment.align_texts(source, target, min_equal=3 / 7 + 0.01)[0] == []
    # Respellings the key misses count as matched: 7/7.
    assert alignment.align_texts("Ab the releefe and cheefe of gh.",
                                 "Ab the relief and chief of gh.")[1]["kept"] == 1
    # Without the equal words in between, the replacements merge into one 4-word gap.
    assert alignment.align_texts("Ab cd ef gh.", "Xy zw uv rs.")[1]["dropped_gap"] == 1


def test_tokenize_words_and_boundaries():
    words = alignment.tokenize_words(
        "'Tis th' Ambitious Norwey,\nwho's 'there'? Stand & vn-fold--\n\nnow")
    assert [(w.text, w.boundary) for w in words] == [
        ("'tis", 0), ("th'", 0), ("ambitious", 0), ("norwey", 1), ("who's", 0), ("there", 2),
        ("stand", 0), ("&", 0), ("vn-fold", 2), ("now", 2)]
    assert alignment.tokenize_words("") == []


def test_spelling_key_and_respelled():
    for folio, modern in [("vnfold", "unfold"), ("seene", "seen"), ("&", "and"),
                          ("Iewell", "jewel"), ("eyther", "either"), ("selfe", "self")]:
        assert alignment.spelling_key(folio) == alignment.spelling_key(modern), folio
    assert alignment.spelling_key("haue") != alignment.spelling_key("hate")
    words = alignment.tokenize_words
    assert alignment.respelled(words("your selfe"), words("yourself"))
    assert alignment.respelled(words("releefe"), words("relief"))
    assert not alignment.respelled(words("iust"), words("jump"))


def test_speech_cleaners():
    folio = ("The Tragedie of Hamlet\n\nActus Primus. Scoena Prima.\n\n"
             "Enter Barnardo and Francisco two Centinels.\n\n"
             "  Barnardo. Who's there?\n  Fran. Nay answer me: Stand & vnfold\nyour selfe\n\n"
             "   Sir To. Long liue the King\n\nExit.")
    modern = ("HAMLET\n\nACT I.\n\nScene I. Elsinore.\n\n[Enter Bernardo.]\n\n"
              "Ber.\nWho's there?\n\nFran.\nNay, answer me: stand, and unfold yourself.\n\n"
              "SIR TOBY.\nLong live the king!")
    folio_words = alignment.tokenize_words(alignment.folio_speech_text(folio))
    modern_words = alignment.tokenize_words(alignment.modern_speech_text(modern))
    assert [w.text for w in folio_words] == [
        "who's", "there", "nay", "answer", "me", "stand", "&", "vnfold", "your", "selfe", "long",
        "liue", "the", "king"]
    # A speech ends at a blank line: a strong boundary even without a full stop.
    assert folio_words[9].boundary == 2
    assert [w.text for w in modern_words] == [
        "hamlet", "who's", "there", "nay", "answer", "me", "stand", "and", "unfold", "yourself",
        "long", "live", "the", "king"]
    pairs, _ = alignment.align_folio_modern(folio, modern, min_words=2)
    assert ("long liue the king", "long live the king") in pairs


def test_bad_options():
    with pytest.raises(ValueError, match="min_equal"):
        alignment.align_texts("a b c", "a b c", min_equal=1.5)
    with pytest.raises(ValueError, match="max_gap"):
        alignment.align_texts("a b c", "a b c", max_gap=-1)


def test_real_play_keeps_most_text(shakespeare_dir):
    works = {w["work"]: w for w in __import__("keras_lm.data", fromlist=["x"]).shakespeare_works()}
    work = works["macbeth"]
    folio = (shakespeare_dir / work["folio_file"]).read_text(encoding="utf-8")
    modern = (shakespeare_dir / work["modern_file"]).read_text(encoding="utf-8")
    pairs, stats = alignment.align_folio_modern(folio, modern, max_chars=64)
    assert stats["kept"] == len(pairs) > 1000
    assert stats["kept_target_words"] > 0.7 * stats["target_words"]
    for source, target in pairs:  # every kept pair obeys the stated rule
        assert len(source) <= 64 and len(target) <= 64
        assert min(len(source.split()), len(target.split())) >= 3


def test_unicode_letters_stay_inside_words():
    # The Folio spells "Cæsar"; once "æ" split it into the words "c" and "sar".
    assert [w.text for w in alignment.tokenize_words("Why should Cæsar be")] == [
        "why", "should", "cæsar", "be"]
    assert alignment.spelling_key("Cæsar") == alignment.spelling_key("Caesar")
    # A decomposed "é" (e + combining accent) is the same word as the composed one.
    assert alignment.tokenize_words("Cafe\u0301 noir") == alignment.tokenize_words("Café noir")
    pairs, stats = alignment.align_texts("Why should Cæsar be a tyrant then?",
                                         "Why should Caesar be a tyrant then?")
    assert pairs == [("why should cæsar be a tyrant then", "why should caesar be a tyrant then")]
    assert stats["equal_words"] == 7


def test_blank_and_empty_texts_give_no_pairs():
    for source, target in [("", "a b c"), ("a b c", ""), ("\n\n\n", "\n"), (" . ", "!")]:
        pairs, stats = alignment.align_texts(source, target)
        assert pairs == [] and stats["kept"] == 0
