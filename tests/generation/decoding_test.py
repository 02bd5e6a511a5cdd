import numpy as np
import pytest

from keras_lm.generation import generate
from keras_lm.models import DecoderLM
from keras_lm.tokenizers import ByteTokenizer

CONTEXT = 24


@pytest.fixture(scope="module")
def tokenizer():
    return ByteTokenizer()


def _model(vocabulary_size, position_encoding="learned", seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    model = DecoderLM(vocabulary_size=vocabulary_size, num_layers=2, num_heads=4, hidden_dim=32,
                      sequence_length=CONTEXT, num_key_value_heads=2,
                      position_encoding=position_encoding)
    model.build()
    return model


def _reference_greedy(model, prompt, max_new_tokens):
    """Independent path: full forward pass on the growing sequence, argmax, in numpy."""
    ids = list(prompt)
    for _ in range(max_new_tokens):
        logits = np.array(model(np.array([ids])))
        ids.append(int(np.argmax(logits[0, -1])))
    return ids[len(prompt):]


@pytest.mark.parametrize("position_encoding", ["learned", "sinusoidal", "rotary"])
def test_cached_equals_uncached_equals_reference(position_encoding, rng):
    model = _model(40, position_encoding)
    prompts = [list(rng.integers(1, 40, size=n)) for n in (3, 7, 1)]
    cached = generate(model, prompts, max_new_tokens=9, stop_token_ids=[])
    uncached = generate(model, prompts, max_new_tokens=9, stop_token_ids=[], use_cache=False)
    assert cached == uncached
    for prompt, out in zip(prompts, cached):
        assert len(out) == 9
        assert out == _reference_greedy(model, prompt, 9)  # each row decodes as if alone


def test_sampling_is_reproducible_and_respects_top_k(rng):
    model = _model(40)
    prompts = [[1, 2, 3], [4, 5]]
    a = generate(model, prompts, max_new_tokens=10, temperature=1.5, top_k=4, seed=11,
                 stop_token_ids=[])
    b = generate(model, prompts, max_new_tokens=10, temperature=1.5, top_k=4, seed=11,
                 stop_token_ids=[])
    c = generate(model, prompts, max_new_tokens=10, temperature=1.5, top_k=4, seed=12,
                 stop_token_ids=[])
    assert a == b and a != c
    # Every sampled token is among the 4 most likely given its own prefix.
    for prompt, out in zip(prompts, a):
        ids = list(prompt)
        for token in out:
            logits = np.array(model(np.array([ids])))[0, -1]
            assert token in np.argsort(-logits)[:4]
            ids.append(token)


def test_a_sampled_prompt_gives_the_same_text_alone_or_in_any_batch(rng):
    """The seed alone fixes a row's samples: not its index, nor the other prompts."""
    model = _model(40, "rotary")
    prompts = [list(rng.integers(1, 40, size=n)) for n in (3, 7, 1, 5)]
    options = dict(max_new_tokens=8, temperature=1.2, top_p=0.9, seed=21, stop_token_ids=[])
    batch = generate(model, prompts, **options)
    alone = [generate(model, [p], **options)[0] for p in prompts]
    assert batch == alone
    assert generate(model, prompts[::-1], **options) == alone[::-1]
    assert len({tuple(row) for row in batch}) > 1  # and the rows do differ


def test_stop_tokens_and_strings(tokenizer):
    model = _model(tokenizer.vocabulary_size)
    ids = generate(model, [[70, 71]], max_new_tokens=12, stop_token_ids=[])[0]
    assert len(ids) == 12
    stop = ids[4]
    stopped = generate(model, [[70, 71]], max_new_tokens=12, stop_token_ids=[stop])[0]
    assert stopped == ids[: ids.index(stop)]  # cut before the first stop token
    greedy = generate(model, "ab", max_new_tokens=12, tokenizer=tokenizer, stop_token_ids=[])
    cut = greedy[3:5]
    assert generate(model, "ab", max_new_tokens=12, tokenizer=tokenizer, stop_token_ids=[],
                    stop_strings=[cut]) == greedy.split(cut, 1)[0]
    # One string is one stop string, not a set of characters.
    assert generate(model, "ab", max_new_tokens=12, tokenizer=tokenizer, stop_token_ids=[],
                    stop_strings=cut) == greedy.split(cut, 1)[0]


def test_text_prompts_of_different_lengths(tokenizer):
    model = _model(tokenizer.vocabulary_size, "rotary")
    batch = generate(model, ["a", "hello th", ""], max_new_tokens=5, tokenizer=tokenizer,
                     stop_token_ids=[])
    alone = [generate(model, p, max_new_tokens=5, tokenizer=tokenizer, stop_token_ids=[])
             for p in ["a", "hello th", ""]]
    assert batch == alone


def test_long_prompts(tokenizer):
    model = _model(tokenizer.vocabulary_size)
    prompt = "x" * 20
    with pytest.raises(ValueError, match="exceeds the model's context of 24"):
        generate(model, prompt, max_new_tokens=8, tokenizer=tokenizer)
    truncated = generate(model, prompt, max_new_tokens=8, tokenizer=tokenizer, truncate=True,
                         stop_token_ids=[])
    assert truncated == generate(model, "x" * 16, max_new_tokens=8, tokenizer=tokenizer,
                                 stop_token_ids=[])
    # The whole context in one call.
    assert len(generate(model, [[1]], max_new_tokens=CONTEXT - 1, stop_token_ids=[])[0]) == 23


def test_bad_input(tokenizer):
    model = _model(30)
    with pytest.raises(ValueError, match="does not match"):
        generate(model, "hi", tokenizer=tokenizer)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, [[1, 2]], max_new_tokens=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, [[1, 2]], max_new_tokens=CONTEXT)
    with pytest.raises(ValueError, match="tokenizer"):
        generate(model, "text without tokenizer")
    with pytest.raises(ValueError, match="outside"):
        generate(model, [[1, 99]])
    with pytest.raises(ValueError, match="outside"):
        generate(model, [[1, -1]])  # not the last token, as an index would read it
    with pytest.raises(ValueError, match=r"Prompt 1 holds 1.7 .*must be ints"):
        generate(model, [[1, 2], [1.7]])  # not truncated onto token 1
    assert generate(model, [np.array([1, 2], np.int64)], max_new_tokens=2, temperature=0.0) \
        == generate(model, [[1, 2]], max_new_tokens=2, temperature=0.0)  # numpy ints are ids
    with pytest.raises(ValueError, match="empty"):
        generate(model, [])
    with pytest.raises(ValueError, match="flat list of token ids"):
        generate(model, [1, 2, 3])
    with pytest.raises(ValueError, match="stop_strings` needs a `tokenizer"):
        generate(model, [[1, 2]], stop_strings=["x"])


