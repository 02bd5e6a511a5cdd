"""`model.compile` the way `keras_lm.training.fit` does it, for scripts that call `model.fit`."""


def compile_for_training(model, optimizer, loss, metrics=(), jit_compile=True):
    """Compiles `model` and creates its optimizer's variables before the first step.

    Creating the optimizer's slots (Adam's m and v) here, outside the training function,
    means `model.fit` traces its step once. Left to the first step, Keras creates them
    inside the trace, and TensorFlow then traces the step a second time (a `tf.function` may
    only create variables on its first trace): about a third of the first step's latency
    for the small GPT (see experiments/benchmarks.md). The optimizer's variables also have
    to exist before a checkpoint can restore them.

    Args:
        model: a built Keras model (its variables exist).
        optimizer: a Keras optimizer (e.g. from `build_optimizer`).
        loss: the loss.
        metrics: weighted metrics (evaluated with the sample weights of the data).
        jit_compile: passed to `model.compile`.

    Returns:
        `model`.

    Raises:
        ValueError: `model` is not built.

    Example:
    >>> compile_for_training(model, build_optimizer(config), MaskedSparseCrossEntropy())
    >>> model.fit(dataset, steps_per_epoch=100)
    """
    if not model.built:
        raise ValueError(
            "`model` must be built (its variables must exist) before training is set up: "
            "call it once on a batch, or use a functional model. Received an unbuilt "
            f"{type(model).__name__}."
        )
    model.compile(optimizer=optimizer, loss=loss, weighted_metrics=list(metrics) or None,
                  jit_compile=jit_compile)
    model.optimizer.build(model.trainable_variables)
    return model
