"""The seq2seq export: greedy and beam-search text equal `Seq2SeqTransformer.generate`.

One workdir (separate source and target vocabularies, random weights, sources and targets of
8 tokens, `generate` defaulting to beam 2 with length penalty 0.6) is exported once with
`seq2seq.export`. The in-process references are computed once per (batch, beam, length)
case, since each case is an XLA compilation.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_lm import export
from keras_lm.export import Seq2SeqModule
from keras_lm.tasks import seq2seq
from keras_lm.testing.configs import TINY_TEXT
from keras_lm.tokenizers import load_tokenizer

from .conftest import isolated_python
from .conftest import seq2seq_workdir

# A source longer than the 8 positions, an empty one, one with unknown characters.
TEXTS = ["it was", "", TINY_TEXT[:40], "Zé wisdom"]
# name -> (rows of TEXTS, max_new_tokens, beam_size); None: the signature's defaults.
CASES = {
    "default": (slice(None), None, None),
    "greedy": (slice(None), 8, 1),
    "beam3_short": (slice(2, 3), 5, 3),
}

LOADER = r"""
import json
import tensorflow as tf

path, texts, cases = sys.argv[1], *map(json.loads, sys.argv[2:])
loaded = tf.saved_model.load(path)
results = {"keras_lm_error": keras_lm_error}
for name, (start, stop, max_new_tokens, beam_size) in cases.items():
    batch = tf.constant(texts[start:stop])
    if max_new_tokens is None:
        out = loaded.signatures["serving_default"](texts=batch)
    else:
        out = loaded.signatures["generate_with_options"](
            texts=batch, max_new_tokens=tf.constant(max_new_tokens),
            beam_size=tf.constant(beam_size))
    results[name] = [t.decode("utf-8") for t in out["texts"].numpy()]
try:
    loaded.signatures["generate_with_options"](texts=tf.constant(texts[:1]),
        max_new_tokens=tf.constant(4), beam_size=tf.constant(99))
    results["beam_error"] = None
except tf.errors.InvalidArgumentError as error:
    results["beam_error"] = error.message
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq2seq")
    workdir = seq2seq_workdir(str(root))
    path = seq2seq.export(workdir, str(root / "models"))
    config, source_tokenizer, target_tokenizer, model, step = seq2seq.load(workdir)
    assert step == 3 and source_tokenizer is not target_tokenizer
    return path, config, source_tokenizer, target_tokenizer, model


@pytest.fixture(scope="module")
def expected(exported):
    """The in-process outputs of every case (the task's decoding settings)."""
    _, config, source_tokenizer, target_tokenizer, model = exported
    results = {}
    for name, (rows, max_new_tokens, beam_size) in CASES.items():
        results[name] = model.generate(
            TEXTS[rows], tokenizer=source_tokenizer, target_tokenizer=target_tokenizer,
            max_length=max_new_tokens, beam_size=beam_size or config.sample.beam_size,
            length_penalty=config.evaluate.length_penalty, truncate=True)
    return results


@pytest.mark.slow
def test_export_serves_the_same_text_without_keras_lm(exported, expected, tmp_path):
    path = exported[0]
    cases = {name: (rows.start, rows.stop, n, k) for name, (rows, n, k) in CASES.items()}
    loader = isolated_python(LOADER, path, json.dumps(TEXTS), json.dumps(cases),
                             cwd=str(tmp_path))
    stdout, stderr = loader.communicate(timeout=300)
    assert loader.returncode == 0, stderr[-3000:]
    loaded = json.loads(stdout.strip().splitlines()[-1])
    assert loaded["keras_lm_error"] and "keras_lm" in loaded["keras_lm_error"]
    for name in CASES:
        assert loaded[name] == expected[name], name
    assert "beam_size must be in [1, 8]" in loaded["beam_error"]
    assert expected["default"] != expected["greedy"]  # beam 2 is not greedy here
    assert len(set(expected["greedy"])) == len(TEXTS)
    assert min(len(text) for text in expected["greedy"]) < 8  # a row stopped at eos


