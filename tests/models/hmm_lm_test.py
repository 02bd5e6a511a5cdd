import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lm.generation import generate
from keras_lm.models import hmm_inference
from keras_lm.models.hmm_em import baum_welch
from keras_lm.models.hmm_lm import HMMLanguageModel

K, V = 3, 4


def tiny(num_states=K, vocabulary_size=V, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = HMMLanguageModel(num_states, vocabulary_size, sequence_length=32, **kwargs)
    model.build()
    return model


def enumerate_paths(model, tokens):
    """Every state path of `tokens` with its joint probability P(x, z), by brute force."""
    initial, transition, emission = model.probabilities()
    paths = np.array(list(itertools.product(range(model.num_states), repeat=len(tokens))))
    joint = initial[paths[:, 0]] * emission[paths[:, 0], tokens[0]]
    for t in range(1, len(tokens)):
        joint = joint * transition[paths[:, t - 1], paths[:, t]] * emission[paths[:, t], tokens[t]]
    return paths, joint  # (K^T, T), (K^T,)


def generating_hmm():
    """A known HMM (K=3, V=5) whose states favour different tokens."""
    model = tiny(3, 5)
    emission = np.full((3, 5), 0.01)
    for state, tokens in enumerate([(0, 1), (2, 3), (4,)]):
        emission[state, list(tokens)] = 1.0
    model.set_probabilities(
        initial=[0.6, 0.3, 0.1],
        transition=[[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.25, 0.05, 0.7]],
        emission=emission / emission.sum(1, keepdims=True),
    )
    return model


def numpy_forward(model, tokens):
    """Independent reference: the scaled forward algorithm in float64 numpy.

    Returns (log P(x), [P(x_{t+1} = . | x_{<=t}) for every t]).
    """
    initial, transition, emission = model.probabilities()
    predictive, log_likelihood, next_token = initial, 0.0, []
    for token in tokens:
        joint = predictive * emission[:, token]
        log_likelihood += np.log(joint.sum())
        predictive = (joint / joint.sum()) @ transition
        next_token.append(predictive @ emission)
    return log_likelihood, np.array(next_token)


def test_log_likelihood_equals_brute_force_over_all_paths(rng):
    model = tiny()
    tokens = rng.integers(0, V, size=(3, 5))
    lengths = [5, 3, 1]
    mask = np.arange(5)[None, :] < np.array(lengths)[:, None]
    got = np.asarray(model.log_likelihood(tokens, mask))
    expected = [np.log(enumerate_paths(model, row[:n])[1].sum()) for row, n in zip(tokens, lengths)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_next_token_logits_are_normalised_conditionals(rng):
    model = tiny()
    tokens = rng.integers(0, V, size=(2, 4))
    logits = np.asarray(model(tokens))  # (2, 4, V)
    assert logits.dtype == np.float32 and logits.shape == (2, 4, V)
    np.testing.assert_allclose(np.exp(logits).sum(-1), 1.0, atol=1e-5)
    for b, t, v in itertools.product(range(2), range(4), range(V)):
        prefix = tokens[b, : t + 1]
        extended = np.append(prefix, v)
        expected = np.log(enumerate_paths(model, extended)[1].sum()) - np.log(
            enumerate_paths(model, prefix)[1].sum()
        )
        np.testing.assert_allclose(logits[b, t, v], expected, atol=1e-5)


def test_viterbi_equals_brute_force(rng):
    model = tiny()
    tokens = rng.integers(0, V, size=(4, 5))
    lengths = [5, 5, 4, 2]
    mask = np.arange(5)[None, :] < np.array(lengths)[:, None]
    paths, log_probs = (np.asarray(x) for x in model.viterbi(tokens, mask))
    for row, n, path, log_prob in zip(tokens, lengths, paths, log_probs):
        candidates, joint = enumerate_paths(model, row[:n])
        np.testing.assert_array_equal(path[:n], candidates[np.argmax(joint)])
        assert np.all(path[n:] == -1)
        np.testing.assert_allclose(log_prob, np.log(joint.max()), rtol=1e-5)


def test_expected_counts_equal_brute_force_posteriors(rng):
    model = tiny(2, V, dtype="float64")
    tokens = rng.integers(0, V, size=(2, 5))
    lengths = [5, 3]
    mask = np.arange(5)[None, :] < np.array(lengths)[:, None]
    counts = hmm_inference.expected_counts(*model.log_parameters(), tokens, mask)
    initial = np.zeros(2)
    transition = np.zeros((2, 2))
    emission = np.zeros((2, V))
    for row, n in zip(tokens, lengths):
        paths, joint = enumerate_paths(model, row[:n])
        posterior = joint / joint.sum()
        for path, weight in zip(paths, posterior):
            initial[path[0]] += weight
            for t in range(n):
                emission[path[t], row[t]] += weight
                if t:
                    transition[path[t - 1], path[t]] += weight
    np.testing.assert_allclose(np.asarray(counts["initial"]), initial, atol=1e-10)
    np.testing.assert_allclose(np.asarray(counts["transition"]), transition, atol=1e-10)
    np.testing.assert_allclose(np.asarray(counts["emission"]), emission, atol=1e-10)


def test_long_sequence_does_not_underflow(rng):
    model = tiny(4, 6)
    tokens = rng.integers(0, 6, size=(1, 3000))
    expected, next_token = numpy_forward(model, tokens[0])
    assert expected < -3000  # P(x) itself is far below the float64 range (~1e-308)
    np.testing.assert_allclose(np.asarray(model.log_likelihood(tokens))[0], expected, rtol=1e-5)
    logits = np.asarray(tf.function(model)(tokens))  # compiled: an eager loop is slow
    np.testing.assert_allclose(np.exp(logits[0, -5:]), next_token[-5:], atol=1e-5)


def test_log_matmul_exp_far_outside_the_exponential_range(rng):
    log_x = rng.normal(size=(3, 4)) - 1000.0
    log_m = rng.normal(size=(4, 5)) * 30 + 500.0
    got = np.asarray(hmm_inference.log_matmul_exp(log_x.astype("float32"),
                                                  log_m.astype("float32")))
    terms = log_x[:, :, None] + log_m[None, :, :]  # (3, 4, 5)
    top = terms.max(axis=1)
    expected = top + np.log(np.exp(terms - top[:, None, :]).sum(axis=1))
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_cached_state_equals_full_call(rng):
    model = tiny()
    tokens = rng.integers(0, V, size=(2, 7))
    full = np.asarray(model(tokens))
    cache = model.init_cache(2, 7)
    logits, cache = model.call_with_cache(tokens[:, :3], cache, 0)
    steps = [np.asarray(logits)]
    for t in range(3, 7):
        logits, cache = model.call_with_cache(tokens[:, t:t + 1], cache, t)
        steps.append(np.asarray(logits))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


def test_cached_generation_equals_recomputation_and_reference(rng):
    model = tiny(4, 9)
    prompts = [list(rng.integers(0, 9, size=n)) for n in (3, 7, 1)]
    cached = generate(model, prompts, max_new_tokens=6, stop_token_ids=[])
    uncached = generate(model, prompts, max_new_tokens=6, stop_token_ids=[], use_cache=False)
    assert cached == uncached
    for prompt, out in zip(prompts, cached):
        ids = list(prompt)
        for _ in range(6):  # greedy from the float64 numpy forward algorithm
            ids.append(int(np.argmax(numpy_forward(model, ids)[1][-1])))
        assert out == ids[len(prompt):]


def test_segment_ids_restart_the_state(rng):
    model = tiny()
    docs = [rng.integers(0, V, size=n) for n in (4, 2, 3)]
    window = np.concatenate(docs)[None, :]
    segments = np.concatenate([np.full(len(d), i + 1) for i, d in enumerate(docs)])[None, :]
    packed = np.asarray(model({"token_ids": window, "segment_ids": segments}))
    offset = 0
    for doc in docs:
        alone = np.asarray(model(doc[None, :]))
        np.testing.assert_allclose(packed[:, offset:offset + len(doc)], alone, atol=1e-6)
        offset += len(doc)


def test_sample_follows_the_model():
    model = tiny(2, 3)
    tokens, states = model.sample(20000, 2, seed=5)
    again, _ = model.sample(20000, 2, seed=5)
    np.testing.assert_array_equal(tokens, again)
    initial, _, _ = model.probabilities()
    np.testing.assert_allclose(np.bincount(states[:, 0], minlength=2) / 20000, initial, atol=0.015)
    pairs = np.array(list(itertools.product(range(3), repeat=2)))
    exact = np.exp(np.asarray(model.log_likelihood(pairs), np.float64))
    assert abs(exact.sum() - 1) < 1e-5
    empirical = np.array([np.mean((tokens[:, 0] == a) & (tokens[:, 1] == b)) for a, b in pairs])
    np.testing.assert_allclose(empirical, exact, atol=0.015)


def test_baum_welch_never_decreases_the_likelihood():
    data, _ = generating_hmm().sample(40, 15, seed=1)
    model = tiny(3, 5, dtype="float64", seed=3)
    history = baum_welch(model, data, iterations=15, batch_size=16)
    assert history.shape == (16,)
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[:-1])), np.diff(history)
    assert history[-1] > history[0] + 10  # and it does learn something
    np.testing.assert_allclose(history[-1], np.sum(np.asarray(model.log_likelihood(data))),
                               rtol=1e-12)


