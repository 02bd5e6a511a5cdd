import keras
import numpy as np
import pytest

from keras_lm.models.seq2seq_decoding import decode_ids
from keras_lm.models.seq2seq_decoding import encode_sources
from keras_lm.models.seq2seq_decoding import generate
from keras_lm.models.seq2seq_transformer import Seq2SeqTransformer
from keras_lm.tokenizers import CharTokenizer
from keras_lm.training import MaskedSparseCrossEntropy

# The eager reference decoders attend over a single key at their first step.
pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis")

V, S, T = 14, 8, 10
BOS, EOS = 2, 3


def make_model(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    options = dict(vocabulary_size=V, num_layers=1, num_heads=2, hidden_dim=16,
                   sequence_length=S, target_sequence_length=T, intermediate_dim=32)
    options.update(kwargs)
    model = Seq2SeqTransformer(**options)
    model.build()
    # GPT-style 0.02 initialisation makes every logit nearly equal; spread the embeddings so
    # that decoding makes clear choices (near-ties would make equality tests meaningless).
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if "embeddings" in variable.path:
            variable.assign(rng.normal(0.0, 1.0, variable.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def model():
    return make_model()


def inputs(encoder, decoder):
    return {"encoder_token_ids": np.array(encoder, "int32"),
            "decoder_token_ids": np.array(decoder, "int32")}


SOURCES = np.array([[5, 6, 7, 8, 9, 3, 0, 0],
                    [4, 3, 0, 0, 0, 0, 0, 0],
                    [9, 9, 8, 7, 6, 5, 4, 3],
                    [6, 5, 3, 0, 0, 0, 0, 0]], "int32")


def test_shapes_config_round_trip_and_tied_embeddings(model):
    decoder = np.array([[BOS, 5, 6, 7]] * 4, "int32")
    logits = model(inputs(SOURCES, decoder))
    assert logits.shape == (4, 4, V) and logits.dtype == "float32"
    # Shared vocabulary: one embedding matrix serves encoder, decoder and output.
    embeddings = [v for v in model.weights if "token_embedding" in v.path]
    assert [tuple(v.shape) for v in embeddings] == [(V, 16)]
    clone = Seq2SeqTransformer.from_config(model.get_config())
    clone.build()
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(inputs(SOURCES, decoder)), logits, atol=1e-6)
    assert clone.get_config() == model.get_config()

    separate = make_model(target_vocabulary_size=11, tie_embeddings=False,
                          position_encoding="sinusoidal", num_decoder_layers=2)
    shapes = sorted(tuple(v.shape) for v in separate.weights if "token_embedding" in v.path)
    assert shapes == [(11, 16), (14, 16), (16, 11)]  # target, source, untied output
    assert separate(inputs(SOURCES, decoder % 11)).shape == (4, 4, 11)
    assert len(separate.decoder_blocks) == 2 and len(separate.encoder_blocks) == 1


def test_teacher_forcing_is_causal_and_padding_is_invisible(model):
    decoder = np.array([[BOS, 5, 6, 7, 8, EOS]] * 4, "int32")
    logits = np.asarray(model(inputs(SOURCES, decoder)))
    # Causal: changing decoder input t changes no logit before t.
    changed = decoder.copy()
    changed[:, 3] = 11
    new = np.asarray(model(inputs(SOURCES, changed)))
    np.testing.assert_allclose(new[:, :3], logits[:, :3], atol=1e-5)
    assert np.abs(new[:, 3:] - logits[:, 3:]).max() > 1e-3
    # More encoder padding (id 0) changes nothing; decoder padding after the target changes
    # nothing at the real positions.
    padded = np.concatenate([SOURCES[:, :6], np.zeros((4, 2), "int32")], axis=1)
    row1 = np.asarray(model(inputs(padded[1:2], decoder[1:2])))
    short = np.asarray(model(inputs(SOURCES[1:2, :2], decoder[1:2])))
    np.testing.assert_allclose(row1, short, atol=1e-5)
    junk = np.concatenate([decoder, np.full((4, 3), 9, "int32")], axis=1)
    np.testing.assert_allclose(np.asarray(model(inputs(SOURCES, junk)))[:, :6], logits,
                               atol=1e-5)
    # The source matters (cross-attention is wired in).
    assert np.abs(logits[0] - logits[1]).max() > 1e-3


def test_padding_never_contributes_to_the_loss(model, rng):
    decoder = np.array([[BOS, 5, 6, 7, 0, 0], [BOS, 8, 0, 0, 0, 0]], "int32")
    labels = np.array([[5, 6, 7, EOS, 0, 0], [8, EOS, 0, 0, 0, 0]], "int32")
    weights = (np.arange(6)[None] < np.array([[4], [2]])).astype("float32")
    loss_fn = MaskedSparseCrossEntropy()
    logits = np.asarray(model(inputs(SOURCES[:2], decoder)), "float64")
    # Independent reference: mean of -log softmax over the 6 real labels.
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    real = [(b, t) for b in range(2) for t in range(6) if weights[b, t]]
    expected = -np.mean([log_probs[b, t, labels[b, t]] for b, t in real])
    loss = float(loss_fn(labels, model(inputs(SOURCES[:2], decoder)), weights))
    assert loss == pytest.approx(expected, rel=1e-5)
    # Garbage in the padding (inputs and labels) leaves the loss unchanged.
    noisy_decoder, noisy_labels = decoder.copy(), labels.copy()
    noisy_decoder[weights == 0] = rng.integers(1, V, (weights == 0).sum())
    noisy_labels[weights == 0] = rng.integers(1, V, (weights == 0).sum())
    noisy = float(loss_fn(noisy_labels, model(inputs(SOURCES[:2], noisy_decoder)), weights))
    assert noisy == pytest.approx(loss, rel=1e-6)


def _reference_greedy(model, source, max_length):
    """Independent path: full forward pass on the growing target, argmax, in numpy."""
    decoder = [BOS]
    for _ in range(max_length):
        logits = np.asarray(model(inputs([source], [decoder])))
        token = int(np.argmax(logits[0, -1]))
        decoder.append(token)
        if token == EOS:
            break
    return decoder[1:]


def test_cached_step_equals_the_full_decoder(model):
    """Precomputed cross-attention keys/values give the blocks' own outputs."""
    decoder = np.array([[BOS, 5, 6, 7]] * 4, "int32")
    state = model.decoding_state(SOURCES)
    assert len(state) == 2 + model.num_decoder_layers
    full = np.asarray(model.decode(decoder, *state))
    np.testing.assert_allclose(full, model(inputs(SOURCES, decoder)), atol=1e-6)
    cache = model.init_cache(4, T)
    for cross in (state, state[:2]):  # with precomputed keys/values, and through block.call
        prefill, filled = model.call_with_cache(decoder[:, :3], cache, 0, *cross)
        step, _ = model.call_with_cache(decoder[:, 3:], filled, 3, *cross)
        np.testing.assert_allclose(np.concatenate([prefill, step], 1), full, atol=1e-5)


def test_cached_equals_uncached_equals_reference_greedy(model):
    cached, cached_lengths = decode_ids(model, SOURCES, T, BOS, [EOS])
    # The reference path recomputes every prefix, as a plain TF graph (quicker to build than
    # a second XLA program).
    uncached, uncached_lengths = decode_ids(model, SOURCES, T, BOS, [EOS], use_cache=False,
                                            jit_compile=False)
    np.testing.assert_array_equal(cached, uncached)
    np.testing.assert_array_equal(cached_lengths, uncached_lengths)
    for row, source in enumerate(SOURCES):
        out = cached[row, : cached_lengths[row]].tolist()
        assert out == _reference_greedy(model, source, T)
        assert (cached[row, cached_lengths[row]:] == 0).all()
    # Each row decodes as if alone: a batch made of one source only gives the same rows.
    for row in range(len(SOURCES)):
        alone, _ = decode_ids(model, np.repeat(SOURCES[row:row + 1], 4, 0), T, BOS, [EOS])
        np.testing.assert_array_equal(alone[0], cached[row])


def test_sampling_is_reproducible_and_respects_top_k(model):
    def draw(seed):
        return decode_ids(model, SOURCES, T, BOS, [], temperature=1.5, top_k=3, seed=seed)[0]

    a, b, c = draw(7), draw(7), draw(8)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    for row in range(2):  # every sampled token is among the 3 most likely given its prefix
        prefix = [BOS]
        for token in a[row]:
            logits = np.asarray(model(inputs(SOURCES[row:row + 1], [prefix])))[0, -1]
            assert token in np.argsort(-logits)[:3]
            prefix.append(int(token))


def test_generate_text_and_bad_input():
    tokenizer = CharTokenizer.fit(["abcdefghij"])  # 4 specials + 10 letters = V
    model = make_model(seed=1)
    texts = ["abc", "j", "hgfe"]
    outputs = generate(model, texts, tokenizer=tokenizer, max_length=T, jit_compile=False)
    assert len(outputs) == 3 and all(isinstance(o, str) for o in outputs)
    ids, lengths = decode_ids(model, [np.asarray(tokenizer.tokenize(t)).tolist() + [EOS]
                                      + [0] * (S - len(t) - 1) for t in texts],
                              T, BOS, [EOS], jit_compile=False)
    for output, row, length in zip(outputs, ids, lengths):
        expected = [i for i in row[:length].tolist() if i != EOS]
        assert output == tokenizer.detokenize(expected).numpy().decode()
    with pytest.raises(ValueError, match="sequence_length=8"):
        generate(model, "abcdefghij", tokenizer=tokenizer)
    with pytest.raises(ValueError, match="max_length"):
        generate(model, "abc", tokenizer=tokenizer, max_length=T + 1)
    with pytest.raises(ValueError, match="deterministic"):
        generate(model, "abc", tokenizer=tokenizer, beam_size=2, temperature=0.7)
    with pytest.raises(ValueError, match="does not match"):
        generate(model, "abc", tokenizer=CharTokenizer.fit(["ab"]))
    with pytest.raises(ValueError, match="empty"):
        generate(model, [], tokenizer=tokenizer)


def test_bad_arguments(model):
    with pytest.raises(ValueError, match="position_encoding"):
        Seq2SeqTransformer(V, 1, 2, 16, S, position_encoding="rotary")
    with pytest.raises(ValueError, match="divisible"):
        Seq2SeqTransformer(V, 1, 3, 16, S)
    with pytest.raises(ValueError, match="num_layers"):
        Seq2SeqTransformer(V, 0, 2, 16, S)
    with pytest.raises(ValueError, match="decoder_token_ids"):
        model({"encoder_token_ids": SOURCES})


class _WithoutSpecial:
    """A tokenizer with one special id removed (as a SentencePiece model without bos/eos)."""

    def __init__(self, tokenizer, missing):
        self._tokenizer, self._missing = tokenizer, missing

    def __getattr__(self, name):
        if name == self._missing:
            return None
        return getattr(self._tokenizer, name)


def test_padded_id_rows_encode_as_unpadded_and_empty_id_rows_are_refused(model):
    tokenizer = CharTokenizer.fit(["abcdefghij"])
    eos = tokenizer.eos_id
    # Trailing padding of an id row (a padded array) is dropped before eos is appended: the
    # encoder sees the unpadded source, not "5 6 0 0 eos" (positions shifted, eos moved).
    padded = encode_sources(np.array([[5, 6, 0, 0]]), tokenizer, S)
    assert padded.tolist() == [[5, 6, eos, 0, 0, 0, 0, 0]]
    np.testing.assert_array_equal(padded, encode_sources([[5, 6]], tokenizer, S))
    # A padded array wider than the model, without a tokenizer: its real row fits.
    wide = np.zeros((1, S + 4), "int32")
    wide[0, :3] = [5, 6, EOS]
    assert encode_sources(wide, None, S).tolist() == [[5, 6, EOS, 0, 0, 0, 0, 0]]
    # An empty id source without a tokenizer leaves the encoder nothing to attend to.
    for empty in ([], [0, 0]):
        with pytest.raises(ValueError, match="Input 1 is an empty source"):
            generate(model, [[5, EOS], empty], bos_id=BOS, eos_id=EOS, jit_compile=False)
    # With a tokenizer an empty source is just eos, like an empty text.
    np.testing.assert_array_equal(encode_sources([[]], tokenizer, S),
                                  encode_sources([""], tokenizer, S))


def test_bad_special_ids_sampler_settings_and_tokenizers_are_named(model):
    source = [[5, 6, EOS]]
    with pytest.raises(ValueError, match=r"`bos_id` must be an int in \[0, 14\)"):
        generate(model, source, bos_id=V, eos_id=EOS)
    with pytest.raises(ValueError, match="`eos_id` must be an int"):
        generate(model, source, bos_id=BOS, eos_id=-1)
    with pytest.raises(ValueError, match="`temperature` must be a number >= 0"):
        generate(model, source, bos_id=BOS, eos_id=EOS, temperature=-1.0)
    with pytest.raises(ValueError, match=r"`top_p` must be a number in \(0, 1\]"):
        generate(model, source, bos_id=BOS, eos_id=EOS, temperature=1.0, top_p=0.0)
    with pytest.raises(ValueError, match="`top_k` must be an int >= 0"):
        generate(model, source, bos_id=BOS, eos_id=EOS, temperature=1.0, top_k=-2)
    tokenizer = CharTokenizer.fit(["abcdefghij"])
    with pytest.raises(ValueError, match="source tokenizer .* has no `eos_id`"):
        generate(model, "abc", tokenizer=_WithoutSpecial(tokenizer, "eos_id"),
                 target_tokenizer=tokenizer)
    with pytest.raises(ValueError, match="target tokenizer .* bos_id=None"):
        generate(model, "abc", tokenizer=tokenizer,
                 target_tokenizer=_WithoutSpecial(tokenizer, "bos_id"))


def test_source_sensitive_decoding_ignores_padding_and_batch_neighbours():
    """The fixture model's outputs barely depend on the source (every row decodes alike), so
    a cross-attention masking bug in the cached path would go unseen there. Larger kernels
    make each source decode differently; then padding and batch neighbours must not matter."""
    model = make_model()
    for variable in model.weights:
        if "kernel" in variable.path:
            variable.assign(np.asarray(variable) * 30.0)
    cached, lengths = decode_ids(model, SOURCES, T, BOS, [EOS], jit_compile=False)
    rows = [cached[r, : lengths[r]].tolist() for r in range(len(SOURCES))]
    assert len({tuple(row) for row in rows}) == len(SOURCES)  # the test can see the source
    for r, source in enumerate(SOURCES):
        assert rows[r] == _reference_greedy(model, source, T)
        real = int((source != 0).sum())
        # Alone and without its padding (the encoder then has only the real positions).
        alone, alone_length = decode_ids(model, source[None, :real], T, BOS, [EOS],
                                         jit_compile=False)
        assert alone[0, : alone_length[0]].tolist() == rows[r]
    uncached, _ = decode_ids(model, SOURCES, T, BOS, [EOS], use_cache=False, jit_compile=False)
    np.testing.assert_array_equal(uncached, cached)
    # Beam search with one beam is greedy decoding (same ids, eos dropped by generate).
    greedy = generate(model, SOURCES.tolist(), bos_id=BOS, eos_id=EOS, jit_compile=False)
    beam = generate(model, SOURCES.tolist(), bos_id=BOS, eos_id=EOS, beam_size=1,
                    return_scores=True, jit_compile=False)[0]
    assert greedy == beam == [row[:-1] if row[-1] == EOS else row for row in rows]
