"""SavedModel endpoints of an encoder text classifier: strings in, probabilities and labels out."""

import tensorflow as tf

from keras_lm.data.encoder_inputs import encoder_vocabulary_size
from keras_lm.data.encoder_inputs import pack_segments
from keras_lm.data.encoder_inputs import special_token_ids
from keras_lm.export.causal_lm_module import STRINGS
from keras_lm.export.causal_lm_module import backend_variables


class ClassifierModule(tf.Module):
    """The serving signatures of an encoder classifier (`SequenceClassifier`).

    Every signature takes `tf.string` [B] texts (any B, empty strings allowed):

        classify(texts) -> probabilities, labels
        classify_pairs(texts, pairs) -> probabilities, labels

    `probabilities` is float32 [B, C], the softmax of the model's logits (column c is label
    `labels[c]` of this module, the workdir's `labels.json` order); `labels` is tf.string
    [B], the most probable label's name (the first one on a tie). `serving_default` is
    `classify_pairs` for a classifier trained on text pairs (`text_pairs=True`) and
    `classify` otherwise; both signatures are always there.

    Inputs are laid out as in training and `keras-lm predict`
    (`keras_lm.data.encoder_inputs.pack_segments`): `[CLS] a [SEP]` or
    `[CLS] a [SEP] b [SEP]` in rows of T tokens. Long input never fails: a text that does not
    fit keeps its first tokens (pairs are cut "longest first").

    Shape letters: B batch, T `sequence_length`, C labels.

    Args:
        model: a built `SequenceClassifier` (any model mapping {"token_ids", "segment_ids"}
            [B, T] to logits [B, C] with `backbone.vocabulary_size` and
            `backbone.sequence_length` works).
        tokenizer: the keras_lm tokenizer the model was trained with.
        labels: list of C label names, in label-id order (default: "0", "1", ...).
        sequence_length: int T, the row length of training (`config.data.sequence_length`);
            default and upper bound: the backbone's `sequence_length`.
        text_pairs: bool, whether the model was trained on text pairs (picks
            `serving_default`).

    Example:
    >>> module = ClassifierModule(model, tokenizer, labels=["neg", "pos"])
    >>> tf.saved_model.save(module, path, signatures=module.signatures())
    >>> tf.saved_model.load(path).signatures["classify"](texts=tf.constant(["so good"]))
    {'labels': <tf.Tensor: shape=(1,), dtype=string, numpy=array([b'pos'], dtype=object)>,
     'probabilities': <tf.Tensor: shape=(1, 2), dtype=float32, numpy=...>}
    """

    def __init__(self, model, tokenizer, labels=None, sequence_length=None, text_pairs=False):
        super().__init__(name="keras_lm_classifier")
        labels = check_encoder_head(model, tokenizer, labels, "label")
        self.sequence_length = encoder_sequence_length(model, sequence_length, specials=3)
        self.labels = labels
        self.text_pairs = bool(text_pairs)
        self.main_signature = "classify_pairs" if self.text_pairs else "classify"
        self.model_variables = backend_variables(model)
        self.tokenizer = tokenizer
        ids = special_token_ids(tokenizer)
        width = self.sequence_length
        names = tf.constant(labels, tf.string)

        def classify_ids(first, second):
            features = pack_segments(first, second, width, ids["cls"], ids["sep"])  # (B, T)
            logits = tf.cast(model(features, training=False), tf.float32)  # (B, C)
            probabilities = tf.nn.softmax(logits, axis=-1)
            best = tf.argmax(probabilities, axis=-1, output_type=tf.int32)  # (B,)
            return {"probabilities": probabilities, "labels": tf.gather(names, best)}

        @tf.function(input_signature=[STRINGS])
        def classify(texts):
            return classify_ids(tokenizer.tokenize(texts), None)

        @tf.function(input_signature=[STRINGS, tf.TensorSpec([None], tf.string, name="pairs")])
        def classify_pairs(texts, pairs):
            tf.debugging.assert_equal(
                tf.shape(texts), tf.shape(pairs),
                message="classify_pairs needs as many `pairs` as `texts` (one second text "
                        "per first text).")
            return classify_ids(tokenizer.tokenize(texts), tokenizer.tokenize(pairs))

        self.classify = classify
        self.classify_pairs = classify_pairs

    def signatures(self):
        """The signature name -> concrete function map for `tf.saved_model.save`."""
        functions = {
            "classify": self.classify.get_concrete_function(),
            "classify_pairs": self.classify_pairs.get_concrete_function(),
        }
        functions["serving_default"] = functions[self.main_signature]
        return functions

    def metadata(self):
        """What `keras_lm_export.json` records about these signatures beyond their specs."""
        return {
            "labels": list(self.labels),
            "sequence_length": self.sequence_length,
            "text_pairs": self.text_pairs,
        }


def check_encoder_head(model, tokenizer, labels, what):
    """Builds an encoder head model, checks its tokenizer and returns its label names.

    Args:
        model: a `SequenceClassifier` or `TokenClassifier` (`num_labels` outputs).
        tokenizer: the tokenizer the model was trained with.
        labels: list of `num_labels` str, or None for "0", "1", ...
        what: "label" or "tag", for the error message.

    Returns:
        The label names, a list of str in label-id order.
    """
    if not model.built:
        model.build()
    check_encoder_tokenizer(model, tokenizer)
    num_labels = int(model.num_labels)
    labels = [str(i) for i in range(num_labels)] if labels is None else list(labels)
    if len(labels) != num_labels or not all(isinstance(x, str) for x in labels):
        raise ValueError(
            f"`labels` must be {num_labels} {what} names (str), one per model output, in "
            f"{what}-id order. Received: labels={labels!r}"
        )
    return labels


def check_encoder_tokenizer(model, tokenizer):
    """Raises ValueError unless the encoder's embedding fits `tokenizer` (+ the [MASK] id)."""
    expected = encoder_vocabulary_size(tokenizer)
    if model.backbone.vocabulary_size != expected:
        raise ValueError(
            f"The tokenizer's vocabulary ({tokenizer.vocabulary_size} tokens, {expected} "
            f"encoder ids with [MASK]) does not match the model's encoder "
            f"({model.backbone.vocabulary_size}). Export the tokenizer saved with the model "
            "(its workdir's tokenizer/ directory)."
        )


def encoder_sequence_length(model, sequence_length, specials):
    """The row length T of an encoder export: `sequence_length`, at most the backbone's."""
    longest = int(model.backbone.sequence_length)
    if sequence_length is None:
        return longest
    if isinstance(sequence_length, bool) or not isinstance(sequence_length, int) or not (
        specials <= sequence_length <= longest
    ):
        raise ValueError(
            f"`sequence_length` must be an int in [{specials}, {longest}] (the encoder's "
            f"positions; {specials} special tokens a row). Received: "
            f"sequence_length={sequence_length!r}"
        )
    return sequence_length
