import math
import os

import numpy as np
import pytest

from keras_lm.tasks import language_model
from keras_lm.tasks import workdir as workdir_lib
from keras_lm.testing.configs import shrink
from keras_lm.testing.configs import write_tiny_corpus


@pytest.fixture
def tiny_config(tmp_path):
    source = write_tiny_corpus(str(tmp_path / "corpus"))
    return shrink(language_model.default_config(), source, steps=30)


def test_train_evaluate_generate(tmp_path, tiny_config):
    tiny_config.train.learning_rate = 1e-2
    tiny_config.train.eval_steps = None  # validate on the whole split, like `evaluate`
    workdir = str(tmp_path / "run")
    result = language_model.train(tiny_config, workdir)
    assert result.final_step == 30
    history = result.history["loss"]
    assert history[-1] < history[0] - 0.5  # it learns the repeated sentence
    metrics = language_model.evaluate(workdir, "validation")
    assert metrics["step"] == 30
    # Char-level: one token per character (separators count as characters too).
    assert metrics["bits_per_character"] == pytest.approx(metrics["bits_per_token"])
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["loss"]))
    assert metrics["tokens"] == metrics["characters"] + metrics["documents"]
    # The evaluation loss equals the token-weighted Keras validation perplexity's log.
    assert metrics["loss"] == pytest.approx(math.log(result.history["val_perplexity"][-1]),
                                            rel=1e-4)
    text = language_model.generate(workdir, ["it was "], max_new_tokens=8, temperature=0)
    assert isinstance(text[0], str) and len(text[0]) == 8
    # Evaluate on test uses the test documents: a different corpus size.
    assert language_model.evaluate(workdir, "test")["tokens"] == metrics["tokens"]


def test_evaluation_matches_a_numpy_computation(tmp_path, tiny_config):
    from keras_lm import tokenizers
    from keras_lm.data import load_documents

    documents = load_documents(tiny_config.data.source, "validation")
    tokenizer = tokenizers.CharTokenizer.fit(documents)
    model = language_model.build_model(tiny_config.model, tokenizer.vocabulary_size)
    metrics = language_model.evaluate_model(model, tokenizer, documents, 16, 4)
    # Independent path: one long stream, scored window by window with numpy log-softmax.
    stream = [tokenizer.eos_id]
    for doc in documents:
        stream += np.array(tokenizer.tokenize(doc)).tolist() + [tokenizer.eos_id]
    nll = 0.0
    for start in range(0, len(stream) - 1, 16):
        window = stream[start:start + 17]
        logits = np.array(model(np.array([window[:-1]])))[0].astype("float64")
        logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1,
                               keepdims=True)) - logits.max(-1, keepdims=True)
        nll -= sum(logp[i, window[i + 1]] for i in range(len(window) - 1))
    chars = sum(len(d) for d in documents) + len(documents)
    assert metrics["tokens"] == len(stream) - 1
    assert metrics["bits_per_character"] == pytest.approx(nll / math.log(2) / chars, rel=1e-4)


def test_workdir_guards(tmp_path, tiny_config):
    workdir = str(tmp_path / "run")
    tiny_config.train.steps = 2
    language_model.train(tiny_config, workdir)
    other = tiny_config.copy_and_resolve_references()
    other.model.hidden_dim = 32
    with pytest.raises(ValueError, match="different model"):
        language_model.train(other, workdir)
    with pytest.raises(FileNotFoundError, match="not a keras_lm workdir"):
        language_model.evaluate(str(tmp_path / "nothing"))
    empty = str(tmp_path / "empty")
    workdir_lib.write_config(empty, tiny_config)
    with pytest.raises(FileNotFoundError, match="No latest checkpoint"):
        language_model.evaluate(empty)


def test_bad_model_config(tiny_config):
    fields = tiny_config.model.to_dict()
    fields["hiden_dim"] = 8
    with pytest.raises(ValueError, match="hiden_dim.*Valid fields"):
        language_model.build_model(fields, 50)
    with pytest.raises(ValueError, match="Unknown config.model.type"):
        language_model.build_model({**tiny_config.model.to_dict(), "type": "lstmm"}, 50)
    with pytest.raises(ValueError, match="does not match the tokenizer"):
        language_model.build_model({**tiny_config.model.to_dict(), "vocabulary_size": 7}, 50)


@pytest.mark.parametrize("model", [
    dict(type="rnn", cell="gru", num_layers=1, hidden_dim=16, sequence_length=64),
    dict(type="ngram", order=3),
    dict(type="hmm", num_states=4, sequence_length=64),
])
def test_classic_models_share_the_task(tmp_path, tiny_config, model):
    """Recurrent and n-gram LMs train, evaluate and generate through the same task code."""
    tiny_config.model = model
    workdir = str(tmp_path / model["type"])
    result = language_model.train(tiny_config, workdir)
    metrics = language_model.evaluate(workdir, "validation")
    assert metrics["tokens"] == metrics["characters"] + metrics["documents"]
    if model["type"] == "ngram":
        # Counts of a corpus made of one repeated sentence: the validation text is easy.
        assert metrics["bits_per_character"] < 1.0
        assert result.model.order == 3
    texts = language_model.generate(workdir, ["it was "], max_new_tokens=6, temperature=0.0,
                                    seed=0)
    assert len(texts) == 1 and isinstance(texts[0], str)
    if model["type"] == "ngram":
        # Greedy = the argmax chain of the model's own next-token distributions.
        _, tokenizer, counted, _ = language_model.load(workdir)
        ids = list(tokenizer.tokenize("it was ").numpy())
        for _ in range(6):
            ids.append(int(np.argmax(counted.next_token_distribution(ids))))
        expected = tokenizer.detokenize(np.array(ids[7:], "int32")).numpy().decode()
        assert texts[0] == expected


def test_hmm_trains_by_em_from_the_task(tmp_path, tiny_config):
    """Baum-Welch through `train`: the likelihood never falls, and evaluate reads the result."""
    import ml_collections

    tiny_config.model = dict(type="hmm", num_states=3, sequence_length=64)
    tiny_config.em = ml_collections.ConfigDict(dict(iterations=4, chunk_length=64))
    workdir = str(tmp_path / "hmm_em")
    result = language_model.train(tiny_config, workdir)
    bits = result.history["em_bits_per_token"]
    assert len(bits) == 5 and all(b1 <= b0 + 1e-6 for b0, b1 in zip(bits, bits[1:]))
    metrics = language_model.evaluate(workdir)
    assert metrics["step"] == 4 and 0 < metrics["bits_per_character"] < bits[0] + 1
