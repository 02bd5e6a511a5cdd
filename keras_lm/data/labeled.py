"""Labelled text: classification, tagging and QA examples from files, TFDS and the corpus.

Every loader returns a list of plain dicts (the sets fit in memory); the task pipelines turn
them into batches. The sources:

| source                                 | examples                               | loader             |
|----------------------------------------|----------------------------------------|--------------------|
| "data/{split}.tsv" / ".csv" / ".jsonl" | one a row, columns named by the config | `load_labeled`     |
| "tfds:NAME/SPLIT" ("tfds:glue/sst2/..")| one a TFDS example, features by name   | `load_labeled`     |
| "shakespeare_genre[:DIR]"              | passages of works, label = genre       | `load_labeled`     |
| "data/{split}.conll" / "tfds:conll2003"| sentences: words and a tag per word    | `load_tagged`      |
| "data/{split}.json" (SQuAD v1.1) / "tfds:squad/SPLIT" | question, context, answers | `load_squad`  |

`{split}` is replaced by the requested split, as for `keras_lm.data.sources`. TFDS class
labels (`ClassLabel` features) become their names ("pos"/"neg"), so the label vocabulary is
readable; nothing is downloaded unless `download=True` is passed.

A label vocabulary (`label_vocabulary`, sorted label strings) is saved with each model as
`labels.json`; `encode_labels` refuses a label outside it with a ValueError naming it.
"""

import csv
import json
import os

import tensorflow as tf

from keras_lm.data import shakespeare as shakespeare_lib
from keras_lm.data import sources

LABELS_FILE = "labels.json"
FILE_FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl"}
GENRE_SOURCE = "shakespeare_genre"


# ---------------------------------------------------------------------- classification
def load_labeled(source, split, text_column="text", label_column="label",
                 text_pair_column=None, **options):
    """Loads classification examples: dicts with `text`, `label` and (pairs) `text_pair`.

    Args:
        source: a TSV/CSV/JSONL path (with `{split}` or a fixed file), "tfds:NAME/SPLIT"
            (SPLIT may be `{split}`), or "shakespeare_genre[:DIR]" (columns "text", "label",
            "work").
        split: "train", "validation", "test" (or any TFDS split for TFDS sources).
        text_column: str, the column (feature) holding the text.
        label_column: str, the column holding the label (any value; kept as its str).
        text_pair_column: str or None, the column of the second text of a pair.
        **options: `data_dir`, `download` (TFDS); `passage_chars` (shakespeare_genre).

    Returns:
        A non-empty list of dicts {"text": str, "label": str[, "text_pair": str]}.

    Raises:
        ValueError: a missing column (the message lists those present), an unknown
            format, or no examples. FileNotFoundError: a missing file.

    Example:
    >>> examples = load_labeled("data/{split}.tsv", "train", text_column="sentence")
    ... # doctest: +SKIP
    """
    columns = [("text_column", text_column), ("label_column", label_column)]
    if text_pair_column:
        columns.append(("text_pair_column", text_pair_column))
    if source == GENRE_SOURCE or source.startswith(GENRE_SOURCE + ":"):
        _check_options(source, options, ("passage_chars",))
        directory = source[len(GENRE_SOURCE) + 1:] or None
        rows = shakespeare_genre_passages(split, directory=directory, **options)
    elif source.startswith("tfds:"):
        _check_options(source, options, ("data_dir", "download"))
        rows = _tfds_rows(source, split, [c for _, c in columns], **options)
    else:
        _check_options(source, options, ())
        rows = _file_rows(source.replace("{split}", split))
    examples = []
    for index, row in enumerate(rows):
        for argument, column in columns:
            if column not in row:
                raise ValueError(
                    f"{argument}={column!r} is not a column of {source!r} (split {split!r}); "
                    f"row {index} has the columns {sorted(map(str, row))}. Set {argument} to "
                    "one of them."
                )
            if row[column] is None:  # a short CSV/TSV row, or a JSON null
                raise ValueError(
                    f"Row {index} of {source!r} (split {split!r}) has no value in column "
                    f"{column!r} ({argument}): {row!r}. Fix or remove the row."
                )
        # csv.DictReader keeps the fields beyond the header's columns under the key None.
        if any(v not in (None, "") for v in row.get(None) or ()):
            raise ValueError(
                f"Row {index} of {source!r} (split {split!r}) has more fields than the header "
                f"({row[None]!r} left over): quote a text holding the delimiter."
            )
        example = {"text": str(row[text_column]), "label": str(row[label_column])}
        if text_pair_column:
            example["text_pair"] = str(row[text_pair_column])
        examples.append(example)
    if not examples:
        raise ValueError(f"No examples in source={source!r}, split={split!r}.")
    return examples


