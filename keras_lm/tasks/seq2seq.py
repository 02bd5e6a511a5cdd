"""Sequence-to-sequence: train, evaluate and decode an encoder-decoder model from a config.

The one place where pairs, tokenizers, the `Seq2SeqTransformer`, the optimizer and decoding
meet. Training is teacher-forced cross-entropy over the target tokens (`keras_lm.training.fit`,
resumable); evaluation reports, on a split,

    loss, perplexity         teacher-forced, per target token (end-of-sequence included)
    <decoder>_bleu           sacrebleu corpus BLEU and chrF (signatures in the result)
    <decoder>_chrf
    <decoder>_exact_match    fraction of outputs equal to the reference
    <decoder>_cer            character error rate (edit distance / reference characters)

for each decoder of `config.evaluate.beam_sizes` (`greedy`, `beam4`, ...) and, with
`config.evaluate.copy_baseline`, for the do-nothing baseline that outputs its source (`copy`).

Workdir: config.json, tokenizer/ (target_tokenizer/ for separate vocabularies), checkpoints/,
tensorboard/, pairs/ (aligned Shakespeare pairs, kept so evaluation need not realign).
"""

import inspect
import os
import time
import weakref

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from keras_lm import tokenizers
from keras_lm.data import seq2seq as seq2seq_data
from keras_lm.data.lm_pipeline import check_data_fields
from keras_lm.metrics import text_generation
from keras_lm.tasks import workdir as workdir_lib
from keras_lm.training import cross_entropy_sums
from keras_lm.training import fit

MODEL_TYPES = {
    "seq2seq_transformer": ("keras_lm.models.seq2seq_transformer", "Seq2SeqTransformer"),
}
TARGET_TOKENIZER_DIR = "target_tokenizer"
PAIRS_DIR = "pairs"
SHARED = "shared"
# Config values meaning "unset" for constructor arguments whose default is None
# (ml_collections cannot override a None field from the command line).
_ZERO_MEANS_NONE = ("intermediate_dim", "num_decoder_layers")
_LOSS_FUNCTIONS = weakref.WeakKeyDictionary()  # model -> {jit_compile: its loss-sum step}


def default_config():
    """The fields every sequence-to-sequence config shares (a tiny digit-reversal task).

    Sections: `data` (pairs and lengths), `tokenizer` (source, or shared), `target_tokenizer`
    (`type="shared"` for one vocabulary, else a tokenizer config), `model`, `train` (the
    shared training fields), `evaluate` (decoders and baseline), `sample` (printed after
    training).
    """
    from keras_lm.training import default_train_config

    config = ml_collections.ConfigDict()
    config.task = "seq2seq"
    config.data = ml_collections.ConfigDict(dict(
        source="algorithmic:reverse_digits",
        source_options=ml_collections.ConfigDict(),
        source_length=16,  # encoder positions: source tokens + eos
        target_length=16,  # decoder positions: bos + target tokens (= target tokens + eos)
        shuffle_buffer=10_000,
        seed=0,
    ))
    # One vocabulary fitted on sources and targets of `fit_splits`: the embeddings are tied.
    config.tokenizer = ml_collections.ConfigDict(dict(type="char", fit_splits=("train",)))
    config.target_tokenizer = ml_collections.ConfigDict(dict(type=SHARED))
    config.model = ml_collections.ConfigDict(dict(
        type="seq2seq_transformer", num_layers=2, num_decoder_layers=0, num_heads=4,
        hidden_dim=128, intermediate_dim=0, activation="gelu", position_encoding="learned",
        norm="layer_norm", dropout=0.0, tie_embeddings=True,
    ))
    config.train = default_train_config()
    config.evaluate = ml_collections.ConfigDict(dict(
        beam_sizes=(1, 4),  # 1 = greedy; each K > 1 a beam search
        length_penalty=0.0,  # alpha of log P / ((5 + n) / 6) ** alpha
        copy_baseline=True,  # also score the source itself as the output
        max_examples=0,  # 0 = the whole split
        batch_size=64,
        jit_compile=True,  # XLA for the loss and the decoding loops (False: faster to compile)
    ))
    config.sample = ml_collections.ConfigDict(dict(inputs=("0123456789",), beam_size=4))
    return config