def test_baum_welch_with_one_state_is_the_unigram_estimate(rng):
    sequences = [rng.integers(0, V, size=n) for n in (5, 9, 2)]
    model = tiny(1, V)
    history = baum_welch(model, sequences, iterations=1)
    counts = np.bincount(np.concatenate(sequences), minlength=V)
    unigram = np.sum(counts * np.log(counts / counts.sum()))
    np.testing.assert_allclose(history[-1], unigram, rtol=1e-5)


def test_baum_welch_reads_a_dataset_like_arrays(rng):
    sequences = [rng.integers(0, V, size=n) for n in (6, 3, 5, 6)]
    ids = np.zeros((4, 6), np.int32)
    mask = np.zeros((4, 6), bool)
    for i, row in enumerate(sequences):
        ids[i, :len(row)], mask[i, :len(row)] = row, True
    dataset = tf.data.Dataset.from_tensor_slices({"token_ids": ids, "mask": mask}).batch(2)
    model = tiny(seed=4)
    start = model.get_weights()
    from_list = baum_welch(model, sequences, iterations=3, batch_size=2)
    model.set_weights(start)
    from_dataset = baum_welch(model, dataset, iterations=3)
    np.testing.assert_allclose(from_dataset, from_list, rtol=1e-6)


def _held_out_data():
    true = generating_hmm()
    train, _ = true.sample(200, 25, seed=11)
    test, _ = true.sample(200, 25, seed=12)
    return true, train, test


