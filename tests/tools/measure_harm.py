"""Measure where a non-finite value REACHES THE TRAINING, for the harm scenarios (tests/scenarios/harm.py).

Not a test: a tool, built on tests/tools/measure_scenarios.py (its child process and `measure()`, with
hooks that run in the child before the setup cell and after the watched cell). No nanwatch anywhere.
For each scenario, three fresh processes, each with inter-op parallelism 1:

  plain   the cell without instrumentation, with sink hooks. A sink is what reaches the training:
            loss      every `tape.gradient` target (the loss of fit's own step, of a custom train_step,
                      of a GradientTape loop) and what Keras returns (History, evaluate,
                      train_on_batch/test_on_batch);
            output    every `keras.Model.__call__` output during the cell (the predictions handed to
                      the loss or to the user) and what predict/predict_on_batch return;
            applied   the gradients and learning rate the optimizer applies (Keras'
                      `_backend_update_step`, so a LossScaleOptimizer's skipped step is not an apply);
            state     after the cell: every weight of every keras.Model in the namespace (trainable
                      and not: BatchNormalization's moving statistics too) and every optimizer
                      variable (slots, iterations, loss scale), and every Keras metric's result.
          In graphs the hooks add `is_finite` reductions and an int64 counter (no float op is added
          to the user's computation). Non-finite tf.Variables and floats the user keeps in the
          namespace are listed as `bookkeeping`, not as a sink.
  check   `tf.debugging.enable_check_numerics()`: the first op that raises, its type, graph, dtype,
          counts, and the cell line: the innermost "<cell>" frame of the op's creation stack (graph
          ops) or of the Python traceback (eager ops).
  dump    raw tfdbg2 (`enable_dump_debug_info`, FULL_HEALTH, no circular buffer): every tensor that
          held NaN/Inf, in execution order, each marked `origin` when all its traced inputs were
          finite, with its cell line, and `writes` when it fed a variable write (the state it
          reached). This lists the absorbed values too, and shows the chain from the origin to the
          sink that (c) of the harm truth reasons on (catalogue.TRUTH["harm"]).

    .venv/bin/python tests/tools/measure_harm.py [--plain] [--check] [--dump] [name ...]

prints one JSON line per scenario of tests/scenarios/harm.py (all, or the names given): {"name", "plain":
{..., "sinks": {name: {"calls", "nonfinite"}}, "reached": [...], "bookkeeping": [...]}, "check": {...,
"op_line"}, "dump": {"events", "origins"}} (the three runs, or only those flagged). About 35 s a scenario.
"""

from __future__ import annotations

import json
import os
import sys

# Sink hooks, run in the child before the setup cell (plain run only).
SINK_HOOKS = r'''
import numpy as _np, tensorflow as _tf, keras as _keras
from keras.src.backend.tensorflow.optimizer import TFOptimizer as _TFOptimizer
_COUNTERS, _PY_SINKS = {}, {"loss": [], "output": []}

def _counter(name):
    if name not in _COUNTERS:
        with _tf.init_scope():
            _COUNTERS[name] = (_tf.Variable(0, dtype=_tf.int64, trainable=False), _tf.Variable(0, dtype=_tf.int64, trainable=False))
    return _COUNTERS[name]

def _floats(values):
    out = []
    for t in _tf.nest.flatten(values):
        if isinstance(t, _tf.IndexedSlices):
            t = t.values
        if isinstance(t, _keras.Variable):
            t = t.value
        if isinstance(t, _keras.KerasTensor) or not _tf.is_tensor(t) or not _tf.as_dtype(t.dtype).is_floating:
            continue
        out.append(t)
    return out

def _note(name, values):
    """count (calls, calls with a non-finite value) in counter `name`, eagerly or in the graph"""
    ts = _floats(values)
    if not ts:
        return
    calls, bad = _counter(name)
    finite = _tf.reduce_all(_tf.stack([_tf.reduce_all(_tf.math.is_finite(t)) for t in ts]))
    calls.assign_add(1)
    bad.assign_add(_tf.cast(_tf.logical_not(finite), _tf.int64))

_orig_update = _TFOptimizer._backend_update_step
def _backend_update_step(self, grads, trainable_variables, learning_rate):
    _note("applied_gradients", list(grads))
    _note("applied_learning_rate", [learning_rate])
    return _orig_update(self, grads, trainable_variables, learning_rate)
_TFOptimizer._backend_update_step = _backend_update_step

_orig_gradient = _tf.GradientTape.gradient
def _gradient(self, target, sources, *args, **kwargs):
    _note("loss", [target])
    grads = _orig_gradient(self, target, sources, *args, **kwargs)
    _note("tape_gradients", grads)   # not a sink by itself: what the optimizer applies is
    return grads
_tf.GradientTape.gradient = _gradient

_orig_call = _keras.Model.__call__
def _model_call(self, *args, **kwargs):
    out = _orig_call(self, *args, **kwargs)
    _note("output", out)
    return out
_keras.Model.__call__ = _model_call

def _returned(kind, method):
    def wrapper(self, *args, **kwargs):
        value = method(self, *args, **kwargs)
        try:
            flat = [float(v) for v in _tf.nest.flatten(value)] if kind == "loss" else [_np.asarray(v, "float64") for v in _tf.nest.flatten(value)]
            bad = any(not _np.isfinite(v).all() for v in flat)
        except Exception:
            bad = None
        _PY_SINKS[kind].append((method.__name__, bad))
        return value
    return wrapper
for _name, _kind in (("evaluate", "loss"), ("train_on_batch", "loss"), ("test_on_batch", "loss"),
                     ("predict", "output"), ("predict_on_batch", "output")):
    # on keras.Model itself: the backend's trainer (TensorFlowTrainer) overrides the base Trainer's methods
    setattr(_keras.Model, _name, _returned(_kind, getattr(_keras.Model, _name)))
'''

