"""Character-level hidden Markov model LM on Shakespeare (K hidden states).

Trained by Baum-Welch (EM) by default; `--config.em.iterations=0` trains the same model by
gradient ascent on the exact log-likelihood with `model.fit` (the forward algorithm is a
Keras layer, so checkpoints, resume and tf.distribute work as for the neural models).
Other sizes: --config.model.num_states=16 (or 256).

Command:
    keras-lm train --config=configs/shakespeare_hmm.py --workdir=/tmp/shakespeare_hmm64
    keras-lm train --config=configs/shakespeare_hmm.py --workdir=/tmp/shakespeare_hmm64_sgd \
        --config.em.iterations=0
    keras-lm evaluate --workdir=/tmp/shakespeare_hmm64 --split=test
"""

import ml_collections

from keras_lm.tasks.language_model import default_config


def get_config():
    config = default_config()
    config.data.source = "shakespeare"
    config.data.sequence_length = 256  # windows for gradient training and evaluation
    config.tokenizer.fit_splits = ("train", "validation", "test")
    config.model = dict(type="hmm", num_states=64, sequence_length=1024)
    # Baum-Welch over chunks of the train text; iterations=0 means "train with model.fit".
    config.em = ml_collections.ConfigDict(
        dict(iterations=10, chunk_length=512, batch_size=64, pseudo_count=0.01))
    config.train.update(steps=1000, batch_size=16, learning_rate=0.05, warmup_steps=20,
                        min_learning_rate=0.005, weight_decay=0.0, log_every=100,
                        eval_every=250, eval_steps=50)
    config.sample.update(prompts=("ROMEO:\n",), max_new_tokens=120)
    return config
