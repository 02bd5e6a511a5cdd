"""Attention-mask helpers: plain functions over `keras.ops`.

Shape letters: B batch, T query (target) length, S key (source) length.
A mask is boolean, `True` where attention is allowed.
"""

from keras import ops


def causal_mask(query_length, key_length, start_index=0):
    """Lower-triangular mask for causal attention, offset for cached decoding.

    Query `i` sits at absolute position `start_index + i` and may attend to keys
    `j <= start_index + i`. With `start_index=0` and `T == S` this is the usual
    lower-triangular matrix; during cached decoding `S` is the cache length and
    `start_index` the position of the first new token.

    Args:
        query_length: int or scalar tensor, T.
        key_length: int or scalar tensor, S.
        start_index: int or scalar tensor, absolute position of query 0.

    Returns:
        Boolean tensor [T, S].
    """
    query_positions = ops.arange(query_length, dtype="int32") + ops.cast(start_index, "int32")
    key_positions = ops.arange(key_length, dtype="int32")
    return ops.greater_equal(query_positions[:, None], key_positions[None, :])


def segment_mask(query_segment_ids, key_segment_ids=None):
    """Mask that keeps attention inside a document of a packed sequence.

    Args:
        query_segment_ids: int [B, T]; 0 marks padding.
        key_segment_ids: int [B, S]; defaults to `query_segment_ids`.

    Returns:
        Boolean [B, T, S]: True where both tokens are in the same (non-padding) segment.
    """
    if key_segment_ids is None:
        key_segment_ids = query_segment_ids
    same = ops.equal(query_segment_ids[:, :, None], key_segment_ids[:, None, :])
    return ops.logical_and(same, ops.not_equal(key_segment_ids, 0)[:, None, :])


def positions_from_segment_ids(segment_ids):
    """Position of each token inside its own segment (restarting at 0 per document).

    Segments are contiguous runs of equal ids, so a token's position is the number of
    earlier tokens of its segment. O(T^2) booleans, which is cheap next to attention.

    Args:
        segment_ids: int [B, T]; 0 = padding.

    Returns:
        int32 [B, T].
    """
    segment_ids = ops.cast(segment_ids, "int32")
    length = ops.shape(segment_ids)[1]
    same = ops.equal(segment_ids[:, :, None], segment_ids[:, None, :])  # (B, T, T)
    earlier = ops.less(
        ops.arange(length, dtype="int32")[None, :], ops.arange(length, dtype="int32")[:, None]
    )  # (T, T): key j before query t
    return ops.sum(ops.cast(ops.logical_and(same, earlier[None]), "int32"), axis=-1)


def merge_masks(*masks):
    """Logical AND of boolean masks that broadcast to one shape; None entries are skipped."""
    merged = None
    for mask in masks:
        if mask is None:
            continue
        mask = ops.cast(mask, "bool")
        merged = mask if merged is None else ops.logical_and(merged, mask)
    return merged
