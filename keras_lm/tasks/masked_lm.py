"""Masked-language-model pre-training of an encoder, and loading it into fine-tuning models.

A masked-LM workdir is a pre-trained encoder: `config.json` (its `model` section describes the
`EncoderBackbone`), `tokenizer/` and `checkpoints/`. `load_pretrained_backbone` copies the
backbone weights of such a workdir into the backbone of a classifier, tagger or QA model
(`config.init_from` of those tasks).

Metrics (on the masked positions only, `mask_rate` of the tokens, fixed masks):
    loss        mean cross-entropy of the original token (nats)
    accuracy    fraction of masked positions whose argmax is the original token
    perplexity  exp(loss)
"""

import inspect
import math
import os
import time

import tensorflow as tf
from absl import logging

from keras_lm.data import encoder_inputs
from keras_lm.data import lm_pipeline
from keras_lm.data import masking
from keras_lm.data import sources
from keras_lm.tasks import language_model
from keras_lm.tasks import workdir as workdir_lib
from keras_lm.training import Perplexity
from keras_lm.training import cross_entropy_sums
from keras_lm.training import fit
from keras_lm.training import token_accuracy

# Backbone fields that shape its weights: a pre-trained workdir and the model it initialises
# must agree on them. (`dropout` and `pooling` hold no weights and may differ.)
ARCHITECTURE_FIELDS = (
    "num_layers", "num_heads", "hidden_dim", "intermediate_dim", "sequence_length",
    "num_segments", "position_encoding", "activation", "norm",
)


def default_config():
    """Fields of a masked-LM pre-training config, small CPU-friendly defaults.

    `config.model` describes the `EncoderBackbone`; the fine-tuning tasks (classification,
    tagging, question answering) use the same section, so a pre-trained workdir and its
    fine-tuning configs share field names.
    """
    import ml_collections

    from keras_lm.training import default_train_config

    config = ml_collections.ConfigDict()
    config.task = "masked_lm"
    config.data = ml_collections.ConfigDict(
        dict(source="builtin:pydoc", sequence_length=128, mask_rate=0.15,
             shuffle_buffer=10_000, seed=0)
    )
    config.tokenizer = ml_collections.ConfigDict(dict(type="char", fit_splits=("train",)))
    config.model = default_model_config()
    config.train = default_train_config()
    return config


def default_model_config():
    """The `EncoderBackbone` fields of a config (`intermediate_dim=0` means 4 * hidden_dim)."""
    import ml_collections

    return ml_collections.ConfigDict(
        dict(type="encoder", num_layers=4, num_heads=4, hidden_dim=128, intermediate_dim=0,
             sequence_length=128, num_segments=2, position_encoding="learned",
             activation="gelu", norm="layer_norm", dropout=0.1, pooling="first")
    )


def build_backbone(model_config, vocabulary_size):
    """The `EncoderBackbone` a `config.model` section describes (built).

    Args:
        model_config: ConfigDict or dict of `EncoderBackbone` arguments (plus `type`).
        vocabulary_size: int, embedding rows (`encoder_vocabulary_size(tokenizer)`).

    Returns:
        A built `EncoderBackbone`.
    """
    from keras_lm.models.encoder_backbone import EncoderBackbone

    fields = dict(model_config.to_dict() if hasattr(model_config, "to_dict") else model_config)
    model_type = fields.pop("type", "encoder")
    if model_type != "encoder":
        raise ValueError(
            f"Encoder tasks need config.model.type='encoder'. Received: type={model_type!r}"
        )
    valid = [p for p in inspect.signature(EncoderBackbone.__init__).parameters
             if p not in ("self", "kwargs")]
    unknown = sorted(set(fields) - set(valid))
    if unknown:
        raise ValueError(
            f"Unknown config.model field(s) {unknown} for EncoderBackbone. Valid fields: "
            f"{sorted(valid)}."
        )
    if "vocabulary_size" in fields and fields["vocabulary_size"] != vocabulary_size:
        raise ValueError(
            f"config.model.vocabulary_size={fields['vocabulary_size']} does not match the "
            f"encoder vocabulary of {vocabulary_size} (tokenizer + [MASK]); drop the field."
        )
    fields["vocabulary_size"] = vocabulary_size
    if fields.get("intermediate_dim") == 0:
        fields["intermediate_dim"] = None
    backbone = EncoderBackbone(**fields)
    backbone.build()
    return backbone


