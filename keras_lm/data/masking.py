"""BERT's masked-LM corruption, in TensorFlow (stateless, so tf.data runs are reproducible).

Of the eligible tokens of a row (not a special token, not padding) a fraction `rate` is
chosen: exactly max(1, round(rate * n)) of the n eligible tokens, uniformly at random (BERT
picks a fixed count per sequence too). Of the chosen tokens
  80% (`mask_fraction`) become [MASK],
  10% (`random_fraction`) become a uniformly random non-special token,
  10% (the rest) stay unchanged;
the model must predict the original token at every chosen position and nowhere else:
`labels` are the original ids and `sample_weight` is 1 exactly at the chosen positions.

Shape letters: B batch, T tokens a row.

Reference: Devlin et al., 2019, section 3.1 and appendix C.2, https://arxiv.org/abs/1810.04805
"""

import tensorflow as tf

from keras_lm.data import lm_pipeline
from keras_lm.data import sources
from keras_lm.data.encoder_inputs import special_token_ids


def mask_tokens(
    token_ids,
    seed,
    *,
    mask_id,
    special_ids,
    vocabulary_size,
    rate=0.15,
    mask_fraction=0.8,
    random_fraction=0.1,
):
    """Chooses positions to predict and corrupts them as BERT does.

    Args:
        token_ids: int32 [B, T] (0-padded).
        seed: int32/int64 shape [2] tensor, a stateless seed (e.g. [seed, batch index]).
        mask_id: int, the [MASK] id.
        special_ids: ids never chosen nor drawn as random tokens (pad, cls, sep, mask, ...).
        vocabulary_size: int, the random replacements come from `0 .. vocabulary_size - 1`
            minus `special_ids`.
        rate: float in (0, 1], fraction of the eligible tokens of a row to choose.
        mask_fraction: float, of the chosen, the fraction replaced by [MASK].
        random_fraction: float, of the chosen, the fraction replaced by a random token.

    Returns:
        `(masked_ids, labels, sample_weight)`: int32 [B, T] corrupted inputs, int32 [B, T]
        original ids, float32 [B, T] with 1 at chosen positions and 0 elsewhere.

    Example:
    >>> ids = tf.constant([[2, 10, 11, 12, 13, 3, 0]])
    >>> masked, labels, weights = mask_tokens(ids, tf.constant([0, 0]), mask_id=20,
    ...                                       special_ids=[0, 1, 2, 3, 20], vocabulary_size=20)
    >>> int(weights.numpy().sum())  # max(1, round(0.15 * 4))
    1
    """
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"`rate` must be in (0, 1]. Received: rate={rate!r}")
    if mask_fraction < 0 or random_fraction < 0 or mask_fraction + random_fraction > 1:
        raise ValueError(
            "`mask_fraction` and `random_fraction` must be >= 0 and sum to at most 1. "
            f"Received: mask_fraction={mask_fraction!r}, random_fraction={random_fraction!r}"
        )
    special_ids = sorted(set(int(i) for i in special_ids))
    replacements = [i for i in range(vocabulary_size) if i not in set(special_ids)]
    if not replacements:
        raise ValueError(
            f"No non-special token in 0..{vocabulary_size - 1} to draw random replacements "
            f"from (special_ids={special_ids}). Check `vocabulary_size`."
        )
    token_ids = tf.cast(token_ids, tf.int32)
    seed = tf.cast(seed, tf.int64)
    seeds = [tf.random.experimental.stateless_fold_in(seed, i) for i in range(3)]
    eligible = tf.reduce_all(
        tf.not_equal(token_ids[:, :, None], tf.constant(special_ids, tf.int32)), axis=-1
    )  # (B, T)

    # Exactly k eligible positions a row: the k smallest random keys among the eligible.
    # In float64, as Python's round(rate * n): in float32, rate * n can land past a .5 tie
    # (0.15 * 190 = 28.500002) and round the other way.
    count = tf.reduce_sum(tf.cast(eligible, tf.float64), axis=1)  # (B,)
    k = tf.maximum(tf.round(tf.constant(rate, tf.float64) * count), tf.ones_like(count))
    k = tf.cast(tf.where(count > 0, k, tf.zeros_like(k)), tf.float32)  # (B,)
    keys = tf.random.stateless_uniform(tf.shape(token_ids), seeds[0])  # (B, T)
    keys = tf.where(eligible, keys, 2.0)  # ineligible sort last
    ranks = tf.argsort(tf.argsort(keys, axis=1), axis=1)  # rank of each position in its row
    chosen = tf.logical_and(eligible, tf.cast(ranks, tf.float32) < k[:, None])  # (B, T)

    # One draw decides mask / random / keep for every chosen position.
    action = tf.random.stateless_uniform(tf.shape(token_ids), seeds[1])
    use_mask = tf.logical_and(chosen, action < mask_fraction)
    use_random = tf.logical_and(
        chosen,
        tf.logical_and(action >= mask_fraction, action < mask_fraction + random_fraction),
    )
    index = tf.random.stateless_uniform(
        tf.shape(token_ids), seeds[2], minval=0, maxval=len(replacements), dtype=tf.int32
    )
    random_tokens = tf.gather(tf.constant(replacements, tf.int32), index)
    masked = tf.where(use_mask, tf.constant(mask_id, tf.int32), token_ids)
    masked = tf.where(use_random, random_tokens, masked)
    return masked, token_ids, tf.cast(chosen, tf.float32)


