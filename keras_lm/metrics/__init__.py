"""Metrics computed outside the training graph: classification, tagging, extractive QA."""

from keras_lm.metrics.classification import accuracy
from keras_lm.metrics.classification import classification_metrics
from keras_lm.metrics.classification import confusion_matrix
from keras_lm.metrics.classification import macro_f1
from keras_lm.metrics.classification import per_class_f1
from keras_lm.metrics.squad import normalize_answer
from keras_lm.metrics.squad import squad_scores
from keras_lm.metrics.tagging import entities
from keras_lm.metrics.tagging import entity_scores
