"""`run_layer_test`: the checks every keras_lm layer must pass, in one call."""

import os
import tempfile

import keras
import numpy as np


def run_layer_test(
    layer_cls,
    init_kwargs,
    inputs,
    call_kwargs=None,
    expected_output_shape=None,
    run_training=True,
    mixed_precision_atol=None,
):
    """Config round trip, eager call, `.keras` save/load, a `fit` step, mixed precision.

    Args:
        layer_cls: the layer class.
        init_kwargs: dict of constructor arguments.
        inputs: a tensor or a list of tensors, passed positionally to the layer.
        call_kwargs: dict of non-tensor call arguments (e.g. `use_causal_mask=True`).
        expected_output_shape: tuple, checked against the eager output.
        run_training: bool, run one `fit` step and check every trainable weight moves.
        mixed_precision_atol: float or None; if set, a `mixed_bfloat16` copy of the layer
            with the same weights must match the float32 output within this tolerance.

    Returns:
        The float32 output of the layer, as numpy.
    """
    call_kwargs = call_kwargs or {}
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]

    # 1. get_config / from_config round trip.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    revived = layer_cls.from_config(config)
    assert revived.get_config() == config, (config, revived.get_config())

    # 2. Eager call.
    output = layer(*inputs, **call_kwargs)
    output = np.asarray(keras.ops.convert_to_numpy(output))
    if expected_output_shape is not None:
        assert output.shape == tuple(expected_output_shape), output.shape
    assert np.all(np.isfinite(output))

    # 3. Inside a functional model, saved to .keras and loaded back: identical outputs.
    symbolic = [
        keras.Input(shape=tuple(x.shape[1:]), batch_size=x.shape[0], dtype=x.dtype)
        for x in inputs
    ]
    model = keras.Model(symbolic, layer(*symbolic, **call_kwargs))
    expected = np.asarray(model.predict_on_batch(inputs))
    np.testing.assert_allclose(expected, output, atol=1e-6)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(np.asarray(reloaded.predict_on_batch(inputs)), expected)
    reloaded_layer = [l for l in reloaded.layers if isinstance(l, layer_cls)][0]
    assert reloaded_layer.get_config() == layer.get_config()

    # 4. One training step moves every trainable weight.
    if run_training and layer.trainable_weights:
        before = [np.array(w) for w in layer.trainable_weights]
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        target = np.random.default_rng(0).normal(size=expected.shape).astype("float32")
        model.train_on_batch(inputs, target)
        for weight, old in zip(layer.trainable_weights, before):
            # Exact comparison: some weights legitimately get tiny gradients (an attention
            # key bias only shifts every score of a row equally, so its gradient is ~0).
            assert not np.array_equal(np.array(weight), old), f"{weight.path} did not train"

    # 5. Mixed precision with the float32 weights.
    if mixed_precision_atol is not None:
        fresh = layer_cls(**init_kwargs)
        reference = np.asarray(fresh(*inputs, **call_kwargs))
        mixed = layer_cls(**{**init_kwargs, "dtype": "mixed_bfloat16"})
        mixed(*inputs, **call_kwargs)
        mixed.set_weights(fresh.get_weights())
        mixed_output = mixed(*inputs, **call_kwargs)
        mixed_output = np.asarray(keras.ops.cast(mixed_output, "float32"))
        np.testing.assert_allclose(mixed_output, reference, atol=mixed_precision_atol)
    return output
