import json
import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from keras_lm.data import build_lm_datasets
from keras_lm.data import corpus_statistics
from keras_lm.data import lm_dataset
from keras_lm.data import pydoc_documents
from keras_lm.tokenizers import CharTokenizer

# ---------------------------------------------------------------------------------------------
# Plain-Python reference of the pipeline, written from the spec (not from the implementation).


def token_ids(tokenizer, text):
    """Eager tokenization of one text, as a Python list."""
    return tokenizer.tokenize(tf.constant(text)).numpy().tolist()


def reference_stream(documents, tokenizer):
    stream = [tokenizer.eos_id]
    for document in documents:
        stream += token_ids(tokenizer, document) + [tokenizer.eos_id]
    return stream


def reference_windows(stream, T, training):
    windows = [stream[start : start + T + 1] for start in range(0, len(stream) - 1, T)]
    return [w for w in windows if len(w) == T + 1] if training else windows


def reference_row(window, T, tokenizer, packing):
    """One row (x, y, weight, segments) of a window of <= T + 1 tokens."""
    n = len(window)
    padded = window + [tokenizer.pad_id] * (T + 1 - n)
    weight = [1.0 if i + 1 < n else 0.0 for i in range(T)]
    segments = None
    if packing == "document":
        segments, segment = [], 1
        for token in window:
            segments.append(segment)
            segment += token == tokenizer.eos_id
        segments += [0] * (T + 1 - n)
        weight = [w if segments[i] == segments[i + 1] else 0.0 for i, w in enumerate(weight)]
        segments = segments[:-1]
    return padded[:-1], padded[1:], weight, segments


def rows_of(dataset, num_batches=None):
    """Flattens batches into rows (x, y, weight, segments) of Python lists."""
    rows = []
    batches = dataset if num_batches is None else dataset.take(num_batches)
    for features, labels, weights in batches:
        segments = features.get("segment_ids")
        for i in range(labels.shape[0]):
            rows.append(
                (
                    features["token_ids"][i].numpy().tolist(),
                    labels[i].numpy().tolist(),
                    weights[i].numpy().tolist(),
                    None if segments is None else segments[i].numpy().tolist(),
                )
            )
    return rows


def random_documents(rng, num_documents=7, max_length=40):
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return [
        "".join(rng.choice(letters, size=int(rng.integers(0, max_length + 1))))
        for _ in range(num_documents)
    ]


def batches_as_arrays(dataset, num_batches):
    return [
        (f["token_ids"].numpy(), y.numpy(), w.numpy()) for f, y, w in dataset.take(num_batches)
    ]


# ---------------------------------------------------------------------------------------------
# Exact windows on tiny corpora (hand-written expectations).


def test_evaluation_windows_exact(letter_tokenizer):
    # Stream: [eos] a b c [eos] d e [eos] = 1 2 3 4 1 5 6 1; T = 3, stride 3.
    ds = lm_dataset(["abc", "de"], letter_tokenizer, 3, 2, training=False)
    batches = [(f["token_ids"].numpy(), y.numpy(), w.numpy()) for f, y, w in ds]
    assert len(batches) == 2
    np.testing.assert_array_equal(batches[0][0], [[1, 2, 3], [4, 1, 5]])
    np.testing.assert_array_equal(batches[0][1], [[2, 3, 4], [1, 5, 6]])
    np.testing.assert_array_equal(batches[0][2], [[1, 1, 1], [1, 1, 1]])
    np.testing.assert_array_equal(batches[1][0], [[6, 1, 0]])
    np.testing.assert_array_equal(batches[1][1], [[1, 0, 0]])
    np.testing.assert_array_equal(batches[1][2], [[1, 0, 0]])


