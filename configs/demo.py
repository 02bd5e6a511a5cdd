"""Demo: a small character-level GPT on the Python documentation that ships with CPython.

The README's main job. No download: the corpus is `pydoc_data.topics` (train/validation
split fixed in `keras_lm.data.sources`).

Command:
    keras-lm train --config=configs/demo.py --workdir=/tmp/keras_lm_demo

Expected (2 CPU cores): see experiments/demo.md for the measured run — a few minutes;
validation loss falls from ~4.6 nats per character (uniform over the vocabulary) to under
2; the printed samples read like Python documentation words and punctuation.
"""

from keras_lm.tasks.language_model import default_config


def get_config():
    config = default_config()
    config.data.sequence_length = 128
    config.model.update(num_layers=3, num_heads=4, hidden_dim=128, sequence_length=128)
    config.train.update(
        steps=800,
        batch_size=16,
        learning_rate=2e-3,  # small model, short run: a higher peak than nanoGPT's 1e-3
        warmup_steps=50,
        min_learning_rate=2e-4,
        log_every=50,
        eval_every=200,
    )
    config.sample.update(prompts=("The for statement ", "A dictionary "), max_new_tokens=100,
                         top_k=10)
    return config
