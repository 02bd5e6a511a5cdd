"""Tests of NGramLM against a straightforward dict-based Kneser-Ney, KenLM and round trips."""

import collections
import math

import numpy as np
import pytest

from keras_lm.models.ngram_arpa import escape_arpa_token
from keras_lm.models.ngram_arpa import unescape_arpa_token
from keras_lm.models.ngram_counting import kneser_ney_discounts
from keras_lm.models.ngram_lm import NGramLM

PAD, BOS, EOS = 0, 1, 2


def reference_kneser_ney(sequences, order, vocabulary_size, bos_id, eos_id):
    """Interpolated modified Kneser-Ney from the formulas, with tuples and dicts.

    Independent of the vectorised code: no ids, no backoff tables, no collapsing of the BOS
    padding. Returns a function context -> [V] probabilities.
    """
    padded = [[bos_id] * (order - 1) + [int(t) for t in s] + [eos_id] for s in sequences]
    raw = {k: collections.Counter() for k in range(1, order + 1)}
    for sequence in padded:
        for t in range(order - 1, len(sequence)):  # every predicted position
            for k in range(1, order + 1):
                raw[k][tuple(sequence[t - k + 1 : t + 1])] += 1
    counts = {order: raw[order]}
    for k in range(order - 1, 0, -1):
        counts[k] = collections.Counter(gram[1:] for gram in raw[k + 1])  # N1+(. g)

    discount, total, mass = {}, {}, {}
    for k in range(1, order + 1):
        n = collections.Counter(counts[k].values())
        d = (0.5, 1.0, 1.5)
        if n[1] and n[2] and n[3]:
            y = n[1] / (n[1] + 2 * n[2])
            estimate = (
                1 - 2 * y * n[2] / n[1],
                2 - 3 * y * n[3] / n[2],
                3 - 4 * y * n[4] / n[3],
            )
            if all(0 < estimate[r - 1] <= r for r in (1, 2, 3)):
                d = estimate
        discount[k] = lambda c, d=d: 0.0 if c == 0 else d[min(c, 3) - 1]
        total[k], mass[k] = collections.defaultdict(float), collections.defaultdict(float)
        for gram, c in counts[k].items():
            total[k][gram[:-1]] += c
            mass[k][gram[:-1]] += discount[k](c)

    def probability(word, history):
        k = len(history) + 1
        if k == 1:
            lower = 0.0 if word == bos_id else 1.0 / (vocabulary_size - 1)
        else:
            lower = probability(word, history[1:])
        if total[k].get(history, 0) == 0:
            return lower
        c = counts[k].get(history + (word,), 0)
        gamma = mass[k][history] / total[k][history]
        return (c - discount[k](c)) / total[k][history] + gamma * lower

    def distribution(context):
        history = tuple(([bos_id] * (order - 1) + [int(t) for t in context])[-(order - 1) :])
        history = history if order > 1 else ()
        return np.array([probability(w, history) for w in range(vocabulary_size)])

    return distribution


V, UNSEEN = 12, 11  # toy vocabulary: pad, bos, eos, ids 3..10 in the corpus, 11 never seen


def toy_corpus(rng, documents=40):
    """Documents of 0-14 ids drawn Zipf-like from 3..10, so counts-of-counts are all nonzero."""
    ids = np.arange(3, UNSEEN)
    weights = 1.0 / np.arange(1, ids.size + 1)
    return [
        rng.choice(ids, size=rng.integers(0, 15), p=weights / weights.sum())
        for _ in range(documents)
    ]


def test_hand_computed_bigram():
    # Corpus "<s> a b a </s>" with a=3, b=4, V=5 (pad, bos, eos, a, b).
    # Bigrams (<s> a), (a b), (b a), (a </s>) have count 1: n1=4, n2=0 -> fallback D=(.5,1,1.5).
    # Continuation counts: a <- {<s>, b} = 2, b <- {a} = 1, </s> <- {a} = 1: n3=0 -> fallback.
    # Unigram: total 4, gamma_1 = (0.5*2 + 1.0*1)/4 = 0.5, uniform 1/(V-1) = 1/4:
    #   P(a) = (2-1)/4 + 0.5/4 = 0.375, P(b) = P(</s>) = 0.5/4 + 0.125 = 0.25, P(pad) = 0.125.
    # Context a: total 2, gamma = (0.5+0.5)/2 = 0.5; P(b|a) = 0.5/2 + 0.5*0.25 = 0.375.
    # Context <s>: total 1, gamma = 0.5; P(a|<s>) = 0.5/1 + 0.5*0.375 = 0.6875.
    lm = NGramLM(2, 5, BOS, EOS).fit([[3, 4, 3]])
    np.testing.assert_allclose(
        lm.next_token_distribution([3]), [0.0625, 0.0, 0.375, 0.1875, 0.375], rtol=1e-12
    )
    assert lm.log_prob([], 3) == pytest.approx(math.log(0.6875), rel=1e-12)
    reference = reference_kneser_ney([[3, 4, 3]], 2, 5, BOS, EOS)
    np.testing.assert_allclose(reference([3]), lm.next_token_distribution([3]), rtol=1e-12)


