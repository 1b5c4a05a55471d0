"""Ground truth from raw tfdbg2, to check nanwatch's answer against TensorFlow's own debugger.

Runs code with `enable_dump_debug_info(FULL_HEALTH, no circular buffer)`, reads the
dump with `DebugDataReader`, and returns the first op (by wall time) whose output
held NaN/Inf while its traced inputs were all finite: the origin, not a victim.
"""

import shutil
import tempfile

# Ops that hand data over; GatherV2 is Keras's array adapter taking a shuffled batch's rows (raw
# tfdbg2's wall-time order put it first in one CI run, IteratorGetNext in others).
DATA_OPS = {"Placeholder", "IteratorGetNext", "IteratorGetNextSync", "OptionalGetValue", "GatherV2"}


def _bad(values):
    # FULL_HEALTH: [tensor_id, device, dtype, rank, size, neg_inf, pos_inf, nan, neg, zero, pos]
    return values is not None and len(values) >= 8 and (values[5] + values[6] + values[7]) > 0


def first_nonfinite(*cells):
    import tensorflow as tf
    from tensorflow.python.debug.lib.debug_events_reader import DebugDataReader

    dump = tempfile.mkdtemp(prefix="oracle-")
    namespace = {}
    tf.debugging.experimental.enable_dump_debug_info(dump, tensor_debug_mode="FULL_HEALTH", circular_buffer_size=-1)
    try:
        for code in cells:
            try:
                exec(compile(code, "<oracle>", "exec"), namespace)
            except Exception:
                break
    finally:
        tf.debugging.experimental.disable_dump_debug_info()
    try:
        with DebugDataReader(dump) as reader:
            reader.update()
            return _origin(reader)
    finally:
        shutil.rmtree(dump, ignore_errors=True)


def _origin(reader):
    candidates = []
    health = {}   # (graph_id, op_name, slot) -> bad?
    for trace in reader.graph_execution_traces():
        bad = _bad(trace.debug_tensor_value)
        key = (trace.graph_id, trace.op_name, trace.output_slot)
        health.setdefault(key, []).append((trace.wall_time, bad))
        if bad:
            candidates.append((trace.wall_time, "graph", trace))
    for execution in reader.executions():
        values = execution.debug_tensor_values or []
        if any(_bad(v) for v in values):
            candidates.append((execution.wall_time, "eager", execution))
    candidates.sort(key=lambda c: c[0])
    for wall_time, kind, event in candidates:
        if kind == "eager":
            return {"op_type": event.op_type, "op_name": None}
        graph = reader.graph_by_id(event.graph_id)
        digest = graph.get_op_creation_digest(event.op_name)
        inputs_bad = False
        for name in digest.input_names or []:
            op_name, _, slot = name.rpartition(":")
            history = health.get((event.graph_id, op_name, int(slot or 0)), [])
            before = [bad for t, bad in history if t <= wall_time]
            if before and before[-1]:
                inputs_bad = True
                break
        if not inputs_bad:
            return {"op_type": event.op_type, "op_name": event.op_name}
    return None
