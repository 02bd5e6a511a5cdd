"""Training: strategy, precision, optimizer, schedule, losses/metrics, callbacks, the loop."""

from keras_lm.training.adamw import AdamW
from keras_lm.training.callbacks import CheckpointCallback
from keras_lm.training.callbacks import MetricsLogger
from keras_lm.training.callbacks import NaNStopper
from keras_lm.training.callbacks import ProgressLogger
from keras_lm.training.callbacks import StepCallback
from keras_lm.training.callbacks import tensorboard_callback
from keras_lm.training.compile import compile_for_training
from keras_lm.training.config import default_train_config
from keras_lm.training.config import resolve_train_config
from keras_lm.training.losses import MaskedSparseCrossEntropy
from keras_lm.training.losses import cross_entropy_sums
from keras_lm.training.losses import masked_sparse_cross_entropy
from keras_lm.training.metrics import Perplexity
from keras_lm.training.metrics import token_accuracy
from keras_lm.training.optimizers import build_optimizer
from keras_lm.training.schedules import WarmupCosineDecay
from keras_lm.training.schedules import warmup_cosine_decay
from keras_lm.training.strategy import create_strategy
from keras_lm.training.strategy import resolve_jit_compile
from keras_lm.training.strategy import set_precision
from keras_lm.training.train_result import TrainResult
from keras_lm.training.trainer import fit

__all__ = [
    "AdamW",
    "CheckpointCallback",
    "MetricsLogger",
    "MaskedSparseCrossEntropy",
    "NaNStopper",
    "Perplexity",
    "ProgressLogger",
    "StepCallback",
    "TrainResult",
    "WarmupCosineDecay",
    "build_optimizer",
    "compile_for_training",
    "create_strategy",
    "cross_entropy_sums",
    "default_train_config",
    "fit",
    "masked_sparse_cross_entropy",
    "resolve_jit_compile",
    "resolve_train_config",
    "set_precision",
    "tensorboard_callback",
    "token_accuracy",
    "warmup_cosine_decay",
]
