"""The tagger export: `tag` gives the tags of the tagging task's own predict path.

One workdir (random weights, 4 tags, rows of 16 tokens on a 24-position backbone) is
exported once with `tagging.export` (what `keras-lm export` calls); a python without
keras_lm serves it in the slow test.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from keras_lm import export
from keras_lm.data import encoder_inputs
from keras_lm.data import labeled
from keras_lm.export import TaggerModule
from keras_lm.export.tagger_module import split_words
from keras_lm.models import TokenClassifier
from keras_lm.tasks import masked_lm
from keras_lm.tasks import tagging
from keras_lm.testing.configs import TINY_TEXT
from keras_lm.tokenizers import ByteTokenizer

from .conftest import isolated_python
from .conftest import randomize
from .conftest import tagger_workdir

# An empty text, one longer than the rows (16 tokens: words cut off), unknown characters
# ("Z", "é"), white space other than " " (tab, no-break space, ideographic space), and
# white space only.
TEXTS = ["it was the age of wisdom", "", TINY_TEXT[:90], "Zé?  \u00a0 it\tis\u3000so ",
         " \n "]

LOADER = r"""
import json
import tensorflow as tf

path, texts = sys.argv[1], json.loads(sys.argv[2])
loaded = tf.saved_model.load(path)
results = {"keras_lm_error": keras_lm_error}
for name, batch in [("tag", texts), ("single", texts[2:3]), ("default", texts)]:
    signature = loaded.signatures["serving_default" if name == "default" else "tag"]
    out = signature(texts=tf.constant(batch))
    results[name] = {
        "words": [[w.decode("utf-8") for w in row] for row in out["words"].numpy()],
        "tags": [[t.decode("utf-8") for t in row] for row in out["tags"].numpy()],
        "word_counts": out["word_counts"].numpy().tolist(),
        "probabilities": out["probabilities"].numpy().tolist(),
    }
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("tagger")
    workdir = tagger_workdir(str(root))
    path = tagging.export(workdir, str(root / "models"))
    config, tokenizer, tags, model, step = tagging.load(workdir)
    assert step == 3
    return path, workdir, config, tokenizer, tags, model


def _expected(model, tokenizer, tags, texts, row_length=16):
    """Tags per word from `tagging.predict_tags` (the task's path: python `str.split`, numpy
    rows), and probabilities [B, W, C] at the same first sub-tokens (0 where cut off)."""
    sentences = [{"words": text.split()} for text in texts]
    predicted, _ = tagging.predict_tags(model, tokenizer, tags, sentences, row_length)
    arrays, word_starts = encoder_inputs.tagging_arrays(sentences, tokenizer, None, row_length)
    logits = np.asarray(model({"token_ids": arrays["token_ids"],
                               "segment_ids": arrays["segment_ids"]}), np.float64)
    softmax = np.exp(logits - logits.max(-1, keepdims=True))
    softmax /= softmax.sum(-1, keepdims=True)
    width = max(len(s["words"]) for s in sentences)
    probabilities = np.zeros((len(texts), width, len(tags)))
    for row, starts in enumerate(word_starts):
        for j, position in enumerate(starts):
            if position >= 0:
                probabilities[row, j] = softmax[row, position]
    return predicted, probabilities


def _unpad(out):
    """(words, tags) lists of each row, cut to its word count (numpy or list outputs)."""
    counts = np.asarray(out["word_counts"]).tolist()
    words = [[_text(w) for w in row[:n]] for row, n in zip(out["words"], counts)]
    return words, [[_text(t) for t in row[:n]] for row, n in zip(out["tags"], counts)]


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


@pytest.mark.slow
def test_export_serves_the_same_tags_without_keras_lm(exported, tmp_path):
    path, workdir, _, tokenizer, tags, model = exported
    process = isolated_python(LOADER, path, json.dumps(TEXTS), cwd=str(tmp_path))
    predicted, probabilities = _expected(model, tokenizer, tags, TEXTS)
    # `keras-lm predict`'s answer: "word/TAG ..." of the white-space separated words.
    line = tagging.predict(workdir, text=TEXTS[0])
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]

    loaded = json.loads(stdout.strip().splitlines()[-1])
    assert loaded["keras_lm_error"] and "keras_lm" in loaded["keras_lm_error"]
    for name in ("tag", "default"):
        out = loaded[name]
        assert out["word_counts"] == [len(t.split()) for t in TEXTS]
        assert _unpad(out) == ([t.split() for t in TEXTS], predicted)
        np.testing.assert_allclose(out["probabilities"], probabilities, atol=1e-5)
        # Padding is "" for words and tags.
        width = max(out["word_counts"])
        assert all(row[n:] == [""] * (width - n)
                   for key in ("words", "tags") for row, n in zip(out[key], out["word_counts"]))
    single = loaded["single"]
    assert _unpad(single) == ([TEXTS[2].split()], predicted[2:3])
    np.testing.assert_allclose(single["probabilities"], probabilities[2:3], atol=1e-5)
    assert len({t for row in predicted for t in row}) > 1  # the weights tell words apart
    assert line == " ".join(f"{w}/{t}" for w, t in zip(TEXTS[0].split(), predicted[0]))


