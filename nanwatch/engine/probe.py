"""The op callback: checks every floating-point op output, eager and in graphs.

An op-callback equivalent of tfdbg2 (`tensorflow.python.framework.op_callbacks`,
the hook tfdbg2 and `enable_check_numerics` use), built for one question: which
op produced the first NaN/Inf.

- Graph ops (traced while the probe is on): each float output is replaced by a
  `CheckNumericsV2` of it. Consumers then depend on the check, so a check can
  only fail on an op whose inputs were checked finite: the first failure is the
  causal origin, not a wall-time race. The error carries `nanwatch:<id>`; the id
  names an `OpRecord` kept from trace time (op, layer, phase, cell line). Because
  the optimizer update consumes checked gradients, a failing step does not
  apply its update.
- Eager ops: outputs are checked in numpy right after the op ran; inputs are at
  hand, so the evidence (counts, input health, rows) is taken on the spot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sys
import threading

from .. import ops
from . import distributed, stats
from .detection import Detection, OpRecord
from .eager_checks import IGNORED_OUTPUTS as _IGNORED_OUTPUTS
from .eager_checks import EagerChecks
from .frames import CellMap, resolve

_MARK = "nanwatch:"
_MARK_RE = re.compile(r"nanwatch:(\d+)")

# Ops whose outputs are not checked: pass-throughs (their input was checked), control
# flow plumbing, constants (a -inf mask constant is intended), and function arguments.
_SKIP_GRAPH_OPS = frozenset({
    "Identity", "IdentityN", "NoOp", "Const", "Placeholder", "PlaceholderWithDefault",
    "Enter", "Exit", "If", "LoopCond", "Merge", "NextIteration", "StatelessIf",
    "StatefulPartitionedCall", "PartitionedCall", "Switch", "While", "StatelessWhile",
    "RemoteCall", "DestroyResourceOp", "CheckNumerics", "CheckNumericsV2",
    "DebugIdentityV2", "DebugNumericSummaryV2", "StopGradient", "PreventGradient",
    "Reshape", "Squeeze", "ExpandDims", "Transpose", "StridedSlice", "Slice", "ConcatV2",
    "Concat", "Pack", "Unpack", "Gather", "GatherV2", "Shape", "ShapeN", "Size", "Rank",
    "ZerosLike", "OnesLike", "Fill", "BroadcastTo", "TensorListGetItem", "TensorListStack",
    "TensorListFromTensor", "TensorListSetItem", "TensorListReserve", "TensorListElementShape",
    "TensorListLength", "TensorListPushBack", "TensorListPopBack", "OptionalFromValue",
    "OptionalGetValue", "OptionalHasValue", "OptionalNone", "EnsureShape",
})
_SKIP_EAGER_OPS = frozenset({"CheckNumerics", "CheckNumericsV2", "DebugIdentityV2",
                             "DebugNumericSummaryV2", "Const"})
_PASS_THROUGH_OPS = frozenset({"Identity", "IdentityN"})   # eager: not checked, but a marked input stays marked
# Contractions and the bias adds after them (ops.FUSION_INTERMEDIATES) are left unchecked in
# graphs: grappler fuses MatMul/Conv + bias add (+ residual add) + activation into one kernel,
# which rounds differently from the separate ops, and a check between them would block that
# fusion, so a watched run would no longer compute what the unwatched run computes. The fused
# op's output (the activation, or whatever consumes the chain) is checked; when that check
# fails, the record names the unchecked producers and the eager replay tells which of them it was.



# Graph op records, for the kernel's lifetime: a step function traced in one watched cell is
# reused by the next (see keras_steps), and its checks name records by index.
_RECORDS: list = []
# The installed probe (one watched run at a time): step functions cached across cells find it here.
_current: list = [None]


def current():
    """The probe of the run being watched, or None."""
    return _current[0]


def paused_current():
    """`current().paused()`, or nothing to pause outside a watched run."""
    probe = _current[0]
    return probe.paused() if probe is not None else contextlib.nullcontext()


def detached_current():
    """`current().detached()`, or nothing to detach outside a watched run."""
    probe = _current[0]
    return probe.detached() if probe is not None else contextlib.nullcontext()


class Probe:
    """Installs the op callback; keeps the graph op records; reports detections."""

    def __init__(self, cells: CellMap, layers, events):
        self.cells = cells
        self.layers = layers           # LayerIndex: the user's layers, for an op's layer
        self.events = events           # RunEvents: `detected` may raise to stop
        self._capture_box = None       # during a replay: detections go here instead
        self.held = None               # several workers: a detection waiting for their next agreement
        self.records: list[OpRecord] = _RECORDS
        self.active = True
        self._local = threading.local()
        self._installed = False
        self.graph_ops_instrumented = 0
        self.eager_ops_checked = 0
        # During a replay: id(eager output) -> Keras layer, so a gradient op can be given the layer of
        # the forward op it differentiates (eager ops carry no name scope).
        self.layer_of_output = None
        self.eager = EagerChecks(self)   # eager ops: provenance of non-finite values, alarms at the sinks
        # Phases whose non-finite values are expected and handled by the user's set-up
        # (mixed precision's LossScaleOptimizer skips steps with Inf gradients by design).
        self.tolerated_phases: set = set()

    # --- lifecycle ------------------------------------------------------------------
    def install(self):
        from tensorflow.python.framework import op_callbacks
        op_callbacks.add_op_callback(self.callback)
        self._installed = True
        _current[0] = self

    def uninstall(self):
        if _current[0] is self:
            _current[0] = None
        if not self._installed:
            return
        from tensorflow.python.framework import op_callbacks
        try:
            op_callbacks.remove_op_callback(self.callback)
        except KeyError:
            pass
        self._installed = False

    def deactivate(self):
        """No more checks in this run (the run goes on after its first non-finite value)."""
        self.active = False

    @contextlib.contextmanager
    def paused(self):
        """Ops created or run inside are nanwatch's own: neither instrumented nor checked."""
        before = getattr(self._local, "busy", False)
        self._local.busy = True
        try:
            yield
        finally:
            self._local.busy = before

    @contextlib.contextmanager
    def graph_only(self):
        """Graph ops traced inside are instrumented; eager op runs are not checked (for calls of
        functions whose graphs carry their own checks: their outputs need no second look)."""
        before = getattr(self._local, "graph_only", False)
        self._local.graph_only = True
        try:
            yield
        finally:
            self._local.graph_only = before

    @contextlib.contextmanager
    def detached(self):
        """The callback unregistered for a while (re-registered after, if it was on)."""
        from tensorflow.python.framework import op_callbacks
        was = self._installed
        if was:
            try:
                op_callbacks.remove_op_callback(self.callback)
            except KeyError:
                pass
            self._installed = False
        try:
            yield
        finally:
            if was:
                op_callbacks.add_op_callback(self.callback)
                self._installed = True

    @contextlib.contextmanager
    def capturing(self, exc_type):
        """Checks on; the first detection is put in the yielded list and `exc_type` raised.

        The detection travels in the list, not in the exception: code between the op
        and the caller may re-create exceptions from their message.
        """
        saved = (self._capture_box, self.active)
        box: list = []
        self._capture_box, self.active = (box, exc_type), True
        self.layer_of_output = {}
        try:
            yield box
        finally:
            self._capture_box, self.active = saved
            self.layer_of_output = None

    @property
    def replaying(self) -> bool:
        """Inside `capturing`: a replay, whose steps are not the run's."""
        return self._capture_box is not None

    def report(self, detection, agreed: bool = False):
        """A non-finite value reached the training: tell the run (or, in a replay, stop it there). Among
        several workers a value found outside their agreement is held (`take_held`): stopping this worker
        alone would leave the others waiting in a collective."""
        if self._capture_box is not None:
            box, exc_type = self._capture_box
            box.append(detection)
            raise exc_type("nanwatch replay found the first non-finite op")
        if not agreed and distributed.cluster() is not None:
            self.held = self.held or detection
            return
        self.events.detected(detection)

    def take_held(self):
        """The detection held since the workers last agreed (None if none); forgotten here."""
        held, self.held = self.held, None
        return held

    # --- the callback -----------------------------------------------------------------
    def callback(self, op_type, inputs, attrs, outputs, op_name=None, graph=None):
        if not self.active or getattr(self._local, "busy", False):
            return None
        if graph is None and getattr(self._local, "graph_only", False):
            return None
        if isinstance(op_type, bytes):   # an op run by a generated eager fallback (`execute(b"Reshape", ...)`:
            op_type = op_type.decode()   # measured, under a remote worker's device scope)
        self._local.busy = True
        try:
            if graph is not None:
                return self._instrument(op_type, inputs, outputs, op_name, graph)
            if op_type in _PASS_THROUGH_OPS:
                self.eager.pass_through(inputs, outputs)
                return None
            if op_type in _SKIP_EAGER_OPS or not outputs and op_type not in ops.VARIABLE_WRITES:
                return None
            self.eager_ops_checked += 1
            frame = sys._getframe(1)
            if self.layer_of_output is not None:
                self._note_layer(outputs, frame)
            self.eager.check(op_type, inputs, outputs, frame)
            return None
        finally:
            self._local.busy = False

    def _instrument(self, op_type, inputs, outputs, op_name, graph):
        if op_type in _SKIP_GRAPH_OPS or not outputs:
            return None
        if distributed.cluster() is not None:
            # several workers: a check failing on one would leave the others waiting in a collective;
            # the workers' steps are checked after each call, all agreeing (engine/functions.py)
            self.events.note("several workers (a multi-worker strategy): graph ops are not checked (a check failing "
                             "on one worker would leave the others waiting in a collective); each tf.function "
                             "step is checked after its call, the workers agreeing on the verdict.")
            return None
        if op_type == "MultiDeviceIteratorGetNextFromShard":
            return None   # a distributed dataset's shard: checked where its replica's step consumes it (rows known)
        if op_type in ops.CONTRACTIONS or (op_type in ops.BIAS_ADDS and any(_unchecked(t) for t in inputs)):
            return None   # a fusion intermediate: checked where the fused chain ends
        from tensorflow.python.ops import gen_array_ops
        from tensorflow.python.eager import record
        where = upstream = None
        replaced = list(outputs)
        changed = False
        for slot, out in enumerate(outputs):
            dtype = getattr(out, "dtype", None)
            if dtype is None or not dtype.is_floating or (op_type, slot) in _IGNORED_OUTPUTS:
                continue
            if where is None:
                where = resolve(sys._getframe(2), self.cells, record.could_possibly_record(), self.layers.user_layers)
                if where.phase in self.tolerated_phases:
                    return None
                upstream = _unchecked_chain(inputs)
            record_id = len(self.records)
            self.records.append(OpRecord(
                op_type=op_type, op_name=op_name or "", slot=slot, dtype=dtype.name,
                graph=getattr(graph, "name", "") or "",
                inputs=[_input_name(t) for t in inputs],
                where=where, device=getattr(out, "device", "") or "",
                upstream=upstream))
            replaced[slot] = gen_array_ops.check_numerics_v2(out, message=f"{_MARK}{record_id}")
            changed = True
        if changed:
            self.graph_ops_instrumented += 1
            return replaced
        return None

    def _note_layer(self, outputs, frame):
        from tensorflow.python.eager import record
        where = resolve(frame, self.cells, record.could_possibly_record(), self.layers.user_layers)
        if where.layer is not None and where.phase == "forward":
            for out in outputs:
                self.layer_of_output[id(out)] = where.layer

    # --- graph failures -----------------------------------------------------------------
    def detection_from_error(self, exc) -> Detection | None:
        """Turn a failed `CheckNumericsV2` of ours into a Detection (None if not ours)."""
        message = str(getattr(exc, "message", "") or exc)
        match = _MARK_RE.search(message)
        if not match:
            return None
        index = int(match.group(1))
        if index >= len(self.records):
            return None
        rec = self.records[index]
        gradient = "detected in gradient" in message
        if rec.op_type in ops.ITERATOR_OPS:
            return Detection(context="data", op_type=None, op_name=None, slot=rec.slot, where=rec.where,
                             dtype=rec.dtype, consumer={"op_type": rec.op_type, "layer": None, "input": rec.slot},
                             device=rec.device or None)
        kind = None
        kind_match = re.search(r"Tensor had ([^\n\]]*?) values", message)
        if kind_match:
            kind = kind_match.group(1)
        unchecked = {op_name for _, op_name in rec.upstream}   # inputs straight from a fused chain
        return Detection(
            context="graph", op_type=rec.op_type, op_name=rec.op_name, slot=rec.slot,
            where=rec.where, dtype=rec.dtype, kind=kind, gradient_of=gradient,
            inputs=[{"name": name, "op_type": op, "finite": None if name.rsplit(":", 1)[0] in unchecked else True}
                    for name, op in rec.inputs],
            device=rec.device or None, upstream=list(rec.upstream))


def _unchecked(tensor) -> bool:
    """Was this graph tensor produced by an op left unchecked (a fusion intermediate)?"""
    return getattr(getattr(tensor, "op", None), "type", None) in ops.FUSION_INTERMEDIATES


def _unchecked_chain(inputs, limit: int = 8) -> list:
    """[(op type, op name)] of the unchecked producers behind these inputs, nearest first."""
    chain, frontier = [], [t for t in inputs if _unchecked(t)]
    while frontier and len(chain) < limit:
        tensor = frontier.pop(0)
        chain.append((tensor.op.type, tensor.op.name))
        frontier.extend(t for t in tensor.op.inputs if _unchecked(t))
    return chain


def _input_name(tensor):
    """(name, op type) of an op input, looking through our own check op."""
    op = getattr(tensor, "op", None)
    if op is not None and op.type == "CheckNumericsV2" and op.inputs:
        tensor = op.inputs[0]
        op = tensor.op
    return getattr(tensor, "name", "?"), getattr(op, "type", "?")