def shakespeare_genre_passages(split, directory=None, passage_chars=400):
    """Passages of the modern texts of a split's works, each labelled with its work's genre.

    A work's text is cut into consecutive passages of whole lines, each passage ending when
    the next line would take it past `passage_chars` characters (a longer single line is its
    own passage); passages without a letter are dropped. The split is `works.tsv`'s.

    Args:
        split: "train", "validation" or "test".
        directory: the corpus folder (see `keras_lm.data.shakespeare_dir`).
        passage_chars: int, the largest passage in characters (newlines included).

    Returns:
        A list of dicts {"text", "label" (genre), "work"} in `works.tsv` order.

    Example:
    >>> passages = shakespeare_genre_passages("test")  # doctest: +SKIP
    >>> sorted({p["label"] for p in passages})  # doctest: +SKIP
    ['comedy', 'history', 'tragedy']
    """
    if isinstance(passage_chars, bool) or not isinstance(passage_chars, int) or passage_chars < 1:
        raise ValueError(f"passage_chars must be an int >= 1; received {passage_chars!r}.")
    directory = shakespeare_lib.shakespeare_dir(directory)
    works = shakespeare_lib.shakespeare_works(split, directory)
    texts = shakespeare_lib.shakespeare_documents(split, directory)
    passages = []
    for work, text in zip(works, texts):
        for passage in _split_passages(text, passage_chars):
            passages.append({"text": passage, "label": work["genre"], "work": work["work"]})
    return passages


def _split_passages(text, passage_chars):
    lines = [line for line in text.split("\n")]
    current, size = [], 0
    for line in lines:
        extra = len(line) + (1 if current else 0)
        if current and size + extra > passage_chars:
            yield from _keep("\n".join(current))
            current, size = [], 0
            extra = len(line)
        current.append(line)
        size += extra
    if current:
        yield from _keep("\n".join(current))


def _keep(passage):
    passage = passage.strip("\n")
    if any(c.isalpha() for c in passage):
        yield passage


# --------------------------------------------------------------------------- labels
def label_vocabulary(labels):
    """The sorted distinct labels (str) of training data: label id i is `vocabulary[i]`.

    Example:
    >>> label_vocabulary(["pos", "neg", "pos"])
    ['neg', 'pos']
    """
    vocabulary = sorted(set(str(label) for label in labels))
    if len(vocabulary) < 2:
        raise ValueError(
            f"The training labels hold {len(vocabulary)} distinct value(s) {vocabulary}; a "
            "classifier needs at least 2. Check the label column."
        )
    return vocabulary


def encode_labels(labels, vocabulary, where="the data"):
    """Label strings -> ids in `vocabulary`; an unknown label is a ValueError naming it.

    Example:
    >>> encode_labels(["pos", "neg"], ["neg", "pos"])
    [1, 0]
    """
    index = {label: i for i, label in enumerate(vocabulary)}
    ids = []
    for position, label in enumerate(labels):
        label = str(label)
        if label not in index:
            raise ValueError(
                f"Unknown label {label!r} in {where} (example {position}): the model's label "
                f"vocabulary is {list(vocabulary)}. Evaluate on data with the training labels, "
                "or retrain with this label in the training data."
            )
        ids.append(index[label])
    return ids


