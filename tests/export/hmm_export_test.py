"""The HMM language model exports as a causal LM: its cache is a state, not positions.

One HMM workdir (random weights saved at step 3) is exported once with
`language_model.export` (what `keras-lm export` calls). `generate` must equal the
in-process `model.generate(..., truncate=True)` and a greedy chain run with the forward
algorithm in numpy; `score` must equal that numpy forward algorithm window by window.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_lm import export
from keras_lm.tasks import language_model
from keras_lm.tasks import workdir as workdir_lib
from keras_lm.testing.configs import TINY_TEXT
from keras_lm.testing.configs import shrink
from keras_lm.testing.configs import write_tiny_corpus

from .conftest import CONTEXT
from .conftest import isolated_python
from .conftest import randomize
from .conftest import reference_scores
from .conftest import save_weights

# A prompt longer than the context, an empty one, one with unknown characters ("Z", "é").
PROMPTS = ["it was the ", "", TINY_TEXT[:40], "Zé?"]
SCORED = ["it was the age", "", TINY_TEXT[:50], "Z"]  # 51 labels: 4 windows of 16
MAX_NEW = 6
SAMPLING = {"max_new_tokens": 5, "temperature": 1.3, "top_k": 6, "top_p": 0.95, "seed": 11}

LOADER = r"""
import json
import tensorflow as tf

