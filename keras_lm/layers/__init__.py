"""Layers: attention, position encodings, embeddings, feed-forward, norms and Transformer blocks."""
