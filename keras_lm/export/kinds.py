"""The export registry: which `tf.Module` builds the serving signatures of which model.

A model kind names a family of models that share one serving interface ("causal_lm":
strings in, continuations and scores out). Adding one (e.g. an encoder classifier):

1. Write `keras_lm/export/<kind>_module.py` with a `tf.Module` class constructed as
   `Builder(model, tokenizer, **options)` that offers
   - `main_signature`: the name of the signature that is also `serving_default`;
   - `signatures()`: {name: concrete function}, "serving_default" included, every input a
     `tf.TensorSpec` with a fixed dtype (strings for text) and every output a dict;
   - `metadata()`: a JSON-serializable dict merged into `keras_lm_export.json`;
   - optionally `save_assets(path)`: writes extra files into the version directory (e.g.
     a second tokenizer) after the SavedModel and the tokenizer are written.
   The module tracks what the functions capture (`backend_variables(model)`, the tokenizer).
2. Register it: add `kind: (module path, class name)` to `EXPORT_KINDS` and map the model
   classes to it in `MODEL_KINDS` (or call `register_kind` from the model family's code).
3. Test it like tests/export/causal_lm_module_test.py: export, load in a process without
   keras_lm, compare with the in-process model.
"""

import importlib

# Model class name -> export kind.
MODEL_KINDS = {
    "DecoderLM": "causal_lm",
    "RecurrentLM": "causal_lm",
    "HMMLanguageModel": "causal_lm",
    "SequenceClassifier": "classifier",
    "TokenClassifier": "tagger",
    "QuestionAnswering": "question_answering",
    "Seq2SeqTransformer": "seq2seq",
    "NGramLM": "ngram_lm",
}
# Export kind -> (module, class) of its signature builder, imported on first use, or the class.
EXPORT_KINDS = {
    "causal_lm": ("keras_lm.export.causal_lm_module", "CausalLMModule"),
    "classifier": ("keras_lm.export.classifier_module", "ClassifierModule"),
    "question_answering": ("keras_lm.export.qa_module", "QAModule"),
    "seq2seq": ("keras_lm.export.seq2seq_module", "Seq2SeqModule"),
    "ngram_lm": ("keras_lm.export.ngram_module", "NGramModule"),
    "tagger": ("keras_lm.export.tagger_module", "TaggerModule"),
}


def register_kind(kind, builder, model_classes=()):
    """Registers (or replaces) an export kind.

    Args:
        kind: str, the kind's name (recorded in `keras_lm_export.json`).
        builder: the `tf.Module` class building its signatures (see the module docstring),
            or a `(module path, class name)` pair imported on first use.
        model_classes: model classes (or their names) exported as this kind by default.

    Example:
    >>> register_kind("classifier", ClassifierModule, [TextClassifier])
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"`kind` must be a non-empty str. Received: kind={kind!r}")
    EXPORT_KINDS[kind] = builder
    for cls in model_classes:
        MODEL_KINDS[cls if isinstance(cls, str) else cls.__name__] = kind


def kind_of(model):
    """The export kind of `model`, from its class (or a base class) name."""
    for cls in type(model).__mro__:
        if cls.__name__ in MODEL_KINDS:
            return MODEL_KINDS[cls.__name__]
    raise ValueError(
        f"No export kind for a {type(model).__name__} model. Models with one: "
        f"{sorted(MODEL_KINDS)} (kinds {sorted(EXPORT_KINDS)}). Pass kind=... to export it "
        "as one of those kinds, or register a new kind with keras_lm.export.register_kind "
        "(see keras_lm/export/kinds.py)."
    )


def builder_class(kind):
    """The signature-builder class of an export kind."""
    if kind not in EXPORT_KINDS:
        raise ValueError(
            f"Unknown export kind {kind!r}. Known kinds: {sorted(EXPORT_KINDS)}; register a "
            "new one with keras_lm.export.register_kind (see keras_lm/export/kinds.py)."
        )
    builder = EXPORT_KINDS[kind]
    if isinstance(builder, tuple):
        module, name = builder
        builder = getattr(importlib.import_module(module), name)
    return builder
