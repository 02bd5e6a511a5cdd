"""Language-modelling input pipeline: documents -> token windows -> (features, labels, weights).

Shape letters: B batch size, T sequence length (tokens a row).

The token stream of a corpus is `[eos] d_1 [eos] d_2 [eos] ... d_n [eos]`: every document is
followed by `tokenizer.eos_id` (the document separator), and one extra separator opens the
stream so that the first document is preceded by a boundary like all the others. The stream is
cut into windows w of T + 1 tokens with stride T; a window gives inputs x = w[:-1] and labels
y = w[1:]. Consecutive windows share one token, so every token of the stream after the opening
separator is a label exactly once: with `training=False` (and `packing="concat"`) the labels of
weight 1 are exactly the document tokens and one separator per document, `tokens + documents` of
`corpus_statistics`.

Everything runs in tf.data (tokenization inside `Dataset.map`, no Python in the graph), in a
fixed order: for a fixed `seed` the training order is the same in every process and independent
of TF's global seed, and `start_step=k` continues exactly where step k of a run from 0 would be.

Elements: `(features, labels, sample_weight)` with
- `features["token_ids"]`: int32 [B, T], the inputs x;
- `features["segment_ids"]`: int32 [B, T], only with `packing="document"`: 1, 2, ... for the
  documents of the window (restarting at 1 in every window; a separator belongs to the
  document it ends), 0 on padding;
- `labels`: int32 [B, T], the next tokens y;
- `sample_weight`: float32 [B, T], 1 for a label to learn / evaluate, 0 for padding and (with
  `packing="document"`) for a label in another document than its input token.
"""

import numpy as np
import tensorflow as tf

from keras_lm.data import sources

PACKINGS = ("concat", "document")


# The fields of a language model's data config (`config.data`), see `build_lm_datasets`.
DATA_FIELDS = ("source", "sequence_length", "packing", "shuffle_buffer", "seed",
               "source_options")


def check_data_fields(data_config, known):
    """Raises a ValueError naming any field of `data_config` (a dict) not in `known`.

    A misspelt field (`shuffle_bufer`) would otherwise be ignored and its default used.
    """
    unknown = sorted(set(data_config.keys()) - set(known))
    if unknown:
        raise ValueError(
            f"Unknown data config field(s) {unknown}. Known fields: {sorted(known)}. "
            "Check the spelling in the config file or the --config.data.* override."
        )

