import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lm.generation import generate
from keras_lm.models.recurrent_lm import RecurrentLM

V, T = 23, 12
CELLS = ["lstm", "gru", "rnn"]


def tiny(cell="lstm", **kwargs):
    config = dict(vocabulary_size=V, cell=cell, num_layers=2, hidden_dim=16, embedding_dim=8,
                  sequence_length=T)
    config.update(kwargs)
    return RecurrentLM(**config)


def expected_num_params(cell, vocabulary_size, num_layers, hidden_dim, embedding_dim,
                        tie_embeddings):
    """The docstring's formula, written out independently of the model."""
    gates, biases = {"rnn": (1, 1), "lstm": (4, 1), "gru": (3, 2)}[cell]
    total = vocabulary_size * embedding_dim
    if not tie_embeddings:
        total += embedding_dim * vocabulary_size
    if hidden_dim != embedding_dim:
        total += hidden_dim * embedding_dim
    for layer in range(num_layers):
        inputs = embedding_dim if layer == 0 else hidden_dim
        total += gates * (inputs * hidden_dim + hidden_dim * hidden_dim + biases * hidden_dim)
    return total


@pytest.mark.parametrize("cell", CELLS)
def test_cached_call_equals_full_call(rng, cell):
    model = tiny(cell)
    ids = rng.integers(1, V, size=(2, 7))
    full = np.array(model(ids))
    assert full.shape == (2, 7, V) and full.dtype == np.float32

    cache = model.init_cache(2, 7)
    assert len(cache) == (4 if cell == "lstm" else 2)
    assert all(tuple(c.shape) == (2, 16) for c in cache)
    steps = []
    for t in range(7):  # one token at a time, eagerly (the Keras layers with initial_state)
        logits, cache = model.call_with_cache(ids[:, t:t + 1], cache, t)
        steps.append(np.array(logits))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)

    # Under XLA (as in the decoding loop) the cells are stepped by keras.ops.scan instead.
    compiled = tf.function(model.call_with_cache, jit_compile=True)
    logits, state = compiled(ids[:, :3], model.init_cache(2, 7), 0)
    rest, _ = compiled(ids[:, 3:], state, 3)
    np.testing.assert_allclose(np.concatenate([logits, rest], axis=1), full, atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_generate_cached_equals_uncached_and_numpy_greedy(rng, cell):
    # XLA compiles dominate: two layers only for the LSTM, whose state is the most involved.
    model = tiny(cell, num_layers=2 if cell == "lstm" else 1)
    prompts = [rng.integers(1, V, size=n).tolist() for n in (3, 1, 5)]
    new = 6
    cached = generate(model, prompts, new, stop_token_ids=[])
    uncached = generate(model, prompts, new, stop_token_ids=[], use_cache=False)
    assert cached == uncached
    for prompt, continuation in zip(prompts, cached):
        ids = list(prompt)
        for _ in range(new):  # greedy on full forward passes of the prompt alone
            logits = np.array(model(np.array([ids], "int32")))
            ids.append(int(np.argmax(logits[0, -1])))
        assert continuation == ids[len(prompt):]


@pytest.mark.parametrize("cell", CELLS)
def test_packed_documents_match_documents_run_alone(rng, cell):
    model = tiny(cell, num_layers=1)
    docs = [rng.integers(1, V, size=n) for n in (4, 5, 2)]
    window = np.concatenate(docs)[None, :]  # (1, 11)
    segments = np.concatenate([np.full(len(d), i + 1) for i, d in enumerate(docs)])[None, :]
    packed = np.array(model({"token_ids": window, "segment_ids": segments}))
    offset = 0
    for doc in docs:
        alone = np.array(model(doc[None, :]))
        np.testing.assert_allclose(packed[:, offset:offset + len(doc)], alone, atol=1e-5)
        offset += len(doc)
    # Without segment ids the state runs on: the second document sees the first.
    unpacked = np.array(model({"token_ids": window}))
    assert not np.allclose(unpacked[:, 4:9], packed[:, 4:9], atol=1e-4)
    # One segment: the scanned cells give the Keras layer's own result.
    np.testing.assert_allclose(
        np.array(model({"token_ids": window, "segment_ids": np.ones_like(window)})),
        unpacked, atol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
def test_learns_a_tiny_corpus(cell):
    # After a 1 comes 2 or 4 depending on the token before it: this needs the state.
    pattern = np.array([1, 2, 3, 1, 4, 5])
    stream = np.tile(pattern, 40)
    x = np.stack([stream[i:i + T] for i in range(200)])
    y = np.stack([stream[i + 1:i + T + 1] for i in range(200)])
    model = tiny(cell, num_layers=1, hidden_dim=16, embedding_dim=None)
    model.compile(optimizer=keras.optimizers.Adam(3e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    first = model.evaluate(x, y, verbose=0)
    model.fit({"token_ids": x}, y, batch_size=16, epochs=12, verbose=0)
    last = model.evaluate(x, y, verbose=0)
    # Only a window starting at a 1 has an unpredictable label (ln 2 / 36 ~ 0.02 on average).
    assert first > 2.5 and last < 0.1, (first, last)


@pytest.mark.parametrize(
    "cell, tie_embeddings, embedding_dim",
    [("lstm", True, 8), ("gru", False, None), ("rnn", False, 8)],
)
def test_save_load_and_config_round_trip(tmp_path, rng, cell, tie_embeddings, embedding_dim):
    model = tiny(cell, tie_embeddings=tie_embeddings, embedding_dim=embedding_dim, dropout=0.1)
    ids = rng.integers(1, V, size=(2, T))
    expected = np.array(model(ids))

    revived = RecurrentLM.from_config(model.get_config())
    assert revived.get_config() == model.get_config()
    revived.build()
    assert revived.count_params() == model.count_params()

    model.save(tmp_path / "lm.keras")
    reloaded = keras.saving.load_model(tmp_path / "lm.keras")
    assert isinstance(reloaded, RecurrentLM)
    assert reloaded.get_config() == model.get_config()
    np.testing.assert_array_equal(np.array(reloaded(ids)), expected)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("tie_embeddings, embedding_dim", [(True, 8), (True, 16), (False, 8)])
def test_parameter_count_formula(cell, tie_embeddings, embedding_dim):
    model = tiny(cell, num_layers=2, hidden_dim=16, embedding_dim=embedding_dim,
                 tie_embeddings=tie_embeddings)
    model.build()
    assert model.count_params() == expected_num_params(cell, V, 2, 16, embedding_dim,
                                                       tie_embeddings)
    assert model.count_params_without_embeddings() == model.count_params() - V * embedding_dim


def test_dropout_only_in_training(rng):
    model = tiny("lstm", dropout=0.5)
    ids = rng.integers(1, V, size=(2, T))
    np.testing.assert_array_equal(np.array(model(ids)), np.array(model(ids, training=False)))
    assert not np.allclose(np.array(model(ids, training=True)), np.array(model(ids)))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_mixed_precision_close_to_float32(rng, cell):
    ids = rng.integers(1, V, size=(2, T))
    reference = tiny(cell)
    expected = np.array(reference(ids))
    keras.config.set_dtype_policy("mixed_bfloat16")
    mixed = tiny(cell)
    mixed.build()
    mixed.set_weights(reference.get_weights())
    logits = mixed(ids)
    assert logits.dtype == "float32"  # logits always float32 for a stable loss
    np.testing.assert_allclose(np.array(logits), expected, atol=0.05)
    cache = mixed.init_cache(2, T)
    step_logits, new_cache = mixed.call_with_cache(ids[:, :1], cache, 0)
    assert step_logits.dtype == "float32"
    assert [c.dtype for c in new_cache] == [c.dtype for c in cache]  # fixed loop state


def test_bad_arguments():
    with pytest.raises(ValueError, match="cell.*'transformer'"):
        tiny("transformer")
    with pytest.raises(ValueError, match="hidden_dim=0"):
        tiny(hidden_dim=0)
    with pytest.raises(ValueError, match="embedding_dim=-4"):
        tiny(embedding_dim=-4)
    with pytest.raises(ValueError, match="num_layers=1.5"):
        tiny(num_layers=1.5)
    with pytest.raises(ValueError, match="vocabulary_size"):
        tiny(vocabulary_size=0)
    with pytest.raises(ValueError, match="sequence_length"):
        tiny(sequence_length=None)
    with pytest.raises(ValueError, match="dropout=1.0"):
        tiny(dropout=1.0)
    with pytest.raises(ValueError, match="token_ids"):
        tiny()({"ids": np.ones((1, 2), "int32")})
    model = tiny("lstm")
    with pytest.raises(ValueError, match="cache.*4 tensors.*Received: 2"):
        model.call_with_cache(np.ones((1, 1), "int32"), model.init_cache(1)[:2], 0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fit_under_xla_matches_eager(cell):
    """fit(jit_compile=True) differentiates through the bounded scan and matches eager fit."""
    x = np.random.default_rng(0).integers(1, 20, size=(8, 12)).astype("int32")
    losses = []
    for jit in (True, False):
        keras.utils.set_random_seed(3)
        model = RecurrentLM(vocabulary_size=20, cell=cell, hidden_dim=16, sequence_length=32)
        model.build()
        model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        history = model.fit(x, x, batch_size=4, epochs=2, verbose=0, shuffle=False)
        losses.append(history.history["loss"])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_recurrent_layer(cell, kernel, recurrent_kernel, bias, inputs):
    """One layer from the textbook equations, float64, zero initial state: [B, T, I] -> [B, T, H].

    Gate order (i, f, g, o) for the LSTM and (z, r, h) for the GRU, Keras's layout; the GRU is
    the reset-after variant: h~ = tanh(W_h x + b_ih + r * (U_h h + b_rh)).
    """
    batch, steps, _ = inputs.shape
    units = recurrent_kernel.shape[0]
    h, c, outputs = np.zeros((batch, units)), np.zeros((batch, units)), []
    for t in range(steps):
        x = inputs[:, t]
        if cell == "lstm":
            i, f, g, o = np.split(x @ kernel + h @ recurrent_kernel + bias, 4, axis=-1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
        elif cell == "gru":
            xz, xr, xh = np.split(x @ kernel + bias[0], 3, axis=-1)
            hz, hr, hh = np.split(h @ recurrent_kernel + bias[1], 3, axis=-1)
            z, r = _sigmoid(xz + hz), _sigmoid(xr + hr)
            h = z * h + (1 - z) * np.tanh(xh + r * hh)
        else:
            h = np.tanh(x @ kernel + h @ recurrent_kernel + bias)
        outputs.append(h)
    return np.stack(outputs, axis=1)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("tie_embeddings, embedding_dim", [(True, 8), (False, 16)])
def test_logits_match_a_numpy_implementation_of_the_equations(rng, cell, tie_embeddings,
                                                             embedding_dim):
    model = tiny(cell, tie_embeddings=tie_embeddings, embedding_dim=embedding_dim)
    model.build()
    # Weights of scale 0.5 (not the small initial ones) so every gate and the state matter.
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32")
                       for w in model.get_weights()])
    ids = rng.integers(0, V, size=(2, 9))
    table = keras.ops.convert_to_numpy(model.embeddings.embeddings).astype("float64")
    x = table[ids]
    for layer in model.recurrent_layers:
        kernel, recurrent_kernel, bias = (keras.ops.convert_to_numpy(w).astype("float64")
                                          for w in layer.cell.weights)
        x = numpy_recurrent_layer(cell, kernel, recurrent_kernel, bias, x)
    if model.projection is not None:
        x = x @ keras.ops.convert_to_numpy(model.projection.kernel)
    output = table.T if tie_embeddings else keras.ops.convert_to_numpy(
        model.embeddings.reverse_embeddings)
    expected = x @ output  # (B, T, V)
    np.testing.assert_allclose(np.array(model(ids)), expected, atol=2e-5)
    # The scanned path (segment ids, also the XLA path) gives the same logits.
    np.testing.assert_allclose(
        np.array(model({"token_ids": ids, "segment_ids": np.ones_like(ids)})), expected,
        atol=2e-5)


def test_float_token_ids_are_an_error_and_empty_windows_give_empty_logits():
    model = tiny("lstm")
    # Before the fix float ids were truncated silently (1.7 read as token 1).
    with pytest.raises(TypeError, match="`token_ids` must be integer.*float32.*cast"):
        model(np.array([[1.7, 2.0]], "float32"))
    with pytest.raises(TypeError, match="`token_ids` must be integer.*float"):
        model({"token_ids": np.array([[1.0, 2.0]])})
    with pytest.raises(TypeError, match="`token_ids` must be integer"):
        model.call_with_cache(np.ones((1, 1), "float32"), model.init_cache(1), 0)
    # T = 0 gives [B, 0, V] as DecoderLM does (Keras's RNN layers fail on it) and keeps the state.
    assert tuple(model(np.zeros((2, 0), "int32")).shape) == (2, 0, V)
    cache = tuple(keras.ops.ones((1, 16)) for _ in range(4))
    logits, state = model.call_with_cache(np.zeros((1, 0), "int32"), cache, 0)
    assert tuple(logits.shape) == (1, 0, V)
    assert all(np.array_equal(np.array(a), np.array(b)) for a, b in zip(state, cache))
    assert tuple(model(np.array([[1, 2]], "uint8")).shape) == (1, 2, V)  # any integer dtype


def test_evaluation_scale_matches_a_hand_computation():
    """`keras-lm evaluate` on a RecurrentLM: every label once, the state reset at each window
    (as a Transformer's context is), nats per token and bits per character + separator."""
    import math

    from keras_lm.tasks.language_model import evaluate_model
    from keras_lm.tokenizers import CharTokenizer

    documents = ["to be or not", "ay", "the rest is silence."]
    tokenizer = CharTokenizer.fit(documents)
    model = RecurrentLM(vocabulary_size=tokenizer.vocabulary_size, cell="gru", hidden_dim=8,
                        sequence_length=32)
    window = 8
    metrics = evaluate_model(model, tokenizer, documents, window, 3)
    stream = [tokenizer.eos_id]
    for document in documents:
        stream += [int(i) for i in np.array(tokenizer.tokenize(document))] + [tokenizer.eos_id]
    nll, count = 0.0, 0
    for start in range(0, len(stream) - 1, window):  # each window from a zero state
        piece = stream[start:start + window + 1]
        logits = np.array(model(np.array([piece[:-1]], "int32")))[0].astype("float64")
        shifted = logits - logits.max(-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        nll -= sum(log_probs[i, label] for i, label in enumerate(piece[1:]))
        count += len(piece) - 1
    characters = sum(len(d) for d in documents) + len(documents)  # + one separator each
    assert metrics["tokens"] == count == characters
    assert metrics["loss"] == pytest.approx(nll / count, rel=1e-5)
    assert metrics["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-5)
    assert metrics["bits_per_token"] == pytest.approx(nll / count / math.log(2), rel=1e-5)
    assert metrics["bits_per_character"] == pytest.approx(nll / math.log(2) / characters,
                                                          rel=1e-5)
