"""Generation: samplers and the cached, XLA-compiled decoding loop."""

from keras_lm.generation.decoding import decode_ids
from keras_lm.generation.decoding import generate
from keras_lm.generation.samplers import filter_logits
from keras_lm.generation.samplers import sample