# --------------------------------------------------------------------------------- building
def model_class(model_type):
    if model_type not in MODEL_TYPES:
        raise ValueError(
            f"Unknown config.model.type {model_type!r}. Valid types: {sorted(MODEL_TYPES)}."
        )
    module, name = MODEL_TYPES[model_type]
    return getattr(__import__(module, fromlist=[name]), name)


def build_model(config, vocabulary_size, target_vocabulary_size=None):
    """The model of `config.model`, sized by `config.data` lengths and the vocabularies."""
    fields = config.model.to_dict()
    cls = model_class(fields.pop("type", "seq2seq_transformer"))
    fields.update(sequence_length=config.data.source_length,
                  target_sequence_length=config.data.target_length,
                  vocabulary_size=vocabulary_size,
                  target_vocabulary_size=target_vocabulary_size)
    valid = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")]
    unknown = sorted(set(fields) - set(valid))
    if unknown:
        raise ValueError(
            f"Unknown config.model field(s) {unknown} for {cls.__name__}. Valid fields: "
            f"{sorted(set(valid) - {'sequence_length', 'target_sequence_length'})} "
            "(lengths come from config.data, vocabularies from the tokenizers)."
        )
    for name in _ZERO_MEANS_NONE:
        if fields.get(name) == 0:
            fields[name] = None
    model = cls(**fields)
    model.build()
    return model


def load_split_pairs(config, split, workdir=None):
    """The (source, target) pairs of a split; aligned Shakespeare pairs are kept in workdir."""
    options = config.data.get("source_options", None) or {}
    if hasattr(options, "to_dict"):
        options = options.to_dict()
    source = config.data.source
    if (workdir is not None and isinstance(source, str)
            and source.startswith("shakespeare_folio") and "cache_dir" not in options):
        options["cache_dir"] = os.path.join(workdir, PAIRS_DIR)
    return seq2seq_data.load_pairs(source, split, **options)


def build_tokenizers(config, workdir=None):
    """(source tokenizer, target tokenizer): loaded from the workdir, or built (and saved).

    With `config.target_tokenizer.type == "shared"` both are the same tokenizer, fitted on
    sources and targets together.
    """
    shared = config.target_tokenizer.type == SHARED

    def build(section, name, texts_of):
        directory = None if workdir is None else os.path.join(workdir, name)
        # An incomplete folder, or one fitted on other settings, is rebuilt while the workdir
        # holds no checkpoint (see `workdir.reusable_tokenizer`).
        if directory is not None and workdir_lib.reusable_tokenizer(workdir, config, name):
            return tokenizers.load_tokenizer(directory)
        tokenizer_config = section.to_dict()
        default_splits = config.tokenizer.get("fit_splits", ("train",))
        fit_splits = tokenizer_config.pop("fit_splits", default_splits)
        texts = None
        if tokenizer_config.get("type") in ("char", "sentencepiece") and not (
            tokenizer_config.get("model_file")
        ):
            texts = []
            for split in fit_splits:
                texts.extend(texts_of(load_split_pairs(config, split, workdir)))
        tokenizer = tokenizers.from_config(tokenizer_config, texts=texts, directory=directory)
        if directory is not None:
            workdir_lib.record_tokenizer_inputs(workdir, config, name)
        return tokenizer

    if shared:
        tokenizer = build(config.tokenizer, workdir_lib.TOKENIZER_DIR,
                          lambda pairs: [text for pair in pairs for text in pair])
        return tokenizer, tokenizer
    source = build(config.tokenizer, workdir_lib.TOKENIZER_DIR,
                   lambda pairs: [pair[0] for pair in pairs])
    target = build(config.target_tokenizer, TARGET_TOKENIZER_DIR,
                   lambda pairs: [pair[1] for pair in pairs])
    return source, target


def _build(config, source_tokenizer, target_tokenizer):
    shared = config.target_tokenizer.type == SHARED
    return build_model(config, source_tokenizer.vocabulary_size,
                       None if shared else target_tokenizer.vocabulary_size)