path, prompts, scored, sampling = sys.argv[1], *map(json.loads, sys.argv[2:])
loaded = tf.saved_model.load(path)
texts = lambda out: [t.decode("utf-8") for t in out["texts"].numpy()]
scores = loaded.signatures["score"](texts=tf.constant(scored))
print(json.dumps({
    "keras_lm_error": keras_lm_error,
    "default": texts(loaded.signatures["serving_default"](prompts=tf.constant(prompts))),
    "single": texts(loaded.signatures["generate"](prompts=tf.constant(prompts[2:3]))),
    "sampled": texts(loaded.signatures["generate_with_options"](
        prompts=tf.constant(prompts), **{
            k: tf.constant(v, tf.float32 if k in ("temperature", "top_p") else tf.int32)
            for k, v in sampling.items()})),
    "log_likelihood": scores["log_likelihood"].numpy().tolist(),
    "token_counts": scores["token_counts"].numpy().tolist(),
}))
"""


def hmm_workdir(directory, step=3):
    """An HMM workdir (6 states, context 16, greedy `generate` of 6 tokens) with random
    weights saved at `step`."""
    source = write_tiny_corpus(os.path.join(directory, "corpus"))
    config = shrink(language_model.default_config(), source)
    config.model = dict(type="hmm", num_states=6, sequence_length=CONTEXT)
    config.sample.update(temperature=0.0, max_new_tokens=MAX_NEW)
    workdir = os.path.join(directory, "workdir")
    workdir_lib.write_config(workdir, config)
    tokenizer = language_model.build_tokenizer(config, workdir)
    model = language_model.build_model(config.model, tokenizer.vocabulary_size)
    # Peaked transitions and emissions: varied greedy text rather than one repeated token.
    save_weights(randomize(model, seed=2, stddev=3.0), workdir, step)
    return workdir


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("hmm")
    workdir = hmm_workdir(str(root))
    path = language_model.export(workdir, str(root / "models"))
    _, tokenizer, model, step = language_model.load(workdir)
    assert step == 3 and type(model).__name__ == "HMMLanguageModel"
    return path, tokenizer, model


@pytest.fixture(scope="module")
def served(exported):
    """The export loaded in this process (the slow test loads it without keras_lm)."""
    return tf.saved_model.load(exported[0])


def _ids(tokenizer, text):
    return np.asarray(tokenizer.tokenize(text)).tolist()


def _filter(probabilities, tokens):
    """The forward algorithm in float64 numpy from pi over `tokens`: (log P(tokens[1:] |
    tokens[0]), the predictive state P(z_next | tokens) [K])."""
    initial, transition, emission = probabilities
    state, total = initial, 0.0
    for t, token in enumerate(tokens):
        joint = state * emission[:, token]
        c = joint.sum()
        if t:
            total += np.log(c)
        state = (joint / c) @ transition
    return total, state


def _numpy_scores(model, tokenizer, texts):
    """(log-likelihood, count) per text: [eos, text, eos] in windows of C + 1 tokens, each
    window read from pi (as `keras-lm evaluate` and the `score` signature do)."""
    probabilities = model.probabilities()
    results = []
    for text in texts:
        stream = [tokenizer.eos_id] + _ids(tokenizer, text) + [tokenizer.eos_id]
        total, count = 0.0, 0
        for start in range(0, len(stream) - 1, CONTEXT):
            window = stream[start:start + CONTEXT + 1]
            total += _filter(probabilities, window)[0]
            count += len(window) - 1
        results.append((total, count))
    return results


def _numpy_greedy(model, tokenizer, prompt, max_new_tokens):
    """Greedy text from the predictive state, without keras_lm.generation: the prompt keeps
    its last C - max_new_tokens tokens; an empty one is the eos separator."""
    probabilities = model.probabilities()
    ids = (_ids(tokenizer, prompt) or [tokenizer.eos_id])[-(CONTEXT - max_new_tokens):]
    new = []
    for _ in range(max_new_tokens):
        _, state = _filter(probabilities, ids + new)
        token = int(np.argmax(state @ probabilities[2]))
        if token == tokenizer.eos_id:
            break
        new.append(token)
    return np.asarray(tokenizer.detokenize(new)).item().decode("utf-8")


def _texts(out):
    return [t.decode("utf-8") for t in out["texts"].numpy()]


@pytest.mark.slow
def test_export_serves_the_same_outputs_without_keras_lm(exported, tmp_path):
    path, tokenizer, model = exported
    process = isolated_python(LOADER, path, *map(json.dumps, (PROMPTS, SCORED, SAMPLING)),
                              cwd=str(tmp_path))
    greedy = language_model.sample(model, tokenizer, PROMPTS, MAX_NEW, temperature=0.0)
    sampled = model.generate(PROMPTS, tokenizer=tokenizer, truncate=True, **SAMPLING)
    scores = _numpy_scores(model, tokenizer, SCORED)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]

    loaded = json.loads(stdout.strip().splitlines()[-1])
    assert loaded["keras_lm_error"] and "keras_lm" in loaded["keras_lm_error"]
    assert loaded["default"] == greedy
    assert loaded["single"] == greedy[2:3]
    assert loaded["sampled"] == sampled
    np.testing.assert_allclose(loaded["log_likelihood"], [s[0] for s in scores], rtol=1e-5)
    assert loaded["token_counts"] == [s[1] for s in scores]


def test_metadata_and_core_ops(exported):
    path, tokenizer, model = exported
    metadata = export.read_metadata(path)
    assert metadata["kind"] == "causal_lm" and metadata["model_class"] == "HMMLanguageModel"
    assert metadata["step"] == 3 and metadata["context_length"] == CONTEXT
    assert metadata["model_config"]["num_states"] == model.num_states == 6
    assert metadata["generate_defaults"]["max_new_tokens"] == MAX_NEW
    assert metadata["generate_defaults"]["temperature"] == 0.0
    assert set(metadata["signatures"]) == {"serving_default", "generate",
                                           "generate_with_options", "score"}
    assert metadata["requires"] == [] and export.non_core_ops(path) == []


def test_generate_equals_model_generate_and_the_numpy_chain(exported, served):
    _, tokenizer, model = exported
    out = served.signatures["generate"](prompts=tf.constant(PROMPTS))
    expected = model.generate(PROMPTS, max_new_tokens=MAX_NEW, tokenizer=tokenizer,
                              temperature=0.0, truncate=True)
    assert _texts(out) == expected
    assert expected == [_numpy_greedy(model, tokenizer, p, MAX_NEW) for p in PROMPTS]
    assert out["token_counts"].numpy().tolist() == [len(t) for t in expected]  # char model
    assert len(set(expected)) > 1 and any(len(t) == MAX_NEW for t in expected)
    empty = served.signatures["generate"](prompts=tf.constant([], tf.string))
    assert all(value.shape == (0,) for value in empty.values())


def test_score_equals_the_numpy_forward_algorithm(exported, served):
    _, tokenizer, model = exported
    out = served.signatures["score"](texts=tf.constant(SCORED))
    expected = _numpy_scores(model, tokenizer, SCORED)
    np.testing.assert_allclose(out["log_likelihood"].numpy(), [e[0] for e in expected],
                               rtol=1e-5)
    assert out["token_counts"].numpy().tolist() == [e[1] for e in expected] == [15, 1, 51, 2]
    # The model's own full forward logits agree (conftest's window-by-window reference).
    np.testing.assert_allclose([r[0] for r in reference_scores(model, tokenizer, SCORED)],
                               [e[0] for e in expected], rtol=1e-5)