def test_metadata_and_core_ops(exported):
    from keras_lm import main

    path, workdir, config, _, tags, _ = exported
    metadata = export.read_metadata(path)
    assert metadata["kind"] == "tagger" and metadata["model_class"] == "TokenClassifier"
    assert metadata["labels"] == tags == labeled.load_labels(workdir)
    assert metadata["sequence_length"] == config.data.sequence_length == 16
    assert metadata["serving_default"] == "tag" and metadata["outside_tag"] == "O"
    assert set(metadata["signatures"]) == {"tag", "serving_default"}
    assert metadata["signatures"]["tag"] == {
        "inputs": {"texts": {"dtype": "string", "shape": [None]}},
        "outputs": {
            "probabilities": {"dtype": "float32", "shape": [None, None, len(tags)]},
            "tags": {"dtype": "string", "shape": [None, None]},
            "word_counts": {"dtype": "int32", "shape": [None]},
            "words": {"dtype": "string", "shape": [None, None]},
        },
    }
    assert metadata["step"] == 3
    assert metadata["requires"] == [] and export.non_core_ops(path) == []
    assert main.task_module("tagging") is tagging  # `keras-lm export` calls tagging.export


def test_module_equals_the_in_process_tagger(exported):
    _, _, _, tokenizer, tags, model = exported
    module = TaggerModule(model, tokenizer, tags, sequence_length=16)
    for texts in (TEXTS, TEXTS[1:2], TEXTS[2:3], [TINY_TEXT * 3]):
        out = {k: v.numpy() for k, v in module.tag(tf.constant(texts)).items()}
        predicted, probabilities = _expected(model, tokenizer, tags, texts)
        assert _unpad(out) == ([t.split() for t in texts], predicted)
        np.testing.assert_allclose(out["probabilities"], probabilities, atol=1e-5)
    # The long text's words past the row are "O", with no probabilities.
    assert out["tags"][0, -1] == b"O" and not out["probabilities"][0, -1].any()
    empty = module.tag(tf.constant([], tf.string))
    assert empty["words"].shape == (0, 0) and empty["probabilities"].shape == (0, 0, len(tags))
    # Rows of the backbone's 24 positions read more of the long text: more words tagged.
    wide = TaggerModule(model, tokenizer, tags).tag(tf.constant(TEXTS[2:3]))
    narrow = module.tag(tf.constant(TEXTS[2:3]))
    assert np.count_nonzero(wide["probabilities"].numpy().sum(-1)) > np.count_nonzero(
        narrow["probabilities"].numpy().sum(-1))


def test_words_split_at_pythons_white_space():
    every = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    spaces = [c for c in every if c.isspace()]
    texts = [f"{c}a{c}{c}b{c}" for c in spaces]
    assert split_words(tf.constant(texts)).to_list() == [[b"a", b"b"]] * len(spaces)
    others = "".join(c for c in every if not c.isspace())
    assert split_words(tf.constant([others])).to_list() == [[others.encode("utf-8")]]


def test_byte_tagger_export_is_core_only(tmp_path):
    tokenizer = ByteTokenizer()
    backbone = masked_lm.build_backbone(
        _tiny_model_config(), encoder_inputs.encoder_vocabulary_size(tokenizer))
    model = randomize(TokenClassifier(backbone, num_labels=3))
    model.build()
    labels = ["B-X", "I-X", "O"]
    path = export.export_model(model, tokenizer, str(tmp_path), labels=labels)
    assert export.read_metadata(path)["kind"] == "tagger"
    assert export.non_core_ops(path) == []
    texts = ["é a", "", "xy zw uv"]  # "é" is 2 bytes; the third text does not fit 8 tokens
    out = tf.saved_model.load(path).signatures["tag"](texts=tf.constant(texts))
    predicted, probabilities = _expected(model, tokenizer, labels, texts, row_length=8)
    assert _unpad({k: v.numpy() for k, v in out.items()}) == (
        [t.split() for t in texts], predicted)
    np.testing.assert_allclose(out["probabilities"].numpy(), probabilities, atol=1e-5)


def test_bad_labels_and_vocabulary_are_refused(exported):
    _, _, _, tokenizer, tags, model = exported
    with pytest.raises(ValueError, match="`labels` must be 4 tag names"):
        TaggerModule(model, tokenizer, tags[:3])
    with pytest.raises(ValueError, match="`sequence_length` must be an int in"):
        TaggerModule(model, tokenizer, tags, sequence_length=25)
    with pytest.raises(ValueError, match="does not match the model's encoder"):
        TaggerModule(model, ByteTokenizer(), tags)


def _tiny_model_config():
    config = masked_lm.default_model_config()
    config.update(num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
                  sequence_length=8, dropout=0.0)
    return config
