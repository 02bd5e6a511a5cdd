"""Helpers shared by the task models built on an `EncoderBackbone` (classifier, tagger, QA)."""

import keras


def check_backbone(backbone, backbone_class):
    """Raises TypeError unless `backbone` is a `backbone_class` instance."""
    if not isinstance(backbone, backbone_class):
        raise TypeError(
            f"`backbone` must be an {backbone_class.__name__}. "
            f"Received: backbone of type {type(backbone).__name__}"
        )


def backbone_training(model, training):
    """The `training` flag for the backbone: a frozen backbone always runs in inference mode.

    A frozen backbone is a fixed feature extractor, so its dropout stays off as well.
    """
    return training if model.backbone.trainable else False


def serialize_with_backbone(config, backbone):
    """Adds the serialized backbone to a model config."""
    config.update({"backbone": keras.saving.serialize_keras_object(backbone)})
    return config


def set_backbone_trainable(model):
    """Sets `model.backbone.trainable = not model.freeze_backbone` on every sublayer.

    Setting `trainable` on the backbone alone is not enough: sublayers created later by a
    block's `build()` (attention projections, feed-forward kernels) were seen to stay
    trainable, so every nested layer is set, and the call is repeated after building.
    """
    trainable = not model.freeze_backbone
    for layer in model.backbone._flatten_layers(include_self=True, recursive=True):
        layer.trainable = trainable
