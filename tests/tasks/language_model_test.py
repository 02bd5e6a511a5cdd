import math
import os
import re

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


def test_hmm_em_is_seeded_and_a_finished_workdir_is_not_retrained(tmp_path, tiny_config):
    import ml_collections

    tiny_config.model = dict(type="hmm", num_states=3, sequence_length=64)
    tiny_config.em = ml_collections.ConfigDict(dict(iterations=2, chunk_length=64))
    first = language_model.train(tiny_config, str(tmp_path / "a"))
    second = language_model.train(tiny_config, str(tmp_path / "b"))  # same config, same model
    np.testing.assert_allclose(first.history["em_bits_per_token"],
                               second.history["em_bits_per_token"], rtol=1e-6)
    for a, b in zip(first.model.weights, second.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)

    again = language_model.train(tiny_config, str(tmp_path / "a"))  # finished: nothing to do
    assert (again.initial_step, again.final_step, again.history) == (2, 2, {})
    for a, b in zip(again.model.weights, first.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with open(tmp_path / "a" / "metrics.jsonl") as f:
        assert len(f.readlines()) == 1  # no second EM run was recorded


def _tiny_steps(config, steps):
    config.train.update(steps=steps, eval_every=2, log_every=2, jit_compile=False)
    return config


def _hmm_em_config(config, iterations, **em):
    import ml_collections

    config = config.copy_and_resolve_references()
    config.model = dict(type="hmm", num_states=3, sequence_length=64)
    config.em = ml_collections.ConfigDict(dict(iterations=iterations, chunk_length=64, **em))
    return config


def test_hmm_em_resumes_after_a_kill_with_the_result_of_an_unbroken_run(tmp_path, tiny_config):
    from unittest import mock

    from keras_lm.models import hmm_em

    config = _hmm_em_config(tiny_config, iterations=4)
    unbroken = language_model.train(config, str(tmp_path / "unbroken"))

    # Killed in the M-step of iteration 3 (_normalize runs 3 times an M-step).
    killed = str(tmp_path / "killed")
    real_normalize, calls = hmm_em._normalize, []

    def dies_in_iteration_3(*args):
        calls.append(1)
        if len(calls) == 7:
            raise KeyboardInterrupt("killed")
        return real_normalize(*args)

    with mock.patch.object(hmm_em, "_normalize", dies_in_iteration_3):
        with pytest.raises(KeyboardInterrupt):
            language_model.train(config, killed)
    assert workdir_lib.checkpoint_path(killed).endswith("ckpt-2")
    resumed = language_model.train(config, killed)
    assert (resumed.initial_step, resumed.final_step) == (2, 4)
    np.testing.assert_allclose(resumed.history["em_bits_per_token"],
                               unbroken.history["em_bits_per_token"], rtol=1e-12)
    for a, b in zip(resumed.model.weights, unbroken.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
    assert language_model.evaluate(killed)["loss"] == pytest.approx(
        language_model.evaluate(str(tmp_path / "unbroken"))["loss"], rel=1e-6)

    # A finished run continues when asked for more iterations; the prior may not change.
    more = language_model.train(_hmm_em_config(tiny_config, iterations=5), killed)
    assert (more.initial_step, more.final_step) == (4, 5)
    assert more.history["em_bits_per_token"][:5] == pytest.approx(
        unbroken.history["em_bits_per_token"], rel=1e-12)
    with pytest.raises(ValueError, match=r"em.pseudo_count saved 0.0, now 0.5"):
        language_model.train(_hmm_em_config(tiny_config, 6, pseudo_count=0.5), killed)
    with pytest.raises(ValueError, match=r"em.iterations \(EM when > 0.*saved 5, now 0"):
        language_model.train(_hmm_em_config(tiny_config, 0), killed)


def test_a_misspelt_em_field_is_refused_before_anything_is_written(tmp_path, tiny_config):
    with pytest.raises(ValueError, match=r"Unknown config.em field\(s\) \['pseudo_cont'\].*"
                                         r"iterations, chunk_length, batch_size, pseudo_count"):
        language_model.train(_hmm_em_config(tiny_config, 2, pseudo_cont=0.1),
                             str(tmp_path / "hmm"))
    assert not (tmp_path / "hmm").exists()


def test_a_lost_em_history_is_a_clear_error(tmp_path, tiny_config):
    workdir = tmp_path / "hmm"
    config = _hmm_em_config(tiny_config, iterations=1)
    language_model.train(config, str(workdir))
    os.remove(workdir / language_model.EM_HISTORY_FILE)
    with pytest.raises(ValueError, match=r"iteration 1, but its history.*cannot be read"):
        language_model.train(_hmm_em_config(tiny_config, iterations=2), str(workdir))


def test_a_partial_tokenizer_without_checkpoints_is_rebuilt(tmp_path, tiny_config):
    """A kill while the tokenizer was saved left its folder without tokenizer.json."""
    workdir = tmp_path / "run"
    (workdir / "tokenizer").mkdir(parents=True)
    (workdir / "tokenizer" / "vocabulary.json").write_text("[]")
    result = language_model.train(_tiny_steps(tiny_config, 2), str(workdir))
    assert result.final_step == 2
    assert (workdir / "tokenizer" / "tokenizer.json").is_file()
    assert (workdir / "tokenizer" / workdir_lib.TOKENIZER_INPUTS_FILE).is_file()
    # With checkpoints, an incomplete tokenizer is an error that says so (never a rebuild).
    os.remove(workdir / "tokenizer" / "tokenizer.json")
    with pytest.raises(ValueError, match="tokenizer of .* is incomplete.*checkpoints"):
        language_model.build_tokenizer(tiny_config, str(workdir))


@pytest.mark.parametrize("field, value, saved", [
    ("data.seed", 1, 0),
    ("data.packing", "document", "concat"),
    ("data.source", "other/{split}/*.txt", None),
    ("train.batch_size", 8, 4),
    ("train.seed", 3, 0),
])
def test_a_resume_must_keep_the_data_batch_size_and_seed(tmp_path, tiny_config, field, value,
                                                         saved):
    workdir = str(tmp_path / "run")
    language_model.train(_tiny_steps(tiny_config, 2), workdir)
    with open(os.path.join(workdir, "config.json")) as f:
        before = f.read()
    changed = tiny_config.copy_and_resolve_references()
    section, name = field.split(".")
    saved = tiny_config[section][name] if saved is None else saved
    changed[section][name] = value
    expected = re.escape(f"{field} saved {saved!r}, now {value!r}")
    with pytest.raises(ValueError, match=expected + r".*new --workdir.*set these fields back"):
        language_model.train(changed, workdir)
    with open(os.path.join(workdir, "config.json")) as f:
        assert f.read() == before  # a refused resume leaves the record as it was


def test_a_resume_may_extend_steps_and_keeps_the_previous_config(tmp_path, tiny_config):
    import json

    workdir = str(tmp_path / "run")
    language_model.train(_tiny_steps(tiny_config, 2), workdir)
    assert not os.path.exists(os.path.join(workdir, workdir_lib.CONFIG_HISTORY_FILE))
    longer = _tiny_steps(tiny_config.copy_and_resolve_references(), 4)
    longer.train.learning_rate = 5e-3  # the schedule, logging and keeping may change too
    result = language_model.train(longer, workdir)
    assert (result.initial_step, result.final_step) == (2, 4)
    assert workdir_lib.read_config(workdir).train.steps == 4
    with open(os.path.join(workdir, workdir_lib.CONFIG_HISTORY_FILE)) as f:
        history = [json.loads(line) for line in f]
    assert len(history) == 1 and history[0]["config"]["train"]["steps"] == 2
    assert history[0]["latest_checkpoint"] == "ckpt-2"


def test_a_failed_first_run_does_not_lock_the_workdir(tmp_path, tiny_config):
    """A run that failed before its first checkpoint leaves config.json and tokenizer/ only."""
    from keras_lm.testing.configs import TINY_TEXT

    workdir = str(tmp_path / "run")
    bad = _tiny_steps(tiny_config.copy_and_resolve_references(), 2)
    bad.model.num_heads = 3  # does not divide hidden_dim=16
    with pytest.raises(ValueError):
        language_model.train(bad, workdir)
    assert os.path.isfile(os.path.join(workdir, "config.json"))
    assert not workdir_lib.has_trained_state(workdir)
    # Another source too: the tokenizer fitted on the old one is rebuilt on the new text.
    other = tmp_path / "other"
    for split in ("train", "validation", "test"):
        (other / split).mkdir(parents=True)
        (other / split / "doc.txt").write_text(TINY_TEXT.upper() * 4)
    good = _tiny_steps(tiny_config.copy_and_resolve_references(), 2)
    good.data.source = str(other / "{split}" / "*.txt")
    result = language_model.train(good, workdir)
    assert result.final_step == 2
    assert workdir_lib.has_trained_state(workdir)
    assert workdir_lib.read_config(workdir).model.num_heads == 2
    tokenizer = language_model.build_tokenizer(good, workdir)
    assert "I" in tokenizer.characters and "i" not in tokenizer.characters


def test_ngram_counts_are_trained_state(tmp_path, tiny_config):
    tiny_config.model = dict(type="ngram", order=3)
    workdir = str(tmp_path / "ngram")
    language_model.train(tiny_config, workdir)
    assert workdir_lib.has_trained_state(workdir)
    changed = tiny_config.copy_and_resolve_references()
    changed.data.sequence_length = 8
    with pytest.raises(ValueError, match="data.sequence_length saved 16, now 8"):
        language_model.train(changed, workdir)


def test_workdir_messages(tmp_path, tiny_config):
    path = tmp_path / "a_file"
    path.write_text("")
    with pytest.raises(FileExistsError, match="is a file, but the workdir must be a directory"):
        language_model.train(tiny_config, str(path))
    empty = str(tmp_path / "empty")
    workdir_lib.write_config(empty, tiny_config)
    with pytest.raises(FileNotFoundError, match=r"keras-lm train --config=configs/NAME.py "
                                                r"--workdir="):
        workdir_lib.checkpoint_path(empty)


def test_generate_fills_the_context_unless_told_otherwise(tmp_path, tiny_config):
    """`keras-lm generate` without --max_new_tokens: as many new tokens as fit (context 16)."""
    tiny_config.train.update(steps=2, jit_compile=False)
    workdir = str(tmp_path / "run")
    language_model.train(tiny_config, workdir)
    no_stop = dict(temperature=0.0, stop_token_ids=[])  # count every new token
    # Char tokenizer: one token per character. In a batch the longest prompt sets the room.
    texts = language_model.generate(workdir, ["it", "it was the "], **no_stop)
    assert [len(t) for t in texts] == [16 - 11] * 2
    assert len(language_model.generate(workdir, ["x" * 20], truncate=True, **no_stop)[0]) == 1
    with pytest.raises(ValueError, match=r"A prompt of 16 tokens leaves no room in the model's "
                                         r"context of 16 tokens\. .*--truncate"):
        language_model.generate(workdir, ["x" * 16], **no_stop)
    with pytest.raises(ValueError, match=r"plus --max_new_tokens=10 exceeds .*at most 9 here"):
        language_model.generate(workdir, ["it was "], max_new_tokens=10, **no_stop)
    with pytest.raises(ValueError, match=r"--max_new_tokens=16 does not fit .* give 1 to 9"):
        language_model.generate(workdir, ["it was "], max_new_tokens=16, **no_stop)


def test_a_misspelt_data_field_is_refused_before_anything_is_written(tmp_path, tiny_config):
    tiny_config.data.shuffle_bufer = 1
    with pytest.raises(ValueError, match=r"Unknown data config field\(s\) \['shuffle_bufer'\]"):
        language_model.train(tiny_config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