def save_labels(directory, vocabulary):
    """Writes `labels.json` (the label vocabulary, in id order) into `directory`."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, LABELS_FILE)
    if os.path.exists(path):
        saved = load_labels(directory)
        if saved != list(vocabulary):
            raise ValueError(
                f"{path!r} holds the labels {saved} but the training data gives "
                f"{list(vocabulary)}; resuming would mix label ids. Use a new workdir."
            )
        return
    with open(path, "w", encoding="utf-8") as f:
        json.dump(list(vocabulary), f, ensure_ascii=False, indent=0)


def load_labels(directory):
    """The label vocabulary saved by `save_labels`."""
    path = os.path.join(directory, LABELS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No {LABELS_FILE} in {directory!r}: train the model first (it writes the labels)."
        )
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# --------------------------------------------------------------------------- tagging
def load_tagged(source, split, word_column=0, tag_column=-1, **options):
    """Loads tagging sentences: dicts with `words` and `tags` (lists of str, equal lengths).

    CoNLL files: one token a line, whitespace-separated columns (word first, the tag last by
    default), a blank line between sentences, `-DOCSTART-` lines skipped. TFDS
    ("tfds:conll2003/SPLIT"): the `tokens` and `ner` features (tags as their names).

    Args:
        source: a CoNLL file path (`{split}` allowed) or "tfds:NAME/SPLIT".
        split: the split substituted for `{split}`.
        word_column, tag_column: int columns of a CoNLL line (TFDS: feature names, defaults
            "tokens" and "ner").
        **options: `data_dir`, `download` for TFDS.

    Returns:
        A non-empty list of {"words": [...], "tags": [...]}.

    Example:
    >>> load_tagged("ner/{split}.conll", "train")[0]  # doctest: +SKIP
    {'words': ['EU', 'rejects', ...], 'tags': ['B-ORG', 'O', ...]}
    """
    if source.startswith("tfds:"):
        _check_options(source, options, ("data_dir", "download"))
        words = word_column if isinstance(word_column, str) else "tokens"
        tags = tag_column if isinstance(tag_column, str) else "ner"
        sentences = [{"words": [str(w) for w in row[words]], "tags": [str(t) for t in row[tags]]}
                     for row in _tfds_rows(source, split, [words, tags], **options)]
    else:
        _check_options(source, options, ())
        sentences = read_conll(source.replace("{split}", split), word_column, tag_column)
    if not sentences:
        raise ValueError(f"No sentences in source={source!r}, split={split!r}.")
    for index, sentence in enumerate(sentences):
        if len(sentence["words"]) != len(sentence["tags"]):
            raise ValueError(
                f"Sentence {index} of source={source!r}, split={split!r} has "
                f"{len(sentence['words'])} words but {len(sentence['tags'])} tags; a tagger "
                "needs one tag per word."
            )
    return sentences


def read_conll(path, word_column=0, tag_column=-1):
    """Reads a CoNLL-format file into [{"words": [...], "tags": [...]}] (see `load_tagged`)."""
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"CoNLL file not found: {path!r}.")
    lines = sources.read_text_file(path).splitlines()
    sentences, words, tags = [], [], []
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if words:
                sentences.append({"words": words, "tags": tags})
            words, tags = [], []
            continue
        try:
            words.append(fields[word_column])
            tags.append(fields[tag_column])
            if word_column % len(fields) == tag_column % len(fields):  # "word" with no tag
                raise IndexError
        except IndexError:
            raise ValueError(
                f"{path}:{number}: the line {line!r} has {len(fields)} column(s); "
                f"word_column={word_column} and tag_column={tag_column} need more."
            ) from None
    if words:
        sentences.append({"words": words, "tags": tags})
    return sentences


# ------------------------------------------------------------------------------- QA
def load_squad(source, split, **options):
    """Loads extractive-QA examples from a SQuAD v1.1 JSON file or TFDS `squad`.

    Args:
        source: a JSON path (`{split}` allowed) in SQuAD v1.1 form ({"data": [{"paragraphs":
            [{"context", "qas": [{"id", "question", "answers": [{"text", "answer_start"}]}]}]}]})
            or "tfds:squad/SPLIT".
        split: the split substituted for `{split}`.
        **options: `data_dir`, `download` for TFDS.

    Returns:
        A list of {"id", "question", "context", "answers": [{"text", "answer_start"}]}.

    Example:
    >>> load_squad("squad/{split}.json", "validation")[0]["answers"]  # doctest: +SKIP
    [{'text': 'Denver Broncos', 'answer_start': 177}]
    """
    if source.startswith("tfds:"):
        _check_options(source, options, ("data_dir", "download"))
        examples = []
        for row in _tfds_rows(source, split, ["id", "question", "context", "answers"],
                              **options):
            answers = row["answers"]
            examples.append({
                "id": str(row["id"]), "question": str(row["question"]),
                "context": str(row["context"]),
                "answers": [{"text": str(t), "answer_start": int(s)}
                            for t, s in zip(answers["text"], answers["answer_start"])],
            })
    else:
        _check_options(source, options, ())
        path = source.replace("{split}", split)
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"SQuAD file not found: {path!r}.")
        data = json.loads(sources.read_text_file(path))
        if not isinstance(data, dict) or "data" not in data:
            raise ValueError(
                f"{path!r} is not SQuAD v1.1 JSON: expected an object with a 'data' list."
            )
        examples = []
        for article in data["data"]:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    examples.append({
                        "id": str(qa["id"]), "question": qa["question"],
                        "context": paragraph["context"],
                        "answers": [{"text": a["text"], "answer_start": int(a["answer_start"])}
                                    for a in qa["answers"]],
                    })
    for example in examples:
        for answer in example["answers"]:
            start = answer["answer_start"]
            if example["context"][start:start + len(answer["text"])] != answer["text"]:
                raise ValueError(
                    f"Example {example['id']!r}: answer {answer['text']!r} is not at "
                    f"answer_start={start} of its context (found "
                    f"{example['context'][start:start + len(answer['text'])]!r})."
                )
    if not examples:
        raise ValueError(f"No QA examples in source={source!r}, split={split!r}.")
    seen = set()
    for example in examples:  # evaluation scores answers by id: a repeat would drop one
        if example["id"] in seen:
            raise ValueError(
                f"Question id {example['id']!r} appears more than once in source={source!r}, "
                f"split={split!r}; SQuAD ids must be unique (the metrics key answers by id)."
            )
        seen.add(example["id"])
    return examples


# --------------------------------------------------------------------------- readers
def _check_options(source, options, allowed):
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"Unknown option(s) {unknown} for source {source!r}; accepted: "
            f"{list(allowed) or 'none'}."
        )


def _file_rows(path):
    extension = os.path.splitext(path)[1].lower()
    if extension not in FILE_FORMATS:
        raise ValueError(
            f"Unknown labelled-file format {extension!r} of {path!r}: use one of "
            f"{sorted(FILE_FORMATS)} (or 'tfds:NAME/SPLIT', 'shakespeare_genre')."
        )
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"Labelled data file not found: {path!r}.")
    text = sources.read_text_file(path)
    kind = FILE_FORMATS[extension]
    if kind == "jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number} is not valid JSON ({error}).") from None
        return rows
    delimiter = "\t" if kind == "tsv" else ","
    quoting = csv.QUOTE_NONE if kind == "tsv" else csv.QUOTE_MINIMAL
    return list(csv.DictReader(text.splitlines(), delimiter=delimiter, quoting=quoting))


def _tfds_rows(source, split, features, data_dir=None, download=False):
    """'tfds:NAME/SPLIT' -> rows (dicts of python values; ClassLabel ids become names)."""
    import tensorflow_datasets as tfds

    body = source[len("tfds:"):].replace("{split}", split)
    slash = body.split("[", 1)[0].rfind("/")
    if slash <= 0:
        raise ValueError(
            f"A labelled TFDS source reads 'tfds:NAME/SPLIT' (e.g. 'tfds:glue/sst2/{{split}}'); "
            f"received source={source!r}."
        )
    name, tfds_split = body[:slash], body[slash + 1:]
    try:
        dataset, info = tfds.load(name, split=tfds_split, data_dir=data_dir, download=download,
                                  with_info=True)
    except AssertionError as error:
        raise FileNotFoundError(
            f"TFDS dataset {name!r} is not prepared in data_dir={data_dir!r} ({error})."
        ) from error
    missing = [f for f in features if f not in dataset.element_spec]
    if missing:
        raise ValueError(
            f"TFDS dataset {name!r} has no feature(s) {missing}; its features: "
            f"{sorted(dataset.element_spec)}. Set the column options to one of them."
        )
    names = {}
    for feature in features:
        spec = info.features[feature]
        inner = getattr(spec, "feature", spec)  # Sequence(ClassLabel) -> ClassLabel
        if isinstance(inner, tfds.features.ClassLabel):
            names[feature] = inner.names
    rows = []
    for example in tfds.as_numpy(dataset):
        rows.append({f: _python_value(example[f], names.get(f)) for f in features})
    return rows


def _python_value(value, class_names):
    if isinstance(value, dict):
        return {k: _python_value(v, None) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list):
        return [_python_value(v, class_names) for v in value]
    if class_names is not None and isinstance(value, int):
        return class_names[value]
    return value
