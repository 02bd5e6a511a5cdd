"""Extractive question answering (SQuAD v1.1 style) with an encoder.

Data: SQuAD v1.1 JSON files or TFDS `squad` (`keras_lm.data.labeled.load_squad`). Each
question is paired with windows of its context (`keras_lm.data.qa.qa_windows`: stride
`config.data.stride`, questions cut to `max_question_tokens`); the model scores every token
as answer start and end; the answer is the best valid span over all windows, at most
`config.data.max_answer_tokens` long, mapped back to the context's characters
(`keras_lm.data.qa.best_spans`). Metrics: exact_match and f1 in percent with the official
SQuAD v1.1 normalisation (`keras_lm.metrics.squad`).
"""

import os
import time

import keras
import numpy as np
from absl import logging

from keras_lm.data import encoder_inputs
from keras_lm.data import labeled
from keras_lm.data import qa
from keras_lm.data.lm_pipeline import check_data_fields
from keras_lm.metrics import squad
from keras_lm.tasks import masked_lm
from keras_lm.tasks import workdir as workdir_lib
from keras_lm.training import fit


def default_config():
    """Fields of a question-answering config."""
    import ml_collections

    from keras_lm.training import default_train_config

    config = ml_collections.ConfigDict()
    config.task = "question_answering"
    config.data = ml_collections.ConfigDict(
        dict(source="", sequence_length=128, stride=64, max_question_tokens=32,
             max_answer_tokens=30, seed=0, source_options={})
    )
    config.tokenizer = ml_collections.ConfigDict(dict(type="char", fit_splits=("train",)))
    config.model = masked_lm.default_model_config()
    config.classifier = ml_collections.ConfigDict(dict(freeze_backbone=False))
    config.init_from = ""
    config.init_checkpoint = "latest"
    config.train = default_train_config()
    return config


def load_examples(config, split):
    options = config.data.get("source_options", None) or {}
    if hasattr(options, "to_dict"):
        options = options.to_dict()
    if not config.data.source:
        raise ValueError("config.data.source is empty: name the SQuAD-format data.")
    return labeled.load_squad(config.data.source, split, **options)


def build_tokenizer(config, workdir=None):
    def texts(splits):
        result = []
        for split in splits:
            for example in load_examples(config, split):
                result += [example["question"], example["context"]]
        return result

    return masked_lm.fine_tuning_tokenizer(config, workdir, texts)


def build_model(config, tokenizer, initialize=False):
    """A built `QuestionAnswering` model; with `initialize`, its backbone from init_from."""
    from keras_lm.models.question_answering import QuestionAnswering

    backbone = masked_lm.build_backbone(
        config.model, encoder_inputs.encoder_vocabulary_size(tokenizer)
    )
    if initialize and config.get("init_from", ""):
        masked_lm.load_pretrained_backbone(backbone, config.init_from,
                                           config.get("init_checkpoint", "latest"), tokenizer)
    model = QuestionAnswering(backbone, freeze_backbone=config.classifier.freeze_backbone)
    model.build()
    return model


def span_loss(y_true, y_pred):
    """Mean of the start and end cross-entropies over positions.

    Args:
        y_true: int [B, 2], the start and end positions.
        y_pred: float [B, T, 2], start and end logits.
    """
    ops = keras.ops
    y_true = ops.cast(y_true, "int32")
    start = ops.sparse_categorical_crossentropy(y_true[:, 0], y_pred[:, :, 0], from_logits=True)
    end = ops.sparse_categorical_crossentropy(y_true[:, 1], y_pred[:, :, 1], from_logits=True)
    return (start + end) / 2.0  # (B,)


class _SpanLoss(keras.losses.Loss):
    """`span_loss` averaged over the windows of a batch."""

    def __init__(self):
        super().__init__(name="span_loss")

    def call(self, y_true, y_pred):
        return span_loss(y_true, y_pred)


def _windows(config, tokenizer, examples):
    data = config.data
    return qa.qa_windows(examples, tokenizer, data.sequence_length, stride=data.stride,
                         max_question_tokens=data.max_question_tokens)


def _as_examples(dataset):
    import tensorflow as tf

    return dataset.map(lambda b: (
        {"token_ids": b["token_ids"], "segment_ids": b["segment_ids"]},
        tf.stack([b["start_positions"], b["end_positions"]], axis=1)))


