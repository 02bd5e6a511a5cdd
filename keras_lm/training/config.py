"""The `train` section of an experiment config: defaults, validation and merging.

Every field the training loop reads lives here, with the reason for its default. An experiment
config overrides a few of them (`config.train.steps = 2000`); `resolve_train_config` merges the
overrides onto the defaults and rejects unknown names, so a typo (`learing_rate`) fails at once
instead of silently training with the default.
"""

import ml_collections
from ml_collections import config_dict


def default_train_config():
    """Returns the default `train` config: a small character-level LM on one accelerator.

    The optimizer values follow nanoGPT's Shakespeare-char recipe (AdamW, peak 1e-3 with
    cosine decay to 1e-4, weight decay 0.1, beta_2 0.99, global-norm clipping at 1.0), which
    trains a ~10M-parameter model stably; larger models want a lower peak learning rate.

    Returns:
        An `ml_collections.ConfigDict` with the fields below.

    Example:

    >>> config = default_train_config()
    >>> config.steps = 200
    >>> config.learning_rate
    0.001
    """
    config = ml_collections.ConfigDict()
    config.steps = 5000  # Total optimizer steps; a resumed run ends at this same step.
    config.batch_size = 64  # Global batch (all replicas together), in sequences.
    config.learning_rate = 1e-3  # Peak learning rate, reached at the end of warmup.
    config.warmup_steps = 100  # Linear warmup avoids early Adam steps on noisy moments.
    config.min_learning_rate = 1e-4  # End of the cosine: peak / 10, as in Chinchilla.
    config.weight_decay = 0.1  # Decoupled (AdamW); never applied to vectors or embeddings.
    config.beta_1 = 0.9
    config.beta_2 = 0.99  # 0.99 rather than 0.999: few tokens per step (nanoGPT).
    config.epsilon = 1e-8
    config.grad_clip_norm = 1.0  # Global gradient norm; 0 (or None) turns clipping off.
    # AdamW's fused update (flat moments) with one replica. Its checkpoints resume with one
    # replica only; set False to resume a run's checkpoints under several replicas later.
    config.fused_optimizer = True
    config.log_every = 100  # Steps between progress lines (and TensorBoard batch summaries).
    config.eval_every = 500  # Steps between validations; also the checkpoint interval.
    # Validation batches per evaluation; None = the whole validation set (exact, comparable
    # across runs). Large corpora should set a number.
    config.eval_steps = config_dict.placeholder(int)
    config.keep_checkpoints = 3  # The last N periodic checkpoints; the best one is kept apart.
    # XLA; turned off automatically where it cannot work (multi-replica CPU strategies) or
    # is slower (mixed_bfloat16 on CPU: oneDNN's bfloat16 matmuls; see resolve_jit_compile).
    config.jit_compile = True
    # Or "mixed_bfloat16" (TPU, Ampere+ GPUs, CPUs with AVX512-BF16 / AMX), "mixed_float16".
    config.precision = "float32"
    config.strategy = "default"  # Or "mirrored", "multi_worker", "tpu".
    config.tpu = config_dict.placeholder(str)  # TPU name or address for strategy="tpu".
    config.seed = 0
    return config


def resolve_train_config(train_config):
    """Merges `train_config` onto `default_train_config()` and validates the result.

    Args:
        train_config: an `ml_collections.ConfigDict`, a plain `dict`, or `None` (all defaults).
            Its keys must be fields of `default_train_config()`.

    Returns:
        A new `ml_collections.ConfigDict` holding every field.

    Raises:
        ValueError: for an unknown field or a value out of range; the message names the field.

    Example:

    >>> resolve_train_config({"steps": 10, "eval_every": 5}).eval_every
    5
    """
    merged = default_train_config().to_dict()
    if train_config is not None:
        overrides = (
            train_config.to_dict()
            if isinstance(train_config, ml_collections.ConfigDict)
            else dict(train_config)
        )
        unknown = sorted(set(overrides) - set(merged))
        if unknown:
            raise ValueError(
                f"Unknown train config field(s) {unknown}. Known fields: {sorted(merged)}. "
                "Fix the spelling or drop the field."
            )
        merged.update(overrides)
    for name in ("steps", "batch_size", "log_every", "eval_every", "keep_checkpoints"):
        _check_int(merged, name, minimum=1)
    _check_int(merged, "warmup_steps", minimum=0)
    if merged["eval_steps"] is not None:
        _check_int(merged, "eval_steps", minimum=1)
    for name in ("learning_rate", "min_learning_rate", "weight_decay", "epsilon"):
        if not merged[name] >= 0:
            raise ValueError(f"train config `{name}` must be >= 0. Received: {merged[name]!r}")
    for name in ("beta_1", "beta_2"):
        if not 0 <= merged[name] < 1:
            raise ValueError(f"train config `{name}` must be in [0, 1). Received: {merged[name]!r}")
    return ml_collections.ConfigDict(merged)


def _check_int(config, name, minimum):
    value = config[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"train config `{name}` must be an integer >= {minimum}. Received: {name}={value!r}"
        )
