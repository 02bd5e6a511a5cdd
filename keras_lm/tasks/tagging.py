"""Token classification (tagging, e.g. named entities) with an encoder.

Data: CoNLL files or TFDS `conll2003` (`keras_lm.data.labeled.load_tagged`), one tag per
word. Words are tokenized as they appear in the sentence `" ".join(words)`; each word's tag
sits on its first sub-token and the other sub-tokens are left out of the loss and metrics
(`keras_lm.data.encoder_inputs.tagging_arrays`); predictions are read at the first sub-tokens
and so come back one per word. Words cut off by `sequence_length` are predicted "O" (counted
in `truncated_words`).

`labels.json` holds the tag vocabulary (sorted training tags); an unknown tag in evaluation
data is refused. Metrics: entity-level precision / recall / F1 (seqeval's default definition,
`keras_lm.metrics.tagging`), token_accuracy over words.
"""

import os
import time

import numpy as np
from absl import logging

from keras_lm.data import encoder_inputs
from keras_lm.data import labeled
from keras_lm.data.lm_pipeline import check_data_fields
from keras_lm.metrics import tagging as tagging_metrics
from keras_lm.tasks import masked_lm
from keras_lm.tasks import workdir as workdir_lib
from keras_lm.training import fit
from keras_lm.training import token_accuracy

OUTSIDE = "O"


def default_config():
    """Fields of a tagging config."""
    import ml_collections

    from keras_lm.training import default_train_config

    config = ml_collections.ConfigDict()
    config.task = "tagging"
    # word_column / tag_column: CoNLL column numbers (TFDS: features "tokens" and "ner").
    config.data = ml_collections.ConfigDict(
        dict(source="", word_column=0, tag_column=-1, sequence_length=128, seed=0,
             source_options={})
    )
    config.tokenizer = ml_collections.ConfigDict(dict(type="char", fit_splits=("train",)))
    config.model = masked_lm.default_model_config()
    config.classifier = ml_collections.ConfigDict(dict(dropout=0.1, freeze_backbone=False))
    config.init_from = ""
    config.init_checkpoint = "latest"
    config.train = default_train_config()
    return config


def load_sentences(config, split):
    options = config.data.get("source_options", None) or {}
    if hasattr(options, "to_dict"):
        options = options.to_dict()
    if not config.data.source:
        raise ValueError("config.data.source is empty: name the CoNLL data.")
    return labeled.load_tagged(config.data.source, split, config.data.word_column,
                               config.data.tag_column, **options)


def build_tokenizer(config, workdir=None):
    def texts(splits):
        return [" ".join(s["words"]) for split in splits for s in load_sentences(config, split)]

    return masked_lm.fine_tuning_tokenizer(config, workdir, texts)


def build_model(config, tokenizer, num_labels, initialize=False):
    """A built `TokenClassifier`; with `initialize`, its backbone loaded from init_from."""
    from keras_lm.models.token_classifier import TokenClassifier

    return masked_lm.build_fine_tuned(TokenClassifier, config, tokenizer, num_labels, initialize)


def _arrays(config, tokenizer, tags, sentences, where):
    tag_ids = [labeled.encode_labels(s["tags"], tags, where) for s in sentences]
    return encoder_inputs.tagging_arrays(sentences, tokenizer, tag_ids,
                                         config.data.sequence_length)


def _as_examples(dataset):
    return dataset.map(lambda b: ({"token_ids": b["token_ids"], "segment_ids": b["segment_ids"]},
                                  b["labels"], b["sample_weight"]))


def train(config, workdir):
    """Trains (or resumes) the tagger of `config` in `workdir`; returns a `TrainResult`."""
    workdir = os.fspath(workdir)
    check_data_fields(config.data, default_config().data.keys())
    masked_lm.check_sequence_length(config)
    workdir_lib.write_config(workdir, config)
    train_sentences = load_sentences(config, "train")
    tags = labeled.label_vocabulary(t for s in train_sentences for t in s["tags"])
    labeled.save_labels(workdir, tags)
    tokenizer = build_tokenizer(config, workdir)
    batch_size, seed = config.train.batch_size, config.data.get("seed", 0)
    train_arrays, _ = _arrays(config, tokenizer, tags, train_sentences, "the train split")
    validation_arrays, _ = _arrays(config, tokenizer, tags, load_sentences(config, "validation"),
                                   "the validation split")
    validation_ds = _as_examples(encoder_inputs.array_dataset(validation_arrays, batch_size,
                                                              training=False))

    def make_train_dataset(start_step):
        return _as_examples(encoder_inputs.array_dataset(
            train_arrays, batch_size, training=True, seed=seed, start_step=start_step))

    return fit(
        build_model=lambda: build_model(config, tokenizer, len(tags), initialize=True),
        make_train_dataset=make_train_dataset,
        validation_dataset=validation_ds,
        workdir=workdir,
        train_config=config.train,
        tokens_per_step=batch_size * config.data.sequence_length,
        metrics=[token_accuracy("accuracy")],
    )


