"""Source/target pairs and the sequence-to-sequence input pipeline.

Shape letters: B batch, S source length, T target length (tokens a row).

Pair sources (one string, `{split}` replaced by the split; or a dict {split: source}):

| source                                   | pairs                                          |
|------------------------------------------|------------------------------------------------|
| "DIR/{split}.tsv"                        | one pair a line: source TAB target (UTF-8)     |
| "DIR/{split}.jsonl"                      | one JSON object a line: {"source", "target"}   |
| "tfds:NAME/SPLIT:SOURCE:TARGET"          | two string features of a TFDS dataset, e.g.    |
|                                          | "tfds:wmt14_translate/de-en/{split}:de:en"     |
| "shakespeare_folio" [":DIR"]             | First Folio -> modern spelling pairs of the    |
|                                          | split's plays (`keras_lm.data.alignment`)      |
| "algorithmic:reverse_digits" / ":sort_digits" | random digit strings and their reversal / |
|                                          | sorted digits, a fixed set per split           |

Example layout (what a model is trained on). With source ids x_1..x_m and target ids
y_1..y_n of a pair:

    encoder_token_ids = x_1 .. x_m eos                 (source tokenizer's eos)
    decoder_token_ids = bos y_1 .. y_n                 (teacher forcing: the target shifted
    labels            = y_1 .. y_n eos                  right by one, bos first)
    sample_weight     = 1 on the n + 1 labels, 0 on padding

each right-padded with 0 to S (encoder) and T (decoder, labels, weights). A pair that does
not fit (m + 1 > S or n + 1 > T) is kept in its batch, truncated, with all its weights 0: it
is neither learned nor scored, and the batch order of a resumed run stays the same.
"""

import functools
import json
import os

import numpy as np
import tensorflow as tf

from keras_lm.data import alignment
from keras_lm.data import shakespeare as shakespeare_lib
from keras_lm.data import sources as sources_lib

ALGORITHMIC_TASKS = ("reverse_digits", "sort_digits")
_SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}
_SOURCE_FORMS = (
    "'DIR/{split}.tsv', 'DIR/{split}.jsonl', 'tfds:NAME/SPLIT:SOURCE:TARGET', "
    "'shakespeare_folio', 'shakespeare_folio:DIR', 'algorithmic:reverse_digits', "
    "'algorithmic:sort_digits', or a dict {split: source}"
)
ALIGNER_OPTIONS = ("max_chars", "min_words", "max_gap", "min_equal")


def load_pairs(source, split="train", **options):
    """Loads the (source, target) pairs of one split.

    Args:
        source: a pair source or a dict {split: source}; see the module docstring.
        split: "train", "validation", "test" (or any key of a dict source / TFDS split).
        **options: by source kind:
            TFDS: `data_dir` (default None), `download` (default False);
            shakespeare_folio: the aligner's `max_chars`, `min_words`, `max_gap`,
                `min_equal` and `cache_dir` (a folder to keep the aligned pairs in, as TSV);
            algorithmic: `num_examples` (default 5000 for train, 500 otherwise),
                `min_digits` (1), `max_digits` (8).

    Returns:
        A non-empty list of (str, str), in a fixed order.

    Raises:
        ValueError: unknown source form or option, a malformed file, an empty split.
        FileNotFoundError: a missing file, corpus or unprepared TFDS dataset.

    Example:
    >>> load_pairs("algorithmic:reverse_digits", "test", num_examples=2, max_digits=3)
    [('212', '212'), ('84', '48')]
    """
    kind, target = _resolve(source, split)
    _check_options(kind, options)
    if kind == "algorithmic":
        pairs = algorithmic_pairs(target, split, **options)
    elif kind == "shakespeare_folio":
        pairs, _ = folio_modern_pairs(split, target, **options)
    elif kind == "tfds":
        pairs = [(s.decode("utf-8"), t.decode("utf-8"))
                 for s, t in _tfds_pairs(target, **options).as_numpy_iterator()]
    else:
        pairs = read_pairs_file(target)
    if not pairs:
        raise ValueError(
            f"No pairs: source={source!r}, split={split!r} holds none. Point it at a split "
            "with data."
        )
    return pairs


