"""Text (and text-pair) classification with an encoder, from scratch or fine-tuned.

A config names labelled data (`keras_lm.data.labeled.load_labeled`: TSV/CSV/JSONL files,
TFDS, the Shakespeare genre passages), an `EncoderBackbone` (`config.model`, the masked-LM
task's fields) and a head (`config.classifier`). With `config.init_from` set to a masked-LM
workdir, the backbone starts from its weights and its tokenizer is used; otherwise both start
fresh. `config.classifier.freeze_backbone` trains the head only.

The workdir holds, besides config/tokenizer/checkpoints, `labels.json`: the label vocabulary
(sorted training labels); evaluation data with another label is refused.

Metrics: accuracy, macro_f1 (see `keras_lm.metrics.classification`), loss (mean
cross-entropy), f1_<label> per class, examples.
"""

import os
import time

import numpy as np
from absl import logging

from keras_lm.data import encoder_inputs
from keras_lm.data import labeled
from keras_lm.data.lm_pipeline import check_data_fields
from keras_lm.metrics import classification as classification_metrics
from keras_lm.tasks import masked_lm
from keras_lm.tasks import workdir as workdir_lib
from keras_lm.training import fit


def default_config():
    """Fields of a classification config (small CPU-friendly defaults)."""
    import ml_collections

    from keras_lm.training import default_train_config

    config = ml_collections.ConfigDict()
    config.task = "classification"
    # text_pair_column "" = single texts. source_options go to the loader (data_dir, ...).
    config.data = ml_collections.ConfigDict(
        dict(source="", text_column="text", text_pair_column="", label_column="label",
             sequence_length=128, seed=0, source_options={})
    )
    config.tokenizer = ml_collections.ConfigDict(dict(type="char", fit_splits=("train",)))
    config.model = masked_lm.default_model_config()
    config.classifier = ml_collections.ConfigDict(dict(dropout=0.1, freeze_backbone=False))
    # A masked-LM workdir to start the backbone from ("" = from scratch), and its checkpoint.
    config.init_from = ""
    config.init_checkpoint = "latest"
    config.train = default_train_config()
    return config


def load_examples(config, split):
    """The labelled examples of one split of `config.data`."""
    data = config.data
    options = data.get("source_options", None) or {}
    if hasattr(options, "to_dict"):
        options = options.to_dict()
    if not data.source:
        raise ValueError("config.data.source is empty: name the labelled data (see "
                         "keras_lm.data.labeled).")
    return labeled.load_labeled(
        data.source, split, text_column=data.text_column, label_column=data.label_column,
        text_pair_column=data.get("text_pair_column", "") or None, **options
    )


def build_tokenizer(config, workdir=None):
    """The workdir's, the pre-trained workdir's, or a new tokenizer fitted on training texts."""

    def texts(splits):
        result = []
        for split in splits:
            for example in load_examples(config, split):
                result.append(example["text"])
                if "text_pair" in example:
                    result.append(example["text_pair"])
        return result

    return masked_lm.fine_tuning_tokenizer(config, workdir, texts)


def build_model(config, tokenizer, num_labels, initialize=False):
    """A built `SequenceClassifier`; with `initialize`, its backbone loaded from init_from."""
    from keras_lm.models.sequence_classifier import SequenceClassifier

    return masked_lm.build_fine_tuned(SequenceClassifier, config, tokenizer, num_labels, initialize)


def _dataset(config, tokenizer, labels, examples, batch_size, training, start_step=0, where=""):
    label_ids = labeled.encode_labels([e["label"] for e in examples], labels, where)
    return encoder_inputs.classification_dataset(
        examples, tokenizer, label_ids, config.data.sequence_length, batch_size,
        training=training, seed=config.data.get("seed", 0), start_step=start_step,
    )


def train(config, workdir):
    """Trains (or resumes) the classifier of `config` in `workdir`; returns a `TrainResult`."""
    import keras

    workdir = os.fspath(workdir)
    check_data_fields(config.data, default_config().data.keys())
    if config.data.get("text_pair_column", ""):
        masked_lm.check_pair_segments(config, "config.data.text_pair_column is set")
    if config.model.sequence_length < config.data.sequence_length:
        raise ValueError(
            f"config.data.sequence_length={config.data.sequence_length} is longer than the "
            f"encoder's config.model.sequence_length={config.model.sequence_length}."
        )
    workdir_lib.write_config(workdir, config)
    train_examples = load_examples(config, "train")
    labels = labeled.label_vocabulary(e["label"] for e in train_examples)
    labeled.save_labels(workdir, labels)
    tokenizer = build_tokenizer(config, workdir)
    batch_size = config.train.batch_size
    validation_ds = _dataset(config, tokenizer, labels, load_examples(config, "validation"),
                             batch_size, training=False, where="the validation split")
    logging.info("Classification: %d training examples, labels %s.", len(train_examples),
                 labels)

    def make_train_dataset(start_step):
        return _dataset(config, tokenizer, labels, train_examples, batch_size, training=True,
                        start_step=start_step, where="the train split")

    return fit(
        build_model=lambda: build_model(config, tokenizer, len(labels), initialize=True),
        make_train_dataset=make_train_dataset,
        validation_dataset=validation_ds,
        workdir=workdir,
        train_config=config.train,
        tokens_per_step=batch_size * config.data.sequence_length,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy("accuracy")],
    )


