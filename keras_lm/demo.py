"""A short demo of keras_lm's layers: a tiny causal LM stack, cached vs full decoding."""

import numpy as np

import keras_lm  # noqa: F401  (selects the TensorFlow backend)
from keras_lm import layers


def main():
    vocabulary_size, width, heads, length = 50, 32, 4, 12
    embedding = layers.TokenAndPositionEmbedding(vocabulary_size, length, width)
    blocks = [layers.TransformerDecoderBlock(heads, 4 * width, num_key_value_heads=2)
              for _ in range(2)]
    ids = np.random.default_rng(0).integers(1, vocabulary_size, size=(1, length))

    x = embedding(ids)
    for block in blocks:
        x = block(x)
    full = np.asarray(embedding.token_embedding(x, reverse=True))

    caches = [np.zeros((1, 2, length, 2, width // heads), "float32") for _ in blocks]
    steps = []
    for t in range(length):
        h = embedding(ids[:, t:t + 1], start_index=t)
        for i, block in enumerate(blocks):
            h, caches[i] = block(h, self_attention_cache=caches[i],
                                 self_attention_cache_update_index=t)
        steps.append(np.asarray(embedding.token_embedding(h, reverse=True)))
    cached = np.concatenate(steps, axis=1)
    print(f"logits shape {full.shape}; max |cached - full| = {np.abs(cached - full).max():.2e}")


if __name__ == "__main__":
    main()
