"""Language modelling: train, evaluate and sample any keras_lm LM from a config.

The one place where text, tokenizer, model, optimizer and strategy meet for LMs. Every LM
(Transformer, recurrent, HMM, n-gram) is evaluated the same way, on the same tokens, so
their figures share one scale:

    loss               mean negative log-likelihood per token (nats)
    perplexity         exp(loss)
    bits_per_token     loss / ln 2
    bits_per_character total NLL / ln 2 / (characters + documents)
    bits_per_byte      total NLL / ln 2 / (UTF-8 bytes + documents)

Each document ends with one separator token that the model must also predict; it counts as
one character and one byte, so a character-level model's bits per token and bits per
character coincide.
"""

import inspect
import json
import math
import os
import time

import keras
import tensorflow as tf
from absl import logging

from keras_lm import data as lm_data
from keras_lm import tokenizers
from keras_lm.tasks import workdir as workdir_lib
from keras_lm.training import cross_entropy_sums
from keras_lm.training import fit

# Model types of `config.model.type`, resolved lazily so each family stays optional.
MODEL_TYPES = {
    "decoder": ("keras_lm.models.decoder_lm", "DecoderLM"),
    "rnn": ("keras_lm.models.recurrent_lm", "RecurrentLM"),
    "ngram": ("keras_lm.models.ngram_lm", "NGramLM"),
    "hmm": ("keras_lm.models.hmm_lm", "HMMLanguageModel"),
}
# Counted, not trained by gradient: `train` counts, `load` reads the counts back.
_COUNT_MODELS = ("ngram",)
NGRAM_DIR = workdir_lib.NGRAM_DIR
EM_HISTORY_FILE = "em_history.json"  # the log-likelihood of every finished EM iteration
# Config values meaning "unset" for fields whose constructor default is None (ml_collections
# cannot override a None field from the command line, so configs use 0 instead).
_ZERO_MEANS_NONE = ("intermediate_dim", "num_key_value_heads")
_FIT_SPLITS_FIELD = "fit_splits"


def model_class(model_type):
    if model_type not in MODEL_TYPES:
        raise ValueError(
            f"Unknown config.model.type {model_type!r}. Valid types: {sorted(MODEL_TYPES)}."
        )
    module, name = MODEL_TYPES[model_type]
    return getattr(__import__(module, fromlist=[name]), name)


def build_model(model_config, vocabulary_size, tokenizer=None):
    """The model a `config.model` section describes, for a tokenizer of `vocabulary_size`.

    Special-token ids a model asks for (`bos_id`, `eos_id`, `unk_id`: the n-gram model's
    sequence boundaries) come from `tokenizer`.
    """
    fields = dict(model_config.to_dict() if hasattr(model_config, "to_dict") else model_config)
    cls = model_class(fields.pop("type", "decoder"))
    valid = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")]
    unknown = sorted(set(fields) - set(valid))
    if unknown:
        raise ValueError(
            f"Unknown config.model field(s) {unknown} for {cls.__name__}. Valid fields: "
            f"{sorted(valid)}."
        )
    if "vocabulary_size" in fields and fields["vocabulary_size"] != vocabulary_size:
        raise ValueError(
            f"config.model.vocabulary_size={fields['vocabulary_size']} does not match the "
            f"tokenizer's vocabulary of {vocabulary_size}; drop the field (it is taken from "
            "the tokenizer) or fix the tokenizer."
        )
    fields["vocabulary_size"] = vocabulary_size
    for name in _ZERO_MEANS_NONE:
        if fields.get(name) == 0:
            fields[name] = None
    for name in ("bos_id", "eos_id", "unk_id"):
        if name in valid and name not in fields and tokenizer is not None:
            fields[name] = getattr(tokenizer, name)
    model = cls(**fields)
    if hasattr(model, "build"):
        model.build()
    return model


