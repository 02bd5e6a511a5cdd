"""Which ops a SavedModel needs: can a stock TensorFlow (or TF Serving) binary run it?

Read from `saved_model.pb` itself (every graph and every function of its library, nested
bodies included), so the answer covers what a server will load, not what was traced.

Core ops are those of `tf.raw_ops`. Inside XLA-compiled functions, TensorFlow's own XLA ops
(`XlaDynamicUpdateSlice`, from `keras.ops.slice_update` in the KV-cache update, ...) are
core too: every TensorFlow build that can XLA-compile registers them, though `tf.raw_ops`
does not list them.
"""

import os
import sys
import types

import tensorflow as tf
from tensorflow.compiler.tf2xla.ops import gen_xla_ops
from tensorflow.core.protobuf import saved_model_pb2

_XLA_ATTR = "_XlaMustCompile"


def read_saved_model(path):
    """The `SavedModel` proto of the SavedModel directory `path`."""
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(os.fspath(path), "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    return proto


def saved_model_op_types(path):
    """The op types of a SavedModel, split by where they run.

    Args:
        path: a SavedModel directory.

    Returns:
        (graph_ops, xla_ops): sets of op type names run by the TensorFlow executor, and
        run only inside XLA-compiled functions (`jit_compile=True` and what they call).
        Calls of library functions are followed into their bodies, not counted.
    """
    graph_ops, xla_ops = set(), set()
    for meta_graph in read_saved_model(path).meta_graphs:
        graph_def = meta_graph.graph_def
        functions = {f.signature.name: f for f in graph_def.library.function}
        compiled = {name for name, f in functions.items() if _is_xla(f.attr)}
        all_nodes = list(graph_def.node) + [n for f in functions.values() for n in f.node_def]
        xla_roots = compiled | _called_by(all_nodes, functions, xla=True)
        # Entry points: the graph's nodes (TF1 signatures) and the object graph's functions
        # (restored tf.functions). What they reach without an XLA call runs in the executor.
        entry = _called_by(graph_def.node, functions, xla=False)
        entry |= set(meta_graph.object_graph_def.concrete_functions) & set(functions)
        plain = _closure(entry - xla_roots, functions, stop=xla_roots)
        xla_only = _closure(xla_roots, functions) - plain
        graph_ops.update(node.op for node in graph_def.node)
        for name, f in functions.items():
            (xla_ops if name in xla_only else graph_ops).update(n.op for n in f.node_def)
        graph_ops -= set(functions)
        xla_ops -= set(functions)
    return graph_ops, xla_ops


def non_core_ops(path):
    """Op types of a SavedModel that stock TensorFlow does not register (custom ops).

    Args:
        path: a SavedModel directory.

    Returns:
        The sorted list of op types outside `tf.raw_ops` (and, inside XLA-compiled
        functions, outside TensorFlow's XLA ops); empty when a stock TensorFlow runs it.

    Example:
    >>> non_core_ops("/tmp/export/1")          # a char-tokenizer LM
    []
    >>> non_core_ops("/tmp/export_spm/1")      # a SentencePiece LM
    ['SentencepieceDetokenizeOp', 'SentencepieceOp', 'SentencepieceTokenizeOp']
    """
    core = set(dir(tf.raw_ops))
    xla_core = core | {name for name in dir(gen_xla_ops) if name.startswith("Xla")}
    graph_ops, xla_ops = saved_model_op_types(path)
    return sorted({op for op in graph_ops if op not in core}
                  | {op for op in xla_ops if op not in xla_core})


def op_packages(op_types):
    """The python package that registers each custom op, from the libraries loaded here.

    Custom-op libraries (e.g. tensorflow_text's) are loaded as python modules marked
    `_IS_TENSORFLOW_PLUGIN` that expose one attribute per op; this finds the package that
    imported each of them.

    Args:
        op_types: iterable of op type names.

    Returns:
        dict op type -> top-level package name (e.g. "tensorflow_text"); ops whose library
        is not loaded in this process are left out.
    """
    wanted, found = set(op_types), {}
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] in ("tensorflow", "keras", "numpy"):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, types.ModuleType) and getattr(value, "_IS_TENSORFLOW_PLUGIN",
                                                               False):
                for op in wanted - set(found):
                    if hasattr(value, op):
                        found[op] = name.split(".")[0]
    return found


def _is_xla(attrs):
    return _XLA_ATTR in attrs and attrs[_XLA_ATTR].b


def _called_functions(node, functions):
    """Library functions a node calls: as its op, or through func attributes (f, body...)."""
    names = {node.op} if node.op in functions else set()
    for value in node.attr.values():
        if value.HasField("func"):
            names.add(value.func.name)
        names.update(f.name for f in value.list.func)
    return names & set(functions)


def _called_by(nodes, functions, xla):
    """Functions that `nodes` call through XLA-compiled calls (`xla`) or plain ones."""
    names = set()
    for node in nodes:
        if _is_xla(node.attr) == xla:
            names.update(_called_functions(node, functions))
    return names


def _closure(roots, functions, stop=frozenset()):
    """`roots` and the functions they call, transitively, never entering `stop` or
    following an XLA-compiled call when `stop` is given."""
    seen, stack = set(), list(roots)
    while stack:
        name = stack.pop()
        if name in seen or name in stop:
            continue
        seen.add(name)
        nodes = functions[name].node_def
        if stop:
            nodes = [node for node in nodes if not _is_xla(node.attr)]
        stack.extend(callee for node in nodes for callee in _called_functions(node, functions))
    return seen