def build_model(model_config, tokenizer):
    """A built `MaskedLM` over a backbone of `model_config` for `tokenizer`."""
    from keras_lm.models.masked_lm import MaskedLM

    backbone = build_backbone(model_config, encoder_inputs.encoder_vocabulary_size(tokenizer))
    model = MaskedLM(backbone)
    model.build()
    return model


def build_tokenizer(config, workdir=None):
    """The workdir's tokenizer, or the one `config.tokenizer` describes (fitted on the source)."""
    return language_model.build_tokenizer(config, workdir)


def check_sequence_length(config):
    """Raises ValueError if the rows (`config.data`) are longer than the encoder's positions.

    (Learned positions would fail inside training; sinusoidal ones would train rows that
    the export, bounded by the backbone's `sequence_length`, refuses.)
    """
    sequence_length = config.data.sequence_length
    if config.model.sequence_length < sequence_length:
        raise ValueError(
            f"config.data.sequence_length={sequence_length} is longer than the encoder's "
            f"config.model.sequence_length={config.model.sequence_length}."
        )


def check_pair_segments(config, what):
    """Raises ValueError if the encoder has fewer than 2 segments but reads text pairs.

    Args:
        config: the fine-tuning config (`config.model.num_segments`, default 2).
        what: str, what the pairs are (for the message), e.g. "question and context".
    """
    num_segments = config.model.get("num_segments", 2)
    if num_segments < 2:
        raise ValueError(
            f"This task reads pairs ({what}): segment ids 0 and 1, but "
            f"config.model.num_segments={num_segments}. Set config.model.num_segments=2."
        )


def _check_data(config):
    lm_pipeline.check_data_fields(config.data, masking.MASKED_LM_DATA_FIELDS)
    check_sequence_length(config)
    source = config.data.source
    if sources.names_same_documents(source, "train", "validation"):
        raise ValueError(
            f"config.data.source={source!r} names the same documents for train and "
            "validation; use '{split}' in it, a dict of splits, or a built-in source."
        )


def train(config, workdir):
    """Pre-trains (or resumes) the masked LM of `config` in `workdir`; returns a `TrainResult`."""
    workdir = os.fspath(workdir)
    _check_data(config)
    workdir_lib.write_config(workdir, config)
    tokenizer = build_tokenizer(config, workdir)
    batch_size = config.train.batch_size
    _, validation_ds = masking.build_masked_lm_datasets(config.data, tokenizer, batch_size)

    def make_train_dataset(start_step):
        train_ds, _ = masking.build_masked_lm_datasets(
            config.data, tokenizer, batch_size, start_step
        )
        return train_ds

    def build():
        model = build_model(config.model, tokenizer)
        logging.info("MaskedLM: %s parameters.", f"{model.count_params():,}")
        return model

    return fit(
        build_model=build,
        make_train_dataset=make_train_dataset,
        validation_dataset=validation_ds,
        workdir=workdir,
        train_config=config.train,
        tokens_per_step=batch_size * config.data.sequence_length,
        metrics=[token_accuracy("accuracy"), Perplexity()],
    )


def load(workdir, which="latest"):
    """(config, tokenizer, model, step) of a masked-LM workdir."""
    config = workdir_lib.read_config(workdir)
    tokenizer = build_tokenizer(config, workdir)
    model = build_model(config.model, tokenizer)
    step = workdir_lib.restore_weights(model, workdir, which)
    return config, tokenizer, model, step


def export(workdir, export_dir, version=None, overwrite=False, which="latest"):
    """`keras-lm export` on a masked-LM workdir: refused, with the way to a servable model.

    Masked-LM pre-training produces an encoder backbone, not a serving task: what a server
    answers (labels, tags, answer spans) comes from a head fine-tuned on top of it.
    """
    del export_dir, version, overwrite, which
    raise ValueError(
        f"{workdir!r} is a masked-LM pre-training workdir: it has no serving signature of its "
        "own. Fine-tune its backbone with a classifier, tagging or question-answering config "
        f"(--config.init_from={workdir}) and export that workdir."
    )