def lm_dataset(
    documents,
    tokenizer,
    sequence_length,
    batch_size,
    *,
    training,
    packing="concat",
    shuffle_buffer=10_000,
    seed=0,
    start_step=0,
):
    """Builds the tf.data pipeline of a language model (see module docstring for the layout).

    Training (`training=True`): full windows only, shuffled, repeated forever, batched with
    `drop_remainder=True` (static shape [B, T]). Shuffling permutes consecutive blocks of
    `shuffle_buffer` windows with stateless random permutations keyed by (seed, epoch, block),
    so it is a full permutation of the corpus when `shuffle_buffer` >= windows per epoch, and a
    resumed run jumps straight to its epoch instead of replaying the data. Batches run across
    epoch boundaries (repeat comes before batch), so no window is dropped.

    Evaluation (`training=False`): one pass in corpus order, no shuffle; the last window is
    padded with `tokenizer.pad_id` (weight 0) and the last batch may be smaller than B.

    Args:
        documents: a list of str or a `tf.data.Dataset` of tf.string scalars, one a document.
        tokenizer: has `tokenize(tf.string scalar) -> int32 [L]` (usable in `Dataset.map`),
            `eos_id` and `pad_id`.
        sequence_length: int T >= 1, tokens a row.
        batch_size: int B >= 1, rows a batch.
        training: bool, training (shuffled, repeated) or evaluation (one ordered pass) layout.
        packing: "concat" (windows cross document boundaries freely) or "document" (adds
            `segment_ids` and zeroes the weight of labels across a boundary).
        shuffle_buffer: int >= 1, windows permuted together (1 keeps the corpus order).
        seed: int >= 0, the shuffle seed.
        start_step: int >= 0, training batches to skip: the dataset starts at batch
            `start_step` of the run from 0.

    Returns:
        A `tf.data.Dataset` of `(features, labels, sample_weight)`.

    Raises:
        ValueError: bad arguments, an empty corpus, or (training) fewer than B * T + 1 tokens.

    Example:
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> ds = lm_dataset(["hello world"], ByteTokenizer(), 4, 2, training=False)
    >>> features, labels, weights = next(iter(ds))
    >>> features["token_ids"].shape
    TensorShape([2, 4])
    >>> sum(float(w.numpy().sum()) for _, _, w in ds)  # 11 bytes + 1 separator, each once
    12.0
    """
    _check_positive_int("sequence_length", sequence_length)
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("shuffle_buffer", shuffle_buffer)
    _check_non_negative_int("seed", seed)
    _check_non_negative_int("start_step", start_step)
    _check_packing(packing)
    for name in ("eos_id", "pad_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(
                f"The tokenizer needs an int {name} (the stream's document separator is eos_id, "
                f"padding is pad_id); received {name}={value!r} from {type(tokenizer).__name__}. "
                "Use a tokenizer with bos/eos pieces (e.g. one made by "
                "SentencePieceTokenizer.train)."
            )
    if not training and start_step:
        raise ValueError(
            f"start_step only applies to training; received start_step={start_step} with "
            "training=False. Evaluate from the start (start_step=0)."
        )
    stream = _token_stream(_as_text_dataset(documents), tokenizer)
    windows = _windows(stream, sequence_length)
    to_example = _example_fn(sequence_length, tokenizer.eos_id, packing)
    autotune = tf.data.AUTOTUNE

    if not training:
        def pad(window):
            length = tf.size(window)
            window = tf.pad(window, [[0, sequence_length + 1 - length]],
                            constant_values=tokenizer.pad_id)
            return tf.ensure_shape(window, [sequence_length + 1]), length

        # A window of one token holds no label: it is the last label of the window before.
        dataset = windows.filter(lambda w: tf.size(w) >= 2).map(pad)
        dataset = dataset.batch(batch_size).map(to_example, num_parallel_calls=autotune,
                                                deterministic=True)
        return dataset.prefetch(autotune)

    num_tokens = _count_tokens(stream)
    windows_per_epoch = (num_tokens - 1) // sequence_length
    if windows_per_epoch < batch_size:
        needed = batch_size * sequence_length + 1
        raise ValueError(
            f"The training corpus is too small for one batch: it has {num_tokens} tokens "
            f"(separators included) but batch_size={batch_size} x sequence_length="
            f"{sequence_length} needs {needed} tokens. Use a smaller sequence_length or "
            "batch_size, or more text."
        )
    full_windows = windows.filter(lambda w: tf.size(w) == sequence_length + 1).map(
        lambda w: tf.ensure_shape(w, [sequence_length + 1])
    )

    def epoch_windows(epoch):
        blocks = full_windows.batch(shuffle_buffer).enumerate()
        shuffled = blocks.map(
            lambda block_index, block: _shuffle_block(block, seed, epoch, block_index),
            num_parallel_calls=autotune,
            deterministic=True,
        )
        return shuffled.unbatch()

    # Batch b holds windows [b * B, (b + 1) * B) of the endless window stream; jump to its epoch.
    first_window = start_step * batch_size
    first_epoch, offset = divmod(first_window, windows_per_epoch)
    dataset = tf.data.Dataset.counter(start=first_epoch).flat_map(epoch_windows).skip(offset)
    dataset = dataset.map(lambda w: (w, tf.constant(sequence_length + 1, tf.int32)))
    dataset = dataset.batch(batch_size, drop_remainder=True)
    dataset = dataset.map(to_example, num_parallel_calls=autotune, deterministic=True)
    return dataset.prefetch(autotune)


