"""Masked-language-model pre-training head on an encoder backbone (BERT's MLM)."""

import keras
from keras import ops

from keras_lm.layers import normalization
from keras_lm.models.encoder_backbone import EncoderBackbone


@keras.saving.register_keras_serializable(package="keras_lm")
class MaskedLM(keras.Model):
    """An `EncoderBackbone` plus BERT's masked-LM head, the output layer tied to the input.

        h = Norm(gelu(sequence_output W + b))            (the "transform" of BERT's head)
        logits = h E^T + c                              (E the token embedding, c a bias [V])

    Logits are returned at every position; the loss and accuracy count only the masked
    positions through sample weights (see `keras_lm.data.masking.mask_tokens`), so the
    model needs no position list and the same call serves training and inspection.

    Shape letters: B batch, T tokens, D hidden width, V vocabulary.

    Args:
        backbone: an `EncoderBackbone` (its token embedding is reused as output layer).
        **kwargs: `keras.Model` arguments (name, dtype).

    Call arguments:
        inputs: int token ids [B, T] (masked), or a dict with `token_ids` and `segment_ids`.

    Returns:
        float32 logits [B, T, V].

    Example:
    >>> backbone = EncoderBackbone(vocabulary_size=50, num_layers=1, num_heads=2,
    ...                            hidden_dim=16, sequence_length=8)
    >>> MaskedLM(backbone)(keras.ops.ones((2, 8), "int32")).shape
    TensorShape([2, 8, 50])
    """

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(backbone, EncoderBackbone):
            raise TypeError(
                "`backbone` must be an EncoderBackbone. "
                f"Received: backbone of type {type(backbone).__name__}"
            )
        self.backbone = backbone
        policy = self.dtype_policy
        self.transform = keras.layers.Dense(
            backbone.hidden_dim,
            activation="gelu",
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.02),
            dtype=policy,
            name="mlm_transform",
        )
        self.transform_norm = normalization(
            backbone.norm, backbone.layer_norm_epsilon, policy, "mlm_transform_norm"
        )

    def build(self, input_shape=None):
        if not self.backbone.built:
            self.backbone.build()
        self.transform.build((None, None, self.backbone.hidden_dim))
        self.transform_norm.build((None, None, self.backbone.hidden_dim))
        self.output_bias = self.add_weight(
            name="output_bias", shape=(self.backbone.vocabulary_size,), initializer="zeros"
        )
        self.built = True

    def call(self, inputs, training=None):
        hidden = self.backbone(inputs, training=training)["sequence_output"]  # (B, T, D)
        hidden = self.transform_norm(self.transform(hidden))  # (B, T, D)
        logits = self.backbone.token_embedding(hidden, reverse=True)  # (B, T, V) float32
        return logits + ops.cast(self.output_bias, "float32")

    def get_config(self):
        config = super().get_config()
        config.update({"backbone": keras.saving.serialize_keras_object(self.backbone)})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)