def train(config, workdir):
    """Trains (or resumes) the QA model of `config` in `workdir`; returns a `TrainResult`."""
    workdir = os.fspath(workdir)
    check_data_fields(config.data, default_config().data.keys())
    masked_lm.check_sequence_length(config)
    masked_lm.check_pair_segments(config, "question and context")
    workdir_lib.write_config(workdir, config)
    tokenizer = build_tokenizer(config, workdir)
    batch_size, seed = config.train.batch_size, config.data.get("seed", 0)
    train_arrays, _ = _windows(config, tokenizer, load_examples(config, "train"))
    validation_arrays, _ = _windows(config, tokenizer, load_examples(config, "validation"))
    validation_ds = _as_examples(encoder_inputs.array_dataset(validation_arrays, batch_size,
                                                              training=False))

    def make_train_dataset(start_step):
        return _as_examples(encoder_inputs.array_dataset(
            train_arrays, batch_size, training=True, seed=seed, start_step=start_step))

    return fit(
        build_model=lambda: build_model(config, tokenizer, initialize=True),
        make_train_dataset=make_train_dataset,
        validation_dataset=validation_ds,
        workdir=workdir,
        train_config=config.train,
        tokens_per_step=batch_size * config.data.sequence_length,
        loss=_SpanLoss(),
        metrics=[],
    )


def load(workdir, which="latest"):
    """(config, tokenizer, model, step) of a trained QA workdir."""
    config = workdir_lib.read_config(workdir)
    tokenizer = masked_lm.workdir_tokenizer(workdir)
    model = build_model(config, tokenizer)
    step = workdir_lib.restore_weights(model, workdir, which)
    return config, tokenizer, model, step


def answer(model, tokenizer, config, examples, batch_size=32):
    """The decoded answers (dicts of `keras_lm.data.qa.best_spans`) of QA examples."""
    import tensorflow as tf

    arrays, windows = _windows(config, tokenizer, examples)

    @tf.function(reduce_retracing=True)
    def logits(features):
        return model(features, training=False)

    features = {"token_ids": arrays["token_ids"], "segment_ids": arrays["segment_ids"]}
    dataset = tf.data.Dataset.from_tensor_slices(features).batch(batch_size)
    scores = np.concatenate([logits(batch).numpy() for batch in dataset], axis=0)  # (N, T, 2)
    return qa.best_spans(scores[:, :, 0], scores[:, :, 1], windows,
                         [e["context"] for e in examples], config.data.max_answer_tokens)


def evaluate(workdir, split="validation", which="latest"):
    """SQuAD exact match and F1 (percent) of a workdir on a split."""
    config, tokenizer, model, step = load(workdir, which)
    examples = load_examples(config, split)
    start = time.perf_counter()
    answers = answer(model, tokenizer, config, examples, config.train.batch_size)
    metrics = squad.squad_scores(
        {e["id"]: a["text"] for e, a in zip(examples, answers)},
        {e["id"]: [x["text"] for x in e["answers"]] for e in examples},
    )
    metrics.update(step=step, split=split, seconds=time.perf_counter() - start)
    return metrics


def format_metrics(metrics):
    return (f"exact_match={metrics['exact_match']:.2f}  f1={metrics['f1']:.2f}  "
            f"questions={metrics['questions']}")


def predict(workdir, text=None, text_pair=None, question=None, context=None, which="latest"):
    """The answer to `question` found in `context` (a span of the context)."""
    if question is None or context is None or text is not None or text_pair is not None:
        raise ValueError(
            "A QA model needs --question and --context (and no --text); received "
            f"question={question!r}, context={context!r}, text={text!r}."
        )
    for name, value in (("question", question), ("context", context)):
        if not value.strip():
            raise ValueError(
                f"--{name} is empty; the answer is a span of the context, found by the "
                f"question. Give a non-empty --{name}."
            )
    config, tokenizer, model, _ = load(workdir, which)
    example = {"id": "0", "question": question, "context": context, "answers": []}
    return answer(model, tokenizer, config, [example], 1)[0]["text"]


def export(workdir, export_dir, version=None, overwrite=False, which="latest"):
    """`keras-lm export`: the workdir's QA model as `export_dir/<version>/`, a SavedModel.

    Signature `answer(questions, contexts)` -> `answers`, `scores` (see
    `keras_lm.export.QAModule`), windowing and decoding with `config.data`'s settings.
    Returns the version directory.
    """
    from keras_lm.export import export_model

    config, tokenizer, model, step = load(workdir, which)
    data = config.data
    return export_model(model, tokenizer, export_dir, version=version, overwrite=overwrite,
                        config=config, step=step, sequence_length=data.sequence_length,
                        stride=data.stride, max_question_tokens=data.max_question_tokens,
                        max_answer_tokens=data.max_answer_tokens)


def train_and_report(config, workdir):
    """`keras-lm train`: trains, then prints the validation metrics."""
    result = train(config, workdir)
    logging.info("Trained steps %d..%d in %.1f s.", result.initial_step, result.final_step,
                 result.wall_time_s)
    metrics = evaluate(workdir, "validation")
    print(f"validation @ step {metrics['step']}: {format_metrics(metrics)}")
    return result
