"""Multi-head attention with grouped key/value heads, rotary positions and a KV cache."""

import keras
from keras import ops

from keras_lm.layers.fused import compiled_by_xla
from keras_lm.layers.initializers import clone_initializer
from keras_lm.layers.masks import causal_mask
from keras_lm.layers.masks import merge_masks
from keras_lm.layers.rotary_embedding import RotaryEmbedding

# Added to masked scores before the softmax. Finite, so a fully masked row gives a
# uniform distribution instead of NaN (the same convention as keras.layers.MultiHeadAttention).
_MASK_VALUE = -1e9


@keras.saving.register_keras_serializable(package="keras_lm")
class MultiHeadAttention(keras.layers.Layer):
    """Scaled dot-product attention over several heads (Vaswani et al., 2017).

    Shape letters: B batch, T query length, S key/value length, D model width,
    H query heads, K key/value heads (H % K == 0), G = H // K query heads per key/value
    head, Dk key dim, Dv value dim.

        softmax(Q K^T / sqrt(Dk) + mask) V, for each head, then one output projection.

    With `num_key_value_heads < num_heads` each key/value head is shared by G query
    heads: grouped-query attention (Ainslie et al., 2023), or multi-query attention
    (Shazeer, 2019) when it is 1. Scores and softmax are computed in float32 even under
    a mixed-precision policy.

    Causal self-attention over a long sequence (no cache, T == S > 64) is computed in a
    cheaper form of the same value (up to float rounding):

    - in query blocks of `causal_block_for(T)` positions: block [t0, t1) attends only to
      keys [0, t1), since the causal mask hides every later key. That skips most of the
      masked upper triangle of the score matrix;
    - with the softmax normalised after the product with V, exp(s - max) V / sum(exp(s -
      max)), which divides [T, Dv] numbers per head instead of [T, S] probabilities (the
      deferred normalisation of FlashAttention, Dao et al., 2022).

    Together they take about a third off attention's forward + backward time for the baby
    GPT (T = 256) under XLA:CPU (experiments/benchmarks.md). Without XLA (e.g.
    `mixed_bfloat16` on CPU, which runs through oneDNN) each block is a separate set of
    ops and the baby GPT trains 11% slower with blocks, so by default (`causal_blocks="auto"`)
    only calls compiled by XLA use them. Shorter sequences, cached decoding and
    cross-attention use the plain formula. Query rows with no visible key at
    all (left padding) still average the values of the keys they are given, but in a block
    only over [0, t1).

    Cache layout (self-attention decoding): one tensor [B, 2, K, S_max, Dk] holding the
    keys (index 0) and values (index 1) of every position written so far, heads before
    positions so that both attention matmuls read it without a transpose. A call with
    `cache` and `cache_update_index=i` projects the new T tokens, writes their keys and
    values at positions i .. i+T-1 and attends over the whole cache; positions not yet
    written must be masked (the causal mask does so). Keys are stored after the rotary
    rotation, so cached keys never need re-rotation.

    Args:
        num_heads: int, H.
        key_dim: int, Dk, size of each query/key head.
        num_key_value_heads: int or None, K; None means K = H (plain multi-head).
        value_dim: int or None, Dv; defaults to `key_dim`.
        output_dim: int or None; defaults to the query's last dimension.
        dropout: float, dropout rate on the attention probabilities.
        use_bias: bool, whether the projections have biases.
        rotary_max_wavelength: float or None; if set, rotary position embeddings
            (Su et al., 2021) with this base wavelength rotate queries and keys.
        kernel_initializer: initializer for the projection kernels.
        causal_blocks: "auto", True or False: whether causal self-attention over more than
            64 positions runs in query blocks (above). "auto" (default): when the call is
            compiled by XLA (`jit_compile=True`, where blocks are faster), not otherwise.
            The result is the same up to float rounding either way.
        **kwargs: base `keras.layers.Layer` arguments (name, dtype, ...).

    Call arguments:
        query: [B, T, Dq].
        value: [B, S, Dv_in].
        key: [B, S, Dk_in]; defaults to `value`.
        attention_mask: bool [B, S] (padding mask over keys), [B, T, S] or [B, 1, S];
            True = attend.
        use_causal_mask: bool; mask future positions (offset by `cache_update_index`).
        training: bool, enables dropout.
        cache: [B, 2, K, S_max, Dk] or None.
        cache_update_index: int scalar, where the new keys/values go in the cache.
        positions: int [B, T] or [T]; absolute positions of the new tokens for the
            rotary embedding. Defaults to `cache_update_index + arange(T)`.

    Returns:
        [B, T, output_dim], or `(output, new_cache)` when `cache` is given.

    Example:
    >>> layer = MultiHeadAttention(num_heads=4, key_dim=8, num_key_value_heads=2)
    >>> x = keras.random.normal((2, 5, 32))
    >>> layer(x, x, use_causal_mask=True).shape
    TensorShape([2, 5, 32])

    References:
        Vaswani et al., 2017, https://arxiv.org/abs/1706.03762
        Ainslie et al., 2023, https://arxiv.org/abs/2305.13245
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        num_key_value_heads=None,
        value_dim=None,
        output_dim=None,
        dropout=0.0,
        use_bias=True,
        rotary_max_wavelength=None,
        kernel_initializer="glorot_uniform",
        causal_blocks="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        num_key_value_heads = num_heads if num_key_value_heads is None else num_key_value_heads
        if num_heads < 1 or num_key_value_heads < 1:
            raise ValueError(
                "`num_heads` and `num_key_value_heads` must be positive. "
                f"Received: num_heads={num_heads}, num_key_value_heads={num_key_value_heads}"
            )
        if num_heads % num_key_value_heads != 0:
            raise ValueError(
                "`num_heads` must be divisible by `num_key_value_heads` (each key/value head "
                "serves an equal group of query heads); choose e.g. num_key_value_heads="
                f"{_divisors(num_heads)}. Received: num_heads={num_heads}, "
                f"num_key_value_heads={num_key_value_heads}"
            )
        value_dim_ = key_dim if value_dim is None else value_dim
        if key_dim < 1 or value_dim_ < 1:
            raise ValueError(
                "`key_dim` and `value_dim` (the width of each head) must be positive. "
                f"Received: key_dim={key_dim}, value_dim={value_dim}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        if causal_blocks not in ("auto", True, False):
            raise ValueError(
                '`causal_blocks` must be "auto", True or False. '
                f"Received: causal_blocks={causal_blocks!r}"
            )
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.num_key_value_heads = num_key_value_heads
        self.value_dim = value_dim_
        self.output_dim = output_dim
        self.dropout = dropout
        self.use_bias = use_bias
        self.rotary_max_wavelength = rotary_max_wavelength
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.causal_blocks = causal_blocks
        self.supports_masking = False

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        _check_ranks(query_shape, value_shape, key_shape)
        output_dim = self.output_dim or query_shape[-1]

        h, k = self.num_heads, self.num_key_value_heads
        def projection(equation, output_shape, bias_axes, name):
            return keras.layers.EinsumDense(
                equation,
                output_shape,
                bias_axes=bias_axes if self.use_bias else None,
                kernel_initializer=clone_initializer(self.kernel_initializer),
                dtype=self.dtype_policy,
                name=name,
            )

        self.query_dense = projection("btd,dhe->bthe", (None, h, self.key_dim), "he", "query")
        self.key_dense = projection("bsd,dke->bske", (None, k, self.key_dim), "ke", "key")
        self.value_dense = projection("bsd,dke->bske", (None, k, self.value_dim), "ke", "value")
        self.output_dense = projection(
            "bthe,hed->btd", (None, output_dim), "d", "attention_output"
        )
        self.query_dense.build(query_shape)
        self.key_dense.build(key_shape)
        self.value_dense.build(value_shape)
        self.output_dense.build((query_shape[0], query_shape[1], h, self.value_dim))
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.rotary = None
        if self.rotary_max_wavelength is not None:
            self.rotary = RotaryEmbedding(
                max_wavelength=self.rotary_max_wavelength, dtype=self.dtype_policy, name="rotary"
            )
        self.built = True

    def call(
        self,
        query,
        value,
        key=None,
        attention_mask=None,
        use_causal_mask=False,
        training=None,
        cache=None,
        cache_update_index=None,
        positions=None,
    ):
        if cache is not None and cache_update_index is None:
            raise ValueError(
                "`cache` was passed without `cache_update_index`: pass the position at which "
                "the new keys/values are written (e.g. 0 for the prompt, then the number of "
                f"tokens already cached). Received: cache shape={tuple(cache.shape)}, "
                "cache_update_index=None"
            )
        if cache is None and cache_update_index is not None:
            raise ValueError(
                "`cache_update_index` was passed without `cache`. "
                f"Received: cache=None, cache_update_index={cache_update_index}"
            )
        key = value if key is None else key
        _check_ranks(query.shape, value.shape, key.shape)
        start_index = 0 if cache_update_index is None else cache_update_index

        if key is value and value is query:  # self-attention: one matmul for Q, K and V
            query, new_key, new_value = self._project_self(query)
        else:
            query = self.query_dense(query)  # (B, T, H, Dk)
            new_key = self.key_dense(key)  # (B, S_new, K, Dk)
            new_value = self.value_dense(value)  # (B, S_new, K, Dv)
        if self.rotary is not None:
            query = self.rotary(query, start_index=start_index, positions=positions)
            new_key = self.rotary(new_key, start_index=start_index, positions=positions)

        if cache is not None:
            if self.value_dim != self.key_dim:
                raise ValueError(
                    "A key/value cache needs `value_dim == key_dim` (keys and values share "
                    f"one tensor). Received: key_dim={self.key_dim}, value_dim={self.value_dim}"
                )
            # One in-place dynamic update of the whole cache: slicing out keys and values,
            # updating each and stacking them again would copy the cache every step.
            update = ops.stack([new_key, new_value], axis=1)  # (B, 2, T, K, Dk)
            update = ops.transpose(update, (0, 1, 3, 2, 4))  # (B, 2, K, T, Dk)
            start = [0, 0, 0, ops.cast(cache_update_index, "int32"), 0]
            cache = ops.slice_update(cache, start, ops.cast(update, cache.dtype))
            all_keys, all_values = cache[:, 0], cache[:, 1]  # (B, K, S_max, Dk)
            key_length = cache.shape[3] if cache.shape[3] is not None else ops.shape(cache)[3]
        else:
            all_keys, all_values = new_key, new_value  # (B, S, K, Dk)
            key_length = key.shape[1] if key.shape[1] is not None else ops.shape(key)[1]

        mask = self._compute_mask(
            query, key_length, attention_mask, use_causal_mask, start_index
        )
        block = None
        use_blocks = (
            compiled_by_xla() if self.causal_blocks == "auto" else self.causal_blocks
        )
        if use_blocks and use_causal_mask and cache is None and cache_update_index is None:
            # Static and equal lengths only: the block boundaries are Python ints.
            if isinstance(key_length, int) and query.shape[1] == key_length:
                block = causal_block_for(query.shape[1])
        if block is not None and block < query.shape[1]:
            output = self._attend_causal_blocks(
                query, all_keys, all_values, mask, training, block
            )
        else:
            output = self._attend(
                query, all_keys, all_values, mask, training, heads_first=cache is not None
            )
        output = self.output_dense(output)  # (B, T, output_dim)
        if cache is not None:
            return output, cache
        return output

    def _project_self(self, x):
        """Q, K and V of self-attention as one matmul with the kernels side by side.

        The same weights as `query_dense`, `key_dense` and `value_dense` applied one by one,
        read as [D, H Dk | K Dk | K Dv]: one wide matmul instead of three narrow ones (and
        one gradient matmul for each operand in the backward pass), which XLA:CPU runs
        faster; when decoding, the concatenation of the loop-invariant kernels is hoisted
        out of the loop.

        Args:
            x: [B, T, D].

        Returns:
            query [B, T, H, Dk], key [B, T, K, Dk], value [B, T, K, Dv].
        """
        batch, length, width = ops.shape(x)[0], ops.shape(x)[1], x.shape[-1]
        dense = (self.query_dense, self.key_dense, self.value_dense)
        kernel = ops.concatenate(
            [ops.reshape(ops.cast(layer.kernel, x.dtype), (width, -1)) for layer in dense],
            axis=-1,
        )  # (D, (H + K) Dk + K Dv)
        y = ops.matmul(x, kernel)  # (B, T, (H + K) Dk + K Dv)
        if self.use_bias:
            y = y + ops.concatenate(
                [ops.reshape(ops.cast(layer.bias, x.dtype), (-1,)) for layer in dense]
            )
        h, k = self.num_heads, self.num_key_value_heads
        query, key, value = ops.split(y, [h * self.key_dim, (h + k) * self.key_dim], axis=-1)
        return (
            ops.reshape(query, (batch, length, h, self.key_dim)),  # (B, T, H, Dk)
            ops.reshape(key, (batch, length, k, self.key_dim)),  # (B, T, K, Dk)
            ops.reshape(value, (batch, length, k, self.value_dim)),  # (B, T, K, Dv)
        )

    def _compute_mask(self, query, key_length, attention_mask, use_causal_mask, start_index):
        """Combines padding / full masks with the causal mask into bool [B, T, S]."""
        query_length = ops.shape(query)[1]
        if attention_mask is not None:
            attention_mask = ops.cast(attention_mask, "bool")
            rank = len(attention_mask.shape)
            if rank not in (2, 3):
                raise ValueError(
                    "`attention_mask` must be a padding mask [batch, source] or a full mask "
                    f"[batch, target, source]. Received: attention_mask.shape="
                    f"{tuple(attention_mask.shape)}"
                )
            static_key_length = key_length if isinstance(key_length, int) else None
            static_query_length = query.shape[1]
            mask_source = attention_mask.shape[-1]
            if None not in (mask_source, static_key_length) and mask_source != static_key_length:
                raise ValueError(
                    "`attention_mask`'s last axis must match the key/value length "
                    f"{static_key_length} (the cache length when decoding with a cache). "
                    f"Received: attention_mask.shape={tuple(attention_mask.shape)}"
                )
            if rank == 3:
                mask_target = attention_mask.shape[1]
                if None not in (mask_target, static_query_length) and mask_target not in (
                    1,  # broadcasts over queries: an expanded padding mask
                    static_query_length,
                ):
                    raise ValueError(
                        "`attention_mask`'s second axis must match the query length "
                        f"{static_query_length}. Received: attention_mask.shape="
                        f"{tuple(attention_mask.shape)}"
                    )
            else:
                attention_mask = attention_mask[:, None, :]  # (B, 1, S)
        causal = None
        if use_causal_mask:
            causal = causal_mask(query_length, key_length, start_index)[None]  # (1, T, S)
        return merge_masks(attention_mask, causal)

    def _attend_causal_blocks(self, query, keys, values, mask, training, block):
        """Causal attention in query blocks, each over the keys up to its last query.

        Args:
            query: [B, T, H, Dk]; keys, values: [B, T, K, D] (self-attention, no cache).
            mask: bool [B or 1, T, T]: the causal mask, merged with any other.
            block: int, query positions per block (the last block may be shorter).

        Returns:
            [B, T, H, Dv], equal to `_attend` over the whole sequence.
        """
        length = query.shape[1]
        outputs = []
        for start in range(0, length, block):
            end = min(start + block, length)
            outputs.append(
                self._attend(
                    query[:, start:end],
                    keys[:, :end],
                    values[:, :end],
                    mask[:, start:end, :end],
                    training,
                    normalize_after_values=True,
                )
            )
        return ops.concatenate(outputs, axis=1)

    def _attend(
        self, query, keys, values, mask, training, heads_first=False, normalize_after_values=False
    ):
        """softmax(Q K^T / sqrt(Dk)) V with K key/value heads shared by G query heads.

        `keys` and `values` are [B, S, K, D], or [B, K, S, D] with `heads_first` (the cache).
        With `normalize_after_values` the softmax is normalised after the product with V:

            softmax(s) V = exp(s - m) V / sum_S exp(s - m),  m = max_S s,

        with `m` a constant for the gradient (the value does not depend on it). That pays
        off for long key sequences (S >> Dv); for short ones the plain softmax is as fast.
        """
        source = "bksd" if heads_first else "bskd"
        batch, query_length = ops.shape(query)[0], ops.shape(query)[1]
        groups = self.num_heads // self.num_key_value_heads
        query = ops.reshape(
            query, (batch, query_length, self.num_key_value_heads, groups, self.key_dim)
        )  # (B, T, K, G, Dk)
        query = query * ops.cast(1.0 / self.key_dim**0.5, query.dtype)
        scores = ops.einsum(f"btkgd,{source}->bkgts", query, ops.cast(keys, query.dtype))
        scores = ops.cast(scores, "float32")  # softmax in float32 under mixed precision
        if mask is not None:
            mask = mask[:, None, None, :, :]  # (B, 1, 1, T, S)
            scores = ops.where(mask, scores, ops.full_like(scores, _MASK_VALUE))
        if not normalize_after_values:
            probs = ops.softmax(scores, axis=-1)
            probs = self.dropout_layer(ops.cast(probs, self.compute_dtype), training=training)
            output = ops.einsum(f"bkgts,{source}->btkgd", probs, ops.cast(values, probs.dtype))
        else:
            scores_max = ops.stop_gradient(ops.max(scores, axis=-1, keepdims=True))
            weights = ops.exp(scores - scores_max)  # (B, K, G, T, S): unnormalised
            denominator = ops.sum(weights, axis=-1)  # (B, K, G, T), >= 1
            # Dropout of the probabilities, applied before the (linear) normalisation.
            weights = self.dropout_layer(ops.cast(weights, self.compute_dtype), training=training)
            output = ops.einsum(
                f"bkgts,{source}->btkgd", weights, ops.cast(values, weights.dtype)
            )
            denominator = ops.transpose(denominator, (0, 3, 1, 2))[..., None]  # (B, T, K, G, 1)
            output = output / ops.cast(denominator, output.dtype)
        return ops.reshape(
            output, (batch, query_length, self.num_heads, self.value_dim)
        )  # (B, T, H, Dv)

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None,
                             cache_shape=None):
        output_shape = tuple(query_shape[:-1]) + (self.output_dim or query_shape[-1],)
        if cache_shape is not None:
            return output_shape, tuple(cache_shape)  # call returns (output, new_cache)
        return output_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "num_key_value_heads": self.num_key_value_heads,
                "value_dim": self.value_dim,
                "output_dim": self.output_dim,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "rotary_max_wavelength": self.rotary_max_wavelength,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "causal_blocks": self.causal_blocks,
            }
        )
        return config


def causal_block_for(length):
    """Query positions per block of causal self-attention over `length` positions.

    A quarter of the sequence, at least 64: smaller blocks skip more of the masked upper
    triangle but each block is a separate pair of small matmuls, and below 64 positions
    their fixed cost wins (float32 under XLA:CPU, forward + backward, 2 cores:
    experiments/benchmarks.md). Sequences of up to 64 positions use one block.

    Args:
        length: int, T.

    Returns:
        int, the block size (>= `length` means no blocking).

    Example:
    >>> [causal_block_for(t) for t in (64, 128, 256, 1024)]
    [64, 64, 64, 256]
    """
    return max(64, -(-length // 4))


def _check_ranks(query_shape, value_shape, key_shape):
    for name, shape in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
        if len(shape) != 3:
            raise ValueError(
                f"`{name}` must have rank 3 [batch, sequence, features]. "
                f"Received: {name}.shape={tuple(shape)}"
            )


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]
