"""Text sources: where documents come from, named by one string (or a dict of them).

Text enters keras_lm here and nowhere else. A *source* names a set of documents per split; a
document is one str (a file, a pydoc topic, a play, a TFDS example). The forms:

| source                            | documents                      | split                    |
|-----------------------------------|--------------------------------|--------------------------|
| "builtin:pydoc"                   | CPython's documentation topics | fixed rule, see below    |
| "shakespeare", "shakespeare:DIR"  | works of the shared corpus     | works.tsv `split` column |
| "tfds:NAME/SPLIT:FEATURE"         | one TFDS text feature          | SPLIT in the string      |
| a file, a directory, a glob       | each file (UTF-8) a document   | given by the string      |
| {"train": SRC, "validation": SRC} | SRC of the requested split     | the dict key             |

`{split}` anywhere in a source string is replaced by the requested split, so one string can
name every split: "data/{split}/*.txt", "tfds:imdb_reviews/{split}:text". A file or TFDS string
without `{split}` names the same documents whatever split is asked for (the string is explicit);
`build_lm_datasets` refuses such a source because validation would repeat the training text.

"builtin:pydoc": the `pydoc_data.topics.topics` dict shipped inside every CPython (so it needs
no download), one document a topic. Split rule over the sorted topic names: index % 10 == 0 ->
"validation", index % 10 == 1 -> "test", otherwise "train". On CPython 3.11.7 (79 topics):
train 63 documents / 358,901 characters (359,768 UTF-8 bytes), validation 8 / 32,146 (32,208),
test 8 / 73,923 (74,141). Other Python versions ship slightly different topics.

"tfds:NAME/SPLIT:FEATURE": NAME may carry a config ("wiki40b/en"), SPLIT is any TFDS split
expression ("train", "train[:90%]", "{split}"), FEATURE a string feature ("text"). Options:
`data_dir` (TFDS default when None) and `download` (default False: nothing is downloaded at run
time unless asked; an unprepared dataset raises FileNotFoundError).
"""

import collections.abc
import re

import tensorflow as tf

from keras_lm.data import shakespeare as shakespeare_lib

SPLITS = ("train", "validation", "test")
BUILTIN_SOURCES = ("builtin:pydoc",)
SPLIT_PLACEHOLDER = "{split}"
_GLOB_CHARS = re.compile(r"[*?\[]")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_FEATURE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SOURCE_FORMS = (
    "'builtin:pydoc', 'shakespeare', 'shakespeare:/path/to/dir', 'tfds:NAME/SPLIT:FEATURE', "
    "a file, a directory of *.txt files, a glob, or a dict {split: source}"
)


def load_documents(source, split="train", **options):
    """Loads the documents of one split of a source as Python strings.

    Args:
        source: a source string or a dict {split: source string}; see the module docstring.
        split: "train", "validation", "test" (or any key of a dict source / value substituted
            for `{split}`). Defaults to "train".
        **options: `data_dir` and `download` for TFDS sources; no other option is accepted.

    Returns:
        A non-empty list of str, in a fixed order (sorted file names, sorted topics, works.tsv
        order, TFDS order).

    Raises:
        ValueError: unknown source form, unknown split, unknown option, or an empty corpus.
        FileNotFoundError: missing files, an absent Shakespeare folder, an unprepared TFDS set.
        TypeError: a source that is neither a str nor a dict.

    Example:
    >>> documents = load_documents("builtin:pydoc", "validation")
    >>> len(documents) > 0
    True
    """
    kind, target = _resolve(source, split)
    _check_options(kind, options)
    if kind == "pydoc":
        documents = pydoc_documents(split)
    elif kind == "shakespeare":
        documents = shakespeare_lib.shakespeare_documents(split, target)
    elif kind == "tfds":
        documents = [
            _decode_utf8(text, f"example {index} of {source!r} (split={split!r})")
            for index, text in enumerate(_tfds_strings(target, **options).as_numpy_iterator())
        ]
    else:
        documents = [read_text_file(path) for path in _list_files(target)]
    _check_not_empty(documents, source, split)
    return documents


