"""Character 5-gram LM with interpolated modified Kneser-Ney on Shakespeare.

"Training" counts the n-grams of the train works (seconds on 2 cores); evaluation reports
bits per character on the same scale as the neural models (experiments/classic_vs_transformer.md).
Other orders: --config.model.order=3 (or 7).

Command:
    keras-lm train --config=configs/shakespeare_ngram.py --workdir=/tmp/shakespeare_ngram5
    keras-lm evaluate --workdir=/tmp/shakespeare_ngram5 --split=test
    keras-lm generate --workdir=/tmp/shakespeare_ngram5 --prompt="ROMEO:" --temperature=0.8
"""

from keras_lm.tasks.language_model import default_config


def get_config():
    config = default_config()
    config.data.source = "shakespeare"
    config.data.sequence_length = 64  # evaluation windows of the neural models; unused here
    config.tokenizer.fit_splits = ("train", "validation", "test")  # the README's vocabulary
    config.model = dict(type="ngram", order=5)
    config.sample.update(prompts=("ROMEO:\n",), max_new_tokens=200)
    return config
