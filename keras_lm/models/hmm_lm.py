"""Hidden Markov model language model: exact likelihood, next-token logits, Viterbi, sampling."""

import weakref

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_lm.models import hmm_inference
from keras_lm.models.generative_lm import GenerativeLM
from keras_lm.models.generative_lm import unpack_lm_inputs

_COMPILED = weakref.WeakKeyDictionary()  # model -> {name: tf.function}
# Probabilities written by `set_probabilities` are floored here so that every logit stays
# finite (a 0 would be -inf and poison gradients); 1e-30 moves no likelihood measurably.
_MIN_PROBABILITY = 1e-30


@keras.saving.register_keras_serializable(package="keras_lm")
class HMMLanguageModel(GenerativeLM, keras.Model):
    """A hidden Markov model over a keras_lm tokenizer's vocabulary, used as a language model.

        z_0 ~ pi,   z_t | z_{t-1} ~ A[z_{t-1}, :],   x_t | z_t ~ E[z_t, :]
        pi = softmax(initial_logits), A = softmax(transition_logits, rows),
        E = softmax(emission_logits, rows)

    The parameters are logits, so any value of the variables is a normalised HMM and
    gradient training needs no constraints. All inference is the forward algorithm in log
    space with a normalised state at every step (see `hmm_inference`), so sequences of any
    length neither underflow nor lose precision.

    Shape letters: B batch, T tokens, K `num_states`, V `vocabulary_size`.

    Inputs: int token ids [B, T], or a dict with `token_ids` [B, T] and optionally
    `segment_ids` [B, T] (document packing): where the segment id changes, the state is
    reset to pi, so each document gets the logits it would get alone.

    Output of `call`: float32 next-token log-probabilities [B, T, V]:
    `logits[:, t, v] = log P(x_{t+1} = v | x_{<=t})`, already normalised (logsumexp over V is
    0), so the model trains with the same masked sparse cross-entropy and LM pipeline as the
    Transformer (labels = next tokens). The first token x_0 is conditioned on, never scored,
    there: the keras_lm pipeline opens each stream with the EOS separator, so x_0 is usually
    EOS, and pi only matters through it. `log_likelihood` scores x_0 as well (log pi E).

    Decoding cache (`init_cache`, `call_with_cache`): a 1-tuple holding the log predictive
    state [B, K], log P(z_next | tokens so far), normalised; it does not grow with T, so
    `cache_is_positional = False` and `keras_lm.generation.generate` feeds prompts token by
    token.

    Dtype: the recursions always run in float32 (float64 when the policy's variables are
    float64, e.g. `dtype="float64"`); a mixed-precision policy is replaced by float32,
    because the forward recursion needs the range and the model is small.

    Args:
        num_states: int K >= 1, hidden states.
        vocabulary_size: int V >= 1; must equal the tokenizer's `vocabulary_size`.
        sequence_length: int, the longest prompt plus continuation `generate` accepts (the
            HMM itself has no context limit; the state has a fixed size).
        logits_initializer: initializer of the three logit tables; default
            `RandomNormal(stddev=1.0)`, which breaks the symmetry between states (a symmetric
            start is a fixed point of Baum-Welch).
        **kwargs: `keras.Model` arguments (name, dtype).

    Example:
    >>> model = HMMLanguageModel(num_states=4, vocabulary_size=10, sequence_length=32)
    >>> logits = model(np.array([[1, 2, 3]]))  # (1, 3, 10)
    >>> np.allclose(np.exp(np.asarray(logits)).sum(-1), 1.0, atol=1e-5)
    True

    References:
        Rabiner, "A Tutorial on Hidden Markov Models and Selected Applications in Speech
        Recognition", Proc. IEEE 77(2), 1989 (forward-backward, scaling, Viterbi,
        Baum-Welch: see `keras_lm.models.baum_welch`).
    """

    cache_is_positional = False

    def __init__(
        self,
        num_states,
        vocabulary_size,
        sequence_length=1024,
        logits_initializer=None,
        **kwargs,
    ):
        for name, value in [
            ("num_states", num_states),
            ("vocabulary_size", vocabulary_size),
            ("sequence_length", sequence_length),
        ]:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(
                    f"`{name}` must be an int >= 1. Received: {name}={value!r}"
                )
        policy = keras.dtype_policies.get(kwargs.pop("dtype", None) or keras.config.dtype_policy())
        kwargs["dtype"] = "float64" if policy.variable_dtype == "float64" else "float32"
        super().__init__(**kwargs)
        self.num_states = int(num_states)
        self.vocabulary_size = int(vocabulary_size)
        self.sequence_length = int(sequence_length)
        self.logits_initializer = keras.initializers.get(
            logits_initializer or keras.initializers.RandomNormal(stddev=1.0)
        )

    def build(self, input_shape=None):
        k, v = self.num_states, self.vocabulary_size
        # One draw for all three tables: a seeded Keras initializer repeats its values on
        # every call, and pi = A[0] = E[0, :K] would correlate the states from the start.
        flat = self.logits_initializer((k + k * k + k * v,), dtype=self.variable_dtype)
        self.initial_logits = self._add_logits("initial_logits", flat[:k], (k,))
        self.transition_logits = self._add_logits(
            "transition_logits", flat[k:k + k * k], (k, k))
        self.emission_logits = self._add_logits("emission_logits", flat[k + k * k:], (k, v))
        self.built = True

    def _add_logits(self, name, values, shape):
        values = ops.reshape(values, shape)
        return self.add_weight(shape=shape, initializer=lambda *_, **__: values, name=name)

    # ------------------------------------------------------------------------- parameters
    def log_parameters(self):
        """(log pi [K], log A [K, K], log E [K, V]): normalised logs in the compute dtype."""
        self._ensure_built()
        dtype = self.variable_dtype  # float32 or float64, see the class docstring
        return (
            ops.log_softmax(ops.cast(self.initial_logits, dtype)),
            ops.log_softmax(ops.cast(self.transition_logits, dtype), axis=-1),
            ops.log_softmax(ops.cast(self.emission_logits, dtype), axis=-1),
        )

    def probabilities(self):
        """(pi [K], A [K, K], E [K, V]) as float64 numpy arrays whose rows sum to 1."""
        tables = (np.exp(np.asarray(p, np.float64)) for p in self.log_parameters())
        return tuple(t / t.sum(-1, keepdims=True) for t in tables)  # renormalised in float64

    def set_probabilities(self, initial=None, transition=None, emission=None):
        """Writes probabilities into the logit variables (None leaves a table as it is).

        Args:
            initial: [K], non-negative, summing to 1.
            transition: [K, K], rows summing to 1.
            emission: [K, V], rows summing to 1.

        Probabilities below 1e-30 are stored as 1e-30 so every logit stays finite.
        """
        self._ensure_built()
        k, v = self.num_states, self.vocabulary_size
        for name, value, shape, variable in [
            ("initial", initial, (k,), self.initial_logits),
            ("transition", transition, (k, k), self.transition_logits),
            ("emission", emission, (k, v), self.emission_logits),
        ]:
            if value is None:
                continue
            value = np.asarray(value, np.float64)
            if value.shape != shape:
                raise ValueError(
                    f"`{name}` must have shape {shape} for num_states={k}, "
                    f"vocabulary_size={v}. Received: shape {value.shape}"
                )
            sums = value.sum(-1)
            if not np.all(np.isfinite(value)) or value.min() < 0 or np.abs(sums - 1).max() > 1e-6:
                raise ValueError(
                    f"`{name}` must hold non-negative probabilities whose rows sum to 1. "
                    f"Received: min {value.min()!r}, row sums in [{sums.min()!r}, {sums.max()!r}]"
                )
            variable.assign(np.log(np.maximum(value, _MIN_PROBABILITY)).astype(variable.dtype))

    # ---------------------------------------------------------------------------- training
    def call(self, inputs, training=None):
        token_ids, segment_ids = unpack_lm_inputs(inputs)
        self._check_token_ids(token_ids)
        token_ids = ops.cast(token_ids, "int32")
        log_initial, log_transition, log_emission = self.log_parameters()
        emissions = hmm_inference.emission_log_probs(log_emission, token_ids)  # (B, T, K)
        resets = None if segment_ids is None else segment_starts(segment_ids)
        log_next, _, _ = hmm_inference.forward(log_initial, log_transition, emissions,
                                               resets=resets)
        return self._next_token_logits(log_next, log_emission)

    def _next_token_logits(self, log_next, log_emission):
        """log P(x_{t+1}) = log (p_{t+1} E): [B, T, K] -> float32 [B, T, V]."""
        return ops.cast(hmm_inference.log_matmul_exp(log_next, log_emission), "float32")

    def log_likelihood(self, token_ids, mask=None):
        """Exact log P(x) of each sequence in nats, x_0 included (forward algorithm).

        Args:
            token_ids: int [B, T], ids in [0, V).
            mask: bool [B, T] or None; True on real tokens, which come first in each row
                (right padding); padding adds nothing.

        Returns:
            float [B] (the compute dtype).
        """
        token_ids, mask = self._check_batch(token_ids, mask)
        if token_ids.shape[1] == 0:  # empty sequences: P = 1 (a scan cannot run 0 steps)
            return tf.zeros([token_ids.shape[0]], self.compute_dtype)
        return self._compiled("log_likelihood", _log_likelihood)(token_ids, mask)

    def viterbi(self, token_ids, mask=None):
        """The most likely hidden state path of each sequence.

        Args:
            token_ids: int [B, T], ids in [0, V).
            mask: bool [B, T] or None; real tokens first in each row (right padding).

        Returns:
            (paths int32 [B, T], -1 on padding; log_probs [B], log P(x, best path)).
        """
        token_ids, mask = self._check_batch(token_ids, mask)
        if token_ids.shape[1] == 0:  # empty sequences: no states, P = 1
            return (tf.zeros(token_ids.shape, tf.int32),
                    tf.zeros([token_ids.shape[0]], self.compute_dtype))
        return self._compiled("viterbi", _viterbi)(token_ids, mask)

    def sample(self, num_sequences, length, seed=None):
        """Draws sequences (and their hidden states) from the HMM, in numpy.

        Args:
            num_sequences: int N >= 1.
            length: int L >= 1, tokens a sequence.
            seed: int or None; the same seed gives the same samples.

        Returns:
            (token_ids int32 [N, L], states int32 [N, L]).
        """
        for name, value in [("num_sequences", num_sequences), ("length", length)]:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1. Received: {name}={value!r}")
        rng = np.random.default_rng(seed)
        initial, transition, emission = self.probabilities()
        states = np.empty((num_sequences, length), np.int32)
        tokens = np.empty((num_sequences, length), np.int32)
        state = _draw(rng, np.broadcast_to(initial, (num_sequences, self.num_states)))
        for t in range(length):
            if t:
                state = _draw(rng, transition[state])
            states[:, t] = state
            tokens[:, t] = _draw(rng, emission[state])
        return tokens, states

    # ---------------------------------------------------------------------------- decoding
    def init_cache(self, batch_size, cache_length=None):
        """The state before any token: a 1-tuple with log pi broadcast to [B, K].

        `cache_length` is accepted for the decoding interface and ignored: the state has a
        fixed size.
        """
        log_initial, _, _ = self.log_parameters()
        return (ops.broadcast_to(log_initial[None, :], (batch_size, self.num_states)),)

    def call_with_cache(self, token_ids, cache, cache_update_index=None):
        """Consumes T tokens from the state in `cache`.

        Args:
            token_ids: int [B, T].
            cache: 1-tuple, log predictive state [B, K] (from `init_cache` or a previous call).
            cache_update_index: ignored (the state is not positional).

        Returns:
            (float32 logits [B, T, V] for the token after each, new cache).
        """
        log_initial, log_transition, log_emission = self.log_parameters()
        emissions = hmm_inference.emission_log_probs(
            log_emission, ops.cast(token_ids, "int32"))  # (B, T, K)
        log_next, _, final = hmm_inference.forward(
            log_initial, log_transition, emissions, initial_state=cache[0])
        return self._next_token_logits(log_next, log_emission), (final,)


    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_states": self.num_states,
                "vocabulary_size": self.vocabulary_size,
                "sequence_length": self.sequence_length,
                "logits_initializer": keras.initializers.serialize(self.logits_initializer),
            }
        )
        return config

    # ----------------------------------------------------------------------------- helpers
    def _ensure_built(self):
        if not self.built:
            self.build()

    def _compiled(self, name, fn):
        fns = _COMPILED.setdefault(self, {})
        if name not in fns:
            model = weakref.ref(self)  # the cache must not keep the model alive
            fns[name] = tf.function(lambda *args: fn(model(), *args), input_signature=[
                tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.bool)])
        return fns[name]

    def _check_token_ids(self, token_ids):
        """Eager inputs only (a graph cannot raise a Python error): ids must lie in [0, V)."""
        if isinstance(token_ids, (np.ndarray, list, tuple)) or (
            tf.is_tensor(token_ids) and hasattr(token_ids, "numpy") and tf.executing_eagerly()
        ):
            check_token_ids(np.asarray(token_ids), self.vocabulary_size)

    def _check_batch(self, token_ids, mask):
        self._ensure_built()
        token_ids = np.asarray(token_ids)
        if token_ids.ndim != 2:
            raise ValueError(
                f"`token_ids` must be a 2-D int array [B, T]. Received: shape {token_ids.shape}"
            )
        check_token_ids(token_ids, self.vocabulary_size)
        mask = np.ones(token_ids.shape, bool) if mask is None else np.asarray(mask, bool)
        check_mask(mask, token_ids.shape)
        return token_ids.astype(np.int32), mask


