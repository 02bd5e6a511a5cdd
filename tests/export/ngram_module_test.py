"""NGramModule: the n-gram LM exported as tables, equal to the in-process NGramLM.

One 3-gram workdir (counted as `keras-lm train` counts it) and one module for the file.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_lm import export
from keras_lm.data import load_documents
from keras_lm.export import NGramModule
from keras_lm.export.ngram_module import MAX_NEW_TOKENS_LIMIT
from keras_lm.models import ngram_lm
from keras_lm.tasks import language_model
from keras_lm.tasks import workdir as workdir_lib
from keras_lm.testing.configs import TINY_TEXT
from keras_lm.testing.configs import shrink
from keras_lm.testing.configs import write_tiny_corpus
from keras_lm.tokenizers import CharTokenizer

from .conftest import isolated_python

# A prompt longer than any n-gram, an empty one, one with unknown characters ("Z", "é").
PROMPTS = ["it was the ", "", TINY_TEXT[:60], "Zé?"]
# Texts to score: empty, unknown characters, one much longer than the order.
SCORED = ["it was the age of wisdom", "", "Zé?", TINY_TEXT * 3]
MAX_NEW = 12
SIGNATURES = {"serving_default", "generate", "generate_with_options", "score"}


@pytest.fixture(scope="module")
def ngram(tmp_path_factory):
    """(workdir, tokenizer, NGramLM, module) of a 3-gram counted on the tiny corpus."""
    root = tmp_path_factory.mktemp("ngram")
    config = shrink(language_model.default_config(), write_tiny_corpus(str(root / "corpus")))
    config.model = dict(type="ngram", order=3)
    config.sample.update(temperature=0.0, max_new_tokens=9)  # the defaults of `generate`
    workdir = str(root / "workdir")
    language_model.train(config, workdir)
    _, tokenizer, model, _ = language_model.load(workdir)
    assert isinstance(model, ngram_lm.NGramLM) and model.order == 3
    return workdir, tokenizer, model, NGramModule(model, tokenizer, max_new_tokens=MAX_NEW)


@pytest.fixture(scope="module")
def exported(ngram, tmp_path_factory):
    workdir = ngram[0]
    return language_model.export(workdir, str(tmp_path_factory.mktemp("models")))


def _texts(outputs):
    return [t.decode("utf-8") for t in outputs["texts"].numpy()]


def _options(module, prompts, max_new_tokens=MAX_NEW, temperature=0.0, top_k=0, top_p=1.0,
             seed=0):
    return module.generate_with_options(tf.constant(prompts), max_new_tokens, temperature,
                                        top_k, top_p, seed)


def _ids(tokenizer, text):
    return np.asarray(tokenizer.tokenize(text)).astype(np.int64)


def test_score_equals_the_ngram_lm(ngram):
    _, tokenizer, model, module = ngram
    out = module.score(tf.constant(SCORED))
    expected = [model.token_log_probs(_ids(tokenizer, t)) for t in SCORED]
    np.testing.assert_allclose(out["log_likelihood"].numpy(), [e.sum() for e in expected],
                               rtol=1e-6)
    assert out["token_counts"].numpy().tolist() == [len(t) + 1 for t in SCORED]  # char model
    single = module.score(tf.constant(SCORED[:1]))  # a batch of 1
    np.testing.assert_allclose(single["log_likelihood"].numpy(), expected[0].sum(), rtol=1e-6)


def test_score_equals_kenlm_on_the_arpa_file(ngram, tmp_path):
    """An independent scorer: KenLM reading the model's ARPA file (log10, float32)."""
    kenlm = pytest.importorskip("kenlm", reason="kenlm is not installed (pip install kenlm)")
    _, tokenizer, model, module = ngram
    path = str(tmp_path / "model.arpa")
    model.to_arpa(path)  # ids named t<id>; unk_id is <unk>
    names = {model.unk_id: "<unk>"}
    reference = kenlm.Model(path)
    expected = [reference.score(" ".join(names.get(i, f"t{i}") for i in _ids(tokenizer, t)),
                                bos=True, eos=True) * math.log(10) for t in SCORED]
    out = module.score(tf.constant(SCORED))["log_likelihood"].numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)


def test_scores_sum_to_the_evaluation(ngram):
    """`keras-lm evaluate`'s loss on a split is the documents' summed scores."""
    workdir, _, _, module = ngram
    metrics = language_model.evaluate(workdir, "validation")
    config = workdir_lib.read_config(workdir)
    documents = load_documents(config.data.source, "validation")
    out = module.score(tf.constant(documents))
    assert int(out["token_counts"].numpy().sum()) == metrics["tokens"]
    total = -out["log_likelihood"].numpy().astype(np.float64).sum()
    assert total == pytest.approx(metrics["loss"] * metrics["tokens"], rel=1e-5)