def test_baum_welch_recovers_the_generating_likelihood():
    true, train, test = _held_out_data()
    # EM finds a local maximum and can idle on plateaus: keep the best of three random
    # starts by training likelihood, as one would in practice.
    model = tiny(3, 5)
    runs = []
    for seed in (2, 3, 4):
        model.set_weights(tiny(3, 5, seed=seed).get_weights())  # one model: one compile
        history = baum_welch(model, train, iterations=100, batch_size=200)
        runs.append((history[-1], model.get_weights()))
    best, weights = max(runs, key=lambda run: run[0])
    model.set_weights(weights)
    true_train = np.sum(np.asarray(true.log_likelihood(train)))
    assert best >= true_train  # the maximum likelihood fit beats the truth in-sample
    gap = (np.sum(np.asarray(true.log_likelihood(test)))
           - np.sum(np.asarray(model.log_likelihood(test)))) / test.size
    assert gap < 0.01, gap  # nats per token on held-out data


def test_gradient_training_recovers_the_generating_likelihood():
    true, train, test = _held_out_data()
    model = tiny(3, 5, seed=2)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss=loss)
    full_batch = tf.data.Dataset.from_tensors((train[:, :-1], train[:, 1:])).repeat()
    before = float(loss(test[:, 1:], model(test[:, :-1])))
    model.fit(full_batch, steps_per_epoch=200, epochs=1, shuffle=False, verbose=0)
    after = float(loss(test[:, 1:], model(test[:, :-1])))
    reference = float(loss(test[:, 1:], true(test[:, :-1])))  # the generating model's
    assert before > reference + 0.1
    assert after - reference < 0.01, (after, reference)  # nats per token, held out


