"""Test utilities shared by keras_lm's tests (and usable by users testing their own layers)."""

from keras_lm.testing.layer_test import run_layer_test
