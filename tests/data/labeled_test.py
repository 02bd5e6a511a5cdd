import json

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_lm.data import labeled


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_tsv_csv_jsonl_with_named_columns(tmp_path):
    _write(tmp_path / "train.tsv", "sentence\tverdict\tother\ngood film\tpos\tx\nbad\tneg\ty\n")
    _write(tmp_path / "train.csv", 'sentence,verdict\n"good, really",pos\nbad,neg\n')
    _write(tmp_path / "train.jsonl",
           '{"sentence": "good", "hypothesis": "fine", "verdict": 1}\n\n'
           '{"sentence": "bad", "hypothesis": "poor", "verdict": 0}\n')
    tsv = labeled.load_labeled(str(tmp_path / "{split}.tsv"), "train", text_column="sentence",
                               label_column="verdict")
    assert tsv == [{"text": "good film", "label": "pos"}, {"text": "bad", "label": "neg"}]
    csv = labeled.load_labeled(str(tmp_path / "train.csv"), "validation",
                               text_column="sentence", label_column="verdict")
    assert csv[0] == {"text": "good, really", "label": "pos"}
    pairs = labeled.load_labeled(str(tmp_path / "{split}.jsonl"), "train",
                                 text_column="sentence", label_column="verdict",
                                 text_pair_column="hypothesis")
    assert pairs[1] == {"text": "bad", "text_pair": "poor", "label": "0"}


def test_missing_label_column_is_a_clear_error(tmp_path):
    path = _write(tmp_path / "train.tsv", "text\tlabels\nhello\tpos\n")
    with pytest.raises(ValueError, match=r"label_column='label'.*\['labels', 'text'\]"):
        labeled.load_labeled(path, "train")
    with pytest.raises(ValueError, match="format '.txt'"):
        labeled.load_labeled(str(tmp_path / "x.txt"), "train")
    with pytest.raises(FileNotFoundError, match="missing.tsv"):
        labeled.load_labeled(str(tmp_path / "missing.tsv"), "train")


def test_label_vocabulary_and_unknown_labels(tmp_path):
    vocabulary = labeled.label_vocabulary(["pos", "neg", "pos"])
    assert vocabulary == ["neg", "pos"]
    assert labeled.encode_labels(["pos", "neg"], vocabulary) == [1, 0]
    with pytest.raises(ValueError, match=r"Unknown label 'meh' in the test split.*\['neg', 'pos'\]"):
        labeled.encode_labels(["pos", "meh"], vocabulary, "the test split")
    with pytest.raises(ValueError, match="at least 2"):
        labeled.label_vocabulary(["pos", "pos"])
    labeled.save_labels(str(tmp_path), vocabulary)
    assert labeled.load_labels(str(tmp_path)) == vocabulary
    with pytest.raises(ValueError, match="resuming would mix label ids"):
        labeled.save_labels(str(tmp_path), ["a", "b", "c"])


def test_conll_reader(tmp_path):
    path = _write(tmp_path / "train.conll",
                  "-DOCSTART- -X- O O\n\nEU NNP B-ORG\nrejects VBZ O\n\n\nPeter NNP B-PER\n"
                  "Blackburn NNP I-PER\n")
    sentences = labeled.load_tagged(str(tmp_path / "{split}.conll"), "train")
    assert sentences == [{"words": ["EU", "rejects"], "tags": ["B-ORG", "O"]},
                         {"words": ["Peter", "Blackburn"], "tags": ["B-PER", "I-PER"]}]
    pos = labeled.load_tagged(path, "train", tag_column=1)
    assert pos[0]["tags"] == ["NNP", "VBZ"]
    with pytest.raises(ValueError, match="tag_column=5"):
        labeled.load_tagged(path, "train", tag_column=5)


def test_rows_with_missing_or_extra_fields_are_refused(tmp_path):
    """A short row (or a JSON null) is not a text or label "None"; a CSV text with an unquoted
    comma is not a shifted label."""
    short = _write(tmp_path / "short.tsv", "text\tlabel\ngood movie\tpos\nbad movie\n")
    with pytest.raises(ValueError, match=r"Row 1 .* no value in column 'label'"):
        labeled.load_labeled(short, "train")
    null = _write(tmp_path / "null.jsonl", '{"text": "a", "label": "x"}\n'
                                           '{"text": null, "label": "y"}\n')
    with pytest.raises(ValueError, match=r"Row 1 .* no value in column 'text'"):
        labeled.load_labeled(null, "train")
    extra = _write(tmp_path / "extra.csv", "text,label\ngood, really,pos\n")
    with pytest.raises(ValueError, match=r"Row 0 .* more fields than the header \(\['pos'\]"):
        labeled.load_labeled(extra, "train")
    # An empty field is a value (an empty text); an empty trailing field is no extra field.
    fine = _write(tmp_path / "fine.tsv", "text\tlabel\n\tneg\nok\tpos\t\n")
    assert labeled.load_labeled(fine, "train") == [{"text": "", "label": "neg"},
                                                   {"text": "ok", "label": "pos"}]


