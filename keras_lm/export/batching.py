"""In-graph batching for string signatures: ragged ids <-> the dense arrays a model reads.

Plain TensorFlow functions over int32 ids, with core ops only (ragged ops, gather, where),
so an exported graph that uses them still runs in a stock TF Serving.

Shape letters: B batch, P prompt tokens, W buffer width (the model's context C),
V vocabulary, L_b the ids of row b (ragged).
"""

import tensorflow as tf


def keep_last(ids, count):
    """Keeps the last `count` ids of every row.

    Args:
        ids: int32 RaggedTensor [B, None].
        count: int32 scalar >= 0.

    Returns:
        int32 RaggedTensor [B, None], row b holding ids[b][-count:] (all of it if shorter).

    Example:
    >>> keep_last(tf.ragged.constant([[1, 2, 3], [4]]), 2)
    <tf.RaggedTensor [[2, 3], [4]]>
    """
    row_lengths = tf.cast(ids.row_lengths(), tf.int32)  # (B,)
    kept = tf.minimum(row_lengths, count)
    first = tf.cast(ids.row_starts(), tf.int32) + row_lengths - kept  # flat index, (B,)
    flat_index = tf.ragged.range(first, first + kept)  # (B, None)
    return tf.RaggedTensor.from_row_splits(
        tf.gather(ids.flat_values, flat_index.flat_values), flat_index.row_splits
    )


def pack_prompts(ids, start_id, room, width):
    """Right-pads prompts into one [B, W] buffer, the layout the decoding loop fills.

    A prompt longer than `room` keeps its last `room` ids (the end is what the model
    continues). An empty prompt becomes `[start_id]` (the document separator: "start a new
    document"), as `keras_lm.generation.generate` does.

    Args:
        ids: int32 RaggedTensor [B, None], the tokenized prompts.
        start_id: int, the id that stands for an empty prompt.
        room: int32 scalar in [1, width], the most prompt ids kept per row.
        width: python int, W, the buffer width (static, so XLA compiles once per B).

    Returns:
        (tokens int32 [B, W] with each prompt at the start and zeros after,
         lengths int32 [B] in [1, room]).
    """
    kept = keep_last(ids, room)
    lengths = tf.cast(kept.row_lengths(), tf.int32)  # (B,)
    tokens = kept.to_tensor(default_value=0, shape=[None, width])  # (B, W)
    empty = tf.equal(lengths, 0)[:, None] & tf.equal(tf.range(width), 0)[None, :]  # (B, W)
    tokens = tf.where(empty, tf.constant(start_id, tf.int32), tokens)
    return tokens, tf.maximum(lengths, 1)


def continuations(tokens, lengths, end, max_new_tokens, stop_id):
    """Each row's new ids from a filled decoding buffer, without the stop token.

    Row b's continuation is tokens[b, lengths[b] : min(end[b], lengths[b] + max_new_tokens)],
    minus a final `stop_id` (the same slicing as `keras_lm.generation.generate`).

    Args:
        tokens: int32 [B, W], the buffer after decoding.
        lengths: int32 [B], prompt lengths.
        end: int32 [B], the position after each row's last generated token.
        max_new_tokens: int32 scalar.
        stop_id: int32 scalar.

    Returns:
        int32 RaggedTensor [B, None].
    """
    stop = tf.minimum(end, lengths + max_new_tokens)  # (B,) exclusive
    count = tf.maximum(stop - lengths, 0)
    last = tf.gather(tokens, tf.maximum(stop - 1, 0), batch_dims=1)  # (B,)
    count -= tf.cast((count > 0) & tf.equal(last, stop_id), tf.int32)
    columns = tf.ragged.range(lengths, lengths + count)  # (B, None)
    rows = columns.value_rowids()
    flat = tf.gather_nd(tokens, tf.stack([tf.cast(rows, tf.int32), columns.flat_values], -1))
    return tf.RaggedTensor.from_row_splits(flat, columns.row_splits)


def score_windows(ids, separator_id, width):
    """Lays texts out as next-token prediction windows of at most `width` tokens.

    Each text is scored as `keras-lm evaluate` scores a document: the model reads
    [sep, t_1 .. t_n] and predicts [t_1 .. t_n, sep], n + 1 labels. A text longer than the
    context is cut into consecutive, non-overlapping windows of `width` inputs, each read
    without the previous window (the evaluation's convention).

    Args:
        ids: int32 RaggedTensor [B, None], the tokenized texts.
        separator_id: int, the document separator (the tokenizer's `eos_id`).
        width: python int, the model's context C.

    Returns:
        (inputs int32 [B * N, Wd], labels int32 [B * N, Wd], weights float32 [B * N, Wd],
         text_index int32 [B * N]): Wd = min(C, longest row + 1), N windows per text, row
        major, so window w belongs to text `text_index[w]` = w // N.
    """
    batch = ids.nrows(out_type=tf.int32)
    separator = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], tf.constant(separator_id,
                                                                            tf.int32)))
    sequence = tf.concat([separator, ids, separator], axis=1)  # (B, L_b + 2)
    inputs, labels = sequence[:, :-1], sequence[:, 1:]  # (B, L_b + 1)
    # At least 1 (an empty batch has no longest row).
    longest = tf.maximum(tf.reduce_max(tf.cast(inputs.row_lengths(), tf.int32)), 1)
    window = tf.minimum(width, longest)
    count = (longest + window - 1) // window  # N
    shape = tf.stack([batch, count * window])

    def windows(x):  # (B, None) ragged -> (B * N, Wd), zeros after each text
        return tf.reshape(x.to_tensor(tf.zeros([], x.dtype), shape=shape), [-1, window])

    weights = tf.ones_like(labels, tf.float32)
    text_index = tf.repeat(tf.range(batch), count)  # (B * N,)
    return windows(inputs), windows(labels), windows(weights), text_index