def build_tokenizer(config, workdir=None):
    """Loads the workdir's tokenizer, or builds it from `config.tokenizer` (and saves it).

    A workdir tokenizer that is incomplete or was fitted on other settings is rebuilt while
    the workdir holds no checkpoint (see `workdir.reusable_tokenizer`).
    """
    directory = None if workdir is None else os.path.join(workdir, workdir_lib.TOKENIZER_DIR)
    if directory is not None and workdir_lib.reusable_tokenizer(workdir, config):
        return tokenizers.load_tokenizer(directory)
    tokenizer_config = config.tokenizer.to_dict()
    fit_splits = tokenizer_config.pop(_FIT_SPLITS_FIELD, ("train",))
    texts = None
    if tokenizer_config.get("type") in ("char", "sentencepiece") and not tokenizer_config.get(
        "model_file"
    ):
        texts = []
        for split in fit_splits:
            texts.extend(_documents(config, split))
    tokenizer = tokenizers.from_config(tokenizer_config, texts=texts, directory=directory)
    if directory is not None:
        workdir_lib.record_tokenizer_inputs(workdir, config)
    return tokenizer


def _documents(config, split):
    options = config.data.get("source_options", None) or {}
    if hasattr(options, "to_dict"):
        options = options.to_dict()
    return lm_data.load_documents(config.data.source, split, **options)


def train(config, workdir):
    """Trains (or resumes) the experiment `config` in `workdir`; returns a `TrainResult`."""
    workdir = os.fspath(workdir)
    lm_data.lm_pipeline.check_data_fields(config.data, lm_data.lm_pipeline.DATA_FIELDS)
    _check_em_fields(config.get("em"))
    workdir_lib.write_config(workdir, config)
    tokenizer = build_tokenizer(config, workdir)
    logging.info("Tokenizer %s, vocabulary %d.", type(tokenizer).__name__,
                 tokenizer.vocabulary_size)
    if config.model.get("type", "decoder") in _COUNT_MODELS:
        return _count_ngrams(config, workdir, tokenizer)
    if config.get("em") and config.em.iterations > 0:
        return _train_em(config, workdir, tokenizer)
    batch_size, sequence_length = config.train.batch_size, config.data.sequence_length
    if config.model.get("sequence_length", sequence_length) < sequence_length:
        raise ValueError(
            f"config.data.sequence_length={sequence_length} is longer than the model's "
            f"context config.model.sequence_length={config.model.sequence_length}."
        )
    _, validation_ds = lm_data.build_lm_datasets(config.data, tokenizer, batch_size)

    def make_train_dataset(start_step):
        train_ds, _ = lm_data.build_lm_datasets(config.data, tokenizer, batch_size, start_step)
        return train_ds

    def build():
        model = build_model(config.model, tokenizer.vocabulary_size)
        logging.info("%s: %s parameters.", type(model).__name__, f"{model.count_params():,}")
        return model

    return fit(
        build_model=build,
        make_train_dataset=make_train_dataset,
        validation_dataset=validation_ds,
        workdir=workdir,
        train_config=config.train,
        tokens_per_step=batch_size * sequence_length,
    )


def _token_ids(tokenizer, documents):
    ragged = tokenizer.tokenize(tf.constant(list(documents)))
    return [row.numpy() for row in ragged]


def _count_ngrams(config, workdir, tokenizer):
    """`train` for the n-gram model: count the train split, save the counts."""
    from keras_lm.training import TrainResult

    start = time.perf_counter()
    model = build_model(config.model, tokenizer.vocabulary_size, tokenizer)
    sequences = _token_ids(tokenizer, _documents(config, "train"))
    model.fit(sequences)
    model.save(os.path.join(workdir, NGRAM_DIR))
    seconds = time.perf_counter() - start
    tokens = sum(len(s) for s in sequences)
    logging.info("Counted %d-grams of %s tokens in %.1f s.", model.order, f"{tokens:,}", seconds)
    return TrainResult(initial_step=0, final_step=0, history={}, wall_time_s=seconds,
                       tokens_per_second=tokens / max(seconds, 1e-9), model=model)


