"""Character LSTM LM on Shakespeare (the recurrent baseline of the classic-LM comparison).

Same data, vocabulary, windows (64), batch (12), steps (2000), AdamW and schedule shape
(100 warmup steps, cosine decay to a tenth of the peak) as configs/shakespeare_char.py; the
one difference is the learning rate, 2e-3 (min 2e-4) here against the Transformer's 1e-3
(min 1e-4). Evaluation is identical, so bits per character compare directly. GRU or plain
RNN: --config.model.cell=gru (or rnn).

Command:
    keras-lm train --config=configs/shakespeare_lstm.py --workdir=/tmp/shakespeare_lstm
    keras-lm evaluate --workdir=/tmp/shakespeare_lstm --split=test
"""

from keras_lm.tasks.language_model import default_config


def get_config():
    config = default_config()
    config.data.source = "shakespeare"
    config.data.sequence_length = 64
    config.tokenizer.fit_splits = ("train", "validation", "test")
    config.model = dict(type="rnn", cell="lstm", num_layers=2, hidden_dim=256, embedding_dim=128,
                        dropout=0.0, tie_embeddings=True, sequence_length=512)
    config.train.update(steps=2000, batch_size=12, learning_rate=2e-3, warmup_steps=100,
                        min_learning_rate=2e-4, log_every=100, eval_every=250, eval_steps=200)
    config.sample.update(prompts=("ROMEO:\n",), max_new_tokens=200)
    return config