# Reading the sinks after the cell (plain run).
SINK_READ = r'''
def _nonfinite(v):
    try:
        a = _np.asarray(v.numpy() if hasattr(v, "numpy") else v, dtype="float64")
    except Exception:
        return False
    return not _np.isfinite(a).all()

sinks = {name: {"calls": int(c.numpy()), "nonfinite": int(b.numpy())} for name, (c, b) in _COUNTERS.items()}
for kind, calls in _PY_SINKS.items():
    if calls:
        sinks[f"returned_{kind}"] = {"calls": len(calls), "nonfinite": sum(1 for _, bad in calls if bad),
                                     "methods": sorted({m for m, _ in calls})}
state, owned, metrics, bookkeeping = [], set(), [], []
optimizers = [v for v in ns.values() if isinstance(v, _keras.optimizers.Optimizer)]
for k, v in list(ns.items()):
    if isinstance(v, _keras.Model):
        for w in v.weights:
            owned.add(id(w))
            if _nonfinite(w):
                state.append(f"{k}.{w.path}" + ("" if w.trainable else " (non-trainable)"))
        if getattr(v, "optimizer", None) is not None:
            optimizers.append(v.optimizer)
        for m in v.metrics:
            try:
                r = m.result()
            except Exception:
                continue
            for name, val in (r.items() if isinstance(r, dict) else [(m.name, r)]):
                if _nonfinite(val):
                    metrics.append(f"{k}.metrics.{name}")
    if isinstance(v, _keras.metrics.Metric) and _nonfinite(v.result()):
        metrics.append(k)
for opt in {id(o): o for o in optimizers}.values():
    for w in opt.variables:
        owned.add(id(w))
        if _nonfinite(w):
            state.append(f"optimizer.{w.path}")
for k, v in list(ns.items()):
    if k.startswith("_"):
        continue
    if isinstance(v, (_tf.Variable, _keras.Variable)) and id(v) not in owned and _nonfinite(v):
        bookkeeping.append(f"{k}={float(_np.asarray(v.numpy()).ravel()[0])}")
    elif isinstance(v, float) and not _np.isfinite(v):
        bookkeeping.append(f"{k}={v}")
state = sorted(set(state))
sinks["state"] = state[:10] + ([f"... {len(state)} in all"] if len(state) > 10 else [])
sinks["metrics_after"] = metrics
reached = sorted({name for name, s in sinks.items() if isinstance(s, dict) and s["nonfinite"] and name != "tape_gradients"}
                 | ({"state"} if state else set()) | ({"metrics"} if metrics else set())
                 | ({"history"} if any(".history." in b or b.startswith("history.") for b in out["nonfinite_after"]) else set()))
out["sinks"] = sinks
out["bookkeeping"] = bookkeeping
out["reached"] = reached
'''

# The op's cell line (check run): innermost "<cell>" frame of the creation stack or of the traceback.
CHECK_READ = r'''
if "msg" in globals() and out.get("op_type"):
    frames = re.findall(r'File "<cell>", line (\d+)|<cell> \(L(\d+)\)', msg)
    numbers = [int(a or b) for a, b in frames] or out.get("traceback_cell_lines") or []
    code_lines = spec["code"].split("\n")
    if numbers:
        out["op_line"] = [numbers[-1], code_lines[numbers[-1] - 1].strip()]
    out["creation_stack_lines"] = list(dict.fromkeys(numbers))
    out["eager"] = out.get("context") == "eagerly-executing"
'''