def test_conll_line_without_a_tag_is_refused(tmp_path):
    path = _write(tmp_path / "train.conll", "EU B-ORG\nrejects O\nGerman\ncall O\n")
    with pytest.raises(ValueError, match=r"train.conll:3: the line 'German' has 1 column"):
        labeled.load_tagged(path, "train")


def test_squad_json(tmp_path):
    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{
        "context": "Denver won the game in 2016.",
        "qas": [{"id": "q1", "question": "Who won?",
                 "answers": [{"text": "Denver", "answer_start": 0},
                             {"text": "Denver", "answer_start": 0}]}]}]}]}
    path = _write(tmp_path / "dev.json", json.dumps(data))
    examples = labeled.load_squad(path, "validation")
    assert examples == [{"id": "q1", "question": "Who won?",
                         "context": "Denver won the game in 2016.",
                         "answers": [{"text": "Denver", "answer_start": 0}] * 2}]
    data["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 3
    _write(tmp_path / "bad.json", json.dumps(data))
    with pytest.raises(ValueError, match="'Denver' is not at answer_start=3"):
        labeled.load_squad(str(tmp_path / "bad.json"), "validation")
    data["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 0
    qas = data["data"][0]["paragraphs"][0]["qas"]
    qas.append(dict(qas[0], question="Who played?"))  # the same id twice
    _write(tmp_path / "repeat.json", json.dumps(data))
    with pytest.raises(ValueError, match="Question id 'q1' appears more than once"):
        labeled.load_squad(str(tmp_path / "repeat.json"), "validation")


def test_tfds_classification_sources_with_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=5):
        imdb = labeled.load_labeled("tfds:imdb_reviews/{split}", "test", data_dir=str(tmp_path))
        sst2 = labeled.load_labeled("tfds:glue/sst2/{split}", "train", text_column="sentence",
                                    data_dir=str(tmp_path))
        with pytest.raises(ValueError, match=r"no feature\(s\) \['review'\]"):
            labeled.load_labeled("tfds:imdb_reviews/train", "train", text_column="review",
                                 data_dir=str(tmp_path))
    assert len(imdb) == 5 and {e["label"] for e in imdb} <= {"neg", "pos"}
    assert all(isinstance(e["text"], str) for e in imdb)
    assert len(sst2) == 5 and {e["label"] for e in sst2} <= {"negative", "positive"}


def test_tfds_conll2003_and_squad_with_mock_data(tmp_path):
    """Mock examples from `as_dataset_fn`, so words match tags and answers match contexts."""

    def conll(self, split, **kwargs):
        return tf.data.Dataset.from_tensors({
            "id": "0", "tokens": ["Paris", "is", "nice"], "pos": [0, 1, 2],
            "chunks": [0, 0, 0], "ner": [5, 0, 0]})

    with tfds.testing.mock_data(as_dataset_fn=conll):
        sentences = labeled.load_tagged("tfds:conll2003/{split}", "train",
                                        data_dir=str(tmp_path))
    assert sentences == [{"words": ["Paris", "is", "nice"], "tags": ["B-LOC", "O", "O"]}]

    def squad(self, split, **kwargs):
        return tf.data.Dataset.from_tensors({
            "id": "a1", "title": "t", "question": "Where?", "context": "In Paris today.",
            "answers": {"text": ["Paris"], "answer_start": [3]}})

    with tfds.testing.mock_data(as_dataset_fn=squad):
        examples = labeled.load_squad("tfds:squad/{split}", "validation", data_dir=str(tmp_path))
    assert examples == [{"id": "a1", "question": "Where?", "context": "In Paris today.",
                         "answers": [{"text": "Paris", "answer_start": 3}]}]


def test_shakespeare_genre_passages(shakespeare_dir):
    passages = labeled.shakespeare_genre_passages("validation", shakespeare_dir, 350)
    from keras_lm.data import shakespeare_works

    genres = {w["work"]: w["genre"] for w in shakespeare_works("validation", shakespeare_dir)}
    assert {p["work"] for p in passages} == set(genres)
    assert all(p["label"] == genres[p["work"]] for p in passages)
    assert all(len(p["text"]) <= 350 or "\n" not in p["text"] for p in passages)
    text = (shakespeare_dir / "modern" / "macbeth.txt").read_text(encoding="utf-8")
    macbeth = [p["text"] for p in passages if p["work"] == "macbeth"]
    # Passages are consecutive whole lines: each is found in the text, in order.
    position = 0
    for passage in macbeth:
        position = text.index(passage, position) + len(passage)
    examples = labeled.load_labeled("shakespeare_genre:" + str(shakespeare_dir), "test",
                                    passage_chars=350)
    assert {e["label"] for e in examples} == {"comedy", "history", "tragedy"}
