"""Character-level GPT on Shakespeare (the canonical split of ../shared/data/shakespeare).

Per the corpus README: train on the modern-spelling train works, validate on macbeth,
much_ado_about_nothing and richard_ii, test on hamlet, twelfth_night and henry_v; the
vocabulary is the sorted set of characters of all three splits. Model: 4 layers, 4 heads,
width 128, context 64, batch 12 (the small GPT of the speed benchmarks).

Command (the record in experiments/shakespeare_char.md):
    keras-lm train --config=configs/shakespeare_char.py --workdir=/tmp/shakespeare_char
    keras-lm evaluate --workdir=/tmp/shakespeare_char --split=test

Expected: see experiments/shakespeare_char.md (2000 steps; validation ~1.7-1.8 bits per
character on 2 CPU cores in a few minutes).
"""

from keras_lm.tasks.language_model import default_config


def get_config():
    config = default_config()
    config.data.source = "shakespeare"
    config.data.sequence_length = 64
    config.tokenizer.fit_splits = ("train", "validation", "test")  # the README's vocabulary
    config.model.update(num_layers=4, num_heads=4, hidden_dim=128, sequence_length=64)
    config.train.update(
        steps=2000,
        batch_size=12,
        learning_rate=1e-3,
        warmup_steps=100,
        min_learning_rate=1e-4,
        log_every=100,
        eval_every=250,
        eval_steps=200,  # 200 x 12 x 64 = 154k validation characters per evaluation
    )
    config.sample.update(prompts=("ROMEO:\n", "To be, or not"), max_new_tokens=50)  # + prompt <= 64
    return config
