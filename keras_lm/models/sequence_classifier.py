"""Classify a text (or a text pair) with an encoder backbone and a linear head."""

import keras

from keras_lm.models.encoder_backbone import EncoderBackbone
from keras_lm.models.encoder_heads import backbone_training
from keras_lm.models.encoder_heads import check_backbone
from keras_lm.models.encoder_heads import serialize_with_backbone
from keras_lm.models.encoder_heads import set_backbone_trainable


@keras.saving.register_keras_serializable(package="keras_lm")
class SequenceClassifier(keras.Model):
    """`EncoderBackbone` -> pooled vector [B, D] -> dropout -> logits [B, C].

    A pair is fed as `[CLS] a [SEP] b [SEP]` with segment ids 0 for `[CLS] a [SEP]` and 1 for
    `b [SEP]` (see `keras_lm.data.encoder_inputs.pack_segments`); the backbone's `pooling`
    chooses the [CLS] vector or the mean over real tokens.

    With `freeze_backbone=True` the backbone's weights are not trained and it runs in
    inference mode (no dropout), i.e. a linear probe of its features.

    Shape letters: B batch, T tokens, D hidden width, C `num_labels`.

    Args:
        backbone: an `EncoderBackbone` (e.g. the pre-trained one of a `MaskedLM`).
        num_labels: int C >= 2.
        dropout: float, dropout on the pooled vector.
        freeze_backbone: bool, keep the backbone's weights fixed.
        **kwargs: `keras.Model` arguments (name, dtype).

    Call arguments:
        inputs: a dict with `token_ids` [B, T] and `segment_ids` [B, T] (or token ids).

    Returns:
        float32 logits [B, C].

    Example:
    >>> backbone = EncoderBackbone(vocabulary_size=50, num_layers=1, num_heads=2,
    ...                            hidden_dim=16, sequence_length=8)
    >>> SequenceClassifier(backbone, num_labels=3)(keras.ops.ones((2, 8), "int32")).shape
    TensorShape([2, 3])
    """

    def __init__(self, backbone, num_labels, dropout=0.1, freeze_backbone=False, **kwargs):
        super().__init__(**kwargs)
        check_backbone(backbone, EncoderBackbone)
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 2:
            raise ValueError(
                "`num_labels` must be an int >= 2 (the number of classes). "
                f"Received: num_labels={num_labels!r}"
            )
        self.backbone = backbone
        self.num_labels = num_labels
        self.dropout = dropout
        self.freeze_backbone = freeze_backbone
        set_backbone_trainable(self)
        self.head_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        self.head = keras.layers.Dense(
            num_labels,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.02),
            dtype=self.dtype_policy,
            name="classifier_head",
        )

    def build(self, input_shape=None):
        if not self.backbone.built:
            self.backbone.build()
        set_backbone_trainable(self)  # again: sublayers made by build() start trainable
        self.head.build((None, self.backbone.hidden_dim))
        self.built = True

    def call(self, inputs, training=None):
        pooled = self.backbone(inputs, training=backbone_training(self, training))[
            "pooled_output"
        ]  # (B, D)
        logits = self.head(self.head_dropout(pooled, training=training))  # (B, C)
        return keras.ops.cast(logits, "float32")

    def get_config(self):
        config = serialize_with_backbone(super().get_config(), self.backbone)
        config.update(
            {
                "num_labels": self.num_labels,
                "dropout": self.dropout,
                "freeze_backbone": self.freeze_backbone,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)
