"""Encoder inputs: the [CLS]/[SEP]/[MASK] ids, and texts or pairs packed into fixed rows.

keras_lm tokenizers have pad (0), unk, bos and eos. An encoder reuses them as BERT's specials
and adds one id for [MASK] after the tokenizer's vocabulary, so no tokenizer needs a change:

    [PAD] = pad_id (0)    [CLS] = bos_id    [SEP] = eos_id    [MASK] = vocabulary_size

An encoder's embedding therefore has `encoder_vocabulary_size(tokenizer)` = tokenizer
vocabulary + 1 rows. A single text becomes `[CLS] a [SEP]`, a pair `[CLS] a [SEP] b [SEP]`,
with segment ids 0 for `[CLS] a [SEP]` and 1 for `b [SEP]`, padded with 0 to T tokens.

Shape letters: B batch, T tokens a row.
"""

import tensorflow as tf


def special_token_ids(tokenizer):
    """BERT-style special ids of an encoder over `tokenizer`.

    Args:
        tokenizer: a keras_lm tokenizer (with `bos_id` and `eos_id`).

    Returns:
        A dict with `pad`, `cls`, `sep`, `mask` (ints) and `all` (sorted list of every id
        that stands for no text: the tokenizer's specials and the mask id).

    Example:
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> ids = special_token_ids(ByteTokenizer())
    >>> ids["cls"], ids["sep"], ids["mask"]
    (1, 2, 259)
    """
    if tokenizer.bos_id is None or tokenizer.eos_id is None:
        raise ValueError(
            "An encoder uses the tokenizer's bos id as [CLS] and its eos id as [SEP], but this "
            f"tokenizer has bos_id={tokenizer.bos_id}, eos_id={tokenizer.eos_id}. Use a "
            "keras_lm tokenizer with both (char, byte, or SentencePiece trained by keras_lm)."
        )
    mask = tokenizer.vocabulary_size
    return {
        "pad": tokenizer.pad_id,
        "cls": tokenizer.bos_id,
        "sep": tokenizer.eos_id,
        "mask": mask,
        "all": sorted(set(tokenizer.special_ids) | {mask}),
    }


def encoder_vocabulary_size(tokenizer):
    """Embedding rows of an encoder over `tokenizer`: its ids plus the [MASK] id."""
    return tokenizer.vocabulary_size + 1


def truncate_pair_lengths(length_a, length_b, budget):
    """Lengths of a text pair after "longest first" truncation to `budget` tokens in all.

    Tokens are removed one at a time from the longer text (the second on a tie) until the
    pair fits, which leaves the shorter text whole when it fits in half the budget and splits
    the budget evenly (the first text getting the odd token) otherwise.

    Args:
        length_a, length_b: int32 tensors (any matching shape), the two lengths.
        budget: int or int32 tensor, tokens available to the two texts.

    Returns:
        (kept_a, kept_b), int32 tensors.

    Example:
    >>> [int(x) for x in truncate_pair_lengths(10, 2, 8)]
    [6, 2]
    """
    length_a = tf.cast(length_a, tf.int32)
    length_b = tf.cast(length_b, tf.int32)
    budget = tf.cast(budget, tf.int32)
    half_up = budget - budget // 2
    kept_a = tf.minimum(length_a, tf.maximum(budget - length_b, half_up))
    kept_b = tf.minimum(length_b, budget - kept_a)
    return kept_a, kept_b


