import tensorflow as tf

from keras_lm.tokenizers import graph_op_types
from keras_lm.tokenizers import non_core_ops


def test_core_ops_only_graph_is_empty():
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def lengths(texts):
        return tf.strings.length(texts, unit="UTF8_CHAR") + 1

    function = lengths.get_concrete_function()
    assert {"StringLength", "AddV2", "Placeholder"} <= graph_op_types(function)
    assert non_core_ops(function) == []


def test_ops_inside_nested_functions_are_found():
    import tensorflow_text

    tokenizer = tensorflow_text.WhitespaceTokenizer()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.bool)])
    def maybe_split(texts, split):
        # The custom op sits inside a cond branch, a function of the graph's library.
        return tf.cond(
            split,
            lambda: tokenizer.tokenize(texts).flat_values,
            lambda: tf.strings.upper(texts),
        )

    function = maybe_split.get_concrete_function()
    custom = non_core_ops(function)
    assert custom and all(op not in dir(tf.raw_ops) for op in custom)
    assert any("Whitespace" in op for op in custom), custom
    assert "StringUpper" in graph_op_types(function)  # the other branch's op is followed too
    assert non_core_ops(function.graph) == custom  # a tf.Graph works as well