def test_discounts_formula():
    counts = np.array([1] * 10 + [2] * 4 + [3] * 3 + [4] * 2 + [7])
    n1, n2, n3, n4 = 10, 4, 3, 2
    y = n1 / (n1 + 2 * n2)
    discounts, estimated = kneser_ney_discounts(counts)
    assert estimated
    np.testing.assert_allclose(
        discounts, [1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3]
    )
    fallback, estimated = kneser_ney_discounts(np.array([1, 1, 2]))  # n3 = 0
    assert not estimated
    np.testing.assert_allclose(fallback, [0.5, 1.0, 1.5])


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_matches_reference_kneser_ney(order, rng):
    corpus = toy_corpus(rng)
    lm = NGramLM(order, V, BOS, EOS).fit(corpus)
    reference = reference_kneser_ney(corpus, order, V, BOS, EOS)
    if order >= 2:  # the data is rich enough that some order uses estimated discounts
        assert lm.discounts_estimated.any()
    contexts = [[]] + [d[:i] for d in corpus[:10] for i in range(1, len(d) + 1)]
    contexts += [[UNSEEN], [UNSEEN, UNSEEN, 3], [3, 3, 3, 3, 3], [PAD, 4], [10, 9, 4, 3, 10]]
    for context in contexts:
        np.testing.assert_allclose(
            lm.next_token_distribution(np.array(context, np.int64)),
            reference(context),
            rtol=1e-10,
            atol=1e-15,
            err_msg=f"context {context}",
        )
    log_probs = lm.token_log_probs(corpus[0])
    expected = [
        math.log(reference(corpus[0][:i])[w]) for i, w in enumerate(list(corpus[0]) + [EOS])
    ]
    np.testing.assert_allclose(log_probs, expected, rtol=1e-10)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_distributions_are_normalised(order, rng):
    corpus = toy_corpus(rng)
    lm = NGramLM(order, V, BOS, EOS).fit(corpus)
    for context in ([], corpus[1][:2], [UNSEEN] * 4, [3, 4, 5, 6, 3, 4], [EOS, 3]):
        probs = lm.next_token_distribution(np.array(context, np.int64))
        assert probs.shape == (V,)
        assert probs.sum() == pytest.approx(1.0, abs=1e-12)
        assert probs[BOS] == 0.0
        assert np.all(np.delete(probs, BOS) > 0)  # unseen tokens (UNSEEN, PAD) included


@pytest.mark.parametrize("order", [3, 5])
def test_degenerate_corpora(order):
    # empty documents, and higher orders with no n-gram at all (empty tables)
    for corpus in ([[]], [[4]], [[4], [], [3, 3]]):
        lm = NGramLM(order, 6, BOS, EOS).fit([np.array(d, np.int64) for d in corpus])
        reference = reference_kneser_ney(corpus, order, 6, BOS, EOS)
        for context in ([], [4], [3, 3], [5, 5, 5, 5]):
            probs = lm.next_token_distribution(context)
            assert probs.sum() == pytest.approx(1.0, abs=1e-12)
            np.testing.assert_allclose(probs, reference(context), rtol=1e-10)


def test_score_sums_token_log_probs(rng):
    corpus = toy_corpus(rng)
    lm = NGramLM(3, V, BOS, EOS).fit(corpus[:30])
    held_out = corpus[30:]
    result = lm.score(held_out)
    per_token = [lm.token_log_probs(s) for s in held_out]
    assert result["tokens"] == sum(len(s) + 1 for s in held_out)
    assert result["log_prob_sum"] == pytest.approx(sum(p.sum() for p in per_token), rel=1e-12)
    assert result["perplexity"] == pytest.approx(
        math.exp(-result["log_prob_sum"] / result["tokens"])
    )
    # chain rule through log_prob one token at a time
    sequence = list(held_out[0]) + [EOS]
    one_by_one = [lm.log_prob(sequence[:i], w) for i, w in enumerate(sequence)]
    np.testing.assert_allclose(per_token[0], one_by_one, rtol=1e-12)