def pack_segments(first, second, sequence_length, cls_id, sep_id):
    """Packs ragged token ids into `[CLS] a [SEP] (b [SEP])` rows of T tokens.

    Texts that do not fit are truncated at their end (pairs "longest first", see
    `truncate_pair_lengths`). Runs eagerly and inside `tf.data` maps.

    Args:
        first: int32 RaggedTensor [B, None], the first texts' ids.
        second: int32 RaggedTensor [B, None] or None (single texts).
        sequence_length: int T (>= 2 for single texts, >= 3 for pairs).
        cls_id, sep_id: ints.

    Returns:
        A dict of int32 [B, T] tensors: `token_ids` (0-padded) and `segment_ids`.

    Example:
    >>> packed = pack_segments(tf.ragged.constant([[7, 8]]), tf.ragged.constant([[9]]), 6,
    ...                        cls_id=2, sep_id=3)
    >>> packed["token_ids"].numpy().tolist(), packed["segment_ids"].numpy().tolist()
    ([[2, 7, 8, 3, 9, 3]], [[0, 0, 0, 0, 1, 1]])
    """
    specials = 2 if second is None else 3
    if sequence_length < specials:
        raise ValueError(
            f"sequence_length={sequence_length} leaves no room for the {specials} special "
            "tokens ([CLS], [SEP]); use a longer sequence_length."
        )
    first = tf.cast(first, tf.int32)
    batch = first.nrows()
    budget = sequence_length - specials
    cls = tf.fill([batch, 1], tf.constant(cls_id, tf.int32))
    sep = tf.fill([batch, 1], tf.constant(sep_id, tf.int32))
    if second is None:
        kept_a = tf.minimum(first.row_lengths(), tf.cast(budget, first.row_lengths().dtype))
        a = tf.RaggedTensor.from_tensor(first.to_tensor(), lengths=kept_a)  # (B, None)
        pieces = [cls, a, sep]
        segments = [tf.zeros_like(cls), tf.zeros_like(a), tf.zeros_like(sep)]
    else:
        second = tf.cast(second, tf.int32)
        if tf.executing_eagerly():
            if int(first.nrows()) != int(second.nrows()):
                raise ValueError(
                    f"`first` has {int(first.nrows())} texts but `second` has "
                    f"{int(second.nrows())}: a pair needs one second text for each first text."
                )
        kept_a, kept_b = truncate_pair_lengths(first.row_lengths(), second.row_lengths(), budget)
        a = tf.RaggedTensor.from_tensor(first.to_tensor(), lengths=kept_a)
        b = tf.RaggedTensor.from_tensor(second.to_tensor(), lengths=kept_b)
        pieces = [cls, a, sep, b, sep]
        segments = [tf.zeros_like(cls), tf.zeros_like(a), tf.zeros_like(sep),
                    tf.ones_like(b), tf.ones_like(sep)]
    token_ids = tf.concat(pieces, axis=1)  # ragged (B, None)
    segment_ids = tf.concat(segments, axis=1)
    shape = [None, sequence_length]
    return {
        "token_ids": token_ids.to_tensor(0, shape=shape),
        "segment_ids": segment_ids.to_tensor(0, shape=shape),
    }


def example_order(num_examples, batch_size, *, training, seed=0, start_step=0):
    """Dataset of example indices (int64 scalars) in training or evaluation order.

    Evaluation: 0 .. N - 1 once. Training: endless epochs, each a permutation of the N
    examples drawn statelessly from (seed, epoch), so batch b of a run is the same whether the
    run started at 0 or resumed at `start_step=b` (which jumps straight to its epoch).

    Args:
        num_examples: int N >= 1.
        batch_size: int B, to place `start_step` batches.
        training: bool.
        seed, start_step: ints >= 0.

    Example:
    >>> sorted(int(i) for i in example_order(4, 2, training=True).take(4))
    [0, 1, 2, 3]
    """
    if num_examples < 1:
        raise ValueError(f"No examples to batch: received num_examples={num_examples}.")
    if not training:
        if start_step:
            raise ValueError(f"start_step={start_step} only applies with training=True.")
        return tf.data.Dataset.range(num_examples)
    first_epoch, offset = divmod(start_step * batch_size, num_examples)

    def epoch_order(epoch):
        key = tf.random.experimental.stateless_fold_in(tf.constant([seed, 1], tf.int64), epoch)
        order = tf.random.experimental.stateless_shuffle(
            tf.range(num_examples, dtype=tf.int64), seed=key
        )
        return tf.data.Dataset.from_tensor_slices(order)

    return tf.data.Dataset.counter(start=first_epoch).flat_map(epoch_order).skip(offset)


