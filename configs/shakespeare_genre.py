"""Genre of a Shakespeare passage (comedy / history / tragedy / poetry) with a small encoder.

Passages: consecutive whole lines of a work's modern text, at most 350 characters (about 110
SentencePiece tokens; 128-token rows, longer passages cut), labelled with the work's genre
from works.tsv. Trained on the passages of the 36 train works, the checkpoint selected on the
validation works (lowest validation loss: `--checkpoint=best`), reported on the test works
(hamlet, twelfth_night, henry_v). The encoder is the one of configs/shakespeare_mlm.py, so the
same config fine-tunes the pre-trained encoder with `--config.init_from`:

Command (from scratch):
    keras-lm train --config=configs/shakespeare_genre.py --workdir=/tmp/genre_scratch
    keras-lm evaluate --workdir=/tmp/genre_scratch --split=test --checkpoint=best

Command (from the masked-LM checkpoint of configs/shakespeare_mlm.py):
    keras-lm train --config=configs/shakespeare_genre.py --workdir=/tmp/genre_mlm \\
        --config.init_from=/tmp/shakespeare_mlm
    keras-lm evaluate --workdir=/tmp/genre_mlm --split=test --checkpoint=best
    keras-lm predict --workdir=/tmp/genre_mlm --text="O Romeo, Romeo! wherefore art thou Romeo?"

Expected: ~10 minutes each on 2 busy CPU cores (400 steps of 32 passages); test accuracy and
macro-F1 of both runs and of the non-neural baseline (benchmarks/genre_baseline.py) are in
experiments/shakespeare_genre.md.
"""

from keras_lm.tasks.classification import default_config


def get_config():
    config = default_config()
    config.data.update(source="shakespeare_genre", text_column="text", label_column="label",
                       sequence_length=128, source_options={"passage_chars": 350})
    # The tokenizer of configs/shakespeare_mlm.py, fitted here on the train passages (with
    # init_from, the pre-trained workdir's own tokenizer is used instead).
    config.tokenizer = dict(type="sentencepiece", vocab_size=2048, model_type="unigram",
                            character_coverage=1.0, fit_splits=("train",))
    # The encoder of configs/shakespeare_mlm.py (init_from requires the same architecture).
    config.model.update(num_layers=4, num_heads=4, hidden_dim=128, intermediate_dim=512,
                        sequence_length=128, dropout=0.1, pooling="first")
    config.classifier.update(dropout=0.1, freeze_backbone=False)
    config.train.update(steps=400, batch_size=32, learning_rate=5e-4, warmup_steps=40,
                        min_learning_rate=5e-5, log_every=50, eval_every=100)
    return config
