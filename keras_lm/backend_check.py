"""Makes sure Keras runs on the TensorFlow backend before anything else imports it.

keras_lm trains on `tf.data`, distributes with `tf.distribute` and exports TensorFlow
SavedModels, so it needs Keras's TensorFlow backend. The layers themselves are written with
`keras.ops`, but the package as a whole is not backend-portable, and a silent mix of backends
would fail far from its cause. We therefore check once, at import, and fail with the fix.
"""

import os
import sys

_FIX = (
    "keras_lm needs Keras's TensorFlow backend. Set it before Python starts, e.g. "
    "`export KERAS_BACKEND=tensorflow`, or in Python before importing keras: "
    "`os.environ['KERAS_BACKEND'] = 'tensorflow'`."
)


def ensure_tensorflow_backend():
    """Selects the TensorFlow backend, or raises `ImportError` naming the fix."""
    requested = os.environ.get("KERAS_BACKEND")
    if requested and requested != "tensorflow":
        raise ImportError(f"{_FIX} Received: KERAS_BACKEND={requested!r}.")
    if "keras" not in sys.modules:
        # Keras reads the variable once, at its own import: set it before that.
        os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras

    backend = keras.config.backend()
    if backend != "tensorflow":
        raise ImportError(
            f"{_FIX} Keras was already imported with backend={backend!r} "
            "(from ~/.keras/keras.json or an earlier import)."
        )