def evaluate_model(model, dataset, jit_compile=True):
    """Masked-position loss, accuracy and perplexity of `model` over a masked-LM dataset."""

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def sums(features, labels, weights):
        logits = model(features, training=False)
        total, count = cross_entropy_sums(labels, logits, weights)
        correct = tf.reduce_sum(
            tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
            * weights
        )
        return total, count, correct

    total = count = correct = 0.0
    for features, labels, weights in dataset:
        batch_total, batch_count, batch_correct = sums(features, labels, weights)
        total, count = total + float(batch_total), count + float(batch_count)
        correct += float(batch_correct)
    loss = total / max(count, 1.0)
    return {"loss": loss, "accuracy": correct / max(count, 1.0),
            "perplexity": math.exp(min(loss, 700.0)), "masked_tokens": int(count)}


def evaluate(workdir, split="validation", which="latest", batch_size=None):
    """Masked-LM metrics of a workdir on a split (fixed masks), plus `step`."""
    config, tokenizer, model, step = load(workdir, which)
    options = config.data.get("source_options", None) or {}
    if hasattr(options, "to_dict"):
        options = options.to_dict()
    dataset = masking.masked_lm_dataset(
        sources.text_dataset(config.data.source, split, **options), tokenizer,
        config.data.sequence_length, batch_size or config.train.batch_size, training=False,
        rate=config.data.get("mask_rate", 0.15), seed=config.data.get("seed", 0),
    )
    start = time.perf_counter()
    metrics = evaluate_model(model, dataset, config.train.get("jit_compile", True))
    metrics.update(step=step, split=split, seconds=time.perf_counter() - start)
    return metrics


def format_metrics(metrics):
    keys = ["loss", "accuracy", "perplexity"]
    text = "  ".join(f"{k}={metrics[k]:.4f}" for k in keys if k in metrics)
    return text + (f"  masked_tokens={metrics['masked_tokens']}" if "masked_tokens" in metrics
                   else "")


def train_and_report(config, workdir):
    """`keras-lm train`: pre-trains, then prints the validation metrics."""
    result = train(config, workdir)
    logging.info("Trained steps %d..%d in %.1f s.", result.initial_step, result.final_step,
                 result.wall_time_s)
    metrics = evaluate(workdir, "validation")
    print(f"validation @ step {metrics['step']}: {format_metrics(metrics)}")
    return result


# ------------------------------------------------------------------ fine-tuning from a workdir
def check_same_vocabulary(tokenizer, pretrained_tokenizer, init_from):
    """Raises ValueError unless the two tokenizers map every id to the same token."""
    size, pretrained_size = tokenizer.vocabulary_size, pretrained_tokenizer.vocabulary_size
    if size != pretrained_size:
        raise ValueError(
            f"The pre-trained workdir config.init_from={init_from!r} has a vocabulary of "
            f"{pretrained_size} tokens but this model's tokenizer has {size}: its embeddings "
            "would not match. Fine-tune with the pre-trained workdir's tokenizer (start from an "
            "empty workdir: the tokenizer is then copied from init_from)."
        )
    differ = [i for i in range(size)
              if tokenizer.id_to_token(i) != pretrained_tokenizer.id_to_token(i)]
    if differ:
        i = differ[0]
        raise ValueError(
            f"The pre-trained workdir config.init_from={init_from!r} has a different vocabulary "
            f"({len(differ)} of {size} ids differ; id {i} is "
            f"{pretrained_tokenizer.id_to_token(i)!r} there and {tokenizer.id_to_token(i)!r} "
            "here). Fine-tune with the pre-trained workdir's tokenizer."
        )