@pytest.mark.parametrize("setting, value", [
    ("temperature", -0.5), ("temperature", "hot"), ("top_k", -1), ("top_k", 2.5),
    ("top_p", 0.0), ("top_p", -0.1), ("top_p", 1.5), ("seed", 2**32 + 5), ("seed", 1.5),
])
def test_sampler_settings_out_of_range_are_refused(setting, value):
    model = _model(30)
    with pytest.raises(ValueError, match=f"`{setting}` must be"):
        generate(model, [[1, 2]], max_new_tokens=2, **{setting: value})


def test_a_tokenizer_without_an_end_of_text_id(tokenizer):
    class NoEndOfText(ByteTokenizer):
        eos_id = None

    no_eos = NoEndOfText()
    model = _model(no_eos.vocabulary_size)
    # No stop token by default: the full max_new_tokens, the same text as with no stops.
    assert generate(model, "ab", max_new_tokens=6, tokenizer=no_eos) == generate(
        model, "ab", max_new_tokens=6, tokenizer=tokenizer, stop_token_ids=[])
    with pytest.raises(ValueError, match="no end-of-text id"):
        generate(model, "", max_new_tokens=6, tokenizer=no_eos)


def test_decode_ids_refuses_a_buffer_wider_than_the_context():
    from keras_lm.generation import decode_ids

    model = _model(30)
    tokens = np.ones((1, CONTEXT + 4), np.int32)
    with pytest.raises(ValueError, match="context is 24 tokens"):
        decode_ids(model, tokens, [2], 0.0, 0, 1.0, 0, np.zeros([0], np.int32))


def test_prefill_chunk_does_not_change_tokens(rng):
    """Prefill chunks of any size (overlapping, or one chunk for all) decode the same."""
    from keras_lm.generation import decode_ids

    model = _model(40)
    lengths = np.array([11, 6, 9], np.int32)
    tokens = np.zeros((3, 20), np.int32)
    for row, length in enumerate(lengths):
        tokens[row, :length] = rng.integers(1, 40, size=length)

    def decode(chunk):
        out, end = decode_ids(model, tokens, lengths, 0.0, 0, 1.0, 0, np.zeros([0], np.int32),
                              prefill_chunk=chunk)
        return np.asarray(out), np.asarray(end)

    # start = 6. Chunk 4: [0, 4) and [2, 6); 5: [0, 5) and [1, 6); 64: one chunk of all 20.
    reference, end = decode(4)
    np.testing.assert_array_equal(end, [20, 20, 20])
    for chunk in (5, 64):
        np.testing.assert_array_equal(decode(chunk)[0], reference)
    for row, length in enumerate(lengths):  # prompt kept, greedy continuation after it
        prompt = list(tokens[row, :length])
        np.testing.assert_array_equal(reference[row, :length], prompt)
        assert list(reference[row, length:]) == _reference_greedy(model, prompt, 20 - length)
    with pytest.raises(ValueError, match="prefill_chunk"):
        decode(0)


def test_prefill_chunk_for():
    from keras_lm.generation.decoding import prefill_chunk_for

    assert [prefill_chunk_for(n) for n in (2, 64, 100, 256, 2048)] == [16, 16, 25, 64, 64]
