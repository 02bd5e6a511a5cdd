import os
import pathlib
import runpy

import pytest
import tensorflow as tf

from keras_lm.tasks import seq2seq

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[2] / "configs"
SEQ2SEQ_CONFIGS = ("folio_to_modern.py", "reverse_digits.py")


def load(name):
    return runpy.run_path(str(CONFIG_DIR / name))["get_config"]()


def test_reverse_digits_is_learned(tmp_path):
    """A tiny model learns digit reversal: the whole train / evaluate / generate flow."""
    config = load("reverse_digits.py")
    config.data.source_options.update(num_examples=2000, max_digits=5)
    config.data.update(source_length=6, target_length=6)
    config.model.update(hidden_dim=32, intermediate_dim=64)
    config.train.update(steps=250, eval_every=250, log_every=250, learning_rate=5e-3,
                        warmup_steps=20, jit_compile=False)  # graph mode: quick to build
    # Greedy decoding is beam search with one beam (tests/generation): score beam search only.
    config.evaluate.update(beam_sizes=(2,), max_examples=100, jit_compile=False)
    workdir = str(tmp_path / "run")
    result = seq2seq.train(config, workdir)
    assert result.final_step == 250
    metrics = seq2seq.evaluate(workdir, "test")
    assert metrics["step"] == 250 and metrics["examples"] == 100
    assert metrics["beam2_exact_match"] >= 0.95, seq2seq.format_metrics(metrics)
    assert metrics["copy_exact_match"] < 0.5  # only palindromes survive a copy
    assert metrics["beam2_cer"] < metrics["copy_cer"]
    assert metrics["loss"] < 0.1
    assert "beam2: BLEU=" in seq2seq.format_metrics(metrics)
    assert seq2seq.generate(workdir, ["12345", "907"], beam_size=2) == ["54321", "709"]


@pytest.mark.parametrize("name", SEQ2SEQ_CONFIGS)
def test_config_is_documented_and_builds(name, tmp_path):
    text = (CONFIG_DIR / name).read_text()
    assert "keras-lm train" in text and "keras-lm generate" in text
    config = load(name)
    assert config.task == "seq2seq"
    # The config's own model and data sections, on a small pairs file instead of its data.
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("long liue the king\tlong live the king\nhaue\thave\n", encoding="utf-8")
    config.data.source = str(pairs)
    config.data.source_options = {}
    source_tokenizer, target_tokenizer = seq2seq.build_tokenizers(config)
    assert source_tokenizer is target_tokenizer  # one vocabulary: tied embeddings
    model = seq2seq.build_model(config, source_tokenizer.vocabulary_size)
    assert model.sequence_length == config.data.source_length
    assert model.count_params() > 0