def test_module_equals_in_process_generate(exported, expected):
    _, config, source_tokenizer, target_tokenizer, model = exported
    module = Seq2SeqModule(model, source_tokenizer, target_tokenizer=target_tokenizer,
                           beam_size=2, length_penalty=config.evaluate.length_penalty)
    for name, (rows, max_new_tokens, beam_size) in CASES.items():
        texts = tf.constant(TEXTS[rows])
        if max_new_tokens is None:
            out = module.generate(texts)
        else:
            out = module.generate_with_options(texts, max_new_tokens, beam_size)
        assert [t.decode("utf-8") for t in out["texts"].numpy()] == expected[name], name
    # Greedy decoding is the argmax chain of full forward passes (no cache, no loop).
    greedy = module.generate_with_options(tf.constant(TEXTS), 8, 1)
    chains = _argmax_chains(model, source_tokenizer, target_tokenizer, TEXTS, 8)
    assert greedy["token_counts"].numpy().tolist() == [len(c) for c in chains]
    assert [t.decode() for t in greedy["texts"].numpy()] == [
        t.decode() for t in target_tokenizer.detokenize(tf.ragged.constant(chains)).numpy()]
    # max_new_tokens is clamped to [1, 8]: the same program, or a first token.
    clamped = module.generate_with_options(tf.constant(TEXTS), 100, 1)
    assert [t.decode() for t in clamped["texts"].numpy()] == expected["greedy"]
    one = module.generate_with_options(tf.constant(TEXTS), -2, 1)
    assert one["token_counts"].numpy().tolist() == [min(1, len(c)) for c in chains]
    firsts = [t.decode() for t in one["texts"].numpy()]
    assert all(e.startswith(t) for e, t in zip(expected["greedy"], firsts))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"beam_size must be in \[1, 8\]"):
        module.generate_with_options(tf.constant(TEXTS), 4, 0)
    empty = module.generate(tf.constant([], tf.string))
    assert empty["texts"].shape == (0,) and empty["token_counts"].shape == (0,)


def test_metadata_target_tokenizer_and_core_ops(exported):
    path, config, _, target_tokenizer, _ = exported
    metadata = export.read_metadata(path)
    assert metadata["kind"] == "seq2seq" and metadata["model_class"] == "Seq2SeqTransformer"
    assert metadata["serving_default"] == "generate"
    assert metadata["generate_defaults"] == {"max_new_tokens": 8, "beam_size": 2}
    assert metadata["length_penalty"] == config.evaluate.length_penalty == 0.6
    assert metadata["max_beam_size"] == 8
    assert metadata["signatures"]["generate_with_options"]["inputs"] == {
        "texts": {"dtype": "string", "shape": [None]},
        "max_new_tokens": {"dtype": "int32", "shape": []},
        "beam_size": {"dtype": "int32", "shape": []},
    }
    directory = metadata["target_tokenizer"]["directory"]
    saved = load_tokenizer(os.path.join(path, directory))
    assert saved.get_config() == target_tokenizer.get_config()
    assert metadata["requires"] == [] and export.non_core_ops(path) == []


def test_bad_options_are_refused(exported):
    _, _, source_tokenizer, target_tokenizer, model = exported
    with pytest.raises(ValueError, match="target tokenizer's vocabulary"):
        Seq2SeqModule(model, source_tokenizer)  # the target vocabulary is another one
    with pytest.raises(ValueError, match="above `max_beam_size`"):
        Seq2SeqModule(model, source_tokenizer, target_tokenizer, beam_size=9)
    with pytest.raises(ValueError, match="`length_penalty` must be >= 0"):
        Seq2SeqModule(model, source_tokenizer, target_tokenizer, length_penalty=-1.0)
    # A tokenizer without the special ids decoding needs (a SentencePiece model trained
    # without bos / eos) is named, not an obscure conversion error of None.
    with pytest.raises(ValueError, match="target tokenizer .* has no bos_id / eos_id"):
        Seq2SeqModule(model, source_tokenizer, _WithoutSpecial(target_tokenizer,
                                                               ("bos_id", "eos_id")))
    with pytest.raises(ValueError, match="source tokenizer .* has no eos_id"):
        Seq2SeqModule(model, _WithoutSpecial(source_tokenizer, ("eos_id",)), target_tokenizer)


class _WithoutSpecial:
    def __init__(self, tokenizer, missing):
        self._tokenizer, self._missing = tokenizer, missing

    def __getattr__(self, name):
        return None if name in self._missing else getattr(self._tokenizer, name)


def _argmax_chains(model, source_tokenizer, target_tokenizer, texts, steps):
    """Greedy target ids (eos dropped) by full forward passes over the growing prefix."""
    sources = np.zeros((len(texts), model.sequence_length), np.int32)
    for row, ids in enumerate(source_tokenizer.tokenize(texts).to_list()):
        ids = ids[:model.sequence_length - 1] + [source_tokenizer.eos_id]
        sources[row, :len(ids)] = ids
    chains = []
    for source in sources:
        prefix = [target_tokenizer.bos_id]
        for _ in range(steps):
            logits = model({"encoder_token_ids": source[None],
                            "decoder_token_ids": np.array([prefix], np.int32)})
            token = int(np.argmax(np.asarray(logits)[0, -1]))
            if token == target_tokenizer.eos_id:
                break
            prefix.append(token)
        chains.append(prefix[1:])
    return chains
