"""Initializer helper."""

import keras


def clone_initializer(initializer):
    """A fresh copy of `initializer` for one more weight.

    An unseeded Keras 3 initializer instance returns the same values on every call, so one
    instance shared by the query, key and value projections would start them identical.
    Each weight therefore gets its own copy (whose seed is drawn anew when unseeded).
    """
    initializer = keras.initializers.get(initializer)
    return initializer.__class__.from_config(initializer.get_config())