def pairs_dataset(source, split="train", **options):
    """The pairs of one split as a `tf.data.Dataset` of (tf.string, tf.string) scalars.

    TFDS sources stream from TFDS; the others are loaded with `load_pairs`.
    """
    kind, target = _resolve(source, split)
    if kind == "tfds":
        _check_options(kind, options)
        return _tfds_pairs(target, **options)
    pairs = load_pairs(source, split, **options)
    sources, targets = zip(*pairs)
    return tf.data.Dataset.from_tensor_slices(
        (tf.constant(sources, tf.string), tf.constant(targets, tf.string))
    )


def read_pairs_file(path):
    """Reads a .tsv (source TAB target) or .jsonl ({"source", "target"}) file of pairs.

    Example:
    >>> read_pairs_file("pairs.tsv")  # doctest: +SKIP
    [('Long liue the King', 'Long live the king')]
    """
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"No such pairs file: {path!r}. Valid forms: {_SOURCE_FORMS}.")
    text = sources_lib.read_text_file(path)
    pairs = []
    if path.endswith(".tsv"):
        for number, line in enumerate(text.splitlines(), 1):
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != 2:
                raise ValueError(
                    f"{path}:{number}: a TSV pair line needs exactly one TAB (source TAB "
                    f"target); received {len(fields)} field(s): {line[:80]!r}"
                )
            pairs.append((fields[0], fields[1]))
    elif path.endswith(".jsonl"):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON ({error}).") from error
            if not isinstance(record, dict) or not {"source", "target"} <= set(record):
                raise ValueError(
                    f"{path}:{number}: a JSONL pair needs the keys 'source' and 'target'; "
                    f"received {line[:80]!r}"
                )
            pairs.append((str(record["source"]), str(record["target"])))
    else:
        raise ValueError(
            f"Pairs files end in .tsv or .jsonl; received {path!r}. Valid forms: "
            f"{_SOURCE_FORMS}."
        )
    return pairs