def test_arpa_round_trip_and_escaping(tmp_path, rng):
    corpus = toy_corpus(rng)
    vocabulary = ["[PAD]", "[BOS]", "[EOS]", " ", "\n", "a\\u0020", "é", "b c", "\t", "x", "y", "?"]
    for order, unk_id, names in ((3, None, None), (4, UNSEEN, vocabulary), (1, None, None)):
        lm = NGramLM(order, V, BOS, EOS, unk_id=unk_id).fit(corpus)
        path = str(tmp_path / f"model_{order}.arpa")
        lm.to_arpa(path, id_to_token=names)
        with open(path, encoding="utf-8") as file:
            text = file.read()
        assert "\\data\\" in text and "<s>" in text and "</s>" in text and "<unk>" in text
        for line in text.splitlines():  # no name broke a line: every n-gram has k words
            fields = line.split("\t")
            if len(fields) > 1:
                assert all(w and not any(c.isspace() for c in w) for w in fields[1].split(" "))
        loaded = NGramLM.from_arpa(path, id_to_token=names, vocabulary_size=V)
        assert loaded.order == order and loaded.unk_id == unk_id
        assert loaded.ngram_counts == lm.ngram_counts
        for context in ([], [3], [3, 4, 5], [UNSEEN, 6, 5, 4]):
            np.testing.assert_allclose(
                loaded.next_token_distribution(context),
                lm.next_token_distribution(context),
                rtol=1e-8,
            )
        assert loaded.score(corpus)["log_prob_sum"] == pytest.approx(
            lm.score(corpus)["log_prob_sum"], rel=1e-8
        )
    for name in vocabulary:
        assert unescape_arpa_token(escape_arpa_token(name)) == name


def test_kenlm_agrees(tmp_path, rng):
    kenlm = pytest.importorskip("kenlm", reason="kenlm is not installed (pip install kenlm)")
    corpus = toy_corpus(rng, documents=60)
    sentences = corpus[:5] + [
        np.array([UNSEEN, UNSEEN]),  # an id never seen in training
        np.array([3, UNSEEN, 4, 5, 3, 3, 3]),
        np.array([], np.int64),
        np.array([10] * 9),  # unseen long contexts
        np.array([PAD, 3]),
    ]
    for order in (2, 3, 5):
        lm = NGramLM(order, V, BOS, EOS).fit(corpus)
        path = str(tmp_path / f"kenlm_{order}.arpa")
        lm.to_arpa(path)
        model = kenlm.Model(path)
        assert model.order == order
        for sentence in sentences:
            text = " ".join(f"t{i}" for i in sentence)
            expected = lm.token_log_probs(sentence).sum() / math.log(10)
            assert model.score(text, bos=True, eos=True) == pytest.approx(expected, abs=1e-4)
        # an out-of-vocabulary string maps to <unk>, scored like an unseen id
        unseen = lm.token_log_probs(np.array([UNSEEN])).sum() / math.log(10)
        assert model.score("never_seen", bos=True, eos=True) == pytest.approx(unseen, abs=1e-4)


def test_generate_seeded_and_greedy(rng):
    corpus = toy_corpus(rng)
    lm = NGramLM(3, V, BOS, EOS).fit(corpus)
    prompt = np.array([3, 4])
    first = lm.generate(prompt, 30, temperature=0.8, seed=7)
    assert first.dtype == np.int32 and first.shape == (32,)
    np.testing.assert_array_equal(first[:2], prompt)
    np.testing.assert_array_equal(first, lm.generate(prompt, 30, temperature=0.8, seed=7))
    others = [lm.generate(prompt, 30, temperature=0.8, seed=s) for s in range(1, 4)]
    assert any(not np.array_equal(first, other) for other in others)
    assert BOS not in first

    greedy = lm.generate(prompt, 10, temperature=0)
    for i in range(2, greedy.size):
        assert greedy[i] == np.argmax(lm.next_token_distribution(greedy[:i]))

    # A prompt shorter than the N-1 context ids is a document start: all of it is read.
    lm5 = NGramLM(5, V, BOS, EOS).fit(corpus)
    for prompt in ([], [3], [3, 4, 5]):
        greedy = lm5.generate(prompt, 8, temperature=0)
        for i in range(len(prompt), greedy.size):
            assert greedy[i] == np.argmax(lm5.next_token_distribution(greedy[:i]))

    stopped = lm.generate([], 200, seed=3, stop_ids=(EOS,))
    assert stopped.size <= 200
    assert EOS not in stopped[:-1]
    if stopped.size < 200:
        assert stopped[-1] == EOS


