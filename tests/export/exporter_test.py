"""export_model: the version layout, keras_lm_export.json, core ops, versions, atomicity."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lm import export
from keras_lm.export import exporter
from keras_lm.tasks import language_model
from keras_lm.tasks import workdir as workdir_lib
from keras_lm.tokenizers import ByteTokenizer
from keras_lm.tokenizers import load_tokenizer

from .conftest import tiny_model
from .conftest import untrained_workdir

SIGNATURES = {"serving_default", "generate", "generate_with_options", "score"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A workdir (untrained weights saved at step 3) exported once as version 1."""
    root = tmp_path_factory.mktemp("exported")
    workdir = untrained_workdir(str(root), step=3)
    path = language_model.export(workdir, str(root / "models"))
    return workdir, path


def test_version_directory_layout_and_metadata(exported):
    workdir, path = exported
    assert os.path.basename(path) == "1"
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    assert os.path.isdir(os.path.join(path, "variables"))
    metadata = export.read_metadata(path)
    config = workdir_lib.read_config(workdir)
    workdir_tokenizer = load_tokenizer(os.path.join(workdir, workdir_lib.TOKENIZER_DIR))
    assert metadata["kind"] == "causal_lm" and metadata["model_class"] == "DecoderLM"
    assert metadata["step"] == 3
    assert metadata["vocabulary_size"] == workdir_tokenizer.vocabulary_size
    assert metadata["config"] == json.loads(config.to_json_best_effort())
    assert metadata["model_config"]["sequence_length"] == config.model.sequence_length
    assert metadata["serving_default"] == "generate"
    assert metadata["requires"] == [] and metadata["custom_ops"] == []
    # The generate signature's defaults are the config's sample settings.
    assert metadata["generate_defaults"]["max_new_tokens"] == config.sample.max_new_tokens
    assert metadata["generate_defaults"]["temperature"] == config.sample.temperature
    signatures = metadata["signatures"]
    assert set(signatures) == SIGNATURES
    assert signatures["generate_with_options"]["inputs"] == {
        "prompts": {"dtype": "string", "shape": [None]},
        "max_new_tokens": {"dtype": "int32", "shape": []},
        "temperature": {"dtype": "float32", "shape": []},
        "top_k": {"dtype": "int32", "shape": []},
        "top_p": {"dtype": "float32", "shape": []},
        "seed": {"dtype": "int32", "shape": []},
    }
    assert set(signatures["generate"]["outputs"]) == {"texts", "token_counts"}
    assert set(signatures["score"]["outputs"]) == {"log_likelihood", "token_counts"}
    # The tokenizer travels as an asset and loads back identical.
    tokenizer = load_tokenizer(os.path.join(path, "assets", "tokenizer"))
    assert tokenizer.get_config() == workdir_tokenizer.get_config()


def test_char_export_runs_on_core_tensorflow_ops_with_an_xla_decoding_loop(exported):
    _, path = exported
    graph_ops, xla_ops = export.saved_model_op_types(path)
    core = set(dir(tf.raw_ops))
    assert sorted(graph_ops - core) == []  # everything the executor runs is in tf.raw_ops
    assert {"UnicodeDecode", "LookupTableFindV2"} <= graph_ops  # tokenizing is in the graph
    # Decoding is one XLA-compiled while loop; only TensorFlow's own XLA ops join there.
    assert "While" in xla_ops
    assert all(op in core or op.startswith("Xla") for op in xla_ops)
    assert export.non_core_ops(path) == []


def test_byte_export_is_core_only_and_answers_valid_utf8(tmp_path):
    tokenizer = ByteTokenizer()
    model = tiny_model("decoder", tokenizer.vocabulary_size, seed=5)
    path = export.export_model(model, tokenizer, str(tmp_path), temperature=2.0, seed=1,
                               max_new_tokens=12)
    assert export.non_core_ops(path) == []
    assert export.read_metadata(path)["tokenizer"]["class"] == "ByteTokenizer"
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["generate"](prompts=tf.constant(["é", "abc"]))
    raw = model.generate(["é", "abc"], max_new_tokens=12, tokenizer=tokenizer,
                         temperature=2.0, seed=1)
    for text, expected in zip(out["texts"].numpy(), raw):
        text = text.decode("utf-8")  # raises if the signature let invalid UTF-8 through
        # The same bytes; invalid sequences replaced (python may use fewer U+FFFD).
        assert text.replace("\ufffd", "") == expected.replace("\ufffd", "")


def test_next_version_counts_numbered_directories_only(tmp_path):
    assert export.next_version(str(tmp_path / "missing")) == 1
    for name in ("1", "7", "x12", ".tmp-9-abc"):
        os.makedirs(tmp_path / name)
    assert export.next_version(str(tmp_path)) == 8


