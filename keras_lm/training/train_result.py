"""What a training run returns."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Summary of one call to `keras_lm.training.fit`.

    Args:
        initial_step: the step the run started from (0, or the restored checkpoint's step).
        final_step: the step it ended at (the configured total unless stopped early).
        history: Keras's per-evaluation logs, `{"loss": [...], "val_loss": [...], ...}`, one
            entry per `eval_every` steps run in this call.
        wall_time_s: seconds spent in `fit`, including building, compiling and validation.
        tokens_per_second: tokens trained in this call divided by `wall_time_s`.
        model: the trained (compiled) Keras model, e.g. to export or generate from.

    Example:

    >>> result = fit(...)
    >>> result.final_step, result.history["val_loss"][-1]
    """

    initial_step: int
    final_step: int
    history: dict
    wall_time_s: float
    tokens_per_second: float
    model: object = dataclasses.field(default=None, repr=False, compare=False)
