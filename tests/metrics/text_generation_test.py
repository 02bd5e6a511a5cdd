import collections
import functools
import math

import pytest

from keras_lm import metrics

HYPOTHESES = ["long live the king", "i haue seen nothing at all", "tush tush twill not appear"]
REFERENCES = ["long live the king", "i have seen nothing", "tush tush 'twill not appear"]


def ngrams(items, n):
    return collections.Counter(tuple(items[i:i + n]) for i in range(len(items) - n + 1))


def reference_bleu(hypotheses, references):
    """Corpus BLEU from its definition (Papineni et al., 2002): clipped n-gram precisions
    pooled over the corpus, geometric mean over n = 1..4, brevity penalty."""
    matches, totals = [0] * 4, [0] * 4
    hyp_length = ref_length = 0
    for h, r in zip(hypotheses, references):
        h, r = h.split(), r.split()  # 13a tokenisation is whitespace for these strings
        hyp_length, ref_length = hyp_length + len(h), ref_length + len(r)
        for n in range(1, 5):
            hyp_ngrams, ref_ngrams = ngrams(h, n), ngrams(r, n)
            matches[n - 1] += sum(min(c, ref_ngrams[g]) for g, c in hyp_ngrams.items())
            totals[n - 1] += sum(hyp_ngrams.values())
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / 4
    brevity = min(0.0, 1 - ref_length / hyp_length)
    return 100 * math.exp(log_precision + brevity)


def reference_chrf(hypotheses, references, order=6, beta=2.0):
    """Corpus chrF (Popović, 2015) as sacrebleu 2 defines it: character n-gram statistics
    (spaces removed) pooled over the corpus, precision and recall averaged over n, F-beta."""
    stats = [[0, 0, 0] for _ in range(order)]
    for h, r in zip(hypotheses, references):
        h, r = "".join(h.split()), "".join(r.split())
        for n in range(1, order + 1):
            hyp_ngrams, ref_ngrams = ngrams(h, n), ngrams(r, n)
            stats[n - 1][0] += sum(hyp_ngrams.values())
            stats[n - 1][1] += sum(ref_ngrams.values())
            stats[n - 1][2] += sum((hyp_ngrams & ref_ngrams).values())
    precision = sum(m / h for h, _, m in stats) / order
    recall = sum(m / r for _, r, m in stats) / order
    return 100 * (1 + beta**2) * precision * recall / (beta**2 * precision + recall)


def levenshtein(a, b):
    """Edit distance by memoised recursion, independent of the implementation's DP."""
    @functools.lru_cache(maxsize=None)
    def d(i, j):
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return d(len(a), len(b))


def test_sacrebleu_scores_match_their_definitions():
    assert metrics.corpus_bleu(HYPOTHESES, REFERENCES) == pytest.approx(
        reference_bleu(HYPOTHESES, REFERENCES), rel=1e-6)
    assert metrics.corpus_chrf(HYPOTHESES, REFERENCES) == pytest.approx(
        reference_chrf(HYPOTHESES, REFERENCES), rel=1e-6)
    assert metrics.corpus_bleu(REFERENCES, REFERENCES) == pytest.approx(100.0)
    assert metrics.bleu_signature().startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|")
    assert metrics.chrf_signature().startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|")


def test_exact_match_and_character_error_rate():
    assert metrics.exact_match(HYPOTHESES, REFERENCES) == pytest.approx(1 / 3)
    for a, b in [("kitten", "sitting"), ("", "abc"), ("haue", "have"), ("flaw", "lawn"),
                 ("your selfe", "yourself"), ("abc", "")]:
        assert metrics.edit_distance(a, b) == levenshtein(a, b)
        assert metrics.edit_distance(b, a) == levenshtein(a, b)
    errors = sum(levenshtein(h, r) for h, r in zip(HYPOTHESES, REFERENCES))
    assert metrics.character_error_rate(HYPOTHESES, REFERENCES) == pytest.approx(
        errors / sum(len(r) for r in REFERENCES))
    assert metrics.character_error_rate(REFERENCES, REFERENCES) == 0.0
    scores = metrics.text_generation_metrics(HYPOTHESES, REFERENCES)
    assert scores["examples"] == 3 and scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["bleu"] == pytest.approx(metrics.corpus_bleu(HYPOTHESES, REFERENCES))


def test_bad_input():
    with pytest.raises(ValueError, match="same length"):
        metrics.corpus_bleu(["a"], ["a", "b"])
    with pytest.raises(TypeError, match="lists of str"):
        metrics.exact_match("abc", "abc")
    with pytest.raises(TypeError, match=r"references\[0\]"):
        metrics.character_error_rate(["a"], [None])
    with pytest.raises(ValueError, match="empty"):
        metrics.corpus_chrf([], [])


def test_all_metrics_read_one_pass_iterables_once():
    # Before the fix, text_generation_metrics read generators once per metric: the second
    # read saw them empty and raised "`hypotheses` is empty".
    scores = metrics.text_generation_metrics((h for h in HYPOTHESES), iter(REFERENCES))
    expected = metrics.text_generation_metrics(HYPOTHESES, REFERENCES)
    assert scores == expected and scores["examples"] == 3
    assert scores["character_error_rate"] == pytest.approx(
        sum(levenshtein(h, r) for h, r in zip(HYPOTHESES, REFERENCES))
        / sum(len(r) for r in REFERENCES))


def test_bleu_brevity_penalty_and_exponential_smoothing_by_hand():
    hypotheses, references = ["a b c d e", "x y"], ["a b x d e f g", "x y z"]
    # Pooled clipped matches / totals: 1-grams 6/7, 2-grams 3/5 (ab, de, xy), 3-grams 0/3,
    # 4-grams 0/2. sacrebleu's "exp" smoothing replaces the k-th zero precision by
    # 1 / (2^k * total): 1/(2*3), 1/(4*2). Hypotheses 7 words, references 10: brevity
    # penalty exp(1 - 10/7).
    log_mean = (math.log(6 / 7) + math.log(3 / 5) + math.log(1 / 6) + math.log(1 / 8)) / 4
    expected = 100 * math.exp(1 - 10 / 7) * math.exp(log_mean)
    assert metrics.corpus_bleu(hypotheses, references) == pytest.approx(expected, rel=1e-9)
    # 13a splits punctuation off words: "mat." is "mat ." on both sides.
    assert metrics.corpus_bleu(["the cat sat on the mat."], ["the cat sat on the mat ."]) == (
        pytest.approx(100.0))


def test_character_error_rate_with_empty_references():
    assert metrics.character_error_rate(["ab"], [""]) == math.inf
    assert metrics.character_error_rate([""], [""]) == 0.0
    # Corpus level: (2 + 1) / (0 + 2), above 1.
    assert metrics.character_error_rate(["ab", "x"], ["", "xy"]) == pytest.approx(1.5)
    with pytest.raises(TypeError, match="`hypotheses` must be a list of str"):
        metrics.character_error_rate(None, ["a"])
    with pytest.raises(TypeError, match="`references` must be a list of str"):
        metrics.corpus_bleu(["a"], None)
