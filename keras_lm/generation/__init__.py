"""Generation: samplers and the cached, XLA-compiled decoding loop."""

from keras_lm.generation.beam_search import BeamSearchOutput
from keras_lm.generation.beam_search import beam_search
from keras_lm.generation.beam_search import length_penalty_factor
from keras_lm.generation.decoding import decode_ids
from keras_lm.generation.decoding import generate
from keras_lm.generation.samplers import filter_logits
from keras_lm.generation.samplers import sample