def check_token_ids(token_ids, vocabulary_size, name="token_ids"):
    """Raises a ValueError naming `name` if an integer id lies outside [0, vocabulary_size)."""
    token_ids = np.asarray(token_ids)
    if token_ids.size and not np.issubdtype(token_ids.dtype, np.integer):
        raise ValueError(f"`{name}` must hold integer token ids. Received dtype {token_ids.dtype}")
    if token_ids.size and (token_ids.min() < 0 or token_ids.max() >= vocabulary_size):
        bad = token_ids[(token_ids < 0) | (token_ids >= vocabulary_size)]
        raise ValueError(
            f"`{name}` holds ids outside the model's vocabulary [0, {vocabulary_size}): "
            f"{sorted(set(bad.tolist()))[:5]}. The tokenizer and the model must agree: build "
            f"the model with vocabulary_size=tokenizer.vocabulary_size."
        )


def check_mask(mask, shape):
    """Raises a ValueError unless `mask` is bool `shape` with real tokens first in each row."""
    if mask.shape != tuple(shape):
        raise ValueError(
            f"`mask` must have the shape of `token_ids` {tuple(shape)}. Received: {mask.shape}"
        )
    if mask.shape[1] > 1 and np.any(mask[:, 1:] & ~mask[:, :-1]):
        raise ValueError(
            "`mask` must be right padding: True on the real tokens, which come first in each "
            "row, then False. Received a row with a real token after padding."
        )


def segment_starts(segment_ids):
    """True where a token's segment differs from the previous token's: [B, T] -> bool [B, T]."""
    segment_ids = ops.convert_to_tensor(segment_ids)
    changed = ops.not_equal(segment_ids[:, 1:], segment_ids[:, :-1])  # (B, T - 1)
    return ops.pad(changed, ((0, 0), (1, 0)), constant_values=False)


def _log_likelihood(model, token_ids, mask):
    return hmm_inference.log_likelihood(*model.log_parameters(), token_ids, mask)


def _viterbi(model, token_ids, mask):
    log_initial, log_transition, log_emission = model.log_parameters()
    emissions = hmm_inference.emission_log_probs(log_emission, token_ids)
    return hmm_inference.viterbi(log_initial, log_transition, emissions, mask)


def _draw(rng, probabilities):
    """One index per row of `probabilities` [N, C] (rows summing to 1): inverse CDF."""
    cumulative = np.cumsum(probabilities, axis=1)  # (N, C)
    u = rng.random((probabilities.shape[0], 1)) * cumulative[:, -1:]
    return np.minimum((cumulative <= u).sum(axis=1), probabilities.shape[1] - 1).astype(np.int32)
