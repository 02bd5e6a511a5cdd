"""nanoGPT's "baby GPT" on Shakespeare characters: 6 layers, 6 heads, width 384, context 256.

About 10.7M parameters; the speed issue's larger benchmark model. Dropout 0.2 as in
nanoGPT's shakespeare_char recipe (the model is big for 4M characters).

Command:
    keras-lm train --config=configs/shakespeare_baby_gpt.py --workdir=/tmp/baby_gpt
"""

from keras_lm.tasks.language_model import default_config


def get_config():
    config = default_config()
    config.data.source = "shakespeare"
    config.data.sequence_length = 256
    config.tokenizer.fit_splits = ("train", "validation", "test")
    config.model.update(num_layers=6, num_heads=6, hidden_dim=384, sequence_length=256,
                        dropout=0.2)
    config.train.update(steps=5000, batch_size=16, learning_rate=1e-3, warmup_steps=100,
                        min_learning_rate=1e-4, log_every=100, eval_every=500, eval_steps=50)
    config.sample.update(prompts=("ROMEO:\n",), max_new_tokens=248)  # + prompt <= 256
    return config
