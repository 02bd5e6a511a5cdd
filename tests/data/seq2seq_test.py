import collections
import json

import numpy as np
import pytest
import tensorflow as tf

from keras_lm.data import seq2seq
from keras_lm.tokenizers import ByteTokenizer

BOS, EOS = 1, 2  # ByteTokenizer: pad 0, bos 1, eos 2, byte b -> 3 + b


def ids(text):
    return [3 + b for b in text.encode("utf-8")]


def expected_example(source, target, s, t):
    """The documented layout, built independently in Python."""
    encoder, decoder, labels = ids(source) + [EOS], [BOS] + ids(target), ids(target) + [EOS]
    fits = len(encoder) <= s and len(labels) <= t
    pad = lambda row, n: (row + [0] * n)[:n]  # noqa: E731
    weights = [float(fits)] * min(len(labels), t)
    return pad(encoder, s), pad(decoder, t), pad(labels, t), pad(weights, t)


def test_evaluation_layout_shifts_targets_and_zeroes_padding():
    pairs = [("ab", "xyz"), ("c", ""), ("éé", "q"), ("toolong", "x"), ("a", "muchtoolong")]
    dataset = seq2seq.seq2seq_dataset(pairs, ByteTokenizer(), 6, 5, batch_size=2,
                                      training=False)
    rows = []
    for features, labels, weights in dataset:
        assert features["encoder_token_ids"].shape[1:] == (6,)
        assert features["decoder_token_ids"].shape[1:] == labels.shape[1:] == (5,)
        rows += zip(features["encoder_token_ids"].numpy().tolist(),
                    features["decoder_token_ids"].numpy().tolist(), labels.numpy().tolist(),
                    weights.numpy().tolist())
    assert len(rows) == len(pairs)
    for (source, target), row in zip(pairs, rows):
        assert list(row) == list(expected_example(source, target, 6, 5)), source
        encoder, decoder, label, weight = row
        real = int(sum(weight))
        if real:  # teacher forcing: the decoder reads the labels shifted right by one
            assert decoder[0] == BOS and decoder[1:real] == label[: real - 1]
            assert label[real - 1] == EOS and label[real:] == [0] * (5 - real)
    # Pairs that do not fit are kept but carry no weight at all.
    assert sum(rows[3][3]) == 0 and sum(rows[4][3]) == 0
    # The same example function gives the same tensors eagerly as inside tf.data.
    eager = seq2seq._example_fn(ByteTokenizer(), ByteTokenizer(), 6, 5)(
        tf.constant("ab"), tf.constant("xyz"))
    assert eager[0]["encoder_token_ids"].numpy().tolist() == ids("ab") + [EOS]
    assert eager[1].numpy().tolist() == ids("xyz") + [EOS]


def test_training_order_is_a_resumable_permutation():
    pairs = [(str(i), str(i)[::-1]) for i in range(12)]

    def batches(start_step, count, seed=0):
        ds = seq2seq.seq2seq_dataset(pairs, ByteTokenizer(), 4, 4, batch_size=4, training=True,
                                     shuffle_buffer=12, seed=seed, start_step=start_step)
        return [f["encoder_token_ids"].numpy() for f, _, _ in ds.take(count)]

    run = batches(0, 7)
    assert all(b.shape == (4, 4) for b in run)
    first_epoch = np.concatenate(run[:3])
    # Every pair once an epoch (a permutation), in a shuffled order that changes per epoch.
    assert sorted(map(tuple, first_epoch.tolist())) == sorted(
        tuple((ids(s) + [EOS] + [0] * 4)[:4]) for s, _ in pairs)
    assert not np.array_equal(first_epoch, np.concatenate(run[3:6]))
    assert not np.array_equal(run[0], batches(0, 1, seed=1)[0])
    # Resuming at step k gives batch k of the run from 0, across an epoch boundary too.
    for start in (2, 4):
        np.testing.assert_array_equal(np.stack(batches(start, 3)), np.stack(run[start:start + 3]))
    with pytest.raises(ValueError, match="start_step"):
        seq2seq.seq2seq_dataset(pairs, ByteTokenizer(), 4, 4, 4, training=False, start_step=1)


