"""The classifier export: `classify` / `classify_pairs` equal the in-process classifier.

One workdir (random weights, 3 labels, rows of 16 tokens on a 24-position backbone) is
exported once with `classification.export`; a python without keras_lm and
`saved_model_cli` serve it side by side in the slow test.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_lm import export
from keras_lm.data import encoder_inputs
from keras_lm.data import labeled
from keras_lm.export import ClassifierModule
from keras_lm.models import SequenceClassifier
from keras_lm.tasks import classification
from keras_lm.tasks import masked_lm
from keras_lm.testing.configs import TINY_TEXT
from keras_lm.tokenizers import ByteTokenizer

from .conftest import classifier_workdir
from .conftest import isolated_python
from .conftest import randomize

# An empty text, one longer than the rows (16 tokens), unknown characters ("Z", "é").
TEXTS = ["it was the age of wisdom", "", TINY_TEXT[:90], "Zé?"]
PAIRS = ["the season of Light", TINY_TEXT[10:80], "", "it"]

LOADER = r"""
import json
import tensorflow as tf

path, texts, pairs = sys.argv[1], *map(json.loads, sys.argv[2:])
loaded = tf.saved_model.load(path)
results = {"keras_lm_error": keras_lm_error}
for name, out in [
    ("classify", loaded.signatures["classify"](texts=tf.constant(texts))),
    ("single", loaded.signatures["classify"](texts=tf.constant(texts[2:3]))),
    ("default", loaded.signatures["serving_default"](texts=tf.constant(texts))),
    ("pairs", loaded.signatures["classify_pairs"](texts=tf.constant(texts),
                                                  pairs=tf.constant(pairs))),
]:
    results[name] = {"probabilities": out["probabilities"].numpy().tolist(),
                     "labels": [x.decode("utf-8") for x in out["labels"].numpy()]}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("classifier")
    workdir = classifier_workdir(str(root))
    path = classification.export(workdir, str(root / "models"))
    config, tokenizer, labels, model, step = classification.load(workdir)
    assert step == 3
    return path, workdir, config, tokenizer, labels, model


def _expected(model, tokenizer, labels, texts, pairs=None, row_length=16):
    """Probabilities and label names of the in-process evaluation path (tf.data packing)."""
    examples = [{"text": t} for t in texts]
    if pairs is not None:
        for example, pair in zip(examples, pairs):
            example["text_pair"] = pair
    dataset = encoder_inputs.classification_dataset(
        examples, tokenizer, [0] * len(texts), row_length, 3, training=False)
    probabilities = classification.predict_probabilities(model, dataset)
    return probabilities, [labels[i] for i in probabilities.argmax(-1)]


