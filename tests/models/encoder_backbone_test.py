import os

import keras
import numpy as np
import pytest

from keras_lm.models.encoder_backbone import EncoderBackbone


def _backbone(**kwargs):
    config = dict(vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=16,
                  sequence_length=12)
    config.update(kwargs)
    backbone = EncoderBackbone(**config)
    backbone.build()
    return backbone


def _inputs(rng, batch=3, length=10):
    ids = rng.integers(4, 30, (batch, length)).astype("int32")
    ids[1, 6:] = 0  # padding
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids)}


def test_shapes_and_padding_is_ignored(rng):
    backbone = _backbone()
    inputs = _inputs(rng)
    outputs = backbone(inputs)
    assert outputs["sequence_output"].shape == (3, 10, 16)
    assert outputs["pooled_output"].shape == (3, 16)
    # Whatever the padding holds of position/segment embeddings, the real tokens of row 1 get
    # the same vectors as the same 6 tokens alone (bidirectional attention over real tokens).
    alone = backbone({"token_ids": inputs["token_ids"][1:2, :6],
                      "segment_ids": inputs["segment_ids"][1:2, :6]})
    np.testing.assert_allclose(outputs["sequence_output"][1, :6], alone["sequence_output"][0],
                               atol=1e-5)
    # Bidirectional: changing the last token changes the first token's vector.
    changed = dict(inputs, token_ids=inputs["token_ids"].copy())
    changed["token_ids"][0, -1] = 4 if inputs["token_ids"][0, -1] != 4 else 5
    assert not np.allclose(backbone(changed)["sequence_output"][0, 0],
                           outputs["sequence_output"][0, 0])


def test_segments_and_pooling(rng):
    backbone = _backbone(pooling="mean")
    inputs = _inputs(rng)
    outputs = backbone(inputs)
    sequence = np.asarray(outputs["sequence_output"])
    real = inputs["token_ids"] != 0
    expected = (sequence * real[:, :, None]).sum(1) / real.sum(1, keepdims=True)
    np.testing.assert_allclose(outputs["pooled_output"], expected, atol=1e-5)
    first = _backbone()
    np.testing.assert_allclose(first(inputs)["pooled_output"],
                               first(inputs)["sequence_output"][:, 0], atol=1e-6)
    # Segment ids enter through their own embedding: they change the outputs.
    pairs = dict(inputs, segment_ids=np.ones_like(inputs["token_ids"]))
    assert not np.allclose(first(pairs)["sequence_output"], first(inputs)["sequence_output"])
    # Token ids alone mean segment 0.
    np.testing.assert_allclose(first(inputs["token_ids"])["sequence_output"],
                               first(inputs)["sequence_output"], atol=1e-6)


def test_config_round_trip_and_saving(rng, tmp_path):
    backbone = _backbone(position_encoding="sinusoidal", intermediate_dim=24)
    config = backbone.get_config()
    assert EncoderBackbone.from_config(config).get_config() == config
    inputs = _inputs(rng)
    path = os.path.join(tmp_path, "backbone.keras")
    backbone.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded(inputs)["sequence_output"],
                               backbone(inputs)["sequence_output"], atol=1e-6)


def test_argument_errors():
    with pytest.raises(ValueError, match="hidden_dim"):
        EncoderBackbone(30, 1, 3, 16, 8)
    with pytest.raises(ValueError, match="pooling='max'"):
        EncoderBackbone(30, 1, 2, 16, 8, pooling="max")
    with pytest.raises(ValueError, match="position_encoding='rotary'"):
        EncoderBackbone(30, 1, 2, 16, 8, position_encoding="rotary")
    with pytest.raises(ValueError, match="num_layers=0"):
        EncoderBackbone(30, 0, 2, 16, 8)
    with pytest.raises(ValueError, match="token_ids"):
        _backbone()({"ids": np.ones((1, 3), "int32")})
