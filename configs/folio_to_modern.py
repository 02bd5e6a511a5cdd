"""First Folio spelling -> modern spelling: a character-level encoder-decoder Transformer.

Pairs come from aligning each play's Folio and modern texts (`keras_lm.data.alignment`;
statistics, baseline and results in experiments/folio_to_modern.md). Whole plays are held
out: train on the 29 train plays with a Folio text, select on validation (macbeth,
much_ado_about_nothing, richard_ii), report on test (hamlet, henry_v, twelfth_night).

    keras-lm train    --config=configs/folio_to_modern.py --workdir=/tmp/folio
    keras-lm evaluate --workdir=/tmp/folio --split=test --checkpoint=best
    keras-lm generate --workdir=/tmp/folio --text="long liue the king" --beam_size=4

Expected (measured on 2 CPU cores shared with other jobs; experiments/folio_to_modern.md):
aligning the 29 train plays takes 1-2 minutes the first time (the pairs are then kept in
WORKDIR/pairs/); the 1,200 steps took 721 s. On the 7,376 test pairs: character error rate
0.0318 with beam search (4 beams), 0.0345 greedy, 0.0515 for the copy baseline; BLEU 77.6 /
76.9 / 58.3.
"""

from keras_lm.tasks.seq2seq import default_config


def get_config():
    config = default_config()
    config.data.source = "shakespeare_folio"
    # The aligner's drop rule (see keras_lm/data/alignment.py). 64 characters keep most pairs
    # verse-line or clause sized, so sequences stay short enough for CPU training.
    config.data.source_options.max_chars = 64
    config.data.source_options.min_words = 3
    config.data.source_options.max_gap = 2
    config.data.source_options.min_equal = 0.75
    config.data.source_length = 66  # 64 characters + eos, one spare
    config.data.target_length = 66
    # Characters of sources and targets together: one vocabulary, tied embeddings.
    config.tokenizer.type = "char"
    config.model.update(num_layers=2, num_decoder_layers=2, num_heads=4, hidden_dim=128,
                        intermediate_dim=512, dropout=0.0)  # dropout off: far from overfitting
    config.train.update(
        steps=1200,  # the CPU budget; copying is learned by ~500, spelling after
        batch_size=64,
        learning_rate=2e-3,  # small model, short run: a high peak, cosine to 2e-4
        min_learning_rate=2e-4,
        warmup_steps=100,
        weight_decay=0.01,
        eval_every=400,
        log_every=100,
    )
    config.evaluate.update(beam_sizes=(1, 4), length_penalty=0.0, copy_baseline=True,
                           max_examples=0, batch_size=128)
    config.sample.inputs = (
        "long liue the king",
        "i haue seene nothing",
        "touching this dreaded sight twice seene of vs",
    )
    config.sample.beam_size = 4
    return config
