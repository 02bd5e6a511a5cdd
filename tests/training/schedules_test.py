import math

import keras
import numpy as np
import pytest

from keras_lm.training import WarmupCosineDecay
from keras_lm.training import warmup_cosine_decay


def reference_learning_rate(step, peak, warmup, decay, final):
    """The schedule written out case by case, independently of the implementation."""
    if step < warmup:
        return peak * (step + 1) / warmup
    if step >= decay:
        return final
    fraction = (step - warmup) / (decay - warmup)
    return final + (peak - final) * (1 + math.cos(math.pi * fraction)) / 2


@pytest.mark.parametrize(
    "peak, warmup, decay, final",
    [(1e-3, 10, 100, 1e-4), (3e-4, 0, 50, 0.0), (1.0, 7, 7, 0.5), (2e-3, 1, 1000, 2e-3)],
)
def test_schedule_matches_formula_at_many_steps(peak, warmup, decay, final):
    schedule = WarmupCosineDecay(peak, warmup, decay, final)
    steps = list(range(0, decay + 20)) + [10 * decay + 3]
    expected = [reference_learning_rate(step, peak, warmup, decay, final) for step in steps]
    # One call on a vector of steps: the schedule is elementwise.
    actual = keras.ops.convert_to_numpy(schedule(np.array(steps)))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-9)
    assert float(schedule(steps[-2])) == pytest.approx(expected[-2], rel=1e-5)


def test_schedule_landmarks():
    peak, final = 1e-3, 1e-4
    # Last warmup step reaches the peak, the decay ends at `final` and stays there.
    assert float(warmup_cosine_decay(9, peak, 10, 110, final)) == pytest.approx(peak)
    assert float(warmup_cosine_decay(10, peak, 10, 110, final)) == pytest.approx(peak)
    assert float(warmup_cosine_decay(60, peak, 10, 110, final)) == pytest.approx((peak + final) / 2)
    assert float(warmup_cosine_decay(110, peak, 10, 110, final)) == pytest.approx(final)
    assert float(warmup_cosine_decay(10**6, peak, 10, 110, final)) == pytest.approx(final)
    # The first step already has a nonzero rate.
    assert float(warmup_cosine_decay(0, peak, 10, 110, final)) == pytest.approx(peak / 10)


def test_schedule_accepts_tensor_steps_and_is_monotone_after_warmup():
    schedule = WarmupCosineDecay(1e-3, 5, 60, 1e-5)
    rates = np.array([float(schedule(keras.ops.convert_to_tensor(s))) for s in range(70)])
    assert np.all(np.diff(rates[:5]) > 0)
    assert np.all(np.diff(rates[5:]) <= 1e-12)


def test_schedule_config_round_trip():
    schedule = WarmupCosineDecay(1e-3, 10, 100, 1e-4)
    restored = WarmupCosineDecay.from_config(schedule.get_config())
    assert restored.get_config() == schedule.get_config()
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(revived, WarmupCosineDecay)
    for step in (0, 9, 50, 200):
        assert float(revived(step)) == float(schedule(step))


def test_schedule_drives_an_optimizer():
    schedule = WarmupCosineDecay(1e-2, 4, 20, 1e-3)
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    variable = keras.Variable(np.ones((2,), "float32"))
    optimizer.build([variable])
    for step in range(6):
        np.testing.assert_allclose(
            float(optimizer.learning_rate), reference_learning_rate(step, 1e-2, 4, 20, 1e-3)
        )
        optimizer.apply_gradients([(np.ones((2,), "float32"), variable)])


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(warmup_steps=10, decay_steps=5), "decay_steps"),
        (dict(warmup_steps=-1, decay_steps=5), "warmup_steps"),
        (dict(warmup_steps=1.5, decay_steps=5), "warmup_steps"),
        (dict(warmup_steps=1, decay_steps=5, peak_learning_rate=-1.0), "peak_learning_rate"),
        (
            dict(warmup_steps=1, decay_steps=5, final_learning_rate=float("nan")),
            "final_learning_rate",
        ),
    ],
)
def test_schedule_rejects_bad_arguments(kwargs, argument):
    kwargs.setdefault("peak_learning_rate", 1e-3)
    with pytest.raises(ValueError, match=argument):
        WarmupCosineDecay(**kwargs)
