"""A Detection (what the probe saw) -> `first_nonfinite` of the report (schema 1).

Decides the phase (data and weight reads are `input`), names the layer as the
user named it (from the creation frames, else from the graph name scope), and
merges a graph detection with its eager replay.
"""

from __future__ import annotations

import re

from .engine.frames import layer_from_scope
from .engine.probe import Detection

_WEIGHT_READS = {"ReadVariableOp", "ResourceGather", "VarHandleOp"}
_REPLICA_RE = re.compile(r"replica:(\d+)")
_DEVICE_RE = re.compile(r"device:([A-Z]+):(\d+)")


def merge_replay(graph: Detection, replayed: Detection | None) -> tuple[Detection, bool]:
    """The graph detection enriched with the replay's numbers; and whether it reproduced."""
    if replayed is None:
        return graph, False
    fused_chain = {op for op, _ in graph.upstream}
    if replayed.context != "data" and replayed.op_type != graph.op_type and replayed.op_type in fused_chain:
        # the graph check sat after a fused chain left unchecked; the replay saw each op of it
        replayed.device = replayed.device or graph.device
        return replayed, True
    same = replayed.context == "data" or replayed.op_type == graph.op_type
    if not same:
        return graph, False
    graph.counts = replayed.counts
    if replayed.context == "data":
        graph.context, graph.op_type, graph.op_name = "data", None, None
        graph.data, graph.consumer = replayed.data, replayed.consumer
    else:
        graph.inputs = [dict(h, name=(graph.inputs[i]["name"] if i < len(graph.inputs) else h["name"]),
                             op_type=(graph.inputs[i]["op_type"] if i < len(graph.inputs) else None))
                        for i, h in enumerate(replayed.inputs)]
    graph.histogram = replayed.histogram
    graph.output = replayed.output
    if graph.where.layer is None and replayed.where.layer is not None:
        graph.where.layer = replayed.where.layer
    return graph, True


def replica_of(device: str | None) -> int | None:
    """`/job:localhost/replica:0/task:0/device:CPU:1` -> 1: the device index, which is the replica
    id under a one-machine strategy (MirroredStrategy places replica i on its i-th device)."""
    match = _DEVICE_RE.search(device or "")
    return int(match.group(2)) if match else None


def phase_of(det: Detection) -> str:
    if det.context == "data" or det.op_type in _WEIGHT_READS:
        return "input"
    if det.gradient_of:
        return "backward"
    return det.where.phase


def first_nonfinite(det: Detection, *, step, epoch, layer_names=(), replayed=None, reproduced=None,
                    weight=None) -> dict:
    layer = det.where.layer
    scope = det.op_name or det.where.scope
    if scope and (layer is None or det.where.phase == "backward"):
        layer = layer_from_scope(scope, set(layer_names)) or layer
    if det.context == "data" and det.consumer:
        layer = det.consumer.get("layer") or layer
    counts = det.counts or {"nan": None, "pos_inf": None, "neg_inf": None, "size": None}
    if det.counts is None and det.kind:
        counts = dict(counts, kind=det.kind)
    device = det.device or None
    replica = replica_of(device)
    data = dict(det.data) if det.data else None
    if weight is not None:
        data = {"source": "weights", "layer": weight[0], "variable": weight[1],
                "rows": [], "columns": [], "values": ["nan"]}
        layer = weight[0]
    return {
        "op_type": det.op_type,
        "op_name": det.op_name,
        "output_slot": det.slot,
        "phase": phase_of(det),
        "layer": layer,
        "layer_path": det.where.layer_path,
        "step": step,
        "epoch": epoch,
        "counts": counts,
        "inputs": [_input_entry(i) for i in det.inputs],
        "data": data,
        "consumer": det.consumer,
        "source": det.where.source,
        "dtype": det.dtype,
        "device": device,
        "replica": replica,
        "context": det.context,
        "replayed": replayed,
        "reproduced": reproduced,
        "histogram": det.histogram,
    }


def _input_entry(health: dict) -> dict:
    keys = ("name", "op_type", "finite", "min", "max", "mean", "zeros", "negatives", "nan", "pos_inf",
            "neg_inf", "size", "dtype", "shape")
    return {k: health.get(k) for k in keys if k in health}
