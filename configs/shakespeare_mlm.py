"""Masked-LM pre-training of a small BERT-style encoder on the train works of Shakespeare.

The encoder (4 layers, width 128, 4 heads, 128-token context, ~0.8M parameters besides
the embeddings) and the 2048-piece SentencePiece vocabulary (fitted on the train works only)
are shared with `configs/shakespeare_genre.py`, which fine-tunes this workdir with
`--config.init_from=/tmp/shakespeare_mlm`. BERT masking: 15% of the tokens, of which
80% [MASK], 10% random, 10% unchanged. Sized for a 2-core CPU: 400 steps of 32 x 128 tokens
(1.6M tokens, ~1.3 passes over the train works).

Command:
    keras-lm train --config=configs/shakespeare_mlm.py --workdir=/tmp/shakespeare_mlm
    keras-lm evaluate --workdir=/tmp/shakespeare_mlm --split=test

Expected (see experiments/shakespeare_genre.md): about 10.5 minutes on 2 free CPU cores
(2,600 tokens/s; 28 minutes when the cores were shared with other jobs); validation masked
loss 6.10, masked-token accuracy 0.031, i.e. still on the unigram plateau: this budget is
too small for the encoder to learn context, and fine-tuning from it did not beat training
from scratch.
"""

from keras_lm.tasks.masked_lm import default_config


def get_config():
    config = default_config()
    config.data.source = "shakespeare"
    config.data.sequence_length = 128
    config.tokenizer = dict(type="sentencepiece", vocab_size=2048, model_type="unigram",
                            character_coverage=1.0, fit_splits=("train",))
    config.model.update(num_layers=4, num_heads=4, hidden_dim=128, intermediate_dim=512,
                        sequence_length=128, dropout=0.1, pooling="first")
    config.train.update(steps=400, batch_size=32, learning_rate=1e-3, warmup_steps=40,
                        min_learning_rate=1e-4, log_every=50, eval_every=100, eval_steps=20)
    return config
