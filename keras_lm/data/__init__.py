"""keras_lm.data: text sources and the language-modelling input pipeline."""

from keras_lm.data.lm_pipeline import PACKINGS
from keras_lm.data.lm_pipeline import build_lm_datasets
from keras_lm.data.lm_pipeline import corpus_statistics
from keras_lm.data.lm_pipeline import lm_dataset
from keras_lm.data.shakespeare import canonical_text
from keras_lm.data.shakespeare import shakespeare_dir
from keras_lm.data.shakespeare import shakespeare_documents
from keras_lm.data.shakespeare import shakespeare_works
from keras_lm.data.sources import SPLITS
from keras_lm.data.sources import is_split_aware
from keras_lm.data.sources import load_documents
from keras_lm.data.sources import pydoc_documents
from keras_lm.data.sources import text_dataset
