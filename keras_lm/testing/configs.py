"""Shrinks experiment configs to seconds-long runs on a tiny corpus (tests, smoke checks)."""

import os

TINY_TEXT = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, "
    "it was the age of foolishness, it was the epoch of belief, it was the epoch of "
    "incredulity, it was the season of Light, it was the season of Darkness.\n"
)


def write_tiny_corpus(directory, repeats=(12, 3, 3)):
    """Writes DIR/{train,validation,test}/doc*.txt; returns the source "DIR/{split}/*.txt"."""
    for split, count in zip(("train", "validation", "test"), repeats):
        os.makedirs(os.path.join(directory, split), exist_ok=True)
        for i in range(2):
            with open(os.path.join(directory, split, f"doc{i}.txt"), "w", encoding="utf-8") as f:
                f.write(TINY_TEXT * count)
    return os.path.join(directory, "{split}", "*.txt")


def shrink(config, source, steps=4):
    """Makes `config` tiny: its model, tokenizer and recipe are kept, sizes cut down."""
    config.data.source = source
    config.data.sequence_length = 16
    model = config.model
    if "sequence_length" in model:
        model.sequence_length = 16
    for name, value in (("num_layers", 1), ("hidden_dim", 16), ("num_heads", 2),
                        ("intermediate_dim", 32), ("num_key_value_heads", 0),
                        ("embedding_dim", 8), ("order", 3), ("num_states", 4)):
        if name in model:
            model[name] = value
    if config.tokenizer.get("type") == "sentencepiece":
        config.tokenizer.vocab_size = 40
    config.train.update(steps=steps, batch_size=4, eval_every=2, log_every=2, eval_steps=2,
                        warmup_steps=1)
    if "em" in config:
        config.em.update(iterations=min(config.em.iterations, 2), chunk_length=32)
    if "sample" in config:
        config.sample.max_new_tokens = 5
    return config