def text_dataset(source, split="train", **options):
    """The documents of one split as a `tf.data.Dataset` of tf.string scalars, in order.

    TFDS sources stream from TFDS (nothing is held in memory); the others are loaded with
    `load_documents`.

    Args:
        source, split, **options: as for `load_documents`.

    Returns:
        A `tf.data.Dataset` with element spec `tf.TensorSpec([], tf.string)`, one element a
        document.

    Example:
    >>> ds = text_dataset("builtin:pydoc", "test")
    >>> ds.element_spec
    TensorSpec(shape=(), dtype=tf.string, name=None)
    """
    kind, target = _resolve(source, split)
    if kind == "tfds":
        _check_options(kind, options)
        dataset = _tfds_strings(target, **options)
        # Reads up to the first non-empty document: one element for a real corpus, the whole
        # split (to refuse it) only when every document is empty.
        if not any(True for _ in dataset.filter(lambda text: tf.strings.length(text) > 0).take(1)):
            _check_not_empty(["" for _ in dataset], source, split)
        return dataset
    documents = load_documents(source, split, **options)
    return tf.data.Dataset.from_tensor_slices(tf.constant(documents, tf.string))


def pydoc_documents(split):
    """The documentation topics of the running CPython for one split (see module docstring).

    Args:
        split: "train", "validation" or "test".

    Returns:
        A list of str, one topic text each, in sorted topic-name order.

    Example:
    >>> len(pydoc_documents("train")) > len(pydoc_documents("test"))
    True
    """
    if split not in SPLITS:
        raise ValueError(
            f"Unknown split for 'builtin:pydoc': split={split!r}. "
            f"Valid splits: {', '.join(SPLITS)}."
        )
    from pydoc_data.topics import topics

    wanted = {"validation": 0, "test": 1}.get(split)
    return [
        topics[name]
        for index, name in enumerate(sorted(topics))
        if (index % 10 == wanted if wanted is not None else index % 10 > 1)
    ]


def is_split_aware(source):
    """Whether `source` names different documents for different splits.

    True for dicts, strings containing `{split}`, "builtin:pydoc" and the Shakespeare corpus.

    Example:
    >>> is_split_aware("corpus.txt"), is_split_aware("data/{split}.txt")
    (False, True)
    """
    if _as_dict(source) is not None:
        return True
    if not isinstance(source, str):
        return False
    return (
        SPLIT_PLACEHOLDER in source
        or source in BUILTIN_SOURCES
        or source == "shakespeare"
        or source.startswith("shakespeare:")
    )


def names_same_documents(source, split_a, split_b):
    """Whether a file or TFDS source resolves to the same documents for two splits.

    Example:
    >>> names_same_documents("corpus.txt", "train", "validation")  # doctest: +SKIP
    True
    """
    kind_a, target_a = _resolve(source, split_a)
    kind_b, target_b = _resolve(source, split_b)
    return kind_a in ("files", "tfds") and (kind_a, target_a) == (kind_b, target_b)


def _as_dict(source):
    if hasattr(source, "to_dict"):  # ml_collections.ConfigDict
        source = source.to_dict()
    return dict(source) if isinstance(source, collections.abc.Mapping) else None


def _resolve(source, split):
    """Maps (source, split) to (kind, target): kind in pydoc, shakespeare, tfds, files."""
    mapping = _as_dict(source)
    if mapping is not None:
        if split not in mapping:
            raise ValueError(
                f"The source dict has no split {split!r}: received split={split!r}, the dict has "
                f"{sorted(mapping)}. Add a {split!r} entry to the source dict."
            )
        source = mapping[split]
    if not isinstance(source, str):
        raise TypeError(
            f"source must be a str or a dict {{split: str}}; received {source!r} of type "
            f"{type(source).__name__}. Valid forms: {_SOURCE_FORMS}."
        )
    if not source:
        raise ValueError(
            f"source is empty: received source={source!r}. Valid forms: {_SOURCE_FORMS}."
        )
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be a non-empty str; received split={split!r}.")
    source = source.replace(SPLIT_PLACEHOLDER, split)
    if source.startswith("builtin:"):
        if source not in BUILTIN_SOURCES:
            raise ValueError(
                f"Unknown built-in source: received source={source!r}. "
                f"Built-in sources: {', '.join(BUILTIN_SOURCES)}."
            )
        return "pydoc", None
    if source == "shakespeare":
        return "shakespeare", None
    if source.startswith("shakespeare:"):
        return "shakespeare", source[len("shakespeare:") :] or None
    if source.startswith("tfds:"):
        return "tfds", _parse_tfds(source)
    if _GLOB_CHARS.search(source) or tf.io.gfile.exists(source):
        return "files", source
    scheme = _SCHEME.match(source)
    if scheme and not source[scheme.end() :].startswith("//"):  # "gs://..." is a missing path
        raise ValueError(
            f"Unknown source form: received source={source!r} (scheme {scheme.group(1)!r}). "
            f"Valid forms: {_SOURCE_FORMS}."
        )
    raise FileNotFoundError(
        f"No such file or directory: source={source!r}. Valid forms: {_SOURCE_FORMS}."
    )


