"""Models assembled from keras_lm layers, and the classic language models."""

from keras_lm.models.decoder_lm import DecoderLM
from keras_lm.models.hmm_em import baum_welch
from keras_lm.models.hmm_lm import HMMLanguageModel
from keras_lm.models.ngram_lm import NGramLM
from keras_lm.models.recurrent_lm import RecurrentLM
