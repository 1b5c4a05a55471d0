"""Replay one Keras step eagerly to take the evidence a graph failure cannot carry.

A failed graph check tells which op went non-finite, but not the counts or its
inputs' values. The failing step did not apply its update (the update consumes
checked gradients), so running `train_step` once more, eagerly, on the same
batch, with the probe's eager checks on, shows the op with its inputs in hand.
Every variable the step may touch (model, optimizer, metrics) is put back after.
Random ops (dropout) may draw differently: the caller compares the result.
"""

from __future__ import annotations

import contextlib
import dataclasses

from .detection import Detection
from .model_facts import step_method


class _Found(Exception):
    """Stops the replay at the first non-finite op."""


def _variables(model) -> list:
    seen, out = set(), []
    groups = [getattr(model, "variables", [])]
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        groups.append(getattr(optimizer, "variables", []))
    groups.append(getattr(model, "metrics_variables", []))
    for group in groups:
        for var in group:
            if id(var) not in seen:
                seen.add(id(var))
                out.append(var)
    return out


@contextlib.contextmanager
def preserved_variables(model, probe):
    """Snapshot every variable of the model, its optimizer and metrics; restore on exit."""
    with restored(_variables(model), probe) as saved:
        yield saved


@contextlib.contextmanager
def restored(variables, probe):
    """Snapshot the variables; put them back on exit (nanwatch's own reads and writes, unchecked)."""
    with probe.paused():
        saved = [var.numpy() for var in variables]
    try:
        yield saved
    finally:
        with probe.paused():
            for var, value in zip(variables, saved):
                var.assign(value)


def _shard(data, replica: int):
    """Under a distribution strategy, the failing replica's part of the batch (PerReplica values)."""
    import tensorflow as tf
    from tensorflow.python.distribute import values as dist_values

    def pick(value):
        if isinstance(value, dist_values.PerReplica):
            parts = value.values
            return parts[min(replica, len(parts) - 1)]
        return value
    return tf.nest.map_structure(pick, data, expand_composites=False)


def replay_step(model, kind: str, data, probe, replica: int | None = None) -> Detection | None:
    """Run the step eagerly under the probe; return what it finds first (or None).

    Under a multi-replica strategy the failing replica's shard is replayed on its own, in this
    thread (the strategy would run replicas in threads of their own, which op callbacks,
    being thread-local, do not reach)."""
    import tensorflow as tf

    step_fn = step_method(model, kind)
    strategy = model.distribute_strategy
    # MirroredStrategy on one device too: its update merges, which fails in its scope outside a run
    distributed = getattr(strategy, "num_replicas_in_sync", 1) > 1 or type(strategy).__name__ == "MirroredStrategy"
    if distributed:
        data = _shard(data, replica or 0)
    probe.eager.register_state(_variables(model))   # the model's state: where harm is decided
    was_eager = tf.config.functions_run_eagerly()
    with preserved_variables(model, probe), probe.capturing(_Found) as found:
        try:
            tf.config.run_functions_eagerly(True)
            if distributed:
                # on the replica's own device: its ops (and the report) name it, as in the graph
                devices = getattr(strategy.extended, "worker_devices", ())
                replica_id = min(replica or 0, len(devices) - 1) if devices else None
                with tf.device(devices[replica_id] if devices else None):
                    step_fn(data)
            else:
                with strategy.scope():
                    step_fn(data)
        except _Found:
            pass
        except Exception:
            if not found:
                raise
        finally:
            tf.config.run_functions_eagerly(was_eager)
    return found[0] if found else None


def merge_replay(graph: Detection, replayed: Detection | None) -> tuple[Detection, bool]:
    """The graph detection enriched with the replay's numbers; and whether it reproduced."""
    if replayed is None:
        return graph, False
    if replayed.context != "data" and replayed.op_type != graph.op_type:
        # The replay follows provenance to the value that reached the training: its origin is the
        # harm's (the graph check stops at the first non-finite op, which may be one the training
        # absorbs, e.g. a -inf mask before the softmax that makes NaN of a fully masked row), or the
        # graph check sat after a fused chain left unchecked and the replay saw each op of it.
        return dataclasses.replace(replayed, device=replayed.device or graph.device), True
    changes = {"counts": replayed.counts, "histogram": replayed.histogram, "output": replayed.output,
               "notes": replayed.notes, "gradient_of_op": replayed.gradient_of_op, "made_from": replayed.made_from,
               "op_inputs": replayed.op_inputs}
    if replayed.context == "data":
        changes.update(context="data", op_type=None, op_name=None, data=replayed.data, consumer=replayed.consumer)
    else:
        changes["inputs"] = [dict(h, name=(graph.inputs[i]["name"] if i < len(graph.inputs) else h["name"]),
                                  op_type=(graph.inputs[i]["op_type"] if i < len(graph.inputs) else None))
                             for i, h in enumerate(replayed.inputs)]
    where = graph.where
    if where.layer is None and replayed.where.layer is not None:
        where = dataclasses.replace(where, layer=replayed.where.layer)
    if replayed.gradient_of_op and (replayed.gradient_of_op.get("source") is not None):
        where = dataclasses.replace(where, source=replayed.where.source)   # the forward line of a gradient
    changes["where"] = where
    return dataclasses.replace(graph, **changes), True