def masked_lm_dataset(
    documents,
    tokenizer,
    sequence_length,
    batch_size,
    *,
    training,
    rate=0.15,
    shuffle_buffer=10_000,
    seed=0,
    start_step=0,
):
    """Masked-LM batches `({"token_ids", "segment_ids"}, labels, sample_weight)` of documents.

    The token stream of the documents (each followed by [SEP], i.e. eos) is cut into windows
    of T - 2 tokens by `keras_lm.data.lm_pipeline.lm_dataset` (same order, shuffling and
    resumption), each becomes `[CLS] window [SEP]` and is masked with `mask_tokens`, the seed
    of batch b being (seed, b): a run resumed at step b masks exactly as the run from 0.
    Evaluation batches (`training=False`) are masked with fixed seeds too, so validation
    losses are comparable across evaluations.

    Args:
        documents: list of str or `tf.data.Dataset` of tf.string scalars.
        tokenizer: a keras_lm tokenizer.
        sequence_length: int T >= 3, tokens a row ([CLS] and [SEP] included).
        batch_size: int B.
        training: bool, shuffled endless batches or one ordered pass.
        rate: float, fraction of tokens to predict.
        shuffle_buffer, seed, start_step: as for `lm_dataset`.

    Returns:
        A `tf.data.Dataset` of `(features, labels, sample_weight)`, all [B, T].

    Example:
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> ds = masked_lm_dataset(["to be or not to be"], ByteTokenizer(), 8, 2, training=False)
    >>> features, labels, weights = next(iter(ds))
    >>> features["token_ids"].shape
    TensorShape([2, 8])
    """
    if sequence_length < 3:
        raise ValueError(
            f"sequence_length must be >= 3 ([CLS], a token, [SEP]); received "
            f"sequence_length={sequence_length}."
        )
    ids = special_token_ids(tokenizer)
    windows = lm_pipeline.lm_dataset(
        documents,
        tokenizer,
        sequence_length - 2,
        batch_size,
        training=training,
        packing="concat",
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        start_step=start_step,
    )

    def to_example(index, features, unused_labels, unused_weights):
        window = features["token_ids"]  # (B, T - 2), 0-padded at the end of evaluation
        rows = tf.shape(window)[0]
        real = tf.reduce_sum(tf.cast(tf.not_equal(window, 0), tf.int32), axis=1)  # (B,)
        # [CLS] window [SEP], the [SEP] right after the last real token.
        ragged = tf.RaggedTensor.from_tensor(window, lengths=real)
        cls = tf.fill([rows, 1], ids["cls"])
        sep = tf.fill([rows, 1], ids["sep"])
        token_ids = tf.concat([cls, ragged, sep], axis=1).to_tensor(
            0, shape=[None, sequence_length]
        )
        masked, labels, weights = mask_tokens(
            token_ids,
            tf.stack([tf.constant(seed, tf.int64), index]),
            mask_id=ids["mask"],
            special_ids=ids["all"],
            vocabulary_size=tokenizer.vocabulary_size,
            rate=rate,
        )
        features = {"token_ids": masked, "segment_ids": tf.zeros_like(masked)}
        return features, labels, weights

    return windows.enumerate(start=start_step).map(
        lambda index, batch: to_example(index, *batch),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


# The fields of a masked-LM data config, see `build_masked_lm_datasets`.
MASKED_LM_DATA_FIELDS = ("source", "sequence_length", "mask_rate", "shuffle_buffer", "seed",
                         "source_options")

def build_masked_lm_datasets(data_config, tokenizer, batch_size, start_step=0):
    """(train, validation) masked-LM datasets of a data config (fields as `build_lm_datasets`,
    plus `mask_rate`, default 0.15; `packing` does not apply: one text a row)."""
    lm_pipeline.check_data_fields(data_config, MASKED_LM_DATA_FIELDS)
    get = data_config.get
    options = get("source_options", None) or {}
    if hasattr(options, "to_dict"):
        options = options.to_dict()
    source = get("source", "builtin:pydoc")
    common = dict(rate=get("mask_rate", 0.15), seed=get("seed", 0))
    train = masked_lm_dataset(
        sources.text_dataset(source, "train", **options), tokenizer, get("sequence_length"),
        batch_size, training=True, shuffle_buffer=get("shuffle_buffer", 10_000),
        start_step=start_step, **common,
    )
    validation = masked_lm_dataset(
        sources.text_dataset(source, "validation", **options), tokenizer,
        get("sequence_length"), batch_size, training=False, **common,
    )
    return train, validation