def corpus_statistics(documents, tokenizer):
    """Counts documents, characters, UTF-8 bytes and tokens of a corpus (in tf.data).

    Evaluation divides a summed negative log-likelihood by these counts to report bits per
    character / per byte / per token.

    Args:
        documents: a list of str or a `tf.data.Dataset` of tf.string scalars.
        tokenizer: has `tokenize(tf.string scalar) -> int32 [L]`.

    Returns:
        A dict of Python ints: `documents`, `characters` (Unicode code points), `bytes` (UTF-8),
        `tokens` (document tokens, separators excluded) and `lm_tokens` (`tokens + documents`:
        the labels of weight 1 of `lm_dataset(..., training=False, packing="concat")`).

    Example:
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> stats = corpus_statistics(["héllo", "ab"], ByteTokenizer())
    >>> stats["characters"], stats["bytes"], stats["tokens"], stats["lm_tokens"]
    (7, 8, 8, 10)
    """
    texts = _as_text_dataset(documents)

    def count(text):
        return (
            tf.constant(1, tf.int64),
            tf.cast(tf.strings.length(text, unit="UTF8_CHAR"), tf.int64),
            tf.cast(tf.strings.length(text, unit="BYTE"), tf.int64),
            tf.cast(tf.size(tokenizer.tokenize(text)), tf.int64),
        )

    zero = tf.constant(0, tf.int64)
    totals = texts.map(count, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).reduce(
        (zero, zero, zero, zero), lambda a, b: tuple(x + y for x, y in zip(a, b))
    )
    num_documents, characters, num_bytes, tokens = (int(t) for t in totals)
    return {
        "documents": num_documents,
        "characters": characters,
        "bytes": num_bytes,
        "tokens": tokens,
        "lm_tokens": tokens + num_documents,
    }


def build_lm_datasets(data_config, tokenizer, batch_size, start_step=0):
    """The training and validation datasets of a data config.

    Args:
        data_config: a dict or `ml_collections.ConfigDict` with fields `source` (default
            "builtin:pydoc"; a source naming different documents per split, see
            `keras_lm.data.sources`), `sequence_length` (required), `packing` (default
            "concat"), `shuffle_buffer` (default 10_000), `seed` (default 0) and optionally
            `source_options` (a dict passed to the source, e.g. {"data_dir": ...} for TFDS).
        tokenizer: see `lm_dataset`.
        batch_size: int B, global batch size.
        start_step: int, training batches already consumed (resume).

    Returns:
        `(train_ds, validation_ds)`: `lm_dataset(..., training=True)` of the "train" split and
        `lm_dataset(..., training=False)` of the "validation" split.

    Example:
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> train_ds, validation_ds = build_lm_datasets(
    ...     {"sequence_length": 128, "packing": "document"}, ByteTokenizer(), batch_size=16)
    >>> train_ds.element_spec[0]["segment_ids"].shape
    TensorShape([16, 128])
    """
    if data_config is None:
        data_config = {}
    check_data_fields(data_config, DATA_FIELDS)
    get = data_config.get
    source = get("source", "builtin:pydoc")
    if sources.names_same_documents(source, "train", "validation"):
        raise ValueError(
            f"data_config.source={source!r} names the same documents for train and validation, "
            "so validation would repeat training text. Use '{split}' in it (e.g. "
            "'data/{split}/*.txt'), a dict {'train': ..., 'validation': ...}, 'builtin:pydoc' "
            "or 'shakespeare'."
        )
    sequence_length = get("sequence_length", None)
    if sequence_length is None:
        raise ValueError(
            "data_config.sequence_length is required (tokens a row); received a config "
            f"without it: {data_config!r}."
        )
    packing = get("packing", "concat")
    _check_packing(packing)
    options = get("source_options", None) or {}
    if hasattr(options, "to_dict"):
        options = options.to_dict()
    try:
        train_ds = lm_dataset(
            sources.text_dataset(source, "train", **options),
            tokenizer,
            sequence_length,
            batch_size,
            training=True,
            packing=packing,
            shuffle_buffer=get("shuffle_buffer", 10_000),
            seed=get("seed", 0),
            start_step=start_step,
        )
    except ValueError as error:
        if "too small for one batch" not in str(error):
            raise
        # lm_dataset sees a Dataset only: say which corpus was too small.
        raise ValueError(
            f"{error} The corpus: data_config.source={source!r}, split='train'."
        ) from error
    validation_ds = lm_dataset(
        sources.text_dataset(source, "validation", **options),
        tokenizer,
        sequence_length,
        batch_size,
        training=False,
        packing=packing,
    )
    return train_ds, validation_ds


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1; received {name}={value!r}.")


def _check_non_negative_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be an int >= 0; received {name}={value!r}.")


def _check_packing(packing):
    if packing not in PACKINGS:
        raise ValueError(
            f"Unknown packing: received packing={packing!r}. Valid values: "
            f"{', '.join(repr(p) for p in PACKINGS)}."
        )