DUMP_ON = r'''
import tempfile as _tempfile, tensorflow as _tf
_DUMP = _tempfile.mkdtemp(prefix="harm-dump-")
_tf.debugging.experimental.enable_dump_debug_info(_DUMP, tensor_debug_mode="FULL_HEALTH", circular_buffer_size=-1)
'''

DUMP_READ = r'''
import shutil as _shutil
from tensorflow.python.debug.lib.debug_events_reader import DebugDataReader as _Reader
_tf.debugging.experimental.disable_dump_debug_info()
_WRITES = ("AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp")
_LIMIT = 60

def _counts(v):
    # FULL_HEALTH: [tensor_id, device, dtype, rank, size, neg_inf, pos_inf, nan, neg, zero, pos]
    return None if v is None or len(v) < 8 else (int(v[5]), int(v[6]), int(v[7]))

def _cell_line(frames):
    lines = [f[1] for f in frames if f[0].endswith("<cell>")]   # the dump makes the path absolute
    if not lines:
        return None
    code = spec["code"].split("\n")
    return [lines[-1], code[lines[-1] - 1].strip()]

events, bad_tensor_ids, health = [], set(), {}
with _Reader(_DUMP) as reader:
    reader.update()
    items = [(t.wall_time, "graph", t) for t in reader.graph_execution_traces()]
    items += [(e.wall_time, "eager", e) for e in reader.executions()]
    items.sort(key=lambda x: x[0])
    for wall, kind, ev in items:
        if kind == "eager":
            values = ev.debug_tensor_values or []
            counts = [_counts(v) for v in values]
            bad_slots = [i for i, c in enumerate(counts) if c and sum(c)]
            inputs_bad = any(t in bad_tensor_ids for t in (ev.input_tensor_ids or []))
            for i, t in enumerate(ev.output_tensor_ids or []):
                if i in bad_slots:
                    bad_tensor_ids.add(t)
            if ev.op_type in _WRITES and inputs_bad:
                events.append({"kind": "eager", "op_type": ev.op_type, "writes": True,
                               "line": _cell_line(reader.read_execution_stack_trace(ev)[1])})
            if not bad_slots:
                continue
            events.append({"kind": "eager", "op_type": ev.op_type, "origin": not inputs_bad,
                           "counts": [counts[i] for i in bad_slots],
                           "line": _cell_line(reader.read_execution_stack_trace(ev)[1])})
        else:
            counts = _counts(ev.debug_tensor_value)
            bad = bool(counts and sum(counts))
            health[(ev.graph_id, ev.op_name, ev.output_slot)] = bad
            if not bad:
                continue
            graph = reader.graph_by_id(ev.graph_id)
            digest = graph.get_op_creation_digest(ev.op_name)
            inputs = []
            for name in digest.input_names or []:
                op_name, _, slot = name.rpartition(":")
                inputs.append(health.get((ev.graph_id, op_name, int(slot or 0)), False))
            writes = [dst for _, dst, _ in graph.get_op_consumers(ev.op_name)
                      if graph.get_op_creation_digest(dst).op_type in _WRITES or
                      graph.get_op_creation_digest(dst).op_type.startswith("ResourceApply")]
            events.append({"kind": "graph", "graph": graph.name, "op_type": ev.op_type, "op_name": ev.op_name,
                           "slot": ev.output_slot, "origin": not any(inputs), "counts": [counts], "writes": writes,
                           "line": _cell_line(reader.read_graph_op_creation_stack_trace(digest)[1])})
_shutil.rmtree(_DUMP, ignore_errors=True)
# compress repeats of the same op (a step after step): first occurrence and how many times
seen, compact = {}, []
for e in events:
    key = (e["kind"], e.get("graph"), e["op_type"], e.get("op_name"), e.get("line") and e["line"][0], e.get("writes") is True)
    if key in seen:
        seen[key]["times"] += 1
        continue
    e["times"] = 1
    seen[key] = e
    compact.append(e)
out["events_total"] = len(events)
out["events"] = compact[:_LIMIT]
out["origins"] = [f'{e["op_type"]}' + (f' ({e["op_name"]})' if e.get("op_name") else "") for e in compact if e.get("origin")][:12]
'''


def main(argv: list[str]) -> None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from tests.scenarios.harm import SCENARIOS

    only = [a for a in argv if not a.startswith("--")]
    parts = [a[2:] for a in argv if a.startswith("--")] or ["plain", "check", "dump"]
    from tests.tools.measure_scenarios import measure
    runs = {"plain": dict(check=False, before=SINK_HOOKS, after=SINK_READ),
            "check": dict(check=True, after=CHECK_READ),
            "dump": dict(check=False, before=DUMP_ON, after=DUMP_READ)}
    for name in only or list(SCENARIOS):
        result = {"name": name}
        for part in parts:
            result[part] = measure(SCENARIOS[name], **runs[part])
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