# --------------------------------------------------------------------------------- training
def train(config, workdir):
    """Trains (or resumes) the experiment `config` in `workdir`; returns a `TrainResult`."""
    workdir = os.fspath(workdir)
    check_data_fields(config.data, default_config().data.keys())
    check_decoding_config(config)  # before training: evaluation and samples run after it
    workdir_lib.write_config(workdir, config)
    source_tokenizer, target_tokenizer = build_tokenizers(config, workdir)
    logging.info("Vocabularies: source %d, target %d (%s).", source_tokenizer.vocabulary_size,
                 target_tokenizer.vocabulary_size,
                 "shared" if source_tokenizer is target_tokenizer else "separate")
    batch_size = config.train.batch_size
    pairs = {split: load_split_pairs(config, split, workdir) for split in ("train", "validation")}
    for split, split_pairs in pairs.items():
        check_lengths(config, split_pairs, source_tokenizer, target_tokenizer, split,
                      required=split == "train")

    def datasets(start_step):
        return seq2seq_data.build_seq2seq_datasets(
            config.data, source_tokenizer, batch_size, target_tokenizer=target_tokenizer,
            start_step=start_step, pairs_loader=pairs.__getitem__)

    _, validation_ds = datasets(0)

    def build():
        model = _build(config, source_tokenizer, target_tokenizer)
        logging.info("%s: %s parameters.", type(model).__name__, f"{model.count_params():,}")
        return model

    return fit(
        build_model=build,
        make_train_dataset=lambda start_step: datasets(start_step)[0],
        validation_dataset=validation_ds,
        workdir=workdir,
        train_config=config.train,
        tokens_per_step=batch_size * config.data.target_length,
    )


def check_decoding_config(config):
    """Raises a ValueError naming a bad or misspelt `config.evaluate` / `config.sample` field.

    Training runs these sections only once it is over (validation metrics, samples), so a
    bad value is caught before the first step rather than after the last.
    """
    defaults = default_config()
    for section in ("evaluate", "sample"):
        fields = config.get(section)
        if fields is None:
            continue
        unknown = sorted(set(fields.keys()) - set(defaults[section].keys()))
        if unknown:
            raise ValueError(
                f"Unknown config.{section} field(s) {unknown}. Known fields: "
                f"{sorted(defaults[section].keys())}. Check the spelling in the config file "
                f"or the --config.{section}.* override."
            )

    def is_int(value, minimum):
        return (not isinstance(value, bool) and isinstance(value, (int, np.integer))
                and value >= minimum)

    evaluate_config = config.evaluate
    beam_sizes = evaluate_config.get("beam_sizes", ())
    if isinstance(beam_sizes, (int, np.integer)):
        beam_sizes = (beam_sizes,)
    if not all(is_int(k, 1) for k in beam_sizes):
        raise ValueError(
            "config.evaluate.beam_sizes must hold ints >= 1 (1: greedy, K > 1: beam search). "
            f"Received: beam_sizes={tuple(beam_sizes)!r}")
    checks = [("evaluate.batch_size", evaluate_config.get("batch_size", 64), 1),
              ("evaluate.max_examples", evaluate_config.get("max_examples", 0), 0)]
    if config.get("sample"):
        checks.append(("sample.beam_size", config.sample.get("beam_size", 1), 1))
    for name, value, minimum in checks:
        if not is_int(value, minimum):
            raise ValueError(f"config.{name} must be an int >= {minimum}. Received: {value!r}")
    length_penalty = evaluate_config.get("length_penalty", 0.0)
    if isinstance(length_penalty, bool) or not isinstance(
        length_penalty, (int, float, np.integer, np.floating)
    ) or not length_penalty >= 0:
        raise ValueError(
            "config.evaluate.length_penalty must be a number >= 0 (0 ranks by log "
            f"probability). Received: {length_penalty!r}")


def check_lengths(config, pairs, source_tokenizer, target_tokenizer, split, required=False):
    """Reports the pairs too long for `config.data` lengths (they get weight 0: not learned,
    not in the teacher-forced loss).

    Logs a warning when some pairs do not fit; raises a ValueError when none does and
    `required` (training on them would learn nothing). Returns `seq2seq_data.length_report`.
    """
    data = config.data
    report = seq2seq_data.length_report(pairs, source_tokenizer, data.source_length,
                                        data.target_length, target_tokenizer=target_tokenizer)
    dropped = report["pairs"] - report["fitting"]
    if not dropped:
        return report
    advice = (f"The longest {split} pair needs config.data.source_length="
              f"{report['longest_source']} (source tokens + eos) and config.data.target_length="
              f"{report['longest_target']} (target tokens + eos); the config has "
              f"source_length={data.source_length}, target_length={data.target_length}.")
    if required and not report["fitting"]:
        raise ValueError(
            f"None of the {report['pairs']} {split} pairs fits the model's lengths, so "
            f"training would learn nothing. {advice} Raise the lengths, or shorten the pairs "
            "(e.g. the aligner's source_options.max_chars)."
        )
    logging.warning("%d of %d %s pairs are too long for the model and get weight 0 (not "
                    "learned, not in the loss). %s", dropped, report["pairs"], split, advice)
    return report