def classification_dataset(examples, tokenizer, label_ids, sequence_length, batch_size, *,
                           training, seed=0, start_step=0):
    """Batches `({"token_ids", "segment_ids"}, labels)` of texts or text pairs.

    Texts are tokenized inside the tf.data map and packed by `pack_segments` (pairs when the
    examples have `text_pair`). Training batches are full (`drop_remainder`), shuffled and
    endless (see `example_order`); evaluation is one ordered pass.

    Args:
        examples: list of dicts with `text` (and `text_pair`), e.g. from `load_labeled`.
        tokenizer: a keras_lm tokenizer.
        label_ids: list of int, one per example (`encode_labels`).
        sequence_length: int T.
        batch_size: int B.
        training: bool.
        seed, start_step: ints, see `example_order`.

    Returns:
        A `tf.data.Dataset` of `(features, labels)`: int32 [B, T] features, int32 [B] labels.

    Example:
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> ds = classification_dataset([{"text": "hi"}, {"text": "yo"}], ByteTokenizer(), [0, 1],
    ...                             8, 2, training=False)
    >>> next(iter(ds))[0]["token_ids"].shape
    TensorShape([2, 8])
    """
    if len(label_ids) != len(examples):
        raise ValueError(
            f"label_ids has {len(label_ids)} entries for {len(examples)} examples."
        )
    with_pair = [i for i, e in enumerate(examples) if "text_pair" in e]
    pairs = bool(with_pair)
    if pairs and len(with_pair) != len(examples):
        missing = next(i for i, e in enumerate(examples) if "text_pair" not in e)
        raise ValueError(
            f"{len(with_pair)} of {len(examples)} examples have a `text_pair` but example "
            f"{missing} does not: give every example a `text_pair` (a pair task) or none "
            "(single texts)."
        )
    texts = tf.constant([e["text"] for e in examples], tf.string)
    second = tf.constant([e.get("text_pair", "") for e in examples], tf.string) if pairs else None
    specials = 3 if pairs else 2
    if sequence_length < specials:  # checked here too, so the error is not wrapped by tf.data
        raise ValueError(
            f"sequence_length={sequence_length} leaves no room for the {specials} special "
            "tokens ([CLS], [SEP]); use a longer sequence_length."
        )
    labels = tf.constant(label_ids, tf.int32)
    ids = special_token_ids(tokenizer)

    def encode(index):
        first = tokenizer.tokenize(tf.gather(texts, index))
        other = tokenizer.tokenize(tf.gather(second, index)) if pairs else None
        features = pack_segments(first, other, sequence_length, ids["cls"], ids["sep"])
        return features, tf.gather(labels, index)

    order = example_order(len(examples), batch_size, training=training, seed=seed,
                          start_step=start_step)
    dataset = order.batch(batch_size, drop_remainder=training)
    dataset = dataset.map(encode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def array_dataset(arrays, batch_size, *, training, seed=0, start_step=0):
    """Batches of rows of equal-length numpy arrays (a dict), ordered like `example_order`.

    Args:
        arrays: dict name -> array [N, ...]; `features` is a sub-dict of them, see Returns.
        batch_size, training, seed, start_step: as for `classification_dataset`.

    Returns:
        A `tf.data.Dataset` of dicts of [B, ...] tensors.
    """
    if not arrays:
        raise ValueError("`arrays` is empty: give at least one array of rows.")
    tensors = {name: tf.constant(value) for name, value in arrays.items()}
    rows = {name: int(t.shape[0]) if t.shape.rank else None for name, t in tensors.items()}
    if len(set(rows.values())) != 1 or None in rows.values():
        raise ValueError(
            f"The arrays must all have the same number of rows (first dimension); received "
            f"{rows}."
        )
    num_examples = next(iter(rows.values()))
    order = example_order(num_examples, batch_size, training=training, seed=seed,
                          start_step=start_step)
    dataset = order.batch(batch_size, drop_remainder=training)
    dataset = dataset.map(lambda index: {k: tf.gather(v, index) for k, v in tensors.items()},
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def tagging_arrays(sentences, tokenizer, tag_ids, sequence_length):
    """Token rows of tagged sentences, each word's tag on its first sub-token.

    A row is `[CLS] pieces(w_1) ... pieces(w_n) [SEP]`, cut to T tokens (words beyond the cut
    are not in the row). `labels` holds the tag id at each word's first sub-token and 0
    elsewhere; `sample_weight` is 1 only there, so the other sub-tokens, the specials and the
    padding are ignored by the loss. `word_starts[i][j]` is the row position of word j of
    sentence i, or -1 for a word cut off.

    Args:
        sentences: list of {"words": [...]} (tags are read from `tag_ids`).
        tokenizer: a keras_lm tokenizer.
        tag_ids: list (per sentence) of lists of int tag ids, or None (prediction).
        sequence_length: int T >= 3.

    Returns:
        (arrays, word_starts): arrays is a dict of int32/float32 numpy [N, T] `token_ids`,
        `segment_ids`, `labels`, `sample_weight`; word_starts a list of lists of int.
    """
    import numpy as np

    if sequence_length < 3:
        raise ValueError(
            f"sequence_length={sequence_length} leaves no room for a word between [CLS] and "
            "[SEP]; use a sequence_length >= 3."
        )
    if tag_ids is not None:
        if len(tag_ids) != len(sentences):
            raise ValueError(
                f"tag_ids has {len(tag_ids)} entries for {len(sentences)} sentences; give one "
                "list of tag ids per sentence."
            )
        for i, (sentence, tags) in enumerate(zip(sentences, tag_ids)):
            if len(tags) != len(sentence["words"]):
                raise ValueError(
                    f"Sentence {i} has {len(sentence['words'])} words but {len(tags)} tag ids; "
                    "give one tag id per word."
                )
    ids = special_token_ids(tokenizer)
    count = len(sentences)
    token_ids = np.zeros((count, sequence_length), np.int32)
    labels = np.zeros((count, sequence_length), np.int32)
    weights = np.zeros((count, sequence_length), np.float32)
    flat_pieces = word_pieces([s["words"] for s in sentences], tokenizer)
    word_starts = []
    cursor = 0
    for i, sentence in enumerate(sentences):
        row = [ids["cls"]]
        starts = []
        for j in range(len(sentence["words"])):
            pieces = flat_pieces[cursor + j]
            if len(row) + len(pieces) > sequence_length - 1:
                starts.extend([-1] * (len(sentence["words"]) - j))
                break
            starts.append(len(row))
            if tag_ids is not None:
                labels[i, len(row)] = tag_ids[i][j]
                weights[i, len(row)] = 1.0
            row.extend(pieces)
        cursor += len(sentence["words"])
        row.append(ids["sep"])
        token_ids[i, :len(row)] = row
        word_starts.append(starts)
    arrays = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids),
              "labels": labels, "sample_weight": weights}
    return arrays, word_starts


def word_pieces(word_lists, tokenizer):
    """Token ids of each word as it appears in its sentence `" ".join(words)`.

    Word j > 0 of a sentence is tokenized with its leading space (" word"), so the pieces of
    a sentence's words, concatenated, are the tokens of the joined text for tokenizers that
    never merge across a space (char, byte, SentencePiece with whitespace splitting). All
    sentences go through one tokenizer call.

    Args:
        word_lists: list (sentences) of lists of str (words).
        tokenizer: a keras_lm tokenizer.

    Returns:
        A flat list (all words of all sentences, in order) of lists of int.
    """
    strings = [w if j == 0 else " " + w for words in word_lists for j, w in enumerate(words)]
    if not strings:
        return []
    return tokenizer.tokenize(strings).to_list()
