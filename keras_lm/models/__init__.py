"""Models assembled from keras_lm layers, and the classic language models."""

from keras_lm.models.decoder_lm import DecoderLM
from keras_lm.models.ngram_lm import NGramLM
from keras_lm.models.recurrent_lm import RecurrentLM