def test_save_load_round_trip(tmp_path, rng):
    model = tiny(logits_initializer=keras.initializers.RandomUniform(-2, 2))
    tokens = rng.integers(0, V, size=(2, 6))
    expected = np.asarray(model(tokens))
    model.save(tmp_path / "hmm.keras")
    reloaded = keras.saving.load_model(tmp_path / "hmm.keras")
    assert reloaded.get_config() == model.get_config()
    np.testing.assert_array_equal(np.asarray(reloaded(tokens)), expected)


def test_fit_under_a_distribution_strategy_and_restore(tmp_path, rng):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    tokens = rng.integers(0, V, size=(8, 9))
    with strategy.scope():
        model = tiny()
        model.compile(optimizer="adam",
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(tokens[:, :-1], tokens[:, 1:], batch_size=4, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    model.save_weights(tmp_path / "hmm.weights.h5")
    restored = tiny(seed=9)
    restored.load_weights(tmp_path / "hmm.weights.h5")
    np.testing.assert_array_equal(np.asarray(restored(tokens)), np.asarray(model(tokens)))


def test_mixed_precision_policy_still_computes_in_float32(rng):
    tokens = rng.integers(0, V, size=(2, 5))
    reference = tiny()
    keras.config.set_dtype_policy("mixed_bfloat16")
    mixed = tiny()
    mixed.set_weights(reference.get_weights())
    logits = mixed(tokens)
    assert logits.dtype == "float32"
    np.testing.assert_allclose(np.asarray(logits), np.asarray(reference(tokens)), atol=1e-6)


def test_bad_arguments():
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="num_states"):
            HMMLanguageModel(bad, V)
    with pytest.raises(ValueError, match="vocabulary_size"):
        HMMLanguageModel(K, 0)
    model = tiny()
    with pytest.raises(ValueError, match=r"token_ids.*vocabulary \[0, 4\)"):
        model(np.array([[0, 1, 4]]))
    with pytest.raises(ValueError, match="token_ids"):
        model.log_likelihood(np.array([[0, -1]]))
    with pytest.raises(ValueError, match="sequences.*vocabulary_size=tokenizer"):
        baum_welch(model, [[0, 1, 7]], iterations=1)
    with pytest.raises(ValueError, match="mask"):
        model.viterbi(np.array([[0, 1, 2]]), mask=np.array([[True, False, True]]))
    with pytest.raises(ValueError, match="iterations"):
        baum_welch(model, [[0, 1]], iterations=-1)
    with pytest.raises(ValueError, match="pseudo_count"):
        baum_welch(model, [[0, 1]], pseudo_count=-0.5)
    with pytest.raises(ValueError, match="emission"):
        model.set_probabilities(emission=np.full((K, V + 1), 1 / (V + 1)))
    with pytest.raises(ValueError, match="transition"):
        model.set_probabilities(transition=np.full((K, K), 0.5))
    with pytest.raises(ValueError, match="vocabulary"):
        generate(model, [[0, 9]], max_new_tokens=2)


def test_empty_sequences_have_log_likelihood_zero():
    # A batch of empty sequences ([B, 0], e.g. empty texts padded to their longest length):
    # P(empty) = 1, and Viterbi has no state to return; the forward scan cannot run 0 steps.
    model = tiny()
    np.testing.assert_array_equal(np.asarray(model.log_likelihood(np.zeros((2, 0), int))),
                                  [0.0, 0.0])
    paths, log_probs = model.viterbi(np.zeros((2, 0), int))
    assert np.asarray(paths).shape == (2, 0)
    np.testing.assert_array_equal(np.asarray(log_probs), [0.0, 0.0])