def test_document_packing_exact(letter_tokenizer):
    # Stream: 1 | a=2 1 | (empty doc) 1 | b=3 c=4 1; T = 4.
    # Window 0: 1 2 1 1 3, segments 1 2 2 3 4 (a separator ends its document).
    # Window 1: 3 4 1 . ., segments 1 1 1 0 0 (restart at 1, padding 0).
    ds = lm_dataset(["a", "", "bc"], letter_tokenizer, 4, 2, training=False, packing="document")
    (features, labels, weights), = list(ds)
    np.testing.assert_array_equal(features["token_ids"], [[1, 2, 1, 1], [3, 4, 1, 0]])
    np.testing.assert_array_equal(features["segment_ids"], [[1, 2, 2, 3], [1, 1, 1, 0]])
    np.testing.assert_array_equal(labels, [[2, 1, 1, 3], [4, 1, 0, 0]])
    np.testing.assert_array_equal(weights, [[0, 1, 0, 0], [1, 1, 0, 0]])


def test_training_windows_exact_in_order(letter_tokenizer):
    # Stream 1 2 3 4 5 6 7 8 1 (9 tokens): 2 full windows of T + 1 = 4, the rest is dropped.
    # shuffle_buffer=1 keeps the corpus order; batches run across epochs.
    ds = lm_dataset(["abcdefg"], letter_tokenizer, 3, 2, training=True, shuffle_buffer=1)
    features, labels, weights = next(iter(ds))
    np.testing.assert_array_equal(features["token_ids"], [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(labels, [[2, 3, 4], [5, 6, 7]])
    np.testing.assert_array_equal(weights, np.ones([2, 3]))
    # Stream 1 2 ... 14 1 (a=2 ... m=14): 4 windows; the second batch of 3 wraps into epoch 2.
    ds = lm_dataset(["abcdefghijklm"], letter_tokenizer, 3, 3, training=True, shuffle_buffer=1)
    (_, labels0, _), (features, labels, _) = list(ds.take(2))
    np.testing.assert_array_equal(labels0, [[2, 3, 4], [5, 6, 7], [8, 9, 10]])
    np.testing.assert_array_equal(features["token_ids"], [[10, 11, 12], [1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(labels, [[11, 12, 13], [2, 3, 4], [5, 6, 7]])


def test_element_spec(letter_tokenizer):
    ds = lm_dataset(["abcdefgh"], letter_tokenizer, 3, 2, training=True, packing="document")
    features, labels, weights = ds.element_spec
    assert features["token_ids"] == tf.TensorSpec([2, 3], tf.int32)
    assert features["segment_ids"] == tf.TensorSpec([2, 3], tf.int32)
    assert labels == tf.TensorSpec([2, 3], tf.int32)
    assert weights == tf.TensorSpec([2, 3], tf.float32)
    ds = lm_dataset(["ab"], letter_tokenizer, 3, 2, training=False)
    features, labels, weights = ds.element_spec
    assert set(features) == {"token_ids"}
    assert labels == tf.TensorSpec([None, 3], tf.int32)


# ---------------------------------------------------------------------------------------------
# Evaluation layout against the Python reference.


@pytest.mark.parametrize("packing", ["concat", "document"])
def test_evaluation_matches_reference(byte_tokenizer, rng, packing):
    documents = random_documents(rng)
    stream = reference_stream(documents, byte_tokenizer)
    for T, B in [(1, 3), (4, 2), (7, 5), (16, 1)]:
        ds = lm_dataset(documents, byte_tokenizer, T, B, training=False, packing=packing)
        expected = [
            reference_row(w, T, byte_tokenizer, packing)
            for w in reference_windows(stream, T, False)
        ]
        assert rows_of(ds) == expected, (T, B)


def test_every_validation_token_is_a_label_once(letter_tokenizer):
    documents = ["abcd", "efghij"]  # 13-token stream: T in {1, 2, 3, 4, 6} divides 12 exactly.
    lm_tokens = corpus_statistics(documents, letter_tokenizer)["lm_tokens"]
    for T in range(1, 9):
        rows = rows_of(lm_dataset(documents, letter_tokenizer, T, 2, training=False))
        labels = [y for _, ys, ws, _ in rows for y, w in zip(ys, ws) if w == 1.0]
        assert labels == reference_stream(documents, letter_tokenizer)[1:]
        assert len(labels) == lm_tokens
        # Padding (label == pad_id, weight 0) only at the end of the last row.
        for _, ys, ws, _ in rows[:-1]:
            assert ws == [1.0] * T
        last_labels, last_weights = rows[-1][1], rows[-1][2]
        n = int(sum(last_weights))
        assert last_weights == [1.0] * n + [0.0] * (T - n)
        assert last_labels[n:] == [0] * (T - n)


def test_dataset_documents_equal_list_documents(byte_tokenizer, rng):
    documents = random_documents(rng)
    from_list = rows_of(lm_dataset(documents, byte_tokenizer, 5, 3, training=False))
    from_dataset = rows_of(
        lm_dataset(tf.data.Dataset.from_tensor_slices(documents), byte_tokenizer, 5, 3,
                   training=False)
    )
    assert from_list == from_dataset


def test_example_fn_same_eagerly_and_in_tf_data(letter_tokenizer):
    from keras_lm.data.lm_pipeline import _example_fn

    windows = tf.constant([[1, 2, 1, 1, 3], [3, 4, 1, 0, 0]], tf.int32)
    lengths = tf.constant([5, 3], tf.int32)
    to_example = _example_fn(4, letter_tokenizer.eos_id, "document")
    eager = to_example(windows, lengths)
    graph = next(iter(tf.data.Dataset.from_tensors((windows, lengths)).map(to_example)))
    for a, b in zip(tf.nest.flatten(eager), tf.nest.flatten(graph)):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# Training layout: shuffling, epochs, resume, determinism.


def _training_setup(rng):
    documents = random_documents(rng, num_documents=9, max_length=30)
    return documents


@pytest.mark.parametrize("packing", ["concat", "document"])
def test_training_epochs_are_permutations(byte_tokenizer, rng, packing):
    documents = _training_setup(rng)
    T, B = 4, 3
    stream = reference_stream(documents, byte_tokenizer)
    windows = reference_windows(stream, T, True)
    W = len(windows)
    assert W == (len(stream) - 1) // T and W % B != 0
    expected = sorted(reference_row(w, T, byte_tokenizer, packing) for w in windows)
    ds = lm_dataset(documents, byte_tokenizer, T, B, training=True, packing=packing, seed=3)
    rows = rows_of(ds, num_batches=-(-2 * W // B) + 1)
    epoch0, epoch1 = rows[:W], rows[W : 2 * W]
    assert sorted(epoch0) == expected
    assert sorted(epoch1) == expected
    assert epoch0 != epoch1  # reshuffled every epoch
    assert epoch0 != [reference_row(w, T, byte_tokenizer, packing) for w in windows]


def test_shuffle_buffer_permutes_within_blocks(byte_tokenizer, rng):
    documents = _training_setup(rng)
    T, B, buffer = 3, 2, 5
    windows = reference_windows(reference_stream(documents, byte_tokenizer), T, True)
    ds = lm_dataset(documents, byte_tokenizer, T, B, training=True, shuffle_buffer=buffer)
    rows = rows_of(ds, num_batches=-(-len(windows) // B))[: len(windows)]  # the first epoch
    reference = [reference_row(w, T, byte_tokenizer, "concat") for w in windows]
    for start in range(0, len(windows), buffer):
        block = slice(start, start + buffer)
        assert sorted(rows[block]) == sorted(reference[block])


def test_start_step_continues_the_same_order(byte_tokenizer, rng):
    documents = _training_setup(rng)
    T, B, n = 4, 3, 14  # W is not a multiple of B, and n batches span about three epochs
    assert len(reference_windows(reference_stream(documents, byte_tokenizer), T, True)) % B
    full = batches_as_arrays(
        lm_dataset(documents, byte_tokenizer, T, B, training=True, seed=5, packing="document"),
        n,
    )
    for start_step in [1, 7, 11]:
        resumed = batches_as_arrays(
            lm_dataset(documents, byte_tokenizer, T, B, training=True, seed=5,
                       packing="document", start_step=start_step),
            n - start_step,
        )
        for a, b in zip(full[start_step:], resumed, strict=True):
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y)


def test_determinism_and_seed(byte_tokenizer, rng):
    documents = _training_setup(rng)

    def first_batches(seed):
        return batches_as_arrays(
            lm_dataset(documents, byte_tokenizer, 4, 2, training=True, seed=seed), 6
        )

    first = first_batches(0)
    # A different global seed and consumed random state must not change the order.
    tf.random.set_seed(987)
    tf.random.uniform([3])
    second = first_batches(0)
    for a, b in zip(first, second):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    other = first_batches(1)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other))


_CHILD = """
import json, sys
import tensorflow as tf
sys.path.insert(0, {root!r})
from keras_lm.data import build_lm_datasets
from keras_lm.tokenizers import ByteTokenizer
tf.random.set_seed(31337)
config = {{"sequence_length": 16, "shuffle_buffer": 64, "seed": 7}}
train, _ = build_lm_datasets(config, ByteTokenizer(), 4)
print(json.dumps([f["token_ids"].numpy().tolist() for f, _, _ in train.take(3)]))
"""


def test_order_is_the_same_in_another_process(byte_tokenizer, repo_root):
    train, _ = build_lm_datasets(
        {"sequence_length": 16, "shuffle_buffer": 64, "seed": 7}, byte_tokenizer, 4
    )
    here = [f["token_ids"].numpy().tolist() for f, _, _ in train.take(3)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    child = subprocess.run(
        [sys.executable, "-c", _CHILD.format(root=str(repo_root))],
        capture_output=True, text=True, env=env, check=True, timeout=120,
    )
    assert json.loads(child.stdout.strip().splitlines()[-1]) == here


# ---------------------------------------------------------------------------------------------
# Statistics and the config entry point.


def test_corpus_statistics(byte_tokenizer):
    documents = ["héllo wörld", "", "日本語", "ab\r\n"]
    characters = sum(len(d) for d in documents)
    num_bytes = sum(len(d.encode("utf-8")) for d in documents)
    assert num_bytes > characters
    stats = corpus_statistics(documents, CharTokenizer.fit(documents))
    assert stats == {
        "documents": 4,
        "characters": characters,
        "bytes": num_bytes,
        "tokens": characters,  # one token a character
        "lm_tokens": characters + 4,
    }
    dataset = tf.data.Dataset.from_tensor_slices(documents)
    stats = corpus_statistics(dataset, byte_tokenizer)
    assert (stats["tokens"], stats["lm_tokens"]) == (num_bytes, num_bytes + 4)


def test_build_lm_datasets_pydoc_default(byte_tokenizer):
    config = ml_collections.ConfigDict({"sequence_length": 64, "packing": "concat", "seed": 1})
    train, validation = build_lm_datasets(config, byte_tokenizer, batch_size=8)
    features, labels, _ = train.element_spec
    assert features["token_ids"] == tf.TensorSpec([8, 64], tf.int32)
    weights = sum(float(tf.reduce_sum(w)) for _, _, w in validation)
    stats = corpus_statistics(pydoc_documents("validation"), byte_tokenizer)
    assert weights == stats["lm_tokens"] == stats["bytes"] + stats["documents"]
    # start_step passes through: batch 2 of a run from 0 is batch 0 of a run from step 2.
    resumed, _ = build_lm_datasets(config, byte_tokenizer, batch_size=8, start_step=2)
    np.testing.assert_array_equal(
        list(train.skip(2).take(1))[0][0]["token_ids"], list(resumed.take(1))[0][0]["token_ids"]
    )


def test_build_lm_datasets_dict_source(letter_tokenizer, tmp_path):
    (tmp_path / "train.txt").write_text("abcdefghijklmnopqrstuvwxyz" * 2)
    (tmp_path / "valid.txt").write_text("xyz")
    config = {
        "source": {"train": str(tmp_path / "train.txt"), "validation": str(tmp_path / "valid.txt")},
        "sequence_length": 5,
        "packing": "document",
    }
    train, validation = build_lm_datasets(config, letter_tokenizer, 2)
    assert "segment_ids" in train.element_spec[0]
    assert rows_of(validation) == [
        reference_row(w, 5, letter_tokenizer, "document")
        for w in reference_windows(reference_stream(["xyz"], letter_tokenizer), 5, False)
    ]


# ---------------------------------------------------------------------------------------------
# Bad input.


def test_bad_arguments(letter_tokenizer):
    cases = [
        ({"packing": "bogus"}, "packing"),
        ({"sequence_length": 0}, "sequence_length"),
        ({"batch_size": "2"}, "batch_size"),
        ({"shuffle_buffer": 0}, "shuffle_buffer"),
        ({"seed": -1}, "seed"),
        ({"start_step": -1}, "start_step"),
        ({"training": False, "start_step": 3}, "start_step"),
    ]
    for kwargs, argument in cases:
        arguments = dict(sequence_length=3, batch_size=2, training=True) | kwargs
        with pytest.raises(ValueError, match=f"{argument}="):
            lm_dataset(["abcdefghijk"], letter_tokenizer, **arguments)


def test_unknown_packing_lists_valid_values(letter_tokenizer):
    with pytest.raises(ValueError, match="'concat', 'document'") as error:
        lm_dataset(["abc"], letter_tokenizer, 3, 2, training=False, packing="pack")
    assert "packing='pack'" in str(error.value)
    with pytest.raises(ValueError, match="'concat', 'document'"):
        build_lm_datasets({"sequence_length": 8, "packing": "pack"}, letter_tokenizer, 2)


def test_corpus_too_small(letter_tokenizer):
    # 9 tokens; B=3, T=3 needs 3 * 3 + 1 = 10.
    with pytest.raises(ValueError, match=r"9 tokens.*needs 10 tokens.*smaller sequence_length"):
        lm_dataset(["abcdefg"], letter_tokenizer, 3, 3, training=True)


def test_bad_documents(letter_tokenizer):
    cases = [
        ("abcdef", TypeError, "Wrap it"),
        ([], ValueError, "Empty corpus"),
        (["", ""], ValueError, "Empty corpus"),
        (["abc", 3], TypeError, r"documents\[1\]"),
        (tf.data.Dataset.range(3), TypeError, "element_spec"),
    ]
    for documents, error, message in cases:
        with pytest.raises(error, match=message):
            lm_dataset(documents, letter_tokenizer, 3, 1, training=False)


def test_build_lm_datasets_bad_config(letter_tokenizer, tmp_path):
    with pytest.raises(ValueError, match="sequence_length"):
        build_lm_datasets({"packing": "concat"}, letter_tokenizer, 2)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abc" * 100)
    with pytest.raises(ValueError, match=r"same documents.*\{split\}"):
        build_lm_datasets({"source": str(corpus), "sequence_length": 4}, letter_tokenizer, 2)
    with pytest.raises(ValueError, match="no split 'validation'"):
        build_lm_datasets(
            {"source": {"train": str(corpus)}, "sequence_length": 4}, letter_tokenizer, 2
        )


def test_a_misspelt_data_field_is_refused(byte_tokenizer):
    config = ml_collections.ConfigDict({"sequence_length": 64, "shuffle_bufer": 1,
                                        "pakcing": "document"})
    with pytest.raises(ValueError, match=r"Unknown data config field\(s\) \['pakcing', "
                                         r"'shuffle_bufer'\]. Known fields: .*'packing'"):
        build_lm_datasets(config, byte_tokenizer, batch_size=8)


def test_build_lm_datasets_too_small_train_split_names_the_source(letter_tokenizer, tmp_path):
    for split, text in [("train", "abc"), ("validation", "abcdef")]:
        (tmp_path / split).mkdir()
        (tmp_path / split / "a.txt").write_text(text)
    source = str(tmp_path / "{split}" / "*.txt")
    # "abc": [eos] a b c [eos] = 5 tokens; B=2, T=4 needs 9.
    with pytest.raises(ValueError, match=r"5 tokens.*needs 9 tokens.*source='.*\{split\}.*"
                                         r"split='train'"):
        build_lm_datasets({"source": source, "sequence_length": 4}, letter_tokenizer, 2)
    train, _ = build_lm_datasets({"source": source, "sequence_length": 2}, letter_tokenizer, 2)
    assert next(iter(train))[0]["token_ids"].shape == (2, 2)


def test_tokenizer_without_eos_id_is_a_clear_error(letter_tokenizer):
    class NoEos(type(letter_tokenizer)):
        eos_id = None

    for training in (False, True):
        with pytest.raises(ValueError, match="eos_id=None from NoEos"):
            lm_dataset(["abcdef"], NoEos(), 2, 1, training=training)
