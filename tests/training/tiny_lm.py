"""A tiny token model and deterministic padded data for the training tests.

Not a test file: imported by the tests (relative import) and by the scripts the resume and
MirroredStrategy tests run in subprocesses (`tiny_lm`, with this folder on sys.path).
"""

import keras
import numpy as np
import tensorflow as tf

VOCAB_SIZE = 16
LENGTH = 8
BATCH_SIZE = 4


def build_model(vocab_size=VOCAB_SIZE, length=LENGTH, width=16):
    """Embedding -> Dense: (B, T) ids -> (B, T, V) logits; built (functional)."""
    return keras.Sequential(
        [
            keras.Input((length,), dtype="int32"),
            keras.layers.Embedding(vocab_size, width, name="token_embedding"),
            keras.layers.LayerNormalization(name="norm"),
            keras.layers.Dense(vocab_size, name="logits"),
        ]
    )


def make_arrays(num_sequences=64, seed=0):
    """Ids, targets (a fixed function of the ids, so learnable) and ragged padding weights.

    Every row has 2..LENGTH real tokens; padding positions carry label -1 (weight 0), which
    the loss must ignore.
    """
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB_SIZE, (num_sequences, LENGTH)).astype("int32")
    labels = (3 * ids + 1) % VOCAB_SIZE
    lengths = rng.integers(2, LENGTH + 1, num_sequences)
    weights = (np.arange(LENGTH)[None, :] < lengths[:, None]).astype("float32")
    labels = np.where(weights > 0, labels, -1).astype("int32")
    return ids, labels, weights


def make_train_dataset(start_step, batch_size=BATCH_SIZE, arrays=None):
    """Batches in a fixed order, repeated, starting at the batch of `start_step`."""
    ids, labels, weights = make_arrays() if arrays is None else arrays
    dataset = tf.data.Dataset.from_tensor_slices((ids, labels, weights))
    return dataset.batch(batch_size, drop_remainder=True).repeat().skip(start_step)


def validation_dataset(batch_size=BATCH_SIZE):
    ids, labels, weights = make_arrays(num_sequences=16, seed=1)
    return tf.data.Dataset.from_tensor_slices((ids, labels, weights)).batch(batch_size)


def numpy_cross_entropy(labels, logits):
    """Per-token cross-entropy in float64 (the reference for the loss and metric tests)."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    safe = np.where(np.asarray(labels) >= 0, labels, 0)
    return -np.take_along_axis(log_probs, safe[..., None], axis=-1)[..., 0]