def test_sampling_frequencies_follow_distribution():
    # unigram model: 2000 independent draws of the first token vs its probabilities
    lm = NGramLM(1, 6, BOS, EOS).fit([[3, 3, 3, 4, 4, 5]] * 3)
    probs = lm.next_token_distribution([])
    draws = [lm.generate([], 1, seed=s)[0] for s in range(2000)]
    frequencies = np.bincount(draws, minlength=6) / 2000
    np.testing.assert_allclose(frequencies, probs, atol=0.04)


def test_save_load_round_trip(tmp_path, rng):
    corpus = toy_corpus(rng)
    lm = NGramLM(4, V, BOS, EOS, unk_id=PAD).fit(corpus)
    lm.save(str(tmp_path / "lm"))
    loaded = NGramLM.load(str(tmp_path / "lm"), vocabulary_size=V)
    assert (loaded.order, loaded.vocabulary_size, loaded.bos_id, loaded.eos_id, loaded.unk_id) == (
        4,
        V,
        BOS,
        EOS,
        PAD,
    )
    np.testing.assert_array_equal(loaded.discounts, lm.discounts)
    for context in ([], [3], [3, 4, 5, 6]):
        np.testing.assert_array_equal(
            loaded.next_token_distribution(context), lm.next_token_distribution(context)
        )
    np.testing.assert_array_equal(loaded.generate([3], 20, seed=1), lm.generate([3], 20, seed=1))


def test_errors(tmp_path, rng):
    with pytest.raises(ValueError, match="order"):
        NGramLM(0, V, BOS, EOS)
    with pytest.raises(ValueError, match="eos_id"):
        NGramLM(2, V, BOS, V)
    with pytest.raises(ValueError, match="bos_id"):
        NGramLM(2, V, BOS, BOS)
    lm = NGramLM(2, V, BOS, EOS)
    with pytest.raises(RuntimeError, match="fit"):
        lm.score([[3]])
    with pytest.raises(ValueError, match="sequences.*empty"):
        lm.fit([])
    with pytest.raises(ValueError, match=rf"sequences\[1\].*id {V}.*vocabulary_size={V}"):
        lm.fit([[3, 4], [5, V]])
    with pytest.raises(ValueError, match="sequences.*-1"):
        lm.fit([[3, -1]])
    with pytest.raises(ValueError, match="bos_id"):
        lm.fit([[3, BOS, 4]])
    with pytest.raises(ValueError, match="wrap it in a list"):
        lm.fit(np.array([3, 4]))
    lm.fit(toy_corpus(rng))
    with pytest.raises(ValueError, match=f"context.*id {V + 1}"):
        lm.next_token_distribution([3, V + 1])
    with pytest.raises(ValueError, match=f"token.*id {V}"):
        lm.log_prob([3], V)
    with pytest.raises(ValueError, match="sequences.*vocabulary_size"):
        lm.score([[3, 4, 99]])
    with pytest.raises(ValueError, match="temperature"):
        lm.generate([3], 5, temperature=-1.0)
    lm.save(str(tmp_path / "lm"))
    with pytest.raises(ValueError, match=f"vocabulary_size={V}.*`vocabulary_size`={V + 1}"):
        NGramLM.load(str(tmp_path / "lm"), vocabulary_size=V + 1)
    lm.to_arpa(str(tmp_path / "lm.arpa"))
    with pytest.raises(ValueError, match="vocabulary_size"):
        NGramLM.from_arpa(str(tmp_path / "lm.arpa"), vocabulary_size=100)
    with pytest.raises(ValueError, match="id_to_token"):
        lm.to_arpa(str(tmp_path / "bad.arpa"), id_to_token=["x"] * V)  # duplicate names


def test_trains_on_shakespeare_slice(shakespeare_dir):
    # a real-text smoke test: higher orders fit the training text better
    text = (shakespeare_dir / "modern" / "sonnets.txt").read_text(encoding="utf-8")[:60000]
    characters = sorted(set(text))
    to_id = {c: i + 3 for i, c in enumerate(characters)}
    ids = np.array([to_id[c] for c in text], np.int64)
    train, held_out = ids[:50000], ids[50000:]
    perplexities = []
    for order in (1, 3, 5):
        lm = NGramLM(order, len(characters) + 3, BOS, EOS).fit([train])
        perplexities.append(lm.score([held_out])["perplexity"])
    assert perplexities[0] > perplexities[1] > perplexities[2] > 1