def prepare_inputs(config, texts):
    """Brings raw text to the form of the training sources.

    The aligned Shakespeare pairs are lower-case words without punctuation
    (`keras_lm.data.alignment.tokenize_words`); text typed at `keras-lm generate` gets the same
    treatment for a "shakespeare_folio" experiment. Other sources are used as given.
    """
    source = config.data.source
    if isinstance(source, str) and source.startswith("shakespeare_folio"):
        from keras_lm.data.alignment import tokenize_words

        return [" ".join(word.text for word in tokenize_words(text)) for text in texts]
    return list(texts)


def load(workdir, which="latest"):
    """(config, source tokenizer, target tokenizer, model, step) of a trained workdir."""
    config = workdir_lib.read_config(workdir)
    source_tokenizer, target_tokenizer = build_tokenizers(config, workdir)
    model = _build(config, source_tokenizer, target_tokenizer)
    step = workdir_lib.restore_weights(model, workdir, which)
    return config, source_tokenizer, target_tokenizer, model, step


# ------------------------------------------------------------------------------- evaluation
def teacher_forced_loss(model, dataset, jit_compile=True):
    """Mean cross-entropy (nats) per real target token of a `seq2seq_dataset`, and the count.

    NaN (count 0) when no target token has weight: every pair is too long for the lengths.
    """
    functions = _LOSS_FUNCTIONS.setdefault(model, {})
    if jit_compile not in functions:
        functions[jit_compile] = tf.function(
            lambda features, labels, weights: cross_entropy_sums(
                labels, model(features, training=False), weights),
            jit_compile=jit_compile, reduce_retracing=True)
    sums = functions[jit_compile]
    total, count = 0.0, 0.0
    for features, labels, weights in dataset:
        batch_total, batch_count = sums(features, labels, weights)
        total += float(batch_total)
        count += float(batch_count)
    if not count:  # every pair too long (weight 0) or no pairs: there is no loss to report
        return float("nan"), 0
    return total / count, int(round(count))


def transduce(model, source_tokenizer, target_tokenizer, sources, beam_size=1,
              length_penalty=0.0, batch_size=64, max_length=None, jit_compile=True):
    """Decodes `sources` (list of str) in fixed-size batches; returns the outputs (str).

    Every batch has `batch_size` rows (the last one is filled with repeats) and every source
    the model's full `sequence_length`, so the decoding loop compiles once. Sources too long
    for the model are truncated.
    """
    from keras_lm.models.seq2seq_decoding import generate

    outputs = []
    for start in range(0, len(sources), batch_size):
        batch = list(sources[start:start + batch_size])
        real = len(batch)
        batch += [batch[0]] * (batch_size - real)
        decoded = generate(model, batch, tokenizer=source_tokenizer,
                           target_tokenizer=target_tokenizer, max_length=max_length,
                           beam_size=beam_size, length_penalty=length_penalty, truncate=True,
                           jit_compile=jit_compile)
        outputs.extend(decoded[:real])
    return outputs


def decoder_name(beam_size):
    return "greedy" if beam_size == 1 else f"beam{beam_size}"