def load_pretrained_backbone(backbone, init_from, which="latest", tokenizer=None):
    """Copies the backbone weights of a masked-LM workdir into `backbone`.

    The masked LM is rebuilt from the workdir's own config, its checkpoint restored, and its
    backbone's variables assigned to `backbone`'s one by one (the MLM head is left behind).

    Args:
        backbone: a built `EncoderBackbone` with the same architecture fields.
        init_from: str, the pre-trained masked-LM workdir.
        which: "latest" or "best" checkpoint.
        tokenizer: the fine-tuning tokenizer, checked against the workdir's (None: no check).

    Returns:
        The restored checkpoint's step.

    Raises:
        ValueError: another task's workdir, a different vocabulary, or architecture fields
            that differ (the message lists them).
    """
    config = workdir_lib.read_config(init_from)
    if config.get("task") != "masked_lm":
        raise ValueError(
            f"config.init_from={init_from!r} is a {config.get('task')!r} workdir; initialise "
            "from a masked_lm (pre-training) workdir."
        )
    pretrained_tokenizer = build_tokenizer(config, init_from)
    if tokenizer is not None:
        check_same_vocabulary(tokenizer, pretrained_tokenizer, init_from)
    source = build_model(config.model, pretrained_tokenizer)
    if source.backbone.vocabulary_size != backbone.vocabulary_size:
        raise ValueError(
            f"The checkpoint of config.init_from={init_from!r} has a vocabulary of "
            f"{source.backbone.vocabulary_size} ids but this backbone has "
            f"{backbone.vocabulary_size}. Use the pre-trained workdir's tokenizer."
        )
    target_config = backbone.get_config()
    differ = [f"{name}: pre-trained {getattr(source.backbone, name)!r}, here "
              f"{target_config[name]!r}"
              for name in ARCHITECTURE_FIELDS
              if getattr(source.backbone, name) != target_config[name]]
    if differ:
        raise ValueError(
            f"config.model differs from the pre-trained encoder of {init_from!r} in "
            f"{'; '.join(differ)}. Set these config.model fields to the pre-trained values."
        )
    step = workdir_lib.restore_weights(source, init_from, which)
    for target, value in zip(backbone.variables, source.backbone.variables):
        target.assign(value)
    logging.info("Loaded the pre-trained encoder of %s (step %d).", init_from, step)
    return step


def workdir_tokenizer(workdir):
    """The tokenizer saved in a trained workdir."""
    from keras_lm import tokenizers

    return tokenizers.load_tokenizer(os.path.join(workdir, workdir_lib.TOKENIZER_DIR))


def fine_tuning_tokenizer(config, workdir, training_texts):
    """The tokenizer of a fine-tuning task (classification, tagging, QA).

    In order: the workdir's own tokenizer (a resumed or trained run); else, with
    `config.init_from`, the pre-trained workdir's tokenizer (copied into the workdir, so the
    embeddings match); else `config.tokenizer` fitted on `training_texts()` (a callable
    returning the texts of `config.tokenizer.fit_splits`; called only when needed).
    With `config.init_from`, a workdir tokenizer that differs from the pre-trained one is a
    ValueError.
    """
    from keras_lm import tokenizers

    init_from = config.get("init_from", "")
    directory = None if workdir is None else os.path.join(workdir, workdir_lib.TOKENIZER_DIR)
    pretrained = None
    if init_from:
        pretrained = tokenizers.load_tokenizer(os.path.join(init_from, workdir_lib.TOKENIZER_DIR))
    # An incomplete workdir tokenizer, or one built from other settings (another init_from,
    # data source or tokenizer section), is rebuilt while the workdir holds no checkpoint.
    if directory is not None and workdir_lib.reusable_tokenizer(workdir, config):
        tokenizer = tokenizers.load_tokenizer(directory)
        if pretrained is not None:
            check_same_vocabulary(tokenizer, pretrained, init_from)
        return tokenizer
    if pretrained is not None:
        if directory is not None:
            pretrained.save(directory)
            workdir_lib.record_tokenizer_inputs(workdir, config)
            return tokenizers.load_tokenizer(directory)
        return pretrained
    tokenizer_config = config.tokenizer.to_dict()
    fit_splits = tokenizer_config.pop("fit_splits", ("train",))
    texts = None
    if tokenizer_config.get("type") in ("char", "sentencepiece") and not tokenizer_config.get(
        "model_file"
    ):
        texts = training_texts(fit_splits)
    tokenizer = tokenizers.from_config(tokenizer_config, texts=texts, directory=directory)
    if directory is not None:
        workdir_lib.record_tokenizer_inputs(workdir, config)
    return tokenizer


def build_fine_tuned(head_class, config, tokenizer, num_labels, initialize=False):
    """A built `head_class(backbone, num_labels, ...)` (a classifier or tagger).

    With `initialize` and `config.init_from` set, the backbone is first loaded from that
    pre-trained masked-LM workdir (see `load_pretrained_backbone`).
    """
    backbone = build_backbone(config.model, encoder_inputs.encoder_vocabulary_size(tokenizer))
    if initialize and config.get("init_from", ""):
        load_pretrained_backbone(backbone, config.init_from,
                                 config.get("init_checkpoint", "latest"), tokenizer)
    model = head_class(backbone, num_labels, dropout=config.classifier.dropout,
                       freeze_backbone=config.classifier.freeze_backbone)
    model.build()
    return model
