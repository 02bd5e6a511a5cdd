"""Tokenizers: text <-> int32 ids in TensorFlow graphs (char, byte, SentencePiece)."""

from keras_lm.tokenizers.builder import TOKENIZER_CLASSES
from keras_lm.tokenizers.builder import from_config
from keras_lm.tokenizers.builder import load_tokenizer
from keras_lm.tokenizers.byte_tokenizer import ByteTokenizer
from keras_lm.tokenizers.char_tokenizer import CharTokenizer
from keras_lm.tokenizers.graph_ops import graph_op_types
from keras_lm.tokenizers.graph_ops import non_core_ops
from keras_lm.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer
from keras_lm.tokenizers.tokenizer import Tokenizer
