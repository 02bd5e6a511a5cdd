"""Layers: attention, position encodings, embeddings, feed-forward, norms and Transformer blocks."""

from keras_lm.layers.feed_forward import FeedForward
from keras_lm.layers.initializers import clone_initializer
from keras_lm.layers.layer_normalization import LayerNormalization
from keras_lm.layers.masks import causal_mask
from keras_lm.layers.masks import merge_masks
from keras_lm.layers.masks import positions_from_segment_ids
from keras_lm.layers.masks import segment_mask
from keras_lm.layers.multi_head_attention import MultiHeadAttention
from keras_lm.layers.position_embedding import PositionEmbedding
from keras_lm.layers.reversible_embedding import ReversibleEmbedding
from keras_lm.layers.rms_normalization import RMSNormalization
from keras_lm.layers.rms_normalization import normalization
from keras_lm.layers.rotary_embedding import RotaryEmbedding
from keras_lm.layers.sinusoidal_position_encoding import SinusoidalPositionEncoding
from keras_lm.layers.token_and_position_embedding import TokenAndPositionEmbedding
from keras_lm.layers.transformer_decoder_block import TransformerDecoderBlock
from keras_lm.layers.transformer_encoder_block import TransformerEncoderBlock
