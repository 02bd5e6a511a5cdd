"""Extractive question answering: start/end scores per token with an encoder backbone."""

import keras
from keras import ops

from keras_lm.models.encoder_backbone import EncoderBackbone
from keras_lm.models.encoder_heads import backbone_training
from keras_lm.models.encoder_heads import check_backbone
from keras_lm.models.encoder_heads import serialize_with_backbone
from keras_lm.models.encoder_heads import set_backbone_trainable


@keras.saving.register_keras_serializable(package="keras_lm")
class QuestionAnswering(keras.Model):
    """`EncoderBackbone` over `[CLS] question [SEP] context [SEP]` -> start and end logits.

        [start_logits, end_logits] = sequence_output W + b,   W [D, 2]

    Padding positions get a logit of -1e9, so a softmax over positions ignores them. The
    loss is the mean of the start and end cross-entropies over positions (a window without
    the answer points both at [CLS], position 0, as in BERT); answer decoding, which keeps
    only spans inside the context, is `keras_lm.data.qa.best_spans`.

    Shape letters: B batch, T tokens, D hidden width.

    Args:
        backbone: an `EncoderBackbone`.
        freeze_backbone: bool, keep the backbone's weights fixed (and its dropout off).
        **kwargs: `keras.Model` arguments (name, dtype).

    Call arguments:
        inputs: a dict with `token_ids` [B, T] and `segment_ids` [B, T].

    Returns:
        float32 logits [B, T, 2]: `[..., 0]` scores a start, `[..., 1]` an end.

    Example:
    >>> backbone = EncoderBackbone(vocabulary_size=50, num_layers=1, num_heads=2,
    ...                            hidden_dim=16, sequence_length=8)
    >>> QuestionAnswering(backbone)(keras.ops.ones((2, 8), "int32")).shape
    TensorShape([2, 8, 2])

    References:
        Devlin et al., 2019, section 4.2 (SQuAD v1.1), https://arxiv.org/abs/1810.04805
    """

    def __init__(self, backbone, freeze_backbone=False, **kwargs):
        super().__init__(**kwargs)
        check_backbone(backbone, EncoderBackbone)
        self.backbone = backbone
        self.freeze_backbone = freeze_backbone
        set_backbone_trainable(self)
        self.head = keras.layers.Dense(
            2,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.02),
            dtype=self.dtype_policy,
            name="span_head",
        )

    def build(self, input_shape=None):
        if not self.backbone.built:
            self.backbone.build()
        set_backbone_trainable(self)  # again: sublayers made by build() start trainable
        self.head.build((None, None, self.backbone.hidden_dim))
        self.built = True

    def call(self, inputs, training=None):
        token_ids = inputs["token_ids"] if isinstance(inputs, dict) else inputs
        hidden = self.backbone(inputs, training=backbone_training(self, training))[
            "sequence_output"
        ]  # (B, T, D)
        logits = ops.cast(self.head(hidden), "float32")  # (B, T, 2)
        padding = ops.equal(ops.cast(token_ids, "int32"), 0)[:, :, None]  # (B, T, 1)
        return ops.where(padding, -1e9, logits)

    def get_config(self):
        config = serialize_with_backbone(super().get_config(), self.backbone)
        config.update({"freeze_backbone": self.freeze_backbone})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)
