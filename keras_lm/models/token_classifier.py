"""Label every token (tagging, e.g. named entities) with an encoder backbone."""

import keras

from keras_lm.models.encoder_backbone import EncoderBackbone
from keras_lm.models.encoder_heads import backbone_training
from keras_lm.models.encoder_heads import check_backbone
from keras_lm.models.encoder_heads import serialize_with_backbone
from keras_lm.models.encoder_heads import set_backbone_trainable


@keras.saving.register_keras_serializable(package="keras_lm")
class TokenClassifier(keras.Model):
    """`EncoderBackbone` -> sequence output [B, T, D] -> dropout -> logits [B, T, C].

    Labels are given per word; `keras_lm.data.encoder_inputs.tagging_arrays` puts each word's label
    on its first sub-token and weight 0 on the others (and on specials and padding), and
    `keras_lm.tasks.tagging` maps the first sub-tokens' predictions back to words.

    Shape letters: B batch, T tokens, D hidden width, C `num_labels`.

    Args:
        backbone: an `EncoderBackbone`.
        num_labels: int C >= 2 (tags, e.g. O, B-PER, I-PER, ...).
        dropout: float, dropout on the token vectors.
        freeze_backbone: bool, keep the backbone's weights fixed (and its dropout off).
        **kwargs: `keras.Model` arguments (name, dtype).

    Call arguments:
        inputs: a dict with `token_ids` [B, T] and `segment_ids` [B, T] (or token ids).

    Returns:
        float32 logits [B, T, C].

    Example:
    >>> backbone = EncoderBackbone(vocabulary_size=50, num_layers=1, num_heads=2,
    ...                            hidden_dim=16, sequence_length=8)
    >>> TokenClassifier(backbone, num_labels=5)(keras.ops.ones((2, 8), "int32")).shape
    TensorShape([2, 8, 5])
    """

    def __init__(self, backbone, num_labels, dropout=0.1, freeze_backbone=False, **kwargs):
        super().__init__(**kwargs)
        check_backbone(backbone, EncoderBackbone)
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 2:
            raise ValueError(
                f"`num_labels` must be an int >= 2 (the number of tags). "
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
            name="tagging_head",
        )

    def build(self, input_shape=None):
        if not self.backbone.built:
            self.backbone.build()
        set_backbone_trainable(self)  # again: sublayers made by build() start trainable
        self.head.build((None, None, self.backbone.hidden_dim))
        self.built = True

    def call(self, inputs, training=None):
        hidden = self.backbone(inputs, training=backbone_training(self, training))[
            "sequence_output"
        ]  # (B, T, D)
        logits = self.head(self.head_dropout(hidden, training=training))  # (B, T, C)
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