def test_pair_files_and_dict_sources(tmp_path):
    for split, pairs in {"train": [("a", "b"), ("c d", "é")], "validation": [("x", "y")]}.items():
        (tmp_path / f"{split}.tsv").write_text(
            "".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
        (tmp_path / f"{split}.jsonl").write_text(
            "".join(json.dumps({"source": s, "target": t}) + "\n" for s, t in pairs),
            encoding="utf-8")
    for ext in ("tsv", "jsonl"):
        source = str(tmp_path / f"{{split}}.{ext}")
        assert seq2seq.load_pairs(source, "train") == [("a", "b"), ("c d", "é")]
        assert seq2seq.load_pairs(source, "validation") == [("x", "y")]
    mixed = {"train": str(tmp_path / "train.jsonl"), "validation": str(tmp_path / "train.tsv")}
    assert seq2seq.load_pairs(mixed, "validation") == [("a", "b"), ("c d", "é")]
    dataset = seq2seq.pairs_dataset(str(tmp_path / "{split}.tsv"), "train")
    assert [(s.decode(), t.decode()) for s, t in dataset.as_numpy_iterator()] == [
        ("a", "b"), ("c d", "é")]
    written = str(tmp_path / "out.tsv")
    seq2seq.write_pairs_tsv(written, [("a\tb", "c\nd")])
    assert seq2seq.read_pairs_file(written) == [("a b", "c d")]

    (tmp_path / "bad.tsv").write_text("no tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.tsv:1"):
        seq2seq.load_pairs(str(tmp_path / "bad.tsv"))
    (tmp_path / "bad.jsonl").write_text('{"source": "a"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="'target'"):
        seq2seq.load_pairs(str(tmp_path / "bad.jsonl"))
    with pytest.raises(FileNotFoundError, match="missing.tsv"):
        seq2seq.load_pairs(str(tmp_path / "missing.tsv"))
    with pytest.raises(ValueError, match="Unknown pair source form"):
        seq2seq.load_pairs("corpus.txt")
    with pytest.raises(ValueError, match="no split 'test'"):
        seq2seq.load_pairs(mixed, "test")
    with pytest.raises(ValueError, match="Unknown option"):
        seq2seq.load_pairs(str(tmp_path / "{split}.tsv"), "train", data_dir="x")


def test_tfds_translation_pairs():
    import tensorflow_datasets as tfds

    source = "tfds:wmt14_translate/de-en/{split}:de:en"
    with tfds.testing.mock_data(num_examples=3):
        pairs = seq2seq.load_pairs(source, "validation")
        assert len(pairs) == 3 and all(isinstance(s, str) and isinstance(t, str)
                                       for s, t in pairs)
        dataset = seq2seq.pairs_dataset(source, "train")
        assert [(s.decode(), t.decode()) for s, t in dataset.as_numpy_iterator()] == (
            seq2seq.load_pairs(source, "train"))
        batch = next(iter(seq2seq.seq2seq_dataset(dataset, ByteTokenizer(), 64, 64, 3,
                                                  training=True)))
        assert batch[0]["encoder_token_ids"].shape == (3, 64)
        with pytest.raises(ValueError, match="no feature 'fr'"):
            seq2seq.load_pairs("tfds:wmt14_translate/de-en/train:de:fr")
    with pytest.raises(ValueError, match="NAME/SPLIT:SOURCE:TARGET"):
        seq2seq.load_pairs("tfds:wmt14_translate:de")


def test_algorithmic_pairs():
    train = seq2seq.load_pairs("algorithmic:reverse_digits", "train", num_examples=200,
                               max_digits=5)
    assert len(train) == 200
    for source, target in train:
        assert source.isdigit() and 1 <= len(source) <= 5 and target == source[::-1]
    assert train == seq2seq.load_pairs("algorithmic:reverse_digits", "train",
                                       num_examples=200, max_digits=5)  # fixed per split
    test = seq2seq.load_pairs("algorithmic:reverse_digits", "test", num_examples=200,
                              max_digits=5)
    assert train != test
    for source, target in seq2seq.load_pairs("algorithmic:sort_digits", "validation",
                                             num_examples=50, min_digits=3):
        assert collections.Counter(source) == collections.Counter(target)
        assert list(target) == sorted(target) and len(source) >= 3
    with pytest.raises(ValueError, match="Unknown algorithmic task"):
        seq2seq.load_pairs("algorithmic:add_digits")
    with pytest.raises(ValueError, match="min_digits"):
        seq2seq.load_pairs("algorithmic:sort_digits", min_digits=4, max_digits=2)


def test_folio_modern_pairs_of_a_small_corpus(tmp_path):
    """The Shakespeare source on a hand-made two-play corpus: splits, cache, options."""
    (tmp_path / "folio").mkdir()
    (tmp_path / "modern").mkdir()
    plays = {
        "one": ("train", "  Bar. Long liue the King.\n  Fra. I haue seene nothing",
                "Ber.\nLong live the king!\n\nFran.\nI have seen nothing."),
        "two": ("validation", "  Hor. Tush, tush, 'twill not appeare",
                "Hor.\nTush, tush, 'twill not appear."),
    }
    rows = ["work\ttitle\tgenre\tsplit\tmodern_file\tfolio_file\tmodern_chars"]
    for name, (split, folio, modern) in plays.items():
        (tmp_path / "folio" / f"{name}.txt").write_text(folio, encoding="utf-8")
        (tmp_path / "modern" / f"{name}.txt").write_text(modern, encoding="utf-8")
        rows.append(f"{name}\t{name}\tcomedy\t{split}\tmodern/{name}.txt\tfolio/{name}.txt\t0")
    rows.append("poem\tpoem\tpoetry\ttrain\tmodern/one.txt\t\t0")  # no Folio text: skipped
    (tmp_path / "works.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    source = f"shakespeare_folio:{tmp_path}"
    cache = tmp_path / "cache"
    train = seq2seq.load_pairs(source, "train", cache_dir=str(cache))
    assert train == [("long liue the king", "long live the king"),
                     ("i haue seene nothing", "i have seen nothing")]
    assert seq2seq.load_pairs(source, "validation") == [
        ("tush tush 'twill not appeare", "tush tush 'twill not appear")]
    assert (cache / "folio_modern_train.tsv").is_file()
    stats = json.loads((cache / "folio_modern_train.json").read_text())["stats"]
    assert stats["one"]["kept"] == 2 and "poem" not in stats
    # Read back from the cache (the texts are gone), unless the options differ.
    (tmp_path / "folio" / "one.txt").unlink()
    assert seq2seq.load_pairs(source, "train", cache_dir=str(cache)) == train
    with pytest.raises(FileNotFoundError):
        seq2seq.load_pairs(source, "train", cache_dir=str(cache), min_words=2)
    with pytest.raises(ValueError, match="Unknown option"):
        seq2seq.load_pairs(source, "train", max_char=3)


def test_length_report_agrees_with_the_weights_of_the_dataset():
    pairs = [("ab", "xyz"), ("c", ""), ("éé", "q"), ("toolong", "x"), ("a", "muchtoolong")]
    report = seq2seq.length_report(pairs, ByteTokenizer(), 6, 5)
    # Independent count: the documented layout's weights, built in Python.
    fitting = sum(1 for s, t in pairs if sum(expected_example(s, t, 6, 5)[3]) > 0)
    assert report == {"pairs": 5, "fitting": fitting,
                      "longest_source": len("toolong") + 1,
                      "longest_target": len("muchtoolong") + 1}
    assert fitting == 3
    # The lengths it reports fit every pair.
    wide = seq2seq.length_report(pairs, ByteTokenizer(), report["longest_source"],
                                 report["longest_target"], chunk=2)
    assert wide["fitting"] == 5


class _WithoutSpecial:
    def __init__(self, tokenizer, missing):
        self._tokenizer, self._missing = tokenizer, missing

    def __getattr__(self, name):
        return None if name == self._missing else getattr(self._tokenizer, name)


def test_tokenizers_without_bos_or_eos_are_named():
    """A SentencePiece model trained without bos/eos ids cannot lay out pairs."""
    pairs = [("ab", "ba")]
    with pytest.raises(ValueError, match="source tokenizer .* has no eos_id"):
        seq2seq.seq2seq_dataset(pairs, _WithoutSpecial(ByteTokenizer(), "eos_id"), 4, 4, 1,
                                training=False, target_tokenizer=ByteTokenizer())
    with pytest.raises(ValueError, match="target tokenizer .* has no bos_id"):
        seq2seq.seq2seq_dataset(pairs, ByteTokenizer(), 4, 4, 1, training=False,
                                target_tokenizer=_WithoutSpecial(ByteTokenizer(), "bos_id"))
