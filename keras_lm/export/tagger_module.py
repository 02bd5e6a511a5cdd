"""SavedModel endpoints of a token classifier (tagger): strings in, one tag per word out."""

import tensorflow as tf

from keras_lm.data.encoder_inputs import pack_segments
from keras_lm.data.encoder_inputs import special_token_ids
from keras_lm.export.causal_lm_module import STRINGS
from keras_lm.export.causal_lm_module import backend_variables
from keras_lm.export.classifier_module import check_encoder_head
from keras_lm.export.classifier_module import encoder_sequence_length

# The tag of a word cut off by the row length (`keras_lm.tasks.tagging.OUTSIDE`).
OUTSIDE = "O"
# A run of the characters at which Python's `str.split()` splits (those with
# `str.isspace()`), as an RE2 class: `tf.strings.split` alone splits at ASCII white space
# only, and the tagging task splits `--text` with `str.split()`.
WHITESPACE_RUN = (
    r"[\t\n\x0b\x0c\r\x1c-\x20\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}"
    r"\x{202f}\x{205f}\x{3000}]+"
)


class TaggerModule(tf.Module):
    """The serving signature of a token classifier (`TokenClassifier`).

    One signature, on `tf.string` [B] texts (any B, empty strings allowed):

        tag(texts) -> words, tags, word_counts, probabilities      (= serving_default)

    A text is split into words at white space as Python's `str.split()` does (what
    `keras-lm predict` does with `--text`); the words are laid out as in training
    (`keras_lm.data.encoder_inputs.tagging_arrays`): `[CLS] pieces(w_1) ... pieces(w_n)
    [SEP]` in rows of T tokens, word j > 0 tokenized with its leading space, and each word's
    tag read at its first sub-token.

    Outputs, W being the most words of a text in the batch:
    - `words`: tf.string [B, W], the words of each text, padded with "";
    - `tags`: tf.string [B, W], each word's most probable tag (the first one on a tie),
      padded with "";
    - `word_counts`: int32 [B], the number of words of each text;
    - `probabilities`: float32 [B, W, C], the softmax over tags at each word's first
      sub-token (column c is tag `labels[c]`, the workdir's `labels.json` order); all zeros
      for padding and for cut-off words.

    Long input never fails: the words that do not fit a row whole (with [CLS] and [SEP])
    are tagged "O" (`keras_lm.tasks.tagging.OUTSIDE`), as `keras-lm predict` and the
    evaluation do.

    Shape letters: B batch, W words, T `sequence_length`, C tags.

    Args:
        model: a built `TokenClassifier` (any model mapping {"token_ids", "segment_ids"}
            [B, T] to logits [B, T, C] with `num_labels`, `backbone.vocabulary_size` and
            `backbone.sequence_length` works).
        tokenizer: the keras_lm tokenizer the model was trained with.
        labels: list of C tag names, in tag-id order (default: "0", "1", ...).
        sequence_length: int T, the row length of training (`config.data.sequence_length`);
            default and upper bound: the backbone's `sequence_length`.

    Example:
    >>> module = TaggerModule(model, tokenizer, labels=["B-PER", "I-PER", "O"])
    >>> tf.saved_model.save(module, path, signatures=module.signatures())
    >>> out = tf.saved_model.load(path).signatures["tag"](texts=tf.constant(["Anna met Bob"]))
    >>> out["words"].numpy().tolist(), out["tags"].numpy().tolist()
    ([[b'Anna', b'met', b'Bob']], [[b'B-PER', b'O', b'B-PER']])
    """

    main_signature = "tag"

    def __init__(self, model, tokenizer, labels=None, sequence_length=None):
        super().__init__(name="keras_lm_tagger")
        labels = check_encoder_head(model, tokenizer, labels, "tag")
        self.sequence_length = encoder_sequence_length(model, sequence_length, specials=2)
        self.labels = labels
        self.model_variables = backend_variables(model)
        self.tokenizer = tokenizer
        ids = special_token_ids(tokenizer)
        width = self.sequence_length
        names = tf.constant(labels, tf.string)

        @tf.function(input_signature=[STRINGS])
        def tag(texts):
            words = split_words(texts)  # (B, None) ragged
            # Word j > 0 is tokenized as it appears in " ".join(words): with its space.
            first = tf.equal(tf.ragged.range(words.row_lengths()).flat_values, 0)
            spaced = tf.strings.join([tf.where(first, "", " "), words.flat_values])
            pieces = tokenizer.tokenize(spaced)  # (words in the batch, None) ragged
            lengths = words.with_flat_values(tf.cast(pieces.row_lengths(), tf.int32))
            lengths = lengths.to_tensor(0)  # (B, W) sub-tokens of each word
            count = tf.shape(lengths)[1]
            present = tf.sequence_mask(words.row_lengths(), count)  # (B, W)
            ends = tf.cumsum(lengths, axis=1)
            # A word is in the row if it fits whole before [SEP]; the ends only grow, so the
            # words that fit are a prefix, as in tagging_arrays.
            fits = tf.logical_and(present, ends <= width - 2)  # (B, W)
            kept = tf.reduce_sum(tf.where(fits, lengths, 0), axis=1)  # (B,) tokens kept
            tokens = words.with_flat_values(pieces).merge_dims(1, 2)  # (B, None)
            tokens = tf.RaggedTensor.from_tensor(tokens.to_tensor(), lengths=kept)
            features = pack_segments(tokens, None, width, ids["cls"], ids["sep"])  # (B, T)
            logits = tf.cast(model(features, training=False), tf.float32)  # (B, T, C)
            starts = tf.where(fits, 1 + ends - lengths, 0)  # (B, W) first sub-token positions
            best = tf.gather(tf.argmax(logits, axis=-1, output_type=tf.int32), starts,
                             batch_dims=1)  # (B, W)
            tags = tf.where(fits, tf.gather(names, best), tf.where(present, OUTSIDE, ""))
            probabilities = tf.gather(tf.nn.softmax(logits, axis=-1), starts, batch_dims=1)
            return {
                "words": words.to_tensor(""),
                "tags": tags,
                "word_counts": tf.cast(words.row_lengths(), tf.int32),
                "probabilities": tf.where(fits[:, :, None], probabilities, 0.0),  # (B, W, C)
            }

        self.tag = tag

    def signatures(self):
        """The signature name -> concrete function map for `tf.saved_model.save`."""
        tag = self.tag.get_concrete_function()
        return {"tag": tag, "serving_default": tag}

    def metadata(self):
        """What `keras_lm_export.json` records about these signatures beyond their specs."""
        return {
            "labels": list(self.labels),
            "sequence_length": self.sequence_length,
            "outside_tag": OUTSIDE,
        }


def split_words(texts):
    """The words of each text, split at white space as Python's `str.split()` splits.

    Args:
        texts: tf.string [B].

    Returns:
        A tf.string `tf.RaggedTensor` [B, None] (no empty words).

    Example:
    >>> split_words(tf.constant([" a\\u00a0b  c", ""])).to_list()
    [[b'a', b'b', b'c'], []]
    """
    return tf.strings.split(tf.strings.regex_replace(texts, WHITESPACE_RUN, " "))
