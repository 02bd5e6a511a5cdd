import ml_collections
import pytest

from keras_lm.training import default_train_config
from keras_lm.training import resolve_train_config

FIELDS = {
    "steps",
    "batch_size",
    "learning_rate",
    "warmup_steps",
    "min_learning_rate",
    "weight_decay",
    "beta_1",
    "beta_2",
    "epsilon",
    "grad_clip_norm",
    "fused_optimizer",
    "log_every",
    "eval_every",
    "eval_steps",
    "keep_checkpoints",
    "jit_compile",
    "precision",
    "strategy",
    "tpu",
    "seed",
}


def test_default_config_has_every_field_and_overrides_by_attribute():
    config = default_train_config()
    assert isinstance(config, ml_collections.ConfigDict)
    assert set(config.keys()) == FIELDS
    assert config.eval_steps is None and config.tpu is None
    config.tpu = "grpc://10.0.0.2:8470"  # optional fields accept their type later
    config.eval_steps = 20
    assert resolve_train_config(config).eval_steps == 20


def test_resolve_merges_dicts_and_config_dicts_onto_defaults():
    resolved = resolve_train_config({"steps": 10, "learning_rate": 0.5})
    assert (resolved.steps, resolved.learning_rate) == (10, 0.5)
    assert resolved.warmup_steps == default_train_config().warmup_steps
    resolved = resolve_train_config(ml_collections.ConfigDict({"eval_every": 7}))
    assert resolved.eval_every == 7
    assert resolve_train_config(None).to_dict() == default_train_config().to_dict()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"learing_rate": 1e-3}, "learing_rate"),
        ({"steps": 0}, "steps"),
        ({"eval_every": 2.5}, "eval_every"),
        ({"eval_steps": 0}, "eval_steps"),
        ({"beta_2": 1.0}, "beta_2"),
        ({"weight_decay": -0.1}, "weight_decay"),
    ],
)
def test_resolve_rejects_bad_fields(overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_train_config(overrides)