def _train_em(config, workdir, tokenizer):
    """`train` by expectation-maximisation (Baum-Welch) for models that offer it (the HMM).

    The train split is cut into chunks of `config.em.chunk_length` tokens (each chunk starts
    from the initial state distribution); `config.em.iterations` passes over all of them,
    from an initialisation drawn with `config.train.seed` (the same config trains the same
    model). Every iteration ends with a checkpoint at step = iterations done (the latest one
    is kept) and the log-likelihoods so far in `em_history.json`, so `evaluate`, `generate`
    and export read the result like a gradient-trained model, and a run killed part-way
    resumes from its last finished iteration with the same result as a run never stopped.
    A workdir that already holds `iterations` is not trained again; a larger
    `--config.em.iterations` continues it. One `metrics.jsonl` line per run.
    """
    import numpy as np

    from keras_lm.models.hmm_em import baum_welch
    from keras_lm.training import TrainResult
    from keras_lm.training import resolve_train_config
    from keras_lm.training.checkpointing import model_checkpoint

    start = time.perf_counter()
    iterations = config.em.iterations
    directory = os.path.join(workdir, workdir_lib.CHECKPOINT_DIR)
    history_path = os.path.join(workdir, EM_HISTORY_FILE)
    keras.utils.set_random_seed(resolve_train_config(config.get("train")).seed)
    model = build_model(config.model, tokenizer.vocabulary_size, tokenizer)
    step = tf.Variable(0, dtype=tf.int64)
    manager = tf.train.CheckpointManager(
        model_checkpoint(model, step=step), directory, max_to_keep=1)
    done, previous = 0, []
    if manager.latest_checkpoint is not None:
        manager.checkpoint.restore(manager.latest_checkpoint).expect_partial()
        done = int(step.numpy())
        if done >= iterations:
            logging.info("Nothing to train: restored %s (EM iteration %d >= iterations %d).",
                         manager.latest_checkpoint, done, iterations)
            return TrainResult(initial_step=done, final_step=done, history={},
                               wall_time_s=time.perf_counter() - start,
                               tokens_per_second=0.0, model=model)
        previous = _read_em_history(history_path, done)
        logging.info("Resuming EM from %s: iteration %d of %d.", manager.latest_checkpoint,
                     done, iterations)
    em = dict(workdir_lib.EM_DEFAULTS, **config.em)
    stream = np.concatenate([np.append(ids, tokenizer.eos_id)
                             for ids in _token_ids(tokenizer, _documents(config, "train"))])
    length = em["chunk_length"]
    chunks = [stream[i:i + length] for i in range(0, len(stream), length)]

    def bits(log_likelihood):
        return -log_likelihood / len(stream) / math.log(2)

    def save(iterations_done, measured):
        # The history first, then the checkpoint: a kill between the two leaves a history
        # one entry longer than the checkpoint, and a resume reads only the entries it needs.
        log_likelihoods = previous + measured
        logging.info("EM iteration %d/%d done (training %.4f bits per token before it).",
                     done + iterations_done, iterations, bits(log_likelihoods[-1]))
        tmp = history_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"log_likelihood_nats": log_likelihoods, "tokens": int(len(stream))}, f)
        os.replace(tmp, history_path)
        step.assign(done + iterations_done)
        manager.save(checkpoint_number=done + iterations_done)

    measured = baum_welch(model, chunks, iterations=iterations - done,
                          pseudo_count=em["pseudo_count"], batch_size=em["batch_size"],
                          callback=save)
    history = [bits(h) for h in previous + list(measured)]
    logging.info("EM done: training %.4f bits per token after iteration %d.", history[-1],
                 iterations)
    seconds = time.perf_counter() - start
    with open(os.path.join(workdir, "metrics.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": iterations, "elapsed_s": round(seconds, 3),
                            "perplexity": 2.0 ** history[-1],
                            "em_bits_per_token": history}) + "\n")
    return TrainResult(initial_step=done, final_step=iterations,
                       history={"em_bits_per_token": history}, wall_time_s=seconds,
                       tokens_per_second=len(stream) * (iterations - done) / max(seconds, 1e-9),
                       model=model)


def _check_em_fields(em):
    """ValueError for a field of the `em` section that nothing reads (a misspelt name)."""
    valid = ("iterations",) + tuple(workdir_lib.EM_DEFAULTS)
    unknown = sorted(set(em or {}) - set(valid))
    if unknown:
        raise ValueError(
            f"Unknown config.em field(s) {unknown}; the em section (Baum-Welch for the HMM) "
            f"takes {', '.join(valid)}."
        )


