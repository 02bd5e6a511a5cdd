"""Subword GPT on Shakespeare: a 4096-piece SentencePiece unigram vocabulary.

SentencePiece is trained on the train works only (no peeking at validation/test text);
evaluation reports bits per character so the figure compares with the char-level model.

Command:
    keras-lm train --config=configs/shakespeare_sp.py --workdir=/tmp/shakespeare_sp
    keras-lm evaluate --workdir=/tmp/shakespeare_sp --split=test
"""

from keras_lm.tasks.language_model import default_config


def get_config():
    config = default_config()
    config.data.source = "shakespeare"
    config.data.sequence_length = 128
    config.tokenizer = dict(type="sentencepiece", vocab_size=4096, model_type="unigram",
                            character_coverage=1.0, fit_splits=("train",))
    config.model.update(num_layers=4, num_heads=4, hidden_dim=256, sequence_length=128,
                        dropout=0.1)
    config.train.update(steps=3000, batch_size=16, learning_rate=1e-3, warmup_steps=100,
                        min_learning_rate=1e-4, log_every=100, eval_every=500, eval_steps=100)
    config.sample.update(prompts=("ROMEO:\n",), max_new_tokens=100)
    return config