def _cli(*args):
    binary = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen([binary, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


@pytest.mark.slow
def test_export_serves_the_same_outputs_without_keras_lm(exported, tmp_path):
    path, workdir, _, tokenizer, labels, model = exported
    cli_out = str(tmp_path / "cli_out")
    processes = {
        "loader": isolated_python(LOADER, path, json.dumps(TEXTS), json.dumps(PAIRS),
                                  cwd=str(tmp_path)),
        "show": _cli("show", "--dir", path, "--all"),
        "run": _cli("run", "--dir", path, "--tag_set", "serve", "--signature_def", "classify",
                    "--input_exprs", f"texts={TEXTS[:2]!r}", "--outdir", cli_out),
    }
    probabilities, names = _expected(model, tokenizer, labels, TEXTS)
    pair_probabilities, pair_names = _expected(model, tokenizer, labels, TEXTS, PAIRS)
    # `keras-lm predict`'s answer for one text: its label, probabilities to 3 decimals.
    line = classification.predict(workdir, text=TEXTS[2])
    results = {name: p.communicate(timeout=300) for name, p in processes.items()}
    for name, p in processes.items():
        assert p.returncode == 0, f"{name}: {results[name][1][-3000:]}"

    loaded = json.loads(results["loader"][0].strip().splitlines()[-1])
    assert loaded["keras_lm_error"] and "keras_lm" in loaded["keras_lm_error"]
    for name in ("classify", "default"):
        np.testing.assert_allclose(loaded[name]["probabilities"], probabilities, atol=1e-5)
        assert loaded[name]["labels"] == names
    np.testing.assert_allclose(loaded["single"]["probabilities"], probabilities[2:3], atol=1e-5)
    assert loaded["single"]["labels"] == names[2:3]
    np.testing.assert_allclose(loaded["pairs"]["probabilities"], pair_probabilities, atol=1e-5)
    assert loaded["pairs"]["labels"] == pair_names
    assert len(set(names + pair_names)) > 1  # the random weights tell the inputs apart
    assert line.split("\t")[0] == names[2]
    assert line.split("\t")[1] == " ".join(
        f"{label}={p:.3f}" for label, p in zip(labels, probabilities[2]))

    show = results["show"][0]
    for name, inputs in [("classify", ["texts"]), ("classify_pairs", ["pairs", "texts"]),
                         ("serving_default", ["texts"])]:
        block = show.split(f"signature_def['{name}']:")[1].split("signature_def[")[0]
        assert sorted(re.findall(r"inputs\['(\w+)'\]", block)) == inputs
        assert sorted(re.findall(r"outputs\['(\w+)'\]", block)) == ["labels", "probabilities"]
    cli_labels = np.load(os.path.join(cli_out, "labels.npy"), allow_pickle=True)
    assert [x.decode("utf-8") for x in cli_labels] == names[:2]
    np.testing.assert_allclose(np.load(os.path.join(cli_out, "probabilities.npy")),
                               probabilities[:2], atol=1e-5)


def test_metadata_and_core_ops(exported):
    path, workdir, config, _, labels, _ = exported
    metadata = export.read_metadata(path)
    assert metadata["kind"] == "classifier" and metadata["model_class"] == "SequenceClassifier"
    assert metadata["labels"] == labels == labeled.load_labels(workdir)
    assert metadata["sequence_length"] == config.data.sequence_length == 16
    assert metadata["serving_default"] == "classify" and metadata["text_pairs"] is False
    assert set(metadata["signatures"]) == {"classify", "classify_pairs", "serving_default"}
    assert metadata["signatures"]["classify_pairs"]["outputs"] == {
        "labels": {"dtype": "string", "shape": [None]},
        "probabilities": {"dtype": "float32", "shape": [None, len(labels)]},
    }
    assert metadata["step"] == 3
    assert metadata["requires"] == [] and export.non_core_ops(path) == []


def test_module_equals_the_in_process_classifier(exported):
    _, _, _, tokenizer, labels, model = exported
    module = ClassifierModule(model, tokenizer, labels, sequence_length=16)
    for texts in (TEXTS, TEXTS[1:2]):  # several, and one empty string
        out = module.classify(tf.constant(texts))
        probabilities, names = _expected(model, tokenizer, labels, texts)
        np.testing.assert_allclose(out["probabilities"].numpy(), probabilities, atol=1e-5)
        assert [x.decode() for x in out["labels"].numpy()] == names
    out = module.classify_pairs(tf.constant(TEXTS), tf.constant(PAIRS))
    probabilities, names = _expected(model, tokenizer, labels, TEXTS, PAIRS)
    np.testing.assert_allclose(out["probabilities"].numpy(), probabilities, atol=1e-5)
    assert [x.decode() for x in out["labels"].numpy()] == names
    # Rows of the backbone's 24 positions read more of the long text: other numbers.
    wide = ClassifierModule(model, tokenizer, labels).classify(tf.constant(TEXTS[2:3]))
    assert np.abs(wide["probabilities"].numpy() - probabilities[2]).max() > 1e-4
    empty = module.classify(tf.constant([], tf.string))
    assert empty["probabilities"].shape == (0, len(labels)) and empty["labels"].shape == (0,)


def test_predict_refuses_a_pair_for_a_single_text_classifier(exported):
    """`keras-lm predict --text_pair` on a single-text classifier is not silently ignored."""
    _, workdir, _, _, labels, _ = exported
    assert classification.predict(workdir, text="it was").split("\t")[0] in labels
    with pytest.raises(ValueError, match="reads single texts.*drop --text_pair"):
        classification.predict(workdir, text="it was", text_pair="the age")


def test_pair_classifiers_serve_pairs_by_default(exported):
    _, _, _, tokenizer, labels, model = exported
    module = ClassifierModule(model, tokenizer, labels, text_pairs=True)
    assert module.main_signature == "classify_pairs"
    signatures = module.signatures()
    assert signatures["serving_default"] is signatures["classify_pairs"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="as many `pairs` as `texts`"):
        module.classify_pairs(tf.constant(["a", "b"]), tf.constant(["a"]))


def test_byte_classifier_export_is_core_only(tmp_path):
    tokenizer = ByteTokenizer()
    backbone = masked_lm.build_backbone(
        _tiny_model_config(), encoder_inputs.encoder_vocabulary_size(tokenizer))
    model = randomize(SequenceClassifier(backbone, num_labels=2))
    model.build()
    path = export.export_model(model, tokenizer, str(tmp_path), labels=["no", "yes"])
    assert export.non_core_ops(path) == []
    out = tf.saved_model.load(path).signatures["classify"](texts=tf.constant(["é", ""]))
    probabilities, names = _expected(model, tokenizer, ["no", "yes"], ["é", ""], row_length=8)
    np.testing.assert_allclose(out["probabilities"].numpy(), probabilities, atol=1e-5)
    assert [x.decode() for x in out["labels"].numpy()] == names


def test_bad_labels_and_vocabulary_are_refused(exported):
    _, _, _, tokenizer, labels, model = exported
    with pytest.raises(ValueError, match="`labels` must be 3 label names"):
        ClassifierModule(model, tokenizer, labels[:2])
    with pytest.raises(ValueError, match="`sequence_length` must be an int in"):
        ClassifierModule(model, tokenizer, labels, sequence_length=25)
    with pytest.raises(ValueError, match="does not match the model's encoder"):
        ClassifierModule(model, ByteTokenizer(), labels)


def _tiny_model_config():
    config = masked_lm.default_model_config()
    config.update(num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
                  sequence_length=8, dropout=0.0)
    return config