def _read_em_history(path, done):
    """The log-likelihoods (nats) before iterations 1..done, from `em_history.json`."""
    try:
        with open(path, encoding="utf-8") as f:
            log_likelihoods = json.load(f)["log_likelihood_nats"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"The workdir's EM checkpoint is at iteration {done}, but its history {path!r} "
            f"cannot be read ({error}). Restore that file, or use a new --workdir."
        ) from error
    if len(log_likelihoods) < done:
        raise ValueError(
            f"{path!r} holds {len(log_likelihoods)} EM iteration(s) but the checkpoint is at "
            f"iteration {done}; the workdir was changed by hand. Use a new --workdir."
        )
    return [float(x) for x in log_likelihoods[:done]]


def load(workdir, which="latest"):
    """(config, tokenizer, model, step) of a trained workdir."""
    config = workdir_lib.read_config(workdir)
    tokenizer = build_tokenizer(config, workdir)
    if config.model.get("type", "decoder") in _COUNT_MODELS:
        directory = os.path.join(workdir, NGRAM_DIR)
        if not os.path.isdir(directory):
            raise FileNotFoundError(
                f"No n-gram counts in {directory!r}: run `keras-lm train "
                f"--config=configs/NAME.py --workdir={workdir}` first."
            )
        model = model_class(config.model.type).load(directory, tokenizer.vocabulary_size)
        return config, tokenizer, model, 0
    model = build_model(config.model, tokenizer.vocabulary_size)
    step = workdir_lib.restore_weights(model, workdir, which)
    return config, tokenizer, model, step


def evaluate_model(model, tokenizer, documents, sequence_length, batch_size):
    """Loss, perplexity, bits per token / character / byte of `model` on `documents`.

    Every token of every document (and each document's separator) is scored exactly once,
    in windows of `sequence_length` with no overlap.
    """
    stats = lm_data.corpus_statistics(documents, tokenizer)
    if not isinstance(model, keras.Model):  # a counted model scores whole documents
        scores = model.score(_token_ids(tokenizer, documents))
        if scores["tokens"] != stats["lm_tokens"]:
            raise RuntimeError(
                f"{type(model).__name__} scored {scores['tokens']} tokens, the corpus has "
                f"{stats['lm_tokens']} (document tokens plus one separator each)."
            )
        return summarize(-scores["log_prob_sum"], stats)
    dataset = lm_data.lm_dataset(
        documents, tokenizer, sequence_length, batch_size, training=False, packing="concat"
    )

    @tf.function(jit_compile=True, reduce_retracing=True)
    def sums(features, labels, weights):
        return cross_entropy_sums(labels, model(features, training=False), weights)

    total, count = 0.0, 0.0
    for features, labels, weights in dataset:
        batch_total, batch_count = sums(features, labels, weights)
        total += float(batch_total)
        count += float(batch_count)
    if int(round(count)) != stats["lm_tokens"]:
        raise RuntimeError(
            f"Evaluation scored {count} tokens but the corpus has {stats['lm_tokens']}: the "
            "validation pipeline must score every token exactly once."
        )
    return summarize(total, stats)


def summarize(total_nll, stats):
    """Turns a summed NLL (nats) over `stats['lm_tokens']` labels into the shared metrics."""
    tokens = stats["lm_tokens"]
    loss = total_nll / tokens
    bits = total_nll / math.log(2)
    return {
        "loss": loss,
        "perplexity": math.exp(min(loss, 700.0)),
        "bits_per_token": loss / math.log(2),
        "bits_per_character": bits / (stats["characters"] + stats["documents"]),
        "bits_per_byte": bits / (stats["bytes"] + stats["documents"]),
        "tokens": tokens,
        "characters": stats["characters"],
        "documents": stats["documents"],
    }


def evaluate(workdir, split="validation", which="latest", batch_size=None):
    """Evaluates a trained workdir on a split; returns the metrics dict (plus `step`)."""
    config, tokenizer, model, step = load(workdir, which)
    documents = _documents(config, split)
    start = time.perf_counter()
    metrics = evaluate_model(
        model, tokenizer, documents, config.data.sequence_length,
        batch_size or config.train.batch_size,
    )
    metrics.update(step=step, split=split, seconds=time.perf_counter() - start)
    return metrics


