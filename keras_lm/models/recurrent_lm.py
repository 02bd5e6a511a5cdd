"""Recurrent (Elman RNN, GRU, LSTM) language model."""

import keras
from keras import ops

from keras_lm.layers import ReversibleEmbedding
from keras_lm.models.generative_lm import GenerativeLM
from keras_lm.models.generative_lm import unpack_lm_inputs

CELLS = ("lstm", "gru", "rnn")

_LAYER_CLASSES = {
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
    "rnn": keras.layers.SimpleRNN,
}
# Tensors of state per layer: LSTM carries (h, c), GRU and the Elman RNN carry h.
_STATES_PER_LAYER = {"lstm": 2, "gru": 1, "rnn": 1}


@keras.saving.register_keras_serializable(package="keras_lm")
class RecurrentLM(GenerativeLM, keras.Model):
    """A classic recurrent language model: embeddings, L recurrent layers, tied logits.

        x_0 = Dropout(E[token])                                   (B, T, E)
        x_l, state_l = RNN_l(x_{l-1}, state_l),  then Dropout     (B, T, H),  l = 1..L
        logits = (x_L W_p) E^T        tied; W_p [H, E] only when H != E
        logits = (x_L W_p) W_out      untied, W_out [E, V]

    Dropout sits on the non-recurrent connections only (Zaremba et al., 2014), so the
    recurrent layers keep their fused kernels. `RNN_l` is `keras.layers.SimpleRNN`
    (tanh Elman network), `GRU` (Keras default `reset_after=True`, the cuDNN variant) or
    `LSTM` (Keras default `unit_forget_bias=True`), with Keras's default initializers.

    Shape letters: B batch, T tokens, V vocabulary, E `embedding_dim`, H `hidden_dim`,
    L `num_layers`.

    Inputs: int token ids [B, T], or a dict with `token_ids` [B, T] and optionally
    `segment_ids` [B, T] (document-packed windows, see `keras_lm.data.lm_dataset`). With
    `segment_ids`, the state is reset to zeros wherever the segment id changes, so each
    document gets exactly the logits it would get alone (padding, segment 0, starts from
    zeros too). Without them, the state runs across the whole window, as in the classic
    continuous-stream training of Zaremba et al.

    Paths: without `segment_ids`, outside XLA, each layer is the Keras RNN layer itself
    (cuDNN on a GPU). With `segment_ids`, and whenever traced for XLA (`jit_compile`, the
    decoding loop; cuDNN kernels do not compile there), the same layer's cell is stepped
    with `keras.ops.scan`: the very computation of Keras's generic RNN loop.

    Cache layout for decoding (`call_with_cache`): the recurrent state, a tuple of
    2 L tensors (h_1, c_1, ..., h_L, c_L) for "lstm" or L tensors (h_1, ..., h_L) for
    "gru" and "rnn", each [B, H]. It is not indexed by position
    (`cache_is_positional = False`): the decoding loop feeds prompts token by token.

    Parameters (what `count_params()` returns), with I_1 = E and I_l = H for l > 1:

        P = V E                              token embedding (also the output when tied)
          + E V         if not tie_embeddings    output kernel W_out
          + H E         if H != E                projection W_p (no bias)
          + sum_{l=1..L} g (I_l H + H H + b H)   recurrent layers
        (g, b) = (1, 1) for "rnn", (4, 1) for "lstm", (3, 2) for "gru" (reset_after keeps
        separate input and recurrent biases).

    E.g. "lstm", V=65, E=H=256, L=2, tied: 65*256 + 4(256*256 + 256*256 + 256)
    + 4(256*256 + 256*256 + 256) = 1,067,264.

    Args:
        vocabulary_size: int, V; must equal the tokenizer's `vocabulary_size`.
        cell: "lstm", "gru" or "rnn" (Elman, tanh).
        num_layers: int, L.
        hidden_dim: int, H, the state size of every layer.
        embedding_dim: int or None, E (None: = H).
        dropout: float in [0, 1), on the embeddings and every layer's output.
        tie_embeddings: bool, output projection = transposed token embedding.
        sequence_length: int, the longest sequence `generate` may produce (prompt + new
            tokens). A recurrent model has no context limit; the decoding loop needs a bound.
        **kwargs: `keras.Model` arguments (name, dtype).

    Returns (call):
        float32 logits [B, T, V] (float32 under mixed precision too).

    Example:
    >>> model = RecurrentLM(vocabulary_size=100, cell="gru", num_layers=2, hidden_dim=32)
    >>> model(keras.ops.ones((2, 8), "int32")).shape
    TensorShape([2, 8, 100])

    References:
        Mikolov et al., 2010 (RNN LM); Hochreiter & Schmidhuber, 1997 (LSTM);
        Cho et al., 2014, https://arxiv.org/abs/1406.1078 (GRU);
        Zaremba et al., 2014, https://arxiv.org/abs/1409.2329 (dropout for LSTM LMs);
        Press & Wolf, 2017, https://arxiv.org/abs/1608.05859 (tied embeddings).
    """

    cache_is_positional = False

    def __init__(
        self,
        vocabulary_size,
        cell="lstm",
        num_layers=1,
        hidden_dim=256,
        embedding_dim=None,
        dropout=0.0,
        tie_embeddings=True,
        sequence_length=1024,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if cell not in CELLS:
            raise ValueError(f"`cell` must be one of {CELLS}. Received: cell={cell!r}")
        for name, value in [
            ("vocabulary_size", vocabulary_size),
            ("num_layers", num_layers),
            ("hidden_dim", hidden_dim),
            ("embedding_dim", hidden_dim if embedding_dim is None else embedding_dim),
            ("sequence_length", sequence_length),
        ]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        self.vocabulary_size = vocabulary_size
        self.cell = cell
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.embedding_dim = hidden_dim if embedding_dim is None else embedding_dim
        self.dropout = dropout
        self.tie_embeddings = tie_embeddings
        self.sequence_length = sequence_length
        self.states_per_layer = _STATES_PER_LAYER[cell]

        policy = self.dtype_policy
        self.embeddings = ReversibleEmbedding(
            vocabulary_size,
            self.embedding_dim,
            tie_weights=tie_embeddings,
            # Uniform(-0.1, 0.1), the initialisation of Zaremba et al. (2014).
            embeddings_initializer=keras.initializers.RandomUniform(-0.1, 0.1),
            dtype=policy,
            name="embeddings",
        )
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=policy, name="dropout")
        self.recurrent_layers = [
            _LAYER_CLASSES[cell](
                hidden_dim,
                return_sequences=True,
                return_state=True,
                dtype=policy,
                name=f"{cell}_{i}",
            )
            for i in range(num_layers)
        ]
        self.projection = None
        if self.hidden_dim != self.embedding_dim:
            self.projection = keras.layers.Dense(
                self.embedding_dim, use_bias=False, dtype=policy, name="projection"
            )

    def build(self, input_shape=None):
        # Sublayers may already be built when decoding ran before the first full call.
        if not self.embeddings.built:
            self.embeddings.build()
        input_dim = self.embedding_dim
        for layer in self.recurrent_layers:
            if not layer.built:
                layer.build((None, None, input_dim))
            input_dim = self.hidden_dim
        if self.projection is not None and not self.projection.built:
            self.projection.build((None, None, self.hidden_dim))
        self.built = True

    # ----------------------------------------------------------------------------- training
    def call(self, inputs, training=None):
        token_ids, segment_ids = unpack_lm_inputs(inputs)
        token_ids = _check_token_ids(token_ids)
        keep = None if segment_ids is None else segment_keep_mask(segment_ids)  # (B, T)
        x = self.embeddings(token_ids)  # (B, T, E)
        x = self.dropout_layer(x, training=training)
        for layer in self.recurrent_layers:
            x, _ = self._run_layer(layer, x, None, keep, training)  # (B, T, H)
            x = self.dropout_layer(x, training=training)
        return self.logits(x)

    def logits(self, hidden):
        """Projection (if H != E) and output layer: [B, T, H] -> float32 logits [B, T, V]."""
        if self.projection is not None:
            hidden = self.projection(hidden)  # (B, T, E)
        return self.embeddings(hidden, reverse=True)

    def _run_layer(self, layer, inputs, states, keep, training):
        """One recurrent layer over [B, T, I] from `states` (None: zeros) -> ([B, T, H], states)."""
        if inputs.shape[1] == 0:  # No step to run (Keras's RNN layers fail on T = 0).
            batch_size = ops.shape(inputs)[0]
            if states is None:
                states = [
                    ops.zeros((batch_size, self.hidden_dim), layer.compute_dtype)
                    for _ in range(self.states_per_layer)
                ]
            return ops.zeros((batch_size, 0, self.hidden_dim), layer.compute_dtype), list(states)
        if keep is None and not _in_xla_context():
            outputs = layer(inputs, initial_state=states, training=training)
            return outputs[0], list(outputs[1:])
        if states is None:
            batch_size = ops.shape(inputs)[0]
            states = [
                ops.zeros((batch_size, self.hidden_dim), layer.compute_dtype)
                for _ in range(self.states_per_layer)
            ]
        return scan_cell(layer.cell, inputs, states, keep=keep, training=training)

    # ----------------------------------------------------------------------------- decoding
    def init_cache(self, batch_size, cache_length=None):
        """Zero state for `call_with_cache`: 2 L ("lstm") or L tensors [B, H].

        `cache_length` is unused (a recurrent state does not grow); it is accepted so that
        the decoding loop can treat every model alike.
        """
        shape = (batch_size, self.hidden_dim)
        return tuple(
            ops.zeros(shape, dtype=self.compute_dtype)
            for _ in range(self.num_layers * self.states_per_layer)
        )

    def call_with_cache(self, token_ids, cache, cache_update_index=None):
        """Runs T new tokens from the given recurrent state.

        Args:
            token_ids: int [B, T], the new tokens.
            cache: tuple of [B, H] tensors from `init_cache` or a previous call (layout in
                the class docstring).
            cache_update_index: unused (the state already holds the past); accepted for the
                decoding loop's common interface.

        Returns:
            (logits [B, T, V] float32, the state after the last token).
        """
        expected = self.num_layers * self.states_per_layer
        if len(cache) != expected:
            raise ValueError(
                f"`cache` must hold {expected} tensors of shape [B, {self.hidden_dim}] "
                f"(from `init_cache`) for cell={self.cell!r}, num_layers={self.num_layers}. "
                f"Received: {len(cache)} tensors."
            )
        x = self.embeddings(_check_token_ids(token_ids))  # (B, T, E)
        new_cache = []
        for i, layer in enumerate(self.recurrent_layers):
            k = self.states_per_layer
            states = [ops.convert_to_tensor(s) for s in cache[i * k:(i + 1) * k]]
            x, states = self._run_layer(layer, x, states, None, False)  # (B, T, H)
            new_cache.extend(states)
        return self.logits(x), tuple(new_cache)


    def count_params_without_embeddings(self):
        """Parameters outside the input token embedding table (V E)."""
        return self.count_params() - self.vocabulary_size * self.embedding_dim

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "cell": self.cell,
                "num_layers": self.num_layers,
                "hidden_dim": self.hidden_dim,
                "embedding_dim": self.embedding_dim,
                "dropout": self.dropout,
                "tie_embeddings": self.tie_embeddings,
                "sequence_length": self.sequence_length,
            }
        )
        return config