def load(workdir, which="latest"):
    """(config, tokenizer, tags, model, step) of a trained tagging workdir."""
    config = workdir_lib.read_config(workdir)
    tags = labeled.load_labels(workdir)
    tokenizer = masked_lm.workdir_tokenizer(workdir)
    model = build_model(config, tokenizer, len(tags))
    step = workdir_lib.restore_weights(model, workdir, which)
    return config, tokenizer, tags, model, step


def predict_tags(model, tokenizer, tags, sentences, sequence_length, batch_size=32):
    """Predicted tags, one list per sentence with one tag per word ("O" for cut-off words)."""
    import tensorflow as tf

    arrays, word_starts = encoder_inputs.tagging_arrays(sentences, tokenizer, None,
                                                        sequence_length)

    @tf.function(reduce_retracing=True)
    def argmax(features):
        return tf.argmax(model(features, training=False), axis=-1, output_type=tf.int32)

    features = {"token_ids": arrays["token_ids"], "segment_ids": arrays["segment_ids"]}
    dataset = tf.data.Dataset.from_tensor_slices(features).batch(batch_size)
    predicted = np.concatenate([argmax(batch).numpy() for batch in dataset], axis=0)
    result = []
    for row, starts in enumerate(word_starts):
        result.append([tags[predicted[row, p]] if p >= 0 else OUTSIDE for p in starts])
    return result, sum(p < 0 for starts in word_starts for p in starts)


def evaluate(workdir, split="validation", which="latest"):
    """Entity precision / recall / F1 and word accuracy of a workdir on a split."""
    config, tokenizer, tags, model, step = load(workdir, which)
    sentences = load_sentences(config, split)
    for sentence in sentences:  # refuse unknown tags before predicting
        labeled.encode_labels(sentence["tags"], tags, f"the {split} split")
    start = time.perf_counter()
    predicted, truncated = predict_tags(model, tokenizer, tags, sentences,
                                        config.data.sequence_length, config.train.batch_size)
    references = [s["tags"] for s in sentences]
    metrics = tagging_metrics.entity_scores(references, predicted)
    words = [(r, p) for ref, pred in zip(references, predicted) for r, p in zip(ref, pred)]
    metrics.update(token_accuracy=float(np.mean([r == p for r, p in words])),
                   truncated_words=int(truncated), sentences=len(sentences), step=step,
                   split=split, seconds=time.perf_counter() - start)
    return metrics


def format_metrics(metrics):
    keys = ["precision", "recall", "f1", "token_accuracy"]
    text = "  ".join(f"{k}={metrics[k]:.4f}" for k in keys if k in metrics)
    return text + f"  entities={metrics.get('entities')}  sentences={metrics.get('sentences')}"


def predict(workdir, text=None, text_pair=None, question=None, context=None, which="latest"):
    """Tags of the white-space separated words of `text`, as "word/TAG word/TAG ..."."""
    if text is None or text_pair is not None or question is not None or context is not None:
        raise ValueError(
            "A tagger predicts from --text only (its words are split at white space); "
            f"received text={text!r}, text_pair={text_pair!r}, question={question!r}."
        )
    config, tokenizer, tags, model, _ = load(workdir, which)
    words = text.split()
    if not words:
        return ""
    predicted, _ = predict_tags(model, tokenizer, tags, [{"words": words}],
                                config.data.sequence_length, 1)
    return " ".join(f"{w}/{t}" for w, t in zip(words, predicted[0]))


def export(workdir, export_dir, version=None, overwrite=False, which="latest"):
    """`keras-lm export`: the workdir's tagger as `export_dir/<version>/`, a SavedModel.

    Signature `tag(texts)` -> `words`, `tags`, `word_counts`, `probabilities` (see
    `keras_lm.export.TaggerModule`), with the workdir's tag names and
    `config.data.sequence_length` rows. Returns the version directory.
    """
    from keras_lm.export import export_model

    config, tokenizer, tags, model, step = load(workdir, which)
    return export_model(model, tokenizer, export_dir, version=version, overwrite=overwrite,
                        config=config, step=step, labels=tags,
                        sequence_length=config.data.sequence_length)


def train_and_report(config, workdir):
    """`keras-lm train`: trains, then prints the validation metrics."""
    result = train(config, workdir)
    logging.info("Trained steps %d..%d in %.1f s.", result.initial_step, result.final_step,
                 result.wall_time_s)
    metrics = evaluate(workdir, "validation")
    print(f"validation @ step {metrics['step']}: {format_metrics(metrics)}")
    return result
