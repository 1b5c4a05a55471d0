"""What a traced function's graph does, read from its GraphDef (nested functions included): whether it
runs collectives, whether it updates the model's weights as an optimizer does. Fast mode asks once per trace."""

from __future__ import annotations

from ..ops import GRAPH_WRITE_PREFIXES

_MAX_DEPTH = 16       # nested functions followed (a cond in a loop in a call...)


def graph_def_of(concrete):
    """The traced function's GraphDef, its nested functions in its library (None if it cannot be read).
    Made once per trace and given to the questions below."""
    try:
        return concrete.graph.as_graph_def()
    except Exception:
        return None


def has_collectives(graph_def) -> bool:
    """Does the traced function (or a function it calls) run collective ops (a strategy's all-reduce)?"""
    if graph_def is None:
        return True    # unknown: agree, as every worker's step must
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    return any(node.op.startswith("Collective") for node in nodes)


def updates_weights(concrete, graph_def) -> bool:
    """Is the traced function a training step: does it write a trainable variable it captures and an
    integer one (the step counter every Keras optimizer, Keras 3 or tf.keras, adds one to on each update),
    directly or in a function, cond or loop it calls? An evaluation step that updates only its metrics
    is not, nor a function that only nudges weights (a constraint, an average). Read from the graph, so a
    step traced before the watch (the cell run once, then watched) is known as one."""
    if graph_def is None:
        return False
    try:
        captured = {id(outside): inside.op.name for outside, inside in concrete.graph.captures}
        weights = {captured[id(v.handle)] for v in concrete.variables
                   if getattr(v, "trainable", False) and id(v.handle) in captured}
        counters = {captured[id(v.handle)] for v in concrete.variables
                    if v.dtype.is_integer and not getattr(v, "trainable", False) and id(v.handle) in captured}
    except Exception:
        return False
    library = {f.signature.name: f for f in graph_def.library.function}
    return bool(weights and counters) and _writes(graph_def.node, weights, library, 0) \
        and _writes(graph_def.node, counters, library, 0)


def _writes(nodes, names: set, library: dict, depth: int) -> bool:
    """Does a node write one of the variables whose handles are the nodes or arguments `names`? A call
    passes the handle on as an argument of the callee, walked in turn."""
    for node in nodes:
        positions = [k for k, name in enumerate(node.input) if not name.startswith("^")
                     and name.split(":")[0] in names]
        if not positions:
            continue
        if node.op.startswith(GRAPH_WRITE_PREFIXES):
            return True
        if depth >= _MAX_DEPTH:
            continue
        # If/Case take the branch selector first; calls and loops pass their inputs on in order
        skip = 1 if node.op in ("If", "StatelessIf", "Case", "StatelessCase") else 0
        for attr in node.attr.values():
            callees = [attr.func.name] if attr.HasField("func") else \
                [f.name for f in attr.list.func] if attr.HasField("list") else []
            for callee in callees:
                function = library.get(callee)
                if function is None:
                    continue
                args = function.signature.input_arg
                inner = {args[k - skip].name for k in positions if 0 <= k - skip < len(args)}
                if inner and _writes(function.node_def, inner, library, depth + 1):
                    return True
    return False
