"""Which ops a traced graph uses: to check that an exported graph needs no custom ops."""

import tensorflow as tf


def graph_op_types(function):
    """The set of op types in a traced function, nested function bodies included.

    Args:
        function: a `tf.function` concrete function (e.g. `f.get_concrete_function(spec)`),
            or a `tf.Graph`.

    Returns:
        A set of op type names (e.g. {"Placeholder", "UnicodeDecode", ...}). Calls to
        functions of the graph's own library are followed into their bodies, not counted.
    """
    graph = function if isinstance(function, tf.Graph) else function.graph
    graph_def = graph.as_graph_def()
    library = {f.signature.name for f in graph_def.library.function}
    op_types = {node.op for node in graph_def.node}
    for f in graph_def.library.function:
        op_types.update(node.op for node in f.node_def)
    return op_types - library


def non_core_ops(function):
    """Op types of a traced function that stock TensorFlow does not have (custom ops).

    A stock TF Serving runs a SavedModel only if every op is a core TensorFlow op; core ops
    are exactly those in `tf.raw_ops` (ops of tensorflow_text, e.g. SentencepieceOp, are not).

    Args:
        function: a concrete function or a `tf.Graph`, as for `graph_op_types`.

    Returns:
        The sorted list of non-core op types; empty when the graph is portable.

    Example:
    >>> f = tf.function(lambda s: tokenizer.tokenize(s))
    >>> non_core_ops(f.get_concrete_function(tf.TensorSpec([None], tf.string)))
    []
    """
    core = set(dir(tf.raw_ops))
    return sorted(op for op in graph_op_types(function) if op not in core)