def _check_options(kind, options):
    allowed = ("data_dir", "download") if kind == "tfds" else ()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"Unknown option(s) {unknown} for a {kind} source; accepted options: "
            f"{list(allowed) or 'none'}."
        )


def _check_not_empty(documents, source, split):
    if not any(documents):
        raise ValueError(
            f"Empty corpus: source={source!r}, split={split!r} gave {len(documents)} document(s) "
            "and no text. Point the source at files (or a split) that hold text."
        )


def _list_files(pattern):
    """A file -> [file]; a directory -> its *.txt files; a glob -> its matching files; sorted."""
    if tf.io.gfile.isdir(pattern):
        files = [
            path
            for path in tf.io.gfile.glob(pattern.rstrip("/") + "/*.txt")
            if not tf.io.gfile.isdir(path)
        ]
        if not files:
            raise FileNotFoundError(
                f"Directory source {pattern!r} holds no *.txt files. Put the documents in "
                "*.txt files or give a glob that matches them."
            )
        return sorted(files)
    if tf.io.gfile.exists(pattern):
        return [pattern]
    files = [path for path in tf.io.gfile.glob(pattern) if not tf.io.gfile.isdir(path)]
    if not files:
        raise FileNotFoundError(f"No files match the source glob {pattern!r}.")
    return sorted(files)


def read_text_file(path):
    """The text of a UTF-8 file, without a leading byte-order mark.

    Every file reader of `keras_lm.data` goes through here, so a bad encoding is reported with
    the file's name, and a BOM (as Windows editors write) never becomes the first character
    of a document, a label or a JSON file.

    Args:
        path: a local or `tf.io.gfile` path of an existing file.

    Returns:
        The decoded str.

    Raises:
        ValueError: the file is not valid UTF-8.
    """
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8-sig")  # "utf-8" that also drops a leading BOM
    except UnicodeDecodeError as error:
        raise ValueError(
            f"File {path!r} is not valid UTF-8 ({error}). Re-encode it as UTF-8."
        ) from error


def _decode_utf8(data, what):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"The text of {what} is not valid UTF-8 ({error}). Use `text_dataset`, which "
            "streams the bytes as they are, or choose a UTF-8 text feature."
        ) from error


def _parse_tfds(source):
    """'tfds:NAME[/CONFIG]/SPLIT:FEATURE' -> (name, split, feature)."""
    usage = (
        f"A TFDS source reads 'tfds:NAME/SPLIT:FEATURE' (e.g. 'tfds:imdb_reviews/train:text', "
        f"'tfds:imdb_reviews/{{split}}:text'); received source={source!r}."
    )
    body, _, feature = source[len("tfds:") :].rpartition(":")
    if not _FEATURE.match(feature):
        raise ValueError(usage)
    # The split is the part after the last "/" that comes before any "[" of a slice expression.
    slash = body.split("[", 1)[0].rfind("/")
    name, tfds_split = body[:slash], body[slash + 1 :]
    if slash <= 0 or not tfds_split:
        raise ValueError(usage)
    return name, tfds_split, feature


def _tfds_strings(target, data_dir=None, download=False):
    """tfds.load(name, split) mapped to its string feature."""
    import tensorflow_datasets as tfds

    name, tfds_split, feature = target
    try:
        dataset = tfds.load(name, split=tfds_split, data_dir=data_dir, download=download)
    except AssertionError as error:  # tfds' way of saying "not prepared in data_dir"
        raise FileNotFoundError(
            f"TFDS dataset {name!r} is not prepared in data_dir={data_dir!r} ({error}). Prepare it "
            "(tfds build, or pass download=True to load it once) or set data_dir to where it is."
        ) from error
    except ValueError as error:  # unknown name (DatasetNotFoundError) or split
        raise ValueError(
            f"TFDS could not load name={name!r}, split={tfds_split!r}: {error}"
        ) from error
    spec = dataset.element_spec
    if not isinstance(spec, dict) or feature not in spec:
        available = sorted(spec) if isinstance(spec, dict) else spec
        raise ValueError(
            f"TFDS dataset {name!r} has no feature {feature!r}; its features: {available}."
        )
    if spec[feature].dtype != tf.string or spec[feature].shape.rank != 0:
        raise ValueError(
            f"TFDS feature {name}:{feature} is {spec[feature]}, not a scalar tf.string; "
            "choose a text feature."
        )
    return dataset.map(lambda example: example[feature])
