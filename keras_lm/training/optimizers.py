"""The optimizer a `train` config asks for."""

from keras_lm.training.adamw import AdamW
from keras_lm.training.config import resolve_train_config
from keras_lm.training.schedules import WarmupCosineDecay


def build_optimizer(train_config):
    """Builds AdamW with a warmup-cosine schedule, decoupled weight decay and clipping.

    The schedule decays over the whole run (`decay_steps = steps`). Weight decay skips vectors
    and embedding tables (see `keras_lm.training.AdamW`). Gradients are clipped by their global
    norm when `grad_clip_norm` is positive.

    Args:
        train_config: `ConfigDict` or dict with the fields of `default_train_config()`
            (missing fields take their defaults).

    Returns:
        A `keras_lm.training.AdamW`. Create it inside `strategy.scope()` when distributing.

    Example:

    >>> optimizer = build_optimizer({"steps": 1000, "learning_rate": 3e-4})
    >>> float(optimizer.learning_rate)  # step 0 of a 100-step warmup
    3e-06
    """
    config = resolve_train_config(train_config)
    schedule = WarmupCosineDecay(
        peak_learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps,
        decay_steps=max(config.steps, config.warmup_steps),
        final_learning_rate=config.min_learning_rate,
    )
    return AdamW(
        learning_rate=schedule,
        weight_decay=config.weight_decay,
        beta_1=config.beta_1,
        beta_2=config.beta_2,
        epsilon=config.epsilon,
        global_clipnorm=config.grad_clip_norm or None,
        fused=config.fused_optimizer,
    )