def test_greedy_equals_in_process_generation(ngram):
    workdir, _, _, module = ngram
    expected = language_model.generate(workdir, PROMPTS, max_new_tokens=MAX_NEW,
                                       temperature=0.0)
    out = _options(module, PROMPTS)
    assert _texts(out) == expected
    assert out["token_counts"].numpy().tolist() == [len(t) for t in expected]
    assert _texts(_options(module, PROMPTS[1:2])) == expected[1:2]  # a batch of 1, empty
    # The `generate` signature's defaults: the constructor's (greedy, MAX_NEW tokens).
    assert _texts(module.generate(tf.constant(PROMPTS))) == expected
    # Degenerate options fall back to the most likely token rather than failing.
    for options in ({"temperature": -1.0}, {"temperature": 1.5, "top_k": 1, "seed": 3},
                    {"temperature": 1.5, "top_p": 0.0, "seed": 4}):
        assert _texts(_options(module, PROMPTS, **options)) == expected


@pytest.mark.parametrize("order", [1, 2, 5])
def test_every_order_equals_the_ngram_lm(order, char_tokenizer):
    """Unigram (no context), bigram, and prompts shorter than a 5-gram's 4 context ids."""
    model = ngram_lm.NGramLM(order, char_tokenizer.vocabulary_size, char_tokenizer.bos_id,
                             char_tokenizer.eos_id, char_tokenizer.unk_id)
    model.fit([_ids(char_tokenizer, d) for d in TINY_TEXT.split(", ")])
    module = NGramModule(model, char_tokenizer)
    prompts = ["", "i", "it ", "it w", TINY_TEXT[:30]]
    expected = language_model._sample_counted(model, char_tokenizer, prompts, 20, 0.0, 0)
    assert _texts(_options(module, prompts, 20)) == expected
    out = module.score(tf.constant(prompts))["log_likelihood"].numpy()
    np.testing.assert_allclose(
        out, [model.token_log_probs(_ids(char_tokenizer, t)).sum() for t in prompts], rtol=1e-6)


def test_generation_stops_at_eos(char_tokenizer):
    """Short documents: the continuation ends at EOS, rows of one batch at different steps."""
    documents = ["it was", "it was", "it was the"]
    model = ngram_lm.NGramLM(3, char_tokenizer.vocabulary_size, char_tokenizer.bos_id,
                             char_tokenizer.eos_id, char_tokenizer.unk_id)
    model.fit([_ids(char_tokenizer, d) for d in documents])
    module = NGramModule(model, char_tokenizer)
    prompts = ["", "it", "it was"]
    out = _options(module, prompts, max_new_tokens=50)
    expected = language_model._sample_counted(model, char_tokenizer, prompts, 50, 0.0, 0)
    assert expected == ["it was", " was", ""]
    assert _texts(out) == expected
    assert out["token_counts"].numpy().tolist() == [6, 4, 0]
    sampled = _options(module, prompts, max_new_tokens=50, temperature=1.0, seed=1)
    assert all(c < 50 for c in sampled["token_counts"].numpy())  # every row met its EOS


def test_greedy_ties_go_to_the_lowest_id():
    """After "a", "b" and "c" are equally likely: greedy takes the lower id, as NGramLM."""
    tokenizer = CharTokenizer.fit(["abc"])
    b, c = tokenizer.token_to_id("b"), tokenizer.token_to_id("c")
    assert b < c
    model = ngram_lm.NGramLM(3, tokenizer.vocabulary_size, tokenizer.bos_id,
                             tokenizer.eos_id, tokenizer.unk_id)
    model.fit([_ids(tokenizer, "ac"), _ids(tokenizer, "ab")])
    p = model.next_token_distribution(_ids(tokenizer, "a"))
    assert p[b] == p[c] == p.max()
    module = NGramModule(model, tokenizer)
    expected = language_model._sample_counted(model, tokenizer, ["a"], 5, 0.0, 0)
    assert _texts(_options(module, ["a"], 5)) == expected == ["b"]
    assert _texts(_options(module, ["a"], 5, temperature=1.0, top_k=1, seed=2)) == ["b"]


def test_sampling_is_seeded_and_filtered(ngram):
    _, tokenizer, model, module = ngram
    first = _texts(_options(module, PROMPTS, temperature=1.5, seed=7))
    assert first == _texts(_options(module, PROMPTS, temperature=1.5, seed=7))
    assert first != _texts(_options(module, PROMPTS, temperature=1.5, seed=8))
    assert first != _texts(_options(module, PROMPTS))  # the options reach the sampler
    # top_k=2: every sampled token is one of the two most likely (lowest id first on ties).
    for prompt, text in zip(PROMPTS, _texts(_options(module, PROMPTS, temperature=2.0,
                                                     top_k=2, seed=5))):
        ids = _ids(tokenizer, prompt).tolist()
        for token in _ids(tokenizer, text).tolist():
            p = model.next_token_distribution(ids)
            assert token in np.lexsort((np.arange(p.size), -p))[:2]
            ids.append(token)


def test_max_new_tokens_is_clamped(ngram):
    _, tokenizer, model, module = ngram
    out = _options(module, PROMPTS, max_new_tokens=-3)  # at least one token
    assert out["token_counts"].numpy().tolist() == [1, 1, 1, 1]
    assert NGramModule(model, tokenizer, max_new_tokens=10**6).defaults[
        "max_new_tokens"] == MAX_NEW_TOKENS_LIMIT


