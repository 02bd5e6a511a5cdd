"""A SentencePiece export needs tensorflow_text's ops at load time: recorded, explained, tested."""

import json
import sys

import pytest
import tensorflow as tf

from keras_lm import export
from keras_lm.testing.configs import TINY_TEXT
from keras_lm.tokenizers import SentencePieceTokenizer

from .conftest import isolated_python
from .conftest import tiny_model

PROMPTS = ["it was the", ""]

LOADER = r"""
import json
import tensorflow as tf

path, prompts = sys.argv[1], json.loads(sys.argv[2])
try:
    tf.saved_model.load(path)
    plain_error = None
except Exception as error:
    plain_error = f"{type(error).__name__}: {error}"
import tensorflow_text  # the fix: register its ops, then load again
out = tf.saved_model.load(path).signatures["generate"](prompts=tf.constant(prompts))
print(json.dumps({"plain_error": plain_error,
                  "texts": [t.decode("utf-8") for t in out["texts"].numpy()]}))
"""


@pytest.fixture(scope="module")
def spm_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("spm")
    tokenizer = SentencePieceTokenizer.train([TINY_TEXT * 4], str(root / "spm"), vocab_size=40)
    model = tiny_model("decoder", tokenizer.vocabulary_size)
    path = export.export_model(model, tokenizer, str(root / "models"), max_new_tokens=6)
    return path, tokenizer, model


def test_metadata_names_the_package_and_its_ops(spm_export):
    path, _, _ = spm_export
    metadata = export.read_metadata(path)
    assert metadata["requires"] == ["tensorflow_text"]
    assert metadata["custom_ops"] == export.non_core_ops(path)
    assert {"SentencepieceOp", "SentencepieceTokenizeOp",
            "SentencepieceDetokenizeOp"} <= set(metadata["custom_ops"])
    assert metadata["tokenizer"]["class"] == "SentencePieceTokenizer"


@pytest.mark.slow
def test_plain_load_fails_with_tensorflows_op_error_and_works_after_the_import(
        spm_export, tmp_path):
    path, tokenizer, model = spm_export
    process = isolated_python(LOADER, path, json.dumps(PROMPTS), cwd=str(tmp_path))
    expected = model.generate(PROMPTS, max_new_tokens=6, tokenizer=tokenizer, temperature=0.0)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    result = json.loads(stdout.strip().splitlines()[-1])
    assert "Op type not registered 'Sentencepiece" in result["plain_error"]
    assert result["texts"] == expected
    # keras_lm's loader imports what keras_lm_export.json requires, then loads.
    loaded = export.load(path)
    texts = loaded.signatures["generate"](prompts=tf.constant(PROMPTS))["texts"].numpy()
    assert [t.decode("utf-8") for t in texts] == expected


def test_load_names_the_missing_package_and_the_fix(spm_export, monkeypatch):
    path, _, _ = spm_export
    monkeypatch.setitem(sys.modules, "tensorflow_text", None)  # as if not installed
    major_minor = ".".join(tf.__version__.split(".")[:2])
    with pytest.raises(ImportError, match="needs the TensorFlow ops of `tensorflow_text`") as e:
        export.load(path)
    assert f'pip install "tensorflow-text=={major_minor}.*"' in str(e.value)


def test_load_refuses_a_directory_that_is_not_an_export(tmp_path):
    with pytest.raises(FileNotFoundError, match="keras_lm_export.json"):
        export.load(str(tmp_path))