def write_pairs_tsv(path, pairs):
    """Writes pairs as source TAB target lines (tabs and newlines inside become spaces)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    clean = lambda s: " ".join(s.split())  # noqa: E731
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for source, target in pairs:
            f.write(f"{clean(source)}\t{clean(target)}\n")
    os.replace(tmp, path)


def algorithmic_pairs(task, split, num_examples=None, min_digits=1, max_digits=8):
    """Random digit strings and their reversal ("reverse_digits") or sorted digits.

    A fixed set per split (seeded by the split: train 0, validation 1, test 2); short strings
    can repeat across splits, long ones almost never do.

    Example:
    >>> algorithmic_pairs("sort_digits", "train", num_examples=1, max_digits=4)
    [('895', '589')]
    """
    if task not in ALGORITHMIC_TASKS:
        raise ValueError(
            f"Unknown algorithmic task {task!r}. Valid tasks: {list(ALGORITHMIC_TASKS)}."
        )
    if split not in _SPLIT_SEEDS:
        raise ValueError(f"Unknown split {split!r}. Valid splits: {list(_SPLIT_SEEDS)}.")
    if num_examples is None:
        num_examples = 5000 if split == "train" else 500
    if not 1 <= min_digits <= max_digits:
        raise ValueError(
            "Need 1 <= min_digits <= max_digits. Received: "
            f"min_digits={min_digits}, max_digits={max_digits}"
        )
    rng = np.random.default_rng([_SPLIT_SEEDS[split], ALGORITHMIC_TASKS.index(task)])
    pairs = []
    for _ in range(num_examples):
        length = int(rng.integers(min_digits, max_digits + 1))
        digits = "".join(str(d) for d in rng.integers(0, 10, size=length))
        target = digits[::-1] if task == "reverse_digits" else "".join(sorted(digits))
        pairs.append((digits, target))
    return pairs


def folio_modern_pairs(split, directory=None, cache_dir=None, **aligner_options):
    """First Folio -> modern spelling pairs of the plays of one split, and the aligner's counts.

    Each play of the split that has a Folio text is aligned with `alignment.align_folio_modern`
    (the method and drop rule are in that module's docstring).

    Args:
        split: "train", "validation" or "test" (the works.tsv split of whole plays).
        directory: the Shakespeare corpus folder (see `keras_lm.data.shakespeare_dir`).
        cache_dir: optional folder; the pairs are written there as `folio_modern_{split}.tsv`
            (with the statistics in `folio_modern_{split}.json`) and read back next time.
        **aligner_options: `max_chars`, `min_words`, `max_gap`, `min_equal`.

    Returns:
        (pairs, stats): pairs a list of (folio, modern) str; stats a dict work -> counts of
        `alignment.align_texts`.
    """
    unknown = sorted(set(aligner_options) - set(ALIGNER_OPTIONS))
    if unknown:
        raise ValueError(f"Unknown aligner option(s) {unknown}; valid: {list(ALIGNER_OPTIONS)}.")
    if cache_dir is not None:
        path = os.path.join(cache_dir, f"folio_modern_{split}.tsv")
        stats_path = os.path.join(cache_dir, f"folio_modern_{split}.json")
        if os.path.isfile(path) and os.path.isfile(stats_path):
            with open(stats_path, encoding="utf-8") as f:
                saved = json.load(f)
            if saved.get("options") == aligner_options:
                return read_pairs_file(path), saved["stats"]
    pairs, stats = _align_split(split, None if directory is None else str(directory),
                                tuple(sorted(aligner_options.items())))
    if cache_dir is not None:
        write_pairs_tsv(path, pairs)
        with open(stats_path, "w", encoding="utf-8") as f:
            json.dump({"options": aligner_options, "stats": stats}, f, indent=1, sort_keys=True)
    return list(pairs), stats


@functools.lru_cache(maxsize=8)
def _align_split(split, directory, options):
    # Aligning a play takes about two seconds; the cache serves train and evaluation alike.
    root = shakespeare_lib.shakespeare_dir(directory)
    pairs, stats = [], {}
    for work in shakespeare_lib.shakespeare_works(split, root):
        if not work["folio_file"]:
            continue
        with open(root / work["folio_file"], encoding="utf-8") as f:
            folio = f.read()
        with open(root / work["modern_file"], encoding="utf-8") as f:
            modern = f.read()
        work_pairs, work_stats = alignment.align_folio_modern(folio, modern, **dict(options))
        pairs.extend(work_pairs)
        stats[work["work"]] = dict(work_stats)
    return tuple(pairs), stats


def seq2seq_dataset(
    pairs,
    tokenizer,
    source_length,
    target_length,
    batch_size,
    *,
    training,
    target_tokenizer=None,
    shuffle_buffer=10_000,
    seed=0,
    start_step=0,
):
    """Builds the tf.data pipeline of a sequence-to-sequence model (layout: module docstring).

    Training (`training=True`): shuffled (consecutive blocks of `shuffle_buffer` pairs are
    permuted with stateless permutations keyed by (seed, epoch, block)), repeated forever,
    batched with `drop_remainder=True` (static shapes [B, S], [B, T]); `start_step=k` starts
    at batch k of the run from 0. Evaluation: one pass in order, the last batch may be smaller.

    Args:
        pairs: a list of (str, str) or a `tf.data.Dataset` of (tf.string, tf.string) scalars.
        tokenizer: the source tokenizer (and target, unless `target_tokenizer`); needs
            `tokenize`, `eos_id` and (target) `bos_id`.
        source_length: int S, encoder positions a row (eos included).
        target_length: int T, decoder positions a row (bos or eos included).
        batch_size: int B.
        training: bool.
        target_tokenizer: the target tokenizer for separate vocabularies.
        shuffle_buffer: int >= 1, pairs permuted together.
        seed: int >= 0, the shuffle seed.
        start_step: int >= 0, training batches already consumed (resume).

    Returns:
        A `tf.data.Dataset` of `(features, labels, sample_weight)` with `features` a dict of
        `encoder_token_ids` int32 [B, S] and `decoder_token_ids` int32 [B, T]; labels int32
        [B, T]; sample_weight float32 [B, T].

    Example:
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> ds = seq2seq_dataset([("ab", "ba")], ByteTokenizer(), 4, 4, 1, training=False)
    >>> features, labels, weights = next(iter(ds))
    >>> features["decoder_token_ids"].numpy(), labels.numpy(), weights.numpy()
    (array([[  1, 101, 100,   0]], dtype=int32), array([[101, 100,   2,   0]], dtype=int32), \
array([[1., 1., 1., 0.]], dtype=float32))
    """
    for name, value, minimum in (("source_length", source_length, 1),
                                 ("target_length", target_length, 1),
                                 ("batch_size", batch_size, 1),
                                 ("shuffle_buffer", shuffle_buffer, 1),
                                 ("seed", seed, 0), ("start_step", start_step, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f"`{name}` must be an int >= {minimum}. Received: {name}={value!r}")
    if not training and start_step:
        raise ValueError(
            f"start_step only applies to training; received start_step={start_step} with "
            "training=False."
        )
    dataset = _as_pairs_dataset(pairs)
    encode = _example_fn(tokenizer, target_tokenizer or tokenizer, source_length, target_length)
    shapes = ({"encoder_token_ids": [source_length], "decoder_token_ids": [target_length]},
              [target_length], [target_length])
    autotune = tf.data.AUTOTUNE
    if not training:
        dataset = dataset.map(encode, num_parallel_calls=autotune, deterministic=True)
        return dataset.padded_batch(batch_size, padded_shapes=shapes).prefetch(autotune)

    num_pairs = int(dataset.cardinality())
    if num_pairs < 0:  # unknown (a filtered or streamed dataset): count once
        num_pairs = int(dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))
    if num_pairs < 1:
        raise ValueError("The training pairs are empty; give at least one pair.")

    def epoch_pairs(epoch):
        blocks = dataset.batch(shuffle_buffer).enumerate()
        return blocks.map(lambda index, block: _shuffle_block(block, seed, epoch, index),
                          num_parallel_calls=autotune, deterministic=True).unbatch()

    first_epoch, offset = divmod(start_step * batch_size, num_pairs)
    dataset = tf.data.Dataset.counter(start=first_epoch).flat_map(epoch_pairs).skip(offset)
    dataset = dataset.map(encode, num_parallel_calls=autotune, deterministic=True)
    dataset = dataset.padded_batch(batch_size, padded_shapes=shapes, drop_remainder=True)
    return dataset.prefetch(autotune)


def build_seq2seq_datasets(data_config, tokenizer, batch_size, target_tokenizer=None,
                           start_step=0, pairs_loader=None):
    """The training and validation datasets of a `config.data` section.

    Args:
        data_config: dict or ConfigDict with `source`, `source_length`, `target_length`, and
            optionally `shuffle_buffer` (10_000), `seed` (0), `source_options` (dict).
        tokenizer, target_tokenizer: as for `seq2seq_dataset`.
        batch_size: int B.
        start_step: training batches already consumed.
        pairs_loader: optional callable (split) -> pairs, replacing `load_pairs` (the task
            passes one that caches aligned pairs in the workdir).

    Returns:
        (train_ds, validation_ds).
    """
    get = data_config.get
    options = get("source_options", None) or {}
    if hasattr(options, "to_dict"):
        options = options.to_dict()
    if pairs_loader is None:
        pairs_loader = functools.partial(load_pairs, get("source"), **options)
    common = dict(tokenizer=tokenizer, target_tokenizer=target_tokenizer,
                  source_length=get("source_length"), target_length=get("target_length"),
                  batch_size=batch_size)
    train_ds = seq2seq_dataset(pairs_loader("train"), training=True,
                               shuffle_buffer=get("shuffle_buffer", 10_000),
                               seed=get("seed", 0), start_step=start_step, **common)
    validation_ds = seq2seq_dataset(pairs_loader("validation"), training=False, **common)
    return train_ds, validation_ds


def _check_special_ids(tokenizer, target_tokenizer):
    """Raises a ValueError when a tokenizer lacks the ids the pair layout needs."""
    for role, tok, names in (("source", tokenizer, ("eos_id",)),
                             ("target", target_tokenizer, ("bos_id", "eos_id"))):
        missing = [name for name in names if getattr(tok, name, None) is None]
        if missing:
            raise ValueError(
                f"The {role} tokenizer ({type(tok).__name__}) has no {' / '.join(missing)}: a "
                "sequence-to-sequence pair needs the source eos and the target bos and eos "
                "(see the layout in keras_lm.data.seq2seq). Use a tokenizer with them "
                "(SentencePieceTokenizer.train gives them)."
            )


def length_report(pairs, tokenizer, source_length, target_length, target_tokenizer=None,
                  chunk=8192):
    """How many pairs fit the model's lengths (the others get weight 0 in `seq2seq_dataset`).

    Args:
        pairs: a list of (str, str).
        tokenizer, target_tokenizer: as for `seq2seq_dataset`.
        source_length, target_length: S and T.
        chunk: pairs tokenized per batched op.

    Returns:
        A dict: `pairs`, `fitting` (pairs with m + 1 <= S and n + 1 <= T), and
        `longest_source`, `longest_target` (the S and T that would fit every pair).

    Example:
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> length_report([("ab", "c"), ("abcd", "c")], ByteTokenizer(), 4, 4)
    {'pairs': 2, 'fitting': 1, 'longest_source': 5, 'longest_target': 2}
    """
    target_tokenizer = target_tokenizer or tokenizer
    pairs = list(pairs)
    fitting, longest_source, longest_target = 0, 0, 0
    for start in range(0, len(pairs), chunk):
        block = pairs[start:start + chunk]
        sources = tokenizer.tokenize([s for s, _ in block]).row_lengths().numpy() + 1
        targets = target_tokenizer.tokenize([t for _, t in block]).row_lengths().numpy() + 1
        fitting += int(np.sum((sources <= source_length) & (targets <= target_length)))
        longest_source = max(longest_source, int(sources.max()))
        longest_target = max(longest_target, int(targets.max()))
    return {"pairs": len(pairs), "fitting": fitting, "longest_source": longest_source,
            "longest_target": longest_target}


def _example_fn(tokenizer, target_tokenizer, source_length, target_length):
    _check_special_ids(tokenizer, target_tokenizer)
    source_eos = tf.constant([tokenizer.eos_id], tf.int32)
    bos = tf.constant([target_tokenizer.bos_id], tf.int32)
    eos = tf.constant([target_tokenizer.eos_id], tf.int32)

    def encode(source, target):
        source_ids = tf.concat([tf.cast(tokenizer.tokenize(source), tf.int32), source_eos], 0)
        target_ids = tf.cast(target_tokenizer.tokenize(target), tf.int32)
        decoder_ids = tf.concat([bos, target_ids], 0)  # teacher forcing: shifted right
        labels = tf.concat([target_ids, eos], 0)
        fits = tf.logical_and(tf.size(source_ids) <= source_length,
                              tf.size(labels) <= target_length)
        weights = tf.fill(tf.shape(labels[:target_length]), tf.cast(fits, tf.float32))
        features = {"encoder_token_ids": source_ids[:source_length],
                    "decoder_token_ids": decoder_ids[:target_length]}
        return features, labels[:target_length], weights

    return encode


def _shuffle_block(block, seed, epoch, block_index):
    key = tf.constant([seed, 0], tf.int64)
    key = tf.random.experimental.stateless_fold_in(key, tf.cast(epoch, tf.int64))
    key = tf.random.experimental.stateless_fold_in(key, tf.cast(block_index, tf.int64))
    size = tf.shape(block[0])[0]
    order = tf.random.experimental.stateless_shuffle(tf.range(size), seed=key)
    return tf.gather(block[0], order), tf.gather(block[1], order)


def _as_pairs_dataset(pairs):
    if isinstance(pairs, tf.data.Dataset):
        spec = pairs.element_spec
        ok = (isinstance(spec, tuple) and len(spec) == 2
              and all(isinstance(s, tf.TensorSpec) and s.dtype == tf.string and s.shape.rank == 0
                      for s in spec))
        if not ok:
            raise TypeError(
                "pairs must be a Dataset of (tf.string, tf.string) scalars; received "
                f"element_spec={spec}."
            )
        return pairs
    pairs = list(pairs)
    if not pairs:
        raise ValueError("`pairs` is empty; give at least one (source, target) pair.")
    for index, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2
                and all(isinstance(s, str) for s in pair)):
            raise TypeError(
                f"pairs must hold (str, str) tuples; received pairs[{index}]={pair!r:.80}."
            )
    sources, targets = zip(*pairs)
    return tf.data.Dataset.from_tensor_slices(
        (tf.constant(sources, tf.string), tf.constant(targets, tf.string))
    )


def _resolve(source, split):
    """(kind, target): kind in algorithmic, shakespeare_folio, tfds, file."""
    if hasattr(source, "to_dict"):
        source = source.to_dict()
    if isinstance(source, dict):
        if split not in source:
            raise ValueError(
                f"The source dict has no split {split!r}: it has {sorted(source)}. Add a "
                f"{split!r} entry."
            )
        source = source[split]
    if not isinstance(source, str) or not source:
        raise ValueError(
            f"A pair source must be a non-empty str or a dict {{split: str}}; received "
            f"source={source!r}. Valid forms: {_SOURCE_FORMS}."
        )
    source = source.replace("{split}", split)
    if source.startswith("algorithmic:"):
        return "algorithmic", source[len("algorithmic:"):]
    if source == "shakespeare_folio":
        return "shakespeare_folio", None
    if source.startswith("shakespeare_folio:"):
        return "shakespeare_folio", source[len("shakespeare_folio:"):] or None
    if source.startswith("tfds:"):
        body, _, target_feature = source[len("tfds:"):].rpartition(":")
        name_split, _, source_feature = body.rpartition(":")
        slash = name_split.split("[", 1)[0].rfind("/")
        if slash <= 0 or not source_feature or not target_feature:
            raise ValueError(
                "A TFDS pair source reads 'tfds:NAME/SPLIT:SOURCE:TARGET', e.g. "
                f"'tfds:wmt14_translate/de-en/{{split}}:de:en'; received source={source!r}."
            )
        return "tfds", (name_split[:slash], name_split[slash + 1:], source_feature,
                        target_feature)
    if source.endswith((".tsv", ".jsonl")):
        return "file", source
    raise ValueError(f"Unknown pair source form: source={source!r}. Valid forms: {_SOURCE_FORMS}.")


def _check_options(kind, options):
    allowed = {
        "tfds": ("data_dir", "download"),
        "shakespeare_folio": ALIGNER_OPTIONS + ("cache_dir",),
        "algorithmic": ("num_examples", "min_digits", "max_digits"),
        "file": (),
    }[kind]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"Unknown option(s) {unknown} for a {kind} pair source; accepted options: "
            f"{list(allowed) or 'none'}."
        )


def _tfds_pairs(target, data_dir=None, download=False):
    import tensorflow_datasets as tfds

    name, tfds_split, source_feature, target_feature = target
    try:
        dataset = tfds.load(name, split=tfds_split, data_dir=data_dir, download=download)
    except AssertionError as error:  # tfds' way of saying "not prepared in data_dir"
        raise FileNotFoundError(
            f"TFDS dataset {name!r} is not prepared in data_dir={data_dir!r} ({error}). Prepare "
            "it (tfds build), or pass download=True once."
        ) from error
    spec = dataset.element_spec
    for feature in (source_feature, target_feature):
        if not isinstance(spec, dict) or feature not in spec:
            available = sorted(spec) if isinstance(spec, dict) else spec
            raise ValueError(
                f"TFDS dataset {name!r} has no feature {feature!r}; its features: {available}."
            )
        if spec[feature].dtype != tf.string or spec[feature].shape.rank != 0:
            raise ValueError(f"TFDS feature {name}:{feature} is {spec[feature]}, not text.")
    return dataset.map(lambda example: (example[source_feature], example[target_feature]))
