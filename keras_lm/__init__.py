"""keras_lm: language models from theory to practice, the Keras way."""

from keras_lm.backend_check import ensure_tensorflow_backend as _ensure_tf

_ensure_tf()

from keras_lm.host_memory import use_caching_allocator as _use_caching_allocator  # noqa: E402

_use_caching_allocator()  # before any TensorFlow op: see keras_lm/host_memory.py

from keras_lm import layers  # noqa: E402

__version__ = "0.1.0"