def evaluate_model(config, model, source_tokenizer, target_tokenizer, pairs, beam_sizes=None,
                   copy_baseline=None, examples_out=None, length_penalty=None):
    """Teacher-forced loss and decoding metrics of `model` on `pairs` (see module docstring).

    Args:
        config: the experiment config (`data` lengths, `evaluate` defaults).
        model, source_tokenizer, target_tokenizer: what `load` returns.
        pairs: list of (source, target) str.
        beam_sizes, copy_baseline, length_penalty: override `config.evaluate`.
        examples_out: optional dict filled with {decoder name: outputs} for inspection.
    """
    evaluate_config = config.evaluate
    beam_sizes = tuple(evaluate_config.beam_sizes if beam_sizes is None else beam_sizes)
    copy_baseline = evaluate_config.copy_baseline if copy_baseline is None else copy_baseline
    if length_penalty is None:
        length_penalty = evaluate_config.length_penalty
    dataset = seq2seq_data.seq2seq_dataset(
        pairs, source_tokenizer, config.data.source_length, config.data.target_length,
        evaluate_config.batch_size, training=False, target_tokenizer=target_tokenizer)
    jit_compile = evaluate_config.get("jit_compile", True)
    check_lengths(config, pairs, source_tokenizer, target_tokenizer, "evaluation")
    loss, tokens = teacher_forced_loss(model, dataset, jit_compile)
    metrics = {"loss": loss, "perplexity": float(np.exp(min(loss, 700.0))), "tokens": tokens,
               "examples": len(pairs), "length_penalty": length_penalty}
    sources = [source for source, _ in pairs]
    references = [target for _, target in pairs]
    decoded = {}
    if copy_baseline:
        decoded["copy"] = sources
    for beam_size in beam_sizes:
        start = time.perf_counter()
        decoded[decoder_name(beam_size)] = transduce(
            model, source_tokenizer, target_tokenizer, sources, beam_size, length_penalty,
            evaluate_config.batch_size, jit_compile=jit_compile)
        metrics[f"{decoder_name(beam_size)}_seconds"] = time.perf_counter() - start
    for name, outputs in decoded.items():
        scores = text_generation.text_generation_metrics(outputs, references)
        metrics.update({
            f"{name}_bleu": scores["bleu"],
            f"{name}_chrf": scores["chrf"],
            f"{name}_exact_match": scores["exact_match"],
            f"{name}_cer": scores["character_error_rate"],
        })
        metrics["bleu_signature"] = scores["bleu_signature"]
        metrics["chrf_signature"] = scores["chrf_signature"]
    if examples_out is not None:
        examples_out.update(decoded)
    return metrics


def evaluate(workdir, split="validation", which="latest", beam_sizes=None, max_examples=None,
             examples_out=None, length_penalty=None):
    """Evaluates a trained workdir on a split; returns the metrics dict (plus `step`).

    Args:
        workdir: the experiment directory.
        split: "train", "validation" or "test".
        which: "latest" or "best" checkpoint.
        beam_sizes: decoders to score (default `config.evaluate.beam_sizes`).
        max_examples: score the first N pairs only (default `config.evaluate.max_examples`,
            0 = all).
        examples_out: optional dict filled with the sources, references and outputs.
        length_penalty: beam search alpha (default `config.evaluate.length_penalty`).
    """
    config, source_tokenizer, target_tokenizer, model, step = load(workdir, which)
    check_decoding_config(config)
    pairs = load_split_pairs(config, split, workdir)
    limit = config.evaluate.max_examples if max_examples is None else max_examples
    if limit:
        pairs = pairs[:limit]
    start = time.perf_counter()
    outputs = {} if examples_out is None else examples_out
    metrics = evaluate_model(config, model, source_tokenizer, target_tokenizer, pairs,
                             beam_sizes, examples_out=outputs, length_penalty=length_penalty)
    outputs["sources"] = [s for s, _ in pairs]
    outputs["references"] = [t for _, t in pairs]
    metrics.update(step=step, split=split, seconds=time.perf_counter() - start)
    return metrics


