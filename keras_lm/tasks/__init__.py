"""Tasks: where data, tokenizer, model, optimizer and strategy meet for one kind of problem."""

from keras_lm.tasks import language_model
from keras_lm.tasks import workdir
