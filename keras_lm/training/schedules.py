"""Learning-rate schedule: linear warmup, then cosine decay to a floor."""

import math

import keras
from keras import ops


def warmup_cosine_decay(step, peak_learning_rate, warmup_steps, decay_steps, final_learning_rate):
    """Learning rate at `step` (0-based): linear warmup, cosine decay, then constant.

    Warmup is `peak * (step + 1) / warmup_steps`, so the first update already moves the weights
    (a rate of exactly 0 at step 0 would waste a step) and step `warmup_steps - 1` reaches the
    peak. From `warmup_steps` to `decay_steps` the rate follows half a cosine from the peak
    down to `final_learning_rate`, and stays there afterwards.

    Args:
        step: int or scalar tensor, the optimizer step.
        peak_learning_rate: float, the rate at the end of warmup.
        warmup_steps: int >= 0.
        decay_steps: int >= warmup_steps, the step at which the rate reaches the final value.
        final_learning_rate: float, the rate from `decay_steps` on.

    Returns:
        A float32 scalar tensor.

    Example:

    >>> float(warmup_cosine_decay(0, 1.0, warmup_steps=4, decay_steps=10, final_learning_rate=0.1))
    0.25
    """
    step = ops.cast(step, "float32")
    warmup = peak_learning_rate * (step + 1.0) / max(warmup_steps, 1)
    span = decay_steps - warmup_steps  # 0: no decay phase, the final rate right after warmup.
    progress = ops.clip((step - warmup_steps) / span, 0.0, 1.0) if span > 0 else 1.0
    cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))  # 1 -> 0 over the decay.
    decayed = final_learning_rate + (peak_learning_rate - final_learning_rate) * cosine
    return ops.where(step < warmup_steps, warmup, decayed)


@keras.saving.register_keras_serializable(package="keras_lm")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to a peak, cosine decay to a final rate, then constant.

    The math is `warmup_cosine_decay`; this class makes it a serializable Keras schedule.

    Args:
        peak_learning_rate: float >= 0, the rate at the end of warmup.
        warmup_steps: int >= 0, steps of linear warmup.
        decay_steps: int >= warmup_steps, the step where the cosine reaches
            `final_learning_rate`; usually the total number of training steps.
        final_learning_rate: float >= 0, the rate from `decay_steps` on. Defaults to 0.

    Example:

    >>> schedule = WarmupCosineDecay(1e-3, warmup_steps=100, decay_steps=5000,
    ...                              final_learning_rate=1e-4)
    >>> optimizer = keras.optimizers.AdamW(learning_rate=schedule)
    """

    def __init__(self, peak_learning_rate, warmup_steps, decay_steps, final_learning_rate=0.0):
        if not peak_learning_rate >= 0:
            raise ValueError(f"`peak_learning_rate` must be >= 0. Received: {peak_learning_rate!r}")
        if not final_learning_rate >= 0:
            raise ValueError(
                f"`final_learning_rate` must be >= 0. Received: {final_learning_rate!r}"
            )
        if int(warmup_steps) != warmup_steps or warmup_steps < 0:
            raise ValueError(f"`warmup_steps` must be an integer >= 0. Received: {warmup_steps!r}")
        if int(decay_steps) != decay_steps or decay_steps < warmup_steps:
            raise ValueError(
                "`decay_steps` must be an integer >= `warmup_steps` (the decay starts after "
                f"warmup). Received: decay_steps={decay_steps!r}, warmup_steps={warmup_steps!r}"
            )
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.decay_steps = int(decay_steps)
        self.final_learning_rate = float(final_learning_rate)

    def __call__(self, step):
        return warmup_cosine_decay(
            step,
            self.peak_learning_rate,
            self.warmup_steps,
            self.decay_steps,
            self.final_learning_rate,
        )

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps,
            "final_learning_rate": self.final_learning_rate,
        }