def load(workdir, which="latest"):
    """(config, tokenizer, labels, model, step) of a trained classification workdir."""
    config = workdir_lib.read_config(workdir)
    labels = labeled.load_labels(workdir)
    tokenizer = masked_lm.workdir_tokenizer(workdir)
    model = build_model(config, tokenizer, len(labels))
    step = workdir_lib.restore_weights(model, workdir, which)
    return config, tokenizer, labels, model, step


def predict_probabilities(model, dataset):
    """Softmax probabilities [N, C] (numpy) of `model` over an evaluation dataset."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def probabilities(features):
        return tf.nn.softmax(model(features, training=False), axis=-1)

    return np.concatenate([probabilities(features).numpy() for features, _ in dataset], axis=0)


def evaluate_examples(model, tokenizer, labels, config, examples, where="the data"):
    """Metrics (accuracy, macro_f1, loss, f1 per label) of `model` on labelled examples."""
    dataset = _dataset(config, tokenizer, labels, examples, config.train.batch_size,
                       training=False, where=where)
    probabilities = predict_probabilities(model, dataset)
    y_true = np.asarray(labeled.encode_labels([e["label"] for e in examples], labels, where))
    y_pred = probabilities.argmax(-1)
    metrics = classification_metrics.classification_metrics(y_true, y_pred, labels)
    picked = probabilities[np.arange(len(y_true)), y_true]
    metrics["loss"] = float(-np.mean(np.log(np.maximum(picked, 1e-12))))
    return metrics


def evaluate(workdir, split="validation", which="latest"):
    """Metrics of a trained workdir on a split, plus `step`."""
    config, tokenizer, labels, model, step = load(workdir, which)
    start = time.perf_counter()
    metrics = evaluate_examples(model, tokenizer, labels, config, load_examples(config, split),
                                where=f"the {split} split")
    metrics.update(step=step, split=split, seconds=time.perf_counter() - start)
    return metrics


def format_metrics(metrics):
    keys = ["accuracy", "macro_f1", "loss"]
    text = "  ".join(f"{k}={metrics[k]:.4f}" for k in keys if k in metrics)
    per_class = "  ".join(f"{k}={v:.3f}" for k, v in sorted(metrics.items())
                          if k.startswith("f1_"))
    return f"{text}  examples={metrics.get('examples')}" + (f"  ({per_class})" if per_class
                                                             else "")


def predict(workdir, text=None, text_pair=None, question=None, context=None, which="latest"):
    """The predicted label of one text (or pair) and the label probabilities, as one line.

    Example:
    >>> predict("/tmp/genre", text="O Romeo, Romeo!")  # doctest: +SKIP
    'tragedy\\tcomedy=0.210 history=0.050 poetry=0.080 tragedy=0.660'
    """
    if text is None or question is not None or context is not None:
        raise ValueError(
            "A classifier predicts from --text (and --text_pair for pairs); received "
            f"text={text!r}, question={question!r}, context={context!r}."
        )
    config, tokenizer, labels, model, _ = load(workdir, which)
    pairs = bool(config.data.get("text_pair_column", ""))
    if pairs and text_pair is None:
        raise ValueError("This classifier reads text pairs: give --text_pair too.")
    if not pairs and text_pair is not None:
        raise ValueError(
            "This classifier reads single texts (config.data.text_pair_column is empty): "
            f"drop --text_pair (received text_pair={text_pair!r})."
        )
    example = {"text": text, "label": labels[0]}
    if pairs:
        example["text_pair"] = text_pair
    dataset = _dataset(config, tokenizer, labels, [example], 1, training=False)
    probabilities = predict_probabilities(model, dataset)[0]
    best = int(probabilities.argmax())
    return labels[best] + "\t" + " ".join(f"{label}={p:.3f}"
                                          for label, p in zip(labels, probabilities))


def export(workdir, export_dir, version=None, overwrite=False, which="latest"):
    """`keras-lm export`: the workdir's classifier as `export_dir/<version>/`, a SavedModel.

    Signatures `classify(texts)` and `classify_pairs(texts, pairs)` -> `probabilities`,
    `labels` (see `keras_lm.export.ClassifierModule`), with the workdir's label names and
    `config.data.sequence_length` rows. Returns the version directory.
    """
    from keras_lm.export import export_model

    config, tokenizer, labels, model, step = load(workdir, which)
    return export_model(model, tokenizer, export_dir, version=version, overwrite=overwrite,
                        config=config, step=step, labels=labels,
                        sequence_length=config.data.sequence_length,
                        text_pairs=bool(config.data.get("text_pair_column", "")))


def train_and_report(config, workdir):
    """`keras-lm train`: trains, then prints validation metrics of the best checkpoint."""
    result = train(config, workdir)
    logging.info("Trained steps %d..%d in %.1f s.", result.initial_step, result.final_step,
                 result.wall_time_s)
    for which in ("latest", "best"):
        try:
            metrics = evaluate(workdir, "validation", which)
        except FileNotFoundError:
            continue
        print(f"validation @ step {metrics['step']} ({which}): {format_metrics(metrics)}")
    return result
