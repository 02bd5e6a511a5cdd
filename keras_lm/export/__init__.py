"""SavedModel export for serving: strings in, strings and scores out (TF Serving layout)."""

from keras_lm.export.causal_lm_module import CausalLMModule
from keras_lm.export.classifier_module import ClassifierModule
from keras_lm.export.exporter import METADATA_FILE
from keras_lm.export.exporter import export_model
from keras_lm.export.exporter import next_version
from keras_lm.export.exporter import signature_specs
from keras_lm.export.kinds import EXPORT_KINDS
from keras_lm.export.kinds import MODEL_KINDS
from keras_lm.export.kinds import builder_class
from keras_lm.export.kinds import kind_of
from keras_lm.export.kinds import register_kind
from keras_lm.export.loading import load
from keras_lm.export.loading import read_metadata
from keras_lm.export.ngram_module import NGramModule
from keras_lm.export.qa_module import QAModule
from keras_lm.export.saved_model_ops import non_core_ops
from keras_lm.export.saved_model_ops import saved_model_op_types
from keras_lm.export.seq2seq_module import Seq2SeqModule
from keras_lm.export.tagger_module import TaggerModule