def test_separate_vocabularies_and_bad_model_fields(tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("abc\txyz\nba\tzy\n", encoding="utf-8")
    config = seq2seq.default_config()
    config.data.source = str(pairs)
    config.target_tokenizer.type = "char"
    source, target = seq2seq.build_tokenizers(config, str(tmp_path / "run"))
    assert source.characters == ("a", "b", "c") and target.characters == ("x", "y", "z")
    assert (tmp_path / "run" / "target_tokenizer").is_dir()
    reloaded = seq2seq.build_tokenizers(config, str(tmp_path / "run"))
    assert reloaded[1].characters == target.characters
    config.model.update(num_layers=1, hidden_dim=16, num_heads=2)
    model = seq2seq.build_model(config, source.vocabulary_size, target.vocabulary_size)
    assert model.output_vocabulary_size == 7 and model.source_embedding is not None
    config.model.hiden_dim = 8
    with pytest.raises(ValueError, match="hiden_dim.*Valid fields"):
        seq2seq.build_model(config, source.vocabulary_size)


def test_prepare_inputs_follows_the_training_sources():
    config = load("folio_to_modern.py")
    assert seq2seq.prepare_inputs(config, ["Long liue the King.", "Stand: & vnfold"]) == [
        "long liue the king", "stand & vnfold"]
    config.data.source = "pairs.tsv"
    assert seq2seq.prepare_inputs(config, ["As Is."]) == ["As Is."]


def test_workdir_tokenizers_are_rebuilt_when_partial_or_fitted_on_other_pairs(tmp_path):
    """Without checkpoints: a folder a kill left without tokenizer.json, or a tokenizer fitted
    on another data source, is rebuilt; with checkpoints an incomplete one is an error."""
    first, second = tmp_path / "first.tsv", tmp_path / "second.tsv"
    first.write_text("abc\txyz\nba\tzy\n", encoding="utf-8")
    second.write_text("de\tuv\n", encoding="utf-8")
    config = seq2seq.default_config()
    config.data.source = str(first)
    config.target_tokenizer.type = "char"
    workdir = tmp_path / "run"
    (workdir / "target_tokenizer").mkdir(parents=True)
    (workdir / "target_tokenizer" / "vocabulary.json").write_text("[]")
    _, target = seq2seq.build_tokenizers(config, str(workdir))
    assert target.characters == ("x", "y", "z")
    config.data.source = str(second)
    source, target = seq2seq.build_tokenizers(config, str(workdir))
    assert source.characters == ("d", "e") and target.characters == ("u", "v")
    # Trained state: the incomplete folder is refused, not silently refitted.
    (workdir / "checkpoints").mkdir()
    checkpoint = tf.train.Checkpoint(step=tf.Variable(1))
    checkpoint.save(str(workdir / "checkpoints" / "ckpt"))
    os.remove(workdir / "target_tokenizer" / "tokenizer.json")
    with pytest.raises(ValueError, match="incomplete"):
        seq2seq.build_tokenizers(config, str(workdir))


def _tiny_pairs_config(tmp_path, text):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(text, encoding="utf-8")
    config = seq2seq.default_config()
    config.data.source = str(pairs)
    config.data.update(source_length=4, target_length=4)
    config.model.update(num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32)
    config.train.update(steps=1, batch_size=2, jit_compile=False)
    config.evaluate.update(beam_sizes=(), copy_baseline=False, batch_size=2, jit_compile=False)
    return config


def test_training_pairs_that_never_fit_are_an_error_naming_the_lengths(tmp_path):
    """Pairs too long for the lengths get weight 0: with none left, nothing is learned."""
    config = _tiny_pairs_config(tmp_path, "abcdef\tfedcba\nabcde\tedcba\n")
    with pytest.raises(ValueError, match=r"None of the 2 train pairs fits.*"
                                         r"source_length=7.*target_length=7"):
        seq2seq.train(config, str(tmp_path / "run"))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_teacher_forced_loss_is_per_real_token_and_nan_without_any(tmp_path):
    import numpy as np

    config = _tiny_pairs_config(tmp_path, "ab\tba\nc\tc\nabcdef\tfedcba\n")
    source, target = seq2seq.build_tokenizers(config)
    model = seq2seq.build_model(config, source.vocabulary_size)
    pairs = [("ab", "ba"), ("c", "c"), ("abcdef", "fedcba")]
    metrics = seq2seq.evaluate_model(config, model, source, target, pairs)
    # Independent reference: -log softmax of each label of the fitting pairs, in numpy.
    log_probs = []
    for text, reference in pairs[:2]:
        ids = lambda s: np.asarray(source.tokenize(s)).tolist()  # noqa: E731
        encoder = ids(text) + [source.eos_id]
        decoder = [target.bos_id] + ids(reference)
        labels = ids(reference) + [target.eos_id]
        logits = np.asarray(model({"encoder_token_ids": np.array([encoder], np.int32),
                                   "decoder_token_ids": np.array([decoder], np.int32)}),
                            np.float64)[0]
        logits -= logits.max(-1, keepdims=True)
        lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        log_probs += [lp[t, label] for t, label in enumerate(labels)]
    assert metrics["tokens"] == len(log_probs) == 5  # the long pair is left out
    assert metrics["loss"] == pytest.approx(-np.mean(log_probs), rel=1e-5)
    # Every pair too long: no loss at all, not a perfect 0 (perplexity 1).
    empty = seq2seq.evaluate_model(config, model, source, target, pairs[2:])
    assert empty["tokens"] == 0 and np.isnan(empty["loss"]) and np.isnan(empty["perplexity"])


def test_generate_refuses_a_bad_max_new_tokens_before_loading(tmp_path):
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="`max_new_tokens` must be an int >= 1"):
            seq2seq.generate(str(tmp_path / "no_such_workdir"), ["12"], max_new_tokens=bad)


@pytest.mark.parametrize("section, field, value, message", [
    ("evaluate", "beam_size", 4, r"Unknown config.evaluate field\(s\) \['beam_size'\]"),
    ("sample", "input", ("12",), r"Unknown config.sample field\(s\) \['input'\]"),
    ("evaluate", "beam_sizes", (1, 0), r"beam_sizes must hold ints >= 1"),
    ("evaluate", "length_penalty", -0.5, r"length_penalty must be a number >= 0"),
    ("sample", "beam_size", 0, r"sample.beam_size must be an int >= 1"),
])
def test_bad_decoding_fields_fail_before_training(tmp_path, section, field, value, message):
    """Evaluation and samples run once training is over: a typo must not cost the run."""
    config = _tiny_pairs_config(tmp_path, "ab\tba\nc\tc\n")
    config[section][field] = value
    with pytest.raises(ValueError, match=message):
        seq2seq.train(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
    for name in SEQ2SEQ_CONFIGS:  # the shipped configs pass
        seq2seq.check_decoding_config(load(name))