def test_existing_version_needs_overwrite_and_a_crash_leaves_no_version(
        exported, monkeypatch):
    workdir, path = exported
    export_dir = os.path.dirname(path)
    with pytest.raises(FileExistsError, match="--overwrite"):
        language_model.export(workdir, export_dir, version=1)

    def crash(staging, metadata):  # the SavedModel is written, the metadata is not
        assert os.path.isfile(os.path.join(staging, "saved_model.pb"))
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(exporter, "_write_metadata", crash)
    with pytest.raises(OSError, match="simulated"):
        language_model.export(workdir, export_dir)  # would be version 2
    assert sorted(os.listdir(export_dir)) == ["1"]  # no version 2, no staging directory

    monkeypatch.undo()
    os.remove(os.path.join(path, "fingerprint.pb"))  # a mark that the directory is replaced
    assert language_model.export(workdir, export_dir, version=1, overwrite=True) == path
    assert os.path.isfile(os.path.join(path, "fingerprint.pb"))
    assert sorted(os.listdir(export_dir)) == ["1"]


def test_a_failed_overwrite_puts_the_old_version_back(tmp_path, monkeypatch):
    os.makedirs(tmp_path / "1")
    (tmp_path / "1" / "old.txt").write_text("old")
    staging = tmp_path / ".tmp-1-x"
    os.makedirs(staging)
    real_rename = os.rename

    def rename(source, target):
        if os.fspath(source) == os.fspath(staging):
            raise OSError("rename failed (simulated)")
        real_rename(source, target)

    monkeypatch.setattr(exporter.os, "rename", rename)
    with pytest.raises(OSError, match="simulated"):
        exporter._install(str(staging), str(tmp_path / "1"), overwrite=True)
    assert (tmp_path / "1" / "old.txt").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == [".tmp-1-x", "1"]  # export_model removes staging


def test_a_workdir_without_checkpoint_is_a_clear_error(tmp_path):
    workdir = untrained_workdir(str(tmp_path))
    for name in os.listdir(os.path.join(workdir, "checkpoints")):
        os.remove(os.path.join(workdir, "checkpoints", name))
    with pytest.raises(FileNotFoundError, match="No latest checkpoint"):
        language_model.export(workdir, str(tmp_path / "models"))
    assert not os.path.exists(tmp_path / "models")


def test_unknown_kinds_and_bad_versions_are_clear_errors(tmp_path, char_tokenizer):
    model = tiny_model("decoder", char_tokenizer.vocabulary_size)
    with pytest.raises(ValueError, match="Unknown export kind 'translation'"):
        export.export_model(model, char_tokenizer, str(tmp_path), kind="translation")
    plain = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="No export kind for a Sequential model"):
        export.export_model(plain, char_tokenizer, str(tmp_path))
    for version in (0, "3", True):
        with pytest.raises(ValueError, match="`version` must be a positive int"):
            export.export_model(model, char_tokenizer, str(tmp_path), version=version)
    assert os.listdir(tmp_path) == []


def test_a_new_kind_is_one_registration(tmp_path, char_tokenizer, monkeypatch):
    """The registry's contract, with a minimal builder: token ids of the input texts."""

    class TokenIdsModule(tf.Module):
        main_signature = "token_ids"

        def __init__(self, model, tokenizer, pad_to=8):
            super().__init__()
            self.tokenizer = tokenizer
            self.ids = tf.function(
                lambda texts: {"ids": tokenizer.tokenize(texts).to_tensor(shape=[None, pad_to])},
                input_signature=[tf.TensorSpec([None], tf.string)])

        def signatures(self):
            ids = self.ids.get_concrete_function()
            return {"serving_default": ids, "token_ids": ids}

        def metadata(self):
            return {"pad_to": 8}

    class Identity(keras.Model):
        pass

    monkeypatch.setattr(export.kinds, "EXPORT_KINDS", dict(export.EXPORT_KINDS))
    monkeypatch.setattr(export.kinds, "MODEL_KINDS", dict(export.MODEL_KINDS))
    export.register_kind("token_ids", TokenIdsModule, [Identity])
    path = export.export_model(Identity(), char_tokenizer, str(tmp_path), pad_to=8)
    metadata = export.read_metadata(path)
    assert metadata["kind"] == "token_ids" and metadata["pad_to"] == 8
    assert set(metadata["signatures"]) == {"serving_default", "token_ids"}
    out = tf.saved_model.load(path).signatures["token_ids"](texts=tf.constant(["it"]))
    expected = np.zeros((1, 8), np.int32)
    expected[0, :2] = np.asarray(char_tokenizer.tokenize("it"))
    np.testing.assert_array_equal(out["ids"].numpy(), expected)