def test_an_empty_batch_gives_empty_outputs(ngram):
    module = ngram[3]
    empty = tf.constant([], tf.string)
    for out in (module.generate(empty), module.score(empty)):
        assert all(value.shape == (0,) for value in out.values())


def test_mismatches_are_refused(ngram):
    _, tokenizer, model, _ = ngram
    other = type(tokenizer).fit(["xyz"])
    with pytest.raises(ValueError, match="does not match the n-gram model"):
        NGramModule(model, other)
    unfitted = ngram_lm.NGramLM(3, tokenizer.vocabulary_size, tokenizer.bos_id,
                                tokenizer.eos_id)
    with pytest.raises(RuntimeError, match="no counts yet"):
        NGramModule(unfitted, tokenizer)


def test_export_metadata_and_core_ops(ngram, exported):
    workdir, tokenizer, model, _ = ngram
    metadata = export.read_metadata(exported)
    assert metadata["kind"] == "ngram_lm" and metadata["model_class"] == "NGramLM"
    assert metadata["step"] == 0 and metadata["serving_default"] == "generate"
    assert metadata["model_config"]["order"] == 3
    assert metadata["model_config"]["ngram_counts"] == model.ngram_counts
    assert metadata["vocabulary_size"] == tokenizer.vocabulary_size
    assert metadata["generate_defaults"]["max_new_tokens"] == 9  # config.sample
    assert metadata["generate_defaults"]["temperature"] == 0.0
    assert metadata["requires"] == [] and metadata["custom_ops"] == []
    assert export.non_core_ops(exported) == []
    assert set(metadata["signatures"]) == SIGNATURES
    assert metadata["signatures"]["score"]["outputs"] == {
        "log_likelihood": {"dtype": "float32", "shape": [None]},
        "token_counts": {"dtype": "int32", "shape": [None]},
    }


LOADER = r"""
import json
import tensorflow as tf

path, prompts, scored = sys.argv[1], *map(json.loads, sys.argv[2:])
loaded = tf.saved_model.load(path)
texts = lambda out: [t.decode("utf-8") for t in out["texts"].numpy()]
options = lambda **kw: {k: tf.constant(v, tf.float32 if k in ("temperature", "top_p")
                                       else tf.int32) for k, v in kw.items()}
with_options = loaded.signatures["generate_with_options"]
scores = loaded.signatures["score"](texts=tf.constant(scored))
print(json.dumps({
    "keras_lm_error": keras_lm_error,
    "default": texts(loaded.signatures["serving_default"](prompts=tf.constant(prompts))),
    "single": texts(loaded.signatures["generate"](prompts=tf.constant(prompts[:1]))),
    "sampled": texts(with_options(prompts=tf.constant(prompts), **options(
        max_new_tokens=9, temperature=1.2, top_k=8, top_p=0.9, seed=5))),
    "log_likelihood": scores["log_likelihood"].numpy().tolist(),
    "token_counts": scores["token_counts"].numpy().tolist(),
}))
"""


@pytest.mark.slow
def test_export_serves_the_same_outputs_without_keras_lm(ngram, exported, tmp_path):
    workdir, tokenizer, model, _ = ngram
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    cli_out = str(tmp_path / "cli_out")
    processes = {
        "loader": isolated_python(LOADER, exported, json.dumps(PROMPTS), json.dumps(SCORED),
                                  cwd=str(tmp_path)),
        # A Session-based loader, as TF Serving's: restores the tables' variables.
        "run": subprocess.Popen(
            [cli, "run", "--dir", exported, "--tag_set", "serve", "--signature_def", "score",
             "--input_exprs", f"texts={SCORED[:2]!r}", "--outdir", cli_out],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")),
    }
    greedy = language_model.generate(workdir, PROMPTS, max_new_tokens=9, temperature=0.0)
    expected = [model.token_log_probs(_ids(tokenizer, t)).sum() for t in SCORED]
    in_process = NGramModule(model, tokenizer)
    sampled = _texts(_options(in_process, PROMPTS, 9, temperature=1.2, top_k=8, top_p=0.9,
                              seed=5))
    results = {name: p.communicate(timeout=300) for name, p in processes.items()}
    for name, p in processes.items():
        assert p.returncode == 0, f"{name}: {results[name][1][-3000:]}"

    loaded = json.loads(results["loader"][0].strip().splitlines()[-1])
    assert loaded["keras_lm_error"] and "keras_lm" in loaded["keras_lm_error"]
    assert loaded["default"] == greedy  # the config's sample section: greedy, 9 tokens
    assert loaded["single"] == greedy[:1]
    assert loaded["sampled"] == sampled
    np.testing.assert_allclose(loaded["log_likelihood"], expected, rtol=1e-6)
    assert loaded["token_counts"] == [len(t) + 1 for t in SCORED]
    np.testing.assert_allclose(np.load(os.path.join(cli_out, "log_likelihood.npy")),
                               expected[:2], rtol=1e-6)