def format_metrics(metrics):
    """One line per decoder: `copy`, `greedy`, `beam4`, ..., after the teacher-forced loss."""
    lines = [f"loss={metrics['loss']:.4f}  perplexity={metrics['perplexity']:.4f}  "
             f"examples={metrics['examples']}"]
    names = [key[: -len("_bleu")] for key in metrics if key.endswith("_bleu")]
    for name in names:
        lines.append(
            f"  {name:>8}: BLEU={metrics[name + '_bleu']:.2f}  chrF={metrics[name + '_chrf']:.2f}"
            f"  exact_match={metrics[name + '_exact_match']:.4f}"
            f"  CER={metrics[name + '_cer']:.4f}"
        )
    if "bleu_signature" in metrics:
        lines.append(f"  BLEU {metrics['bleu_signature']}; chrF {metrics['chrf_signature']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- decoding
def generate(workdir, prompts, max_new_tokens=None, which="latest", beam_size=1,
             length_penalty=None, temperature=0.0, top_k=0, top_p=1.0, seed=0,
             stop_strings=None, truncate=True):
    """Loads a workdir and transduces `prompts` (list of str); returns the outputs.

    The prompts are first brought to the form of the training sources (`prepare_inputs`).

    Args:
        max_new_tokens: most target tokens (capped at the model's target length).
        beam_size: 1 for greedy decoding / sampling, K > 1 for beam search (which ignores
            temperature, top_k and top_p).
        length_penalty: beam search alpha (default `config.evaluate.length_penalty`).
        stop_strings: outputs are cut before the first occurrence of each.
        truncate: cut sources longer than the model's source length instead of raising.
    """
    if max_new_tokens is not None and (
        isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int)
        or max_new_tokens < 1
    ):
        raise ValueError(
            "`max_new_tokens` must be an int >= 1 (it is capped at the model's target length). "
            f"Received: max_new_tokens={max_new_tokens!r}"
        )
    config, source_tokenizer, target_tokenizer, model, _ = load(workdir, which)
    if length_penalty is None:
        length_penalty = config.evaluate.length_penalty
    if max_new_tokens is not None:
        max_new_tokens = min(max_new_tokens, model.target_sequence_length)
    sampling = {} if beam_size > 1 else dict(temperature=temperature, top_k=top_k, top_p=top_p,
                                             seed=seed)
    outputs = model.generate(prepare_inputs(config, prompts), tokenizer=source_tokenizer,
                             target_tokenizer=target_tokenizer, max_length=max_new_tokens,
                             beam_size=beam_size, length_penalty=length_penalty,
                             truncate=truncate,
                             jit_compile=config.evaluate.get("jit_compile", True), **sampling)
    for stop in stop_strings or ():
        outputs = [output.split(stop, 1)[0] for output in outputs]
    return outputs


def export(workdir, export_dir, version=None, overwrite=False, which="latest"):
    """`keras-lm export`: the workdir's model as `export_dir/<version>/`, a SavedModel.

    Signatures `generate(texts)` and `generate_with_options(texts, max_new_tokens,
    beam_size)` -> `texts` (see `keras_lm.export.Seq2SeqModule`). The defaults are
    `config.sample.beam_size` and the model's target length; beam search uses
    `config.evaluate.length_penalty`; beam sizes up to the largest of 8,
    `config.evaluate.beam_sizes` and the default are served. Sources are used as given (no
    `prepare_inputs`). Returns the version directory.
    """
    from keras_lm.export import export_model

    config, source_tokenizer, target_tokenizer, model, step = load(workdir, which)
    sample = config.get("sample") or {}
    beam_size = int(sample.get("beam_size", 1) or 1)
    beam_sizes = tuple(config.evaluate.get("beam_sizes", ()))
    return export_model(
        model, source_tokenizer, export_dir, version=version, overwrite=overwrite,
        config=config, step=step,
        target_tokenizer=None if target_tokenizer is source_tokenizer else target_tokenizer,
        beam_size=beam_size, length_penalty=float(config.evaluate.length_penalty),
        max_beam_size=max((8, beam_size) + beam_sizes))


def train_and_report(config, workdir):
    """`keras-lm train`: trains, prints validation metrics and the config's samples."""
    result = train(config, workdir)
    logging.info("Trained steps %d..%d in %.1f s.", result.initial_step, result.final_step,
                 result.wall_time_s)
    source_tokenizer, target_tokenizer = build_tokenizers(config, workdir)
    pairs = load_split_pairs(config, "validation", workdir)
    if config.evaluate.max_examples:
        pairs = pairs[: config.evaluate.max_examples]
    metrics = evaluate_model(config, result.model, source_tokenizer, target_tokenizer, pairs)
    print(f"validation @ step {result.final_step}: {format_metrics(metrics)}")
    samples = config.get("sample")
    if samples and samples.inputs:
        outputs = result.model.generate(
            prepare_inputs(config, samples.inputs), tokenizer=source_tokenizer,
            target_tokenizer=target_tokenizer,
            beam_size=samples.beam_size, length_penalty=config.evaluate.length_penalty,
            truncate=True, jit_compile=config.evaluate.get("jit_compile", True))
        for source, output in zip(samples.inputs, outputs):
            print(f"--- sample (beam {samples.beam_size}) ---\n{source}\n=> {output}")
    return result