def sample(model, tokenizer, prompts, max_new_tokens, temperature=0.8, top_k=0, top_p=1.0,
           seed=0, **kwargs):
    """Text continuations of `prompts` (a list of str), cut to fit the context."""
    if not isinstance(model, keras.Model):
        return _sample_counted(model, tokenizer, prompts, max_new_tokens, temperature, seed)
    max_new_tokens = min(max_new_tokens, model.sequence_length - 1)
    return model.generate(
        list(prompts), max_new_tokens=max_new_tokens, tokenizer=tokenizer,
        temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, truncate=True, **kwargs
    )


def _sample_counted(model, tokenizer, prompts, max_new_tokens, temperature, seed,
                    stop_strings=None):
    """Continuations from a counted model (n-gram): one document start per prompt."""
    texts = []
    for prompt in prompts:
        ids = tokenizer.tokenize(prompt).numpy()
        out = model.generate(ids, max_new_tokens, temperature=temperature, seed=seed,
                             stop_ids=(tokenizer.eos_id,))[len(ids):]
        if len(out) and out[-1] == tokenizer.eos_id:
            out = out[:-1]
        text = tokenizer.detokenize(tf.constant(out, tf.int32)).numpy().decode("utf-8",
                                                                                 "replace")
        for stop in stop_strings or ():
            text = text.split(stop, 1)[0]
        texts.append(text)
    return texts


def _longest_prompt(tokenizer, prompts):
    """Tokens in the longest of `prompts` (an empty one starts a document: 1 token)."""
    return max(max(len(tokenizer.tokenize(prompt)), 1) for prompt in prompts)


# `keras-lm generate` on an n-gram model (no context to fill) without --max_new_tokens.
COUNTED_MAX_NEW_TOKENS = 200


def generate(workdir, prompts, max_new_tokens=None, which="latest", **kwargs):
    """`keras-lm generate`: loads a workdir and continues `prompts` (a list of str).

    See `keras_lm.generation.generate` for the sampling arguments. `max_new_tokens=None`
    fills the context: its length minus the longest prompt's tokens, at least 1 (an n-gram
    model, which has no context, adds `COUNTED_MAX_NEW_TOKENS`). An explicit value outside
    [1, context), or one that does not fit after a prompt (without `truncate`), is a
    ValueError worded for the command line (--max_new_tokens, --truncate).
    """
    _, tokenizer, model, _ = load(workdir, which)
    if not isinstance(model, keras.Model):
        unsupported = sorted(k for k in ("top_k", "top_p") if kwargs.get(k) not in (None, 0, 1.0))
        if unsupported:
            raise ValueError(f"The n-gram model samples with temperature only; drop {unsupported}.")
        if max_new_tokens is None:
            max_new_tokens = COUNTED_MAX_NEW_TOKENS
        return _sample_counted(model, tokenizer, prompts, max_new_tokens,
                               kwargs.get("temperature", 0.8), kwargs.get("seed"),
                               kwargs.get("stop_strings"))
    prompts = list(prompts)
    context = model.sequence_length
    longest = _longest_prompt(tokenizer, prompts)
    room = context - longest  # new tokens that fit after the longest prompt
    if max_new_tokens is None:
        if room < 1 and not kwargs.get("truncate"):
            raise ValueError(
                f"A prompt of {longest} tokens leaves no room in the model's context of "
                f"{context} tokens. Shorten the prompt, or pass --truncate (keeps its last "
                f"{context - 1} tokens, or {context} - N with --max_new_tokens=N)."
            )
        max_new_tokens = max(1, room)
    elif not 1 <= max_new_tokens < context:
        limit = (f"give 1 to {room} after this {longest}-token prompt, or leave it out to fill "
                 "the context" if room >= 1 else
                 f"give 1 to {context - 1} (a prompt keeps at least one token) with --truncate")
        raise ValueError(
            f"--max_new_tokens={max_new_tokens} does not fit the model's context of {context} "
            f"tokens: {limit}."
        )
    elif longest + max_new_tokens > context and not kwargs.get("truncate"):
        fit = (f"Pass a smaller --max_new_tokens (at most {room} here; leave it out to fill "
               "the context), shorten the prompt," if room >= 1 else "Shorten the prompt,")
        raise ValueError(
            f"A prompt of {longest} tokens plus --max_new_tokens={max_new_tokens} exceeds the "
            f"model's context of {context} tokens. {fit} or pass --truncate (keeps the last "
            f"{context - max_new_tokens} prompt tokens)."
        )
    return model.generate(prompts, max_new_tokens=max_new_tokens, tokenizer=tokenizer,
                          **kwargs)