def _as_text_dataset(documents):
    """A list of str or a Dataset of tf.string scalars -> Dataset of tf.string scalars."""
    if isinstance(documents, tf.data.Dataset):
        spec = documents.element_spec
        is_string_scalar = isinstance(spec, tf.TensorSpec) and spec.dtype == tf.string
        if not (is_string_scalar and spec.shape.rank == 0):
            raise TypeError(
                f"documents must be a Dataset of tf.string scalars; received element_spec={spec}. "
                "Map it to one text feature first."
            )
        return documents
    if isinstance(documents, (str, bytes)):
        raise TypeError(
            "documents must be a list of str (one a document), not one str; received a "
            f"{type(documents).__name__} of length {len(documents)}. Wrap it: [text]."
        )
    documents = list(documents)
    for index, document in enumerate(documents):
        if not isinstance(document, str):
            raise TypeError(
                f"documents must hold str; received documents[{index}]={document!r} of type "
                f"{type(document).__name__}."
            )
    if not any(documents):
        raise ValueError(
            f"Empty corpus: received {len(documents)} document(s) and no text. Give documents "
            "that hold text."
        )
    return tf.data.Dataset.from_tensor_slices(tf.constant(documents, tf.string))


def _token_stream(texts, tokenizer):
    """Dataset of int32 [L_i + 1] pieces: [eos], then each document's tokens followed by eos."""
    eos = tf.constant([tokenizer.eos_id], tf.int32)

    def tokenize(text):
        return tf.concat([tf.cast(tokenizer.tokenize(text), tf.int32), eos], axis=0)

    pieces = texts.map(tokenize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return tf.data.Dataset.from_tensors(eos).concatenate(pieces)


def _count_tokens(stream):
    total = stream.map(lambda piece: tf.size(piece, out_type=tf.int64)).reduce(
        tf.constant(0, tf.int64), lambda a, b: a + b
    )
    return int(total)


def _windows(stream, sequence_length):
    """Windows w_i = stream[i T : i T + T + 1] (the last ones shorter), as int32 [<= T + 1].

    The stream is cut into chunks c_i of T tokens (`rebatch` copies once, without a per-token
    element); w_i = c_i + c_{i+1}[:1]. An empty sentinel chunk after the last one emits the final
    chunk on its own; the first emission (no previous chunk) is one token long and holds no label.
    """
    chunks = stream.rebatch(sequence_length).concatenate(
        tf.data.Dataset.from_tensors(tf.zeros([0], tf.int32))
    )

    def step(previous, chunk):
        return chunk, tf.concat([previous, chunk[:1]], axis=0)

    return chunks.scan(tf.zeros([0], tf.int32), step)


def _shuffle_block(block, seed, epoch, block_index):
    """Permutes the windows [N, T + 1] of one block with a key derived from (seed, epoch, block)."""
    key = tf.constant([seed, 0], tf.int64)
    key = tf.random.experimental.stateless_fold_in(key, tf.cast(epoch, tf.int64))
    key = tf.random.experimental.stateless_fold_in(key, tf.cast(block_index, tf.int64))
    return tf.random.experimental.stateless_shuffle(block, seed=key)


def _example_fn(sequence_length, eos_id, packing):
    """(windows int32 [B, T + 1], lengths int32 [B]) -> (features, labels, sample_weight)."""

    def to_example(windows, lengths):
        valid = tf.range(sequence_length + 1)[tf.newaxis, :] < lengths[:, tf.newaxis]  # [B, T+1]
        features = {"token_ids": windows[:, :-1]}  # [B, T]
        labels = windows[:, 1:]  # [B, T]
        weight = valid[:, 1:]  # [B, T]
        if packing == "document":
            # A token's segment is 1 + the separators before it in the window, so a separator
            # belongs to the document it ends; padding is segment 0.
            is_eos = tf.cast(tf.logical_and(tf.equal(windows, eos_id), valid), tf.int32)
            segments = (1 + tf.cumsum(is_eos, axis=1, exclusive=True)) * tf.cast(valid, tf.int32)
            features["segment_ids"] = segments[:, :-1]  # [B, T]
            weight = tf.logical_and(weight, tf.equal(segments[:, :-1], segments[:, 1:]))
        return features, labels, tf.cast(weight, tf.float32)

    return to_example
