"""Models assembled from keras_lm layers, and the classic language models."""

from keras_lm.models.decoder_lm import DecoderLM
from keras_lm.models.encoder_backbone import EncoderBackbone
from keras_lm.models.hmm_em import baum_welch
from keras_lm.models.hmm_lm import HMMLanguageModel
from keras_lm.models.masked_lm import MaskedLM
from keras_lm.models.ngram_lm import NGramLM
from keras_lm.models.question_answering import QuestionAnswering
from keras_lm.models.recurrent_lm import RecurrentLM
from keras_lm.models.seq2seq_transformer import Seq2SeqTransformer
from keras_lm.models.sequence_classifier import SequenceClassifier
from keras_lm.models.token_classifier import TokenClassifier
