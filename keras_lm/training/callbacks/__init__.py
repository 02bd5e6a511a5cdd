"""Training callbacks: progress lines, NaN stop, checkpoints, TensorBoard."""

from keras_lm.training.callbacks.checkpoint_callback import CheckpointCallback
from keras_lm.training.callbacks.metrics_logger import MetricsLogger
from keras_lm.training.callbacks.nan_stopper import NaNStopper
from keras_lm.training.callbacks.progress_logger import ProgressLogger
from keras_lm.training.callbacks.step_callback import StepCallback
from keras_lm.training.callbacks.tensorboard import tensorboard_callback

__all__ = [
    "CheckpointCallback",
    "MetricsLogger",
    "NaNStopper",
    "ProgressLogger",
    "StepCallback",
    "tensorboard_callback",
]