def export(workdir, export_dir, version=None, overwrite=False, which="latest"):
    """`keras-lm export`: the workdir's model and tokenizer as `export_dir/<version>/`.

    A SavedModel for TF Serving (see `keras_lm.export.export_model`); the `generate`
    signature's defaults are the config's `sample` settings. Returns the version directory.
    """
    from keras_lm.export import export_model

    config, tokenizer, model, step = load(workdir, which)
    sample_config = config.get("sample") or {}
    defaults = {name: sample_config[name] for name in
                ("max_new_tokens", "temperature", "top_k", "top_p", "seed")
                if name in sample_config}
    from keras_lm.export.kinds import kind_of

    if kind_of(model) == "causal_lm":
        # `score` in the windows `evaluate` uses, not the model's nominal context (a recurrent
        # LM's may be longer than its training windows).
        defaults["score_length"] = min(config.data.sequence_length, model.sequence_length)
    return export_model(model, tokenizer, export_dir, version=version, overwrite=overwrite,
                        config=config, step=step, **defaults)


def format_metrics(metrics):
    keys = ["loss", "perplexity", "bits_per_token", "bits_per_character", "bits_per_byte"]
    text = "  ".join(f"{k}={metrics[k]:.4f}" for k in keys if k in metrics)
    return text + (f"  tokens={metrics['tokens']}" if "tokens" in metrics else "")


def train_and_report(config, workdir):
    """`keras-lm train`: trains, prints validation metrics and the config's samples."""
    result = train(config, workdir)
    logging.info("Trained steps %d..%d in %.1f s (%.0f tokens/s).", result.initial_step,
                 result.final_step, result.wall_time_s, result.tokens_per_second)
    tokenizer = build_tokenizer(config, workdir)
    metrics = evaluate_model(result.model, tokenizer, _documents(config, "validation"),
                             config.data.sequence_length, config.train.batch_size)
    print(f"validation @ step {result.final_step}: {format_metrics(metrics)}")
    samples = config.get("sample")
    if samples:
        texts = sample(result.model, tokenizer, samples.prompts, samples.max_new_tokens,
                       temperature=samples.temperature, top_k=samples.top_k,
                       top_p=samples.top_p, seed=samples.seed)
        for prompt, text in zip(samples.prompts, texts):
            print(f"--- sample (temperature {samples.temperature}) ---\n{prompt}{text}")
    return result



def default_config():
    """The fields every language-model config shares, with small CPU-friendly defaults.

    Configs in `configs/` start from this and override what their recipe changes, so a
    field name means the same thing in every experiment (`config.train.steps`,
    `config.data.sequence_length`, `config.model.hidden_dim`, ...).
    """
    import ml_collections

    from keras_lm.training import default_train_config

    config = ml_collections.ConfigDict()
    config.task = "language_model"
    config.data = ml_collections.ConfigDict(
        dict(source="builtin:pydoc", sequence_length=128, packing="concat",
             shuffle_buffer=10_000, seed=0)
    )
    # fit_splits: the splits whose text builds a char vocabulary / trains SentencePiece.
    config.tokenizer = ml_collections.ConfigDict(dict(type="char", fit_splits=("train",)))
    config.model = ml_collections.ConfigDict(
        dict(type="decoder", num_layers=4, num_heads=4, hidden_dim=128, intermediate_dim=0,
             sequence_length=128, num_key_value_heads=0, activation="gelu",
             position_encoding="learned", norm="layer_norm", dropout=0.0,
             tie_embeddings=True)
    )
    config.train = default_train_config()
    # Samples printed at the end of `keras-lm train`.
    config.sample = ml_collections.ConfigDict(
        dict(prompts=("\n",), max_new_tokens=200, temperature=0.8, top_k=0, top_p=1.0, seed=0)
    )
    return config
