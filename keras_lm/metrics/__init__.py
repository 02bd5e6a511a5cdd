"""Metrics computed outside the training graph: classification, tagging, extractive QA,
generated text."""

from keras_lm.metrics.classification import accuracy
from keras_lm.metrics.classification import classification_metrics
from keras_lm.metrics.classification import confusion_matrix
from keras_lm.metrics.classification import macro_f1
from keras_lm.metrics.classification import per_class_f1
from keras_lm.metrics.squad import normalize_answer
from keras_lm.metrics.squad import squad_scores
from keras_lm.metrics.tagging import entities
from keras_lm.metrics.tagging import entity_scores
from keras_lm.metrics.text_generation import bleu_signature
from keras_lm.metrics.text_generation import character_error_rate
from keras_lm.metrics.text_generation import chrf_signature
from keras_lm.metrics.text_generation import corpus_bleu
from keras_lm.metrics.text_generation import corpus_chrf
from keras_lm.metrics.text_generation import edit_distance
from keras_lm.metrics.text_generation import exact_match
from keras_lm.metrics.text_generation import text_generation_metrics
