"""Reverse a digit string: an algorithmic sanity check for the encoder-decoder stack.

"12345" -> "54321", 1 to 8 digits: 5,000 training pairs and 500 validation / test pairs (a
fixed random set per split). A tiny model must reach near-perfect exact match quickly; if it
does not, something in the model, the teacher forcing or the decoding is broken. (BLEU is 0
here by construction: an output is a single word, with no 4-gram to match.)

    keras-lm train    --config=configs/reverse_digits.py --workdir=/tmp/reverse
    keras-lm evaluate --workdir=/tmp/reverse --split=test
    keras-lm generate --workdir=/tmp/reverse --text=0123456 --beam_size=4

Expected: 600 steps in about 25 s on 2 CPU cores (50 s with the start-up and the final
evaluation); exact match 1.000 for greedy and beam search on validation and test (the copy
baseline: about 0.15, the palindromes and single digits).
"""

from keras_lm.tasks.seq2seq import default_config


def get_config():
    config = default_config()
    config.data.source = "algorithmic:reverse_digits"
    config.data.source_options.max_digits = 8  # pairs: 5,000 train, 500 validation / test
    config.data.source_length = 10  # 8 digits + eos, one spare
    config.data.target_length = 10
    config.model.update(num_layers=1, num_decoder_layers=1, num_heads=4, hidden_dim=64,
                        intermediate_dim=128)
    config.train.update(steps=600, batch_size=64, learning_rate=3e-3, min_learning_rate=3e-4,
                        warmup_steps=50, weight_decay=0.0, eval_every=200, log_every=100)
    config.evaluate.update(beam_sizes=(1, 4), batch_size=100)
    config.sample.inputs = ("0123456", "9")
    return config
