"""MaskedLM, SequenceClassifier, TokenClassifier and QuestionAnswering on a tiny backbone."""

import keras
import numpy as np
import pytest

from keras_lm.models.encoder_backbone import EncoderBackbone
from keras_lm.models.masked_lm import MaskedLM
from keras_lm.models.question_answering import QuestionAnswering
from keras_lm.models.sequence_classifier import SequenceClassifier
from keras_lm.models.token_classifier import TokenClassifier


def _backbone(**kwargs):
    return EncoderBackbone(vocabulary_size=20, num_layers=1, num_heads=2, hidden_dim=16,
                           sequence_length=8, **kwargs)


def _inputs():
    ids = np.array([[2, 5, 6, 7, 3, 0, 0, 0], [2, 8, 9, 3, 10, 11, 3, 0]], np.int32)
    segments = np.array([[0] * 8, [0, 0, 0, 0, 1, 1, 1, 0]], np.int32)
    return {"token_ids": ids, "segment_ids": segments}


def test_masked_lm_output_layer_is_the_token_embedding():
    model = MaskedLM(_backbone())
    model.build()
    inputs = _inputs()
    logits = np.asarray(model(inputs))
    assert logits.shape == (2, 8, 20) and logits.dtype == np.float32
    # logits = transform(h) E^T + bias, with E the input embedding (no other output kernel).
    hidden = model.backbone(inputs)["sequence_output"]
    transformed = np.asarray(model.transform_norm(model.transform(hidden)))
    table = np.asarray(model.backbone.token_embedding.embeddings)
    np.testing.assert_allclose(logits, transformed @ table.T + np.asarray(model.output_bias),
                               atol=1e-5)
    names = [v.path for v in model.trainable_variables]
    assert not any("reverse" in name for name in names)
    config = model.get_config()
    assert MaskedLM.from_config(config).get_config() == config


@pytest.mark.parametrize("cls,shape", [(SequenceClassifier, (2, 3)),
                                       (TokenClassifier, (2, 8, 3))])
def test_classifier_heads(cls, shape):
    model = cls(_backbone(), num_labels=3)
    model.build()
    assert model(_inputs()).shape == shape
    config = model.get_config()
    assert cls.from_config(config).get_config() == config
    with pytest.raises(ValueError, match="num_labels=1"):
        cls(_backbone(), num_labels=1)
    with pytest.raises(TypeError, match="EncoderBackbone"):
        cls(keras.layers.Dense(3), num_labels=3)


def test_frozen_backbone_trains_only_the_head():
    model = SequenceClassifier(_backbone(dropout=0.5), num_labels=2, freeze_backbone=True)
    model.build()
    backbone_before = [np.array(v) for v in model.backbone.variables]
    head_before = np.array(model.head.kernel)
    model.compile(optimizer=keras.optimizers.SGD(0.5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.train_on_batch(_inputs(), np.array([0, 1]))
    for before, after in zip(backbone_before, model.backbone.variables):
        np.testing.assert_array_equal(before, np.array(after))
    assert not np.array_equal(head_before, np.array(model.head.kernel))
    # A frozen backbone runs without dropout even in training mode: with the head's dropout
    # off, training and inference logits agree (a trainable one with dropout 0.5 would not).
    model.head_dropout.rate = 0.0
    np.testing.assert_allclose(model(_inputs(), training=True), model(_inputs(), training=False),
                               atol=1e-6)
    model.backbone.trainable = True
    assert not np.allclose(model(_inputs(), training=True), model(_inputs(), training=False))


def test_sequence_classifier_learns_a_separable_task(rng):
    # Label = whether token 5 occurs in the sequence.
    ids = rng.integers(6, 20, (64, 8)).astype("int32")
    labels = rng.integers(0, 2, 64)
    for row in np.nonzero(labels)[0]:
        ids[row, rng.integers(1, 7)] = 5
    ids[:, 0] = 2
    inputs = {"token_ids": ids, "segment_ids": np.zeros_like(ids)}
    model = SequenceClassifier(_backbone(pooling="mean"), num_labels=2, dropout=0.0)
    model.build()
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(inputs, labels, batch_size=64, epochs=40, verbose=0)
    assert history.history["accuracy"][-1] == 1.0


def test_question_answering_masks_padding():
    model = QuestionAnswering(_backbone())
    model.build()
    logits = np.asarray(model(_inputs()))
    assert logits.shape == (2, 8, 2)
    assert np.all(logits[0, 5:] == -1e9) and np.all(logits[0, :5] > -1e8)
    config = model.get_config()
    assert QuestionAnswering.from_config(config).get_config() == config