def _check_token_ids(token_ids):
    """Token ids as given if their dtype is an integer one, else a TypeError naming the fix.

    The embedding lookup would otherwise truncate float ids silently (1.7 -> token 1).
    Checked on concrete (eager) values only: under a MirroredStrategy, Keras 3.15's
    `fit` builds the model by tracing it on float32 placeholders that stand for the integer
    batch (`Trainer._symbolic_build`), and that must pass.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if not tf.executing_eagerly():
            return token_ids
    if not hasattr(token_ids, "dtype"):
        token_ids = ops.convert_to_tensor(token_ids)
    dtype = keras.backend.standardize_dtype(token_ids.dtype)
    if "int" not in dtype:
        raise TypeError(
            f"`token_ids` must be integer token ids; received dtype {dtype}. Tokenize the "
            "text with the model's tokenizer, or cast the ids: keras.ops.cast(ids, 'int32')."
        )
    return token_ids


def segment_keep_mask(segment_ids):
    """1.0 where a token continues the previous token's segment, 0.0 where a new one starts.

    Args:
        segment_ids: int [B, T].

    Returns:
        float32 [B, T]; column 0 is 1 (the initial state is already the start).
    """
    segment_ids = ops.cast(segment_ids, "int32")
    previous = ops.concatenate([segment_ids[:, :1], segment_ids[:, :-1]], axis=1)  # (B, T)
    return ops.cast(ops.equal(segment_ids, previous), "float32")


def scan_cell(cell, inputs, states, keep=None, training=False):
    """Steps a Keras RNN cell over time, optionally zeroing the state before some steps.

    Args:
        cell: a built `keras.layers.LSTMCell`, `GRUCell` or `SimpleRNNCell`.
        inputs: [B, T, I].
        states: list of [B, H] tensors, the state before the first step.
        keep: float [B, T] or None; the state is multiplied by keep[:, t] before step t.
        training: bool, passed to the cell.

    Returns:
        (outputs [B, T, H], final states: list of [B, H]).
    """
    xs = ops.transpose(inputs, (1, 0, 2))  # (T, B, I)
    if keep is not None:
        xs = (xs, ops.transpose(keep)[:, :, None])  # ((T, B, I), (T, B, 1))

    def step(states, step_inputs):
        if keep is not None:
            step_inputs, keep_t = step_inputs
            states = [s * ops.cast(keep_t, s.dtype) for s in states]
        _, new_states = cell(step_inputs, states, training=training)
        new_states = list(new_states)
        # Keras's TF scan wants the per-step outputs shaped like the carry: emit the states.
        return new_states, new_states

    if keras.backend.backend() == "tensorflow":
        # tf.scan bounds its while loop by T (maximum_iterations), which XLA needs to
        # differentiate through it; keras.ops.scan's loop is unbounded ("XLA compilation
        # requires a fixed tensor list size" under fit(jit_compile=True)).
        import tensorflow as tf

        sequence = tf.scan(lambda carry, x: step(carry, x)[1], xs, initializer=list(states))
        final = [s[-1] for s in sequence]
    else:
        final, sequence = ops.scan(step, list(states), xs)
    return ops.transpose(sequence[0], (1, 0, 2)), list(final)  # h: (T, B, H) -> (B, T, H)


def _in_xla_context():
    """True while TensorFlow traces for XLA (jit_compile), where cuDNN kernels cannot run."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util

    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
