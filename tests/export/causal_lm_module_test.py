"""CausalLMModule's functions in process: the same text as model.generate, exact scores.

One model and module per family for the whole file: the module's decoding loop is
XLA-compiled once per batch size, so every call below with 4 prompts reuses one program.
"""

import numpy as np
import pytest
import tensorflow as tf

from keras_lm.export import CausalLMModule
from keras_lm.testing.configs import TINY_TEXT

from .conftest import CONTEXT
from .conftest import reference_scores
from .conftest import tiny_model

# A prompt longer than the context, an empty one, one with unknown characters ("Z", "é").
PROMPTS = ["it was the ", "", TINY_TEXT[:40], "Zé?"]
MAX_NEW = 6


@pytest.fixture(scope="module", params=["decoder", "lstm"])
def lm(request, char_tokenizer):
    model = tiny_model(request.param, char_tokenizer.vocabulary_size)
    return model, CausalLMModule(model, char_tokenizer, max_new_tokens=MAX_NEW)


def _texts(outputs):
    return [t.decode("utf-8") for t in outputs["texts"].numpy()]


def _options(module, prompts, max_new_tokens, temperature=0.0, top_k=0, top_p=1.0, seed=0):
    return module.generate_with_options(tf.constant(prompts), max_new_tokens, temperature,
                                        top_k, top_p, seed)


def _argmax_chain(model, tokenizer, prompt, max_new_tokens):
    """Greedy text without keras_lm.generation: a full forward pass per token, in numpy.

    The prompt keeps its last C - max_new_tokens tokens; an empty one is the separator.
    """
    ids = np.asarray(tokenizer.tokenize(prompt)).tolist() or [tokenizer.eos_id]
    ids = ids[-(model.sequence_length - max_new_tokens):]
    new = []
    for _ in range(max_new_tokens):
        token = int(np.argmax(np.asarray(model(np.array([ids + new], np.int32)))[0, -1]))
        if token == tokenizer.eos_id:
            break
        new.append(token)
    return new


def test_generate_equals_model_generate(lm, char_tokenizer):
    model, module = lm
    greedy = _options(module, PROMPTS, MAX_NEW)
    expected = model.generate(PROMPTS, max_new_tokens=MAX_NEW, tokenizer=char_tokenizer,
                              temperature=0.0, truncate=True)
    assert _texts(greedy) == expected
    assert _texts(module.generate(tf.constant(PROMPTS))) == expected  # the defaults

    sampled = _options(module, PROMPTS, MAX_NEW, temperature=1.3, top_k=6, top_p=0.95,
                       seed=11)
    assert _texts(sampled) == model.generate(
        PROMPTS, max_new_tokens=MAX_NEW, tokenizer=char_tokenizer, temperature=1.3, top_k=6,
        top_p=0.95, seed=11, truncate=True)
    assert _texts(sampled) != expected  # the options reach the sampler


def test_greedy_tokens_are_the_argmax_chain(lm, char_tokenizer):
    model, module = lm
    out = _options(module, PROMPTS, MAX_NEW)
    chains = [_argmax_chain(model, char_tokenizer, p, MAX_NEW) for p in PROMPTS]
    assert out["token_counts"].numpy().tolist() == [len(c) for c in chains]
    assert _texts(out) == [np.asarray(char_tokenizer.detokenize(c)).item().decode()
                           for c in chains]
    # Degenerate options fall back to the most likely token rather than failing.
    for options in ({"temperature": -1.0}, {"temperature": 1.5, "top_p": 0.0, "seed": 3},
                    {"temperature": 1.5, "top_k": 1, "seed": 4}):
        assert _texts(_options(module, PROMPTS, MAX_NEW, **options)) == _texts(out)


def test_max_new_tokens_is_clamped_to_the_context(lm, char_tokenizer):
    model, module = lm
    most = CONTEXT - 1
    out = _options(module, PROMPTS, 10_000)
    assert out["token_counts"].numpy().tolist() == [
        len(_argmax_chain(model, char_tokenizer, p, most)) for p in PROMPTS]
    out = _options(module, PROMPTS, -3)  # at least one token
    assert out["token_counts"].numpy().tolist() == [
        len(_argmax_chain(model, char_tokenizer, p, 1)) for p in PROMPTS]
    assert CausalLMModule(model, char_tokenizer, max_new_tokens=10_000).defaults[
        "max_new_tokens"] == most


def test_score_equals_a_numpy_reference(lm, char_tokenizer):
    model, module = lm
    texts = ["it was the age", "", TINY_TEXT[:50], "Z"]  # 51 labels: 4 windows of 16
    out = module.score(tf.constant(texts))
    expected = reference_scores(model, char_tokenizer, texts)
    np.testing.assert_allclose(out["log_likelihood"].numpy(), [e[0] for e in expected],
                               rtol=1e-5)
    assert out["token_counts"].numpy().tolist() == [e[1] for e in expected]


def test_score_in_shorter_windows_equals_the_reference(lm, char_tokenizer):
    model, _ = lm
    module = CausalLMModule(model, char_tokenizer, max_new_tokens=MAX_NEW, score_length=5)
    texts = ["it was the age", "", TINY_TEXT[:23]]  # 15, 1 and 24 labels: 3, 1, 5 windows
    out = module.score(tf.constant(texts))
    expected = reference_scores(model, char_tokenizer, texts, width=5)
    np.testing.assert_allclose(out["log_likelihood"].numpy(), [e[0] for e in expected],
                               rtol=1e-5)
    assert out["token_counts"].numpy().tolist() == [e[1] for e in expected]
    # Whole-context windows score the long text differently: the option reaches `score`.
    full = reference_scores(model, char_tokenizer, texts[2:])[0][0]
    assert abs(out["log_likelihood"].numpy()[2] - full) > 1e-3
    assert module.metadata()["score_length"] == 5
    for bad in (0, CONTEXT + 1, 2.5, True):
        with pytest.raises(ValueError, match="score_length"):
            CausalLMModule(model, char_tokenizer, score_length=bad)


def test_an_empty_batch_gives_empty_outputs(lm):
    _, module = lm
    empty = tf.constant([], tf.string)
    for out in (module.generate(empty), module.score(empty)):
        assert all(value.shape == (0,) for value in out.values())


def test_vocabulary_mismatch_is_refused(char_tokenizer):
    model = tiny_model("decoder", char_tokenizer.vocabulary_size + 1)
    with pytest.raises(ValueError, match="does not match the model"):
        CausalLMModule(model, char_tokenizer)


def test_a_tokenizer_without_an_end_of_text_id_is_refused():
    from keras_lm.tokenizers import ByteTokenizer

    class NoEndOfText(ByteTokenizer):
        eos_id = None

    no_eos = NoEndOfText()
    model = tiny_model("decoder", no_eos.vocabulary_size)
    with pytest.raises(ValueError, match="end-of-text id"):
        CausalLMModule(model, no_eos)
