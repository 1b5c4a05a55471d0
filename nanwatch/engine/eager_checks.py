"""Eager checks with provenance: which eager tensors hold NaN/Inf, the op each came from, and
whether they reach the training or are absorbed on the way.

A non-finite eager output is not an alarm by itself. It is marked with its origin (the first
op on its provenance chain: an op that made it from finite inputs, the data, a constant, a
weight read) and followed: an op that turns a marked input into finite outputs absorbed it
(a -inf mask into softmax, `minimum(rsqrt(0), x)`, `exp(-inf)`), which the report lists as
info. An alarm is raised only at a sink: a value written into the model's state (a weight or
an optimizer slot), a loss differentiated by `tape.gradient`, a model's output. Two refinements
keep the origin honest: an op that makes NaN out of an intended infinity (a -inf mask
constant, softmax over a fully masked row) is the NaN's origin; and a NaN born in a gradient
names the forward op it differentiates, with its line, and says when that forward value had
been absorbed (the where trap).
"""

from __future__ import annotations

import collections
import dataclasses
import weakref

from .. import ops
from . import stats
from .detection import Detection
from .frames import resolve

_KEPT = 4096            # marked tensors (and forward lines) remembered, most recent first
_ABSORBED_KEPT = 20     # distinct absorbed values listed in the report
# Batch-norm statistics outputs are legitimately undefined on empty batches.
IGNORED_OUTPUTS = frozenset((op, slot) for op in ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
                            for slot in range(1, 6))


@dataclasses.dataclass(frozen=True)
class Absorbed:
    """A non-finite value the training did not consume."""
    origin: Detection
    absorber: str
    where: object          # frames.Where of the absorbing op

    def text(self) -> str:
        return f"{describe(self.origin)} absorbed by {self.absorber}{_at(self.where.source)}"


def describe(detection: Detection) -> str:
    kind = _kind(detection.counts)
    if detection.context == "constant":
        what = f"a {kind} constant"
    elif detection.context == "data":
        what = f"{kind} in the data"
    elif detection.op_type in ops.WEIGHT_READS:
        what = f"{kind} in a weight"
    else:
        what = f"{kind} made by {detection.op_type}"
    return f"{what}{_at(detection.where.source)}"


def _kind(counts) -> str:
    counts = counts or {}
    if counts.get("nan"):
        return "NaN"
    if counts.get("neg_inf") and not counts.get("pos_inf"):
        return "-Inf"
    return "Inf"


def _at(source) -> str:
    if not source or not source.get("line"):
        return ""
    cell = f"cell {source['cell']} " if source.get("cell") is not None else ""
    return f" ({cell}line {source['line']}: {source.get('code') or ''})".replace(": )", ")")


class EagerChecks:
    def __init__(self, probe):
        self.probe = probe
        self._marked = collections.OrderedDict()    # id(tensor) -> (weakref, origin Detection)
        self._forward = collections.OrderedDict()   # (op type, id(tensor)) -> (weakref, Where, made): risky ops
        self.absorbed: list = []                    # [Absorbed], distinct by origin line, absorber and its line
        self._absorbed_seen: dict = {}
        self._origins = collections.OrderedDict()   # id(origin) -> (1, 2, ...: the order made, origin)
        self._absorbed_origins: set = set()          # ids of origins some op absorbed
        self._made = 0
        self.model_state: set = set()               # ids of the resource handles of weights and optimizer slots
        self.absorb_events = 0                      # absorptions seen, repeats included

    # --- what is known of a tensor -----------------------------------------------------------
    def origin_of(self, tensor):
        entry = self._marked.get(id(tensor))
        if entry is not None and entry[0]() is tensor:
            return entry[1]
        return None

    def _earliest_origin(self, tensors):
        """Where marked chains meet, the origin made first is the first op on the provenance chain."""
        found = [(self._origins[id(o)][0] if id(o) in self._origins else 0, o)
                 for o in map(self.origin_of, tensors) if o is not None]
        return min(found, key=lambda pair: pair[0])[1] if found else None

    def _mark(self, tensor, origin):
        try:
            ref = weakref.ref(tensor)
        except TypeError:
            return
        if id(origin) not in self._origins:
            self._made += 1
            self._origins[id(origin)] = (self._made, origin)   # keeps the origin alive while its id is a key
            while len(self._origins) > _KEPT:
                self._origins.popitem(last=False)
        self._marked[id(tensor)] = (ref, origin)
        self._marked.move_to_end(id(tensor))
        while len(self._marked) > _KEPT:
            self._marked.popitem(last=False)

    def register_state(self, variables):
        """Weights and optimizer slots: a non-finite value written into one reaches the training."""
        for var in variables:
            inner = getattr(var, "value", None)      # a Keras variable's TensorFlow variable
            if inner is None or callable(inner):     # (tf.Variable.value is a method)
                inner = var
            handle = getattr(inner, "handle", None)
            if handle is not None:
                self.model_state.add(id(handle))

    # --- one eager op -------------------------------------------------------------------------
    def pass_through(self, inputs, outputs):
        """Identity ops hand their input on: its mark goes with it."""
        for tensor, out in zip(inputs, outputs):
            origin = self.origin_of(tensor)
            if origin is not None:
                self._mark(out, origin)

    def check(self, op_type, inputs, outputs, frame):
        if op_type in ops.VARIABLE_WRITES:
            self._check_write(op_type, inputs, frame)
            return
        floats = [(slot, out) for slot, out in enumerate(outputs)
                  if getattr(getattr(out, "dtype", None), "is_floating", False) and (op_type, slot) not in IGNORED_OUTPUTS]
        bad = []
        for slot, out in floats:
            arr = stats.to_numpy(out)
            if not stats.all_finite(arr):
                bad.append((slot, out, arr))
        marked = self._earliest_origin(inputs)
        if bad:
            origin = marked or self._untracked_origin(op_type, inputs, frame)
            slot, out, arr = bad[0]
            if origin is None or _makes_nan_from_intended_inf(origin, arr):
                origin = self._new_origin(op_type, inputs, slot, out, arr, frame, made_from=origin)
            if origin is None:
                return
            for _, out, _ in bad:
                self._mark(out, origin)
            if marked is None and origin.context == "data" and self.probe.events.in_keras_call():
                self.probe.report(origin)   # data handed to Keras fit/evaluate/predict is fed to the model
        elif op_type in ops.SHAPE_OPS or not (floats or any(_is_bool(o) for o in outputs)):
            pass   # a shape read, or a dataset made of the value (its batches are checked when consumed)
        elif marked is not None or (floats and op_type in ops.ABSORBING_OPS):
            # finite float outputs, or only a verdict (a comparison, is_nan): the value went no further
            origin = marked or self._untracked_origin(op_type, inputs, frame)
            if origin is not None:
                self._absorb(origin, op_type, frame)
        if op_type in ops.GRADIENT_RISK_OPS:
            made = self.origin_of(bad[0][1]) if bad else None
            self._remember_forward(op_type, list(inputs) + list(outputs), frame, made)

    def sink_if_made(self, tensor, frame):
        """`tensor` reaches the training; only a value an op of the cell made is judged here (the
        data as given is checked batch by batch, with its rows)."""
        if self.origin_of(tensor) is not None:
            self.sink(tensor, frame)

    def sink(self, tensor, frame):
        """`tensor` reaches the training: alarm if it is non-finite, naming its origin."""
        origin = self.origin_of(tensor)
        if origin is None:
            arr = stats.to_numpy(tensor)
            if arr is None or stats.all_finite(arr):
                return
            origin = self._value_origin(arr, frame, consumer=None)
        self.probe.report(origin)

    # --- origins ------------------------------------------------------------------------------
    def _where(self, frame):
        from tensorflow.python.eager import record
        return resolve(frame, self.probe.cells, record.could_possibly_record(), self.probe.layers.user_layers)

    def _untracked_origin(self, op_type, inputs, frame):
        """A non-finite input that no checked op made: data fed to the op, or a constant."""
        for i, tensor in enumerate(inputs):
            if not getattr(getattr(tensor, "dtype", None), "is_floating", False):
                continue
            arr = stats.to_numpy(tensor)
            if arr is not None and not stats.all_finite(arr):
                return self._value_origin(arr, frame, consumer=(op_type, i))
        return None

    def _value_origin(self, arr, frame, consumer):
        where = self._where(frame)
        constant = arr.size == 1 or bool((arr.ravel() == arr.ravel()[0]).all())
        consumed = {"op_type": consumer[0], "layer": where.layer, "input": consumer[1]} if consumer else None
        return Detection(context="constant" if constant else "data", op_type=None, op_name=None, slot=0,
                         where=where, dtype=str(arr.dtype), counts=stats.counts(arr), histogram=stats.histogram(arr),
                         data=None if constant else stats.nonfinite_cells(arr), consumer=consumed, output=arr)

    def _new_origin(self, op_type, inputs, slot, out, arr, frame, made_from=None):
        where = self._where(frame)
        if where.phase in self.probe.tolerated_phases:
            return None
        if op_type in ops.ITERATOR_OPS:
            data = stats.nonfinite_cells(arr) or {}
            data.update(source=f"component {slot}" if slot else "x")
            return Detection(context="data", op_type=None, op_name=None, slot=slot,
                             where=dataclasses.replace(where, phase="input"), dtype=out.dtype.name,
                             counts=stats.counts(arr), histogram=stats.histogram(arr), data=data,
                             consumer={"op_type": op_type, "layer": None, "input": slot},
                             device=getattr(out, "device", None), output=arr)
        notes, gradient_of = [], None
        if where.phase == "backward":
            where, notes, gradient_of = self._gradient_origin(where, op_type, frame)
        if made_from is not None:
            notes.append(f"{op_type} made NaN out of {describe(made_from)}: an intended infinity "
                         "(a mask) that reached the op whole, e.g. a row with every entry masked.")
        arrays = [stats.to_numpy(t) if getattr(getattr(t, "dtype", None), "is_floating", False) else None
                  for t in inputs]
        recorded = _forward_inputs(frame) if gradient_of is not None else tuple(arrays)
        return Detection(context="eager", op_type=op_type, op_name=None, slot=slot, where=where,
                         dtype=out.dtype.name, counts=stats.counts(arr),
                         inputs=[stats.health(a, name=f"input:{i}") for i, a in enumerate(arrays)],
                         histogram=_input_histogram(arrays), device=getattr(out, "device", None), output=arr,
                         notes=tuple(notes), gradient_of_op=gradient_of,
                         made_from="mask" if made_from is not None else None, op_inputs=recorded)

    def _gradient_origin(self, where, op_type, frame):
        """A NaN/Inf born in backprop: the forward op it differentiates, its line and layer."""
        forward = _gradient_frame(frame)
        if forward is None:
            return where, [], None
        forward_type = forward.f_locals.get("op_name")
        tensors = list(forward.f_locals.get("outputs") or []) + list(forward.f_locals.get("inputs") or [])
        if where.layer is None and self.probe.layer_of_output:
            layer = next((self.probe.layer_of_output.get(id(t)) for t in tensors
                          if self.probe.layer_of_output.get(id(t))), None)
            where = dataclasses.replace(where, layer=layer)
        source = absorbed = None
        for tensor in tensors:
            entry = self._forward.get((forward_type, id(tensor)))
            if entry is not None and entry[0]() is tensor:
                source, absorbed = entry[1].source, entry[2]
                break
        if source is None:
            return where, [], {"op_type": forward_type, "source": None, "forward_absorbed": False}
        where = dataclasses.replace(where, source=source)
        if absorbed is not None:
            note = (f"the where trap: the forward value of {forward_type}{_at(source)} was non-finite and absorbed "
                    f"in the forward pass ({describe(absorbed)}), but its gradient is not: {op_type} in the backward "
                    f"pass multiplies it back in (0 * inf = NaN). Mask the input of {forward_type} too, e.g. "
                    f"`tf.where(cond, {forward_type.lower()}(tf.where(cond, x, 1.0)), 0.0)`.")
        else:
            note = (f"the forward pass of {forward_type}{_at(source)} was finite; its gradient is not "
                    f"({op_type} in the backward pass): {forward_type} is not differentiable at the values it got "
                    "(e.g. sqrt or a norm at 0).")
        return where, [note], {"op_type": forward_type, "source": source, "forward_absorbed": absorbed is not None}

    def _remember_forward(self, op_type, tensors, frame, made):
        """The line of a risky op under a tape, by (op type, id of each input and output): its
        gradient names it. `made`: the non-finite value the op made in the forward pass, if any."""
        from tensorflow.python.eager import record
        if not record.could_possibly_record():
            return
        where = None
        for tensor in tensors:
            try:
                ref = weakref.ref(tensor)
            except TypeError:
                continue
            where = where or self._where(frame)
            key = (op_type, id(tensor))
            self._forward[key] = (ref, where, made)
            self._forward.move_to_end(key)
        while len(self._forward) > _KEPT:
            self._forward.popitem(last=False)

    # --- absorption and sinks ------------------------------------------------------------------
    def _absorb(self, origin, op_type, frame):
        self.absorb_events += 1
        self._absorbed_origins.add(id(origin))
        line = (origin.where.source or {}).get("line")
        key = (origin.context, origin.op_type, line, op_type)
        seen = self._absorbed_seen.get(key, 0)
        self._absorbed_seen[key] = seen + 1
        if seen or len(self.absorbed) >= _ABSORBED_KEPT:
            return
        self.absorbed.append(Absorbed(origin=origin, absorber=op_type, where=self._where(frame)))

    def _check_write(self, op_type, inputs, frame):
        if not inputs or id(inputs[0]) not in self.model_state:
            return   # not the model's state: a user's own variable (a best-loss tracker) may hold inf
        for value in inputs[1:]:
            if getattr(getattr(value, "dtype", None), "is_floating", False):
                self.sink(value, frame)

    def left_over(self):
        """The origin of a non-finite value the cell still holds that nothing absorbed: a value it
        computed and kept or showed (a loss printed, a cell's result). None if there is none."""
        found = []
        for ref, origin in list(self._marked.values()):
            if ref() is None or id(origin) in self._absorbed_origins:
                continue
            if origin.where.phase in self.probe.tolerated_phases:
                continue
            found.append((self._origins.get(id(origin), (0,))[0], origin))
        return min(found, key=lambda pair: pair[0])[1] if found else None

    def absorbed_info(self) -> list:
        """Info lines for the report: each distinct absorbed value, with how often it was absorbed."""
        out = []
        for item in self.absorbed:
            line = (item.origin.where.source or {}).get("line")
            times = self._absorbed_seen.get((item.origin.context, item.origin.op_type, line, item.absorber), 1)
            out.append(f"absorbed, not an alarm: {item.text()}" + (f" ({times} times)" if times > 1 else ""))
        return out


def _makes_nan_from_intended_inf(origin, arr) -> bool:
    """An op made NaN from a ±inf constant (a mask) it got whole: the NaN is that op's."""
    import numpy as np
    return origin.context == "constant" and not (origin.counts or {}).get("nan") and bool(np.isnan(arr).any())


def _is_bool(tensor) -> bool:
    return getattr(getattr(tensor, "dtype", None), "is_bool", False)


def _gradient_frame(frame):
    while frame is not None:
        if frame.f_code.co_name == "_gradient_function" and "backprop" in frame.f_code.co_filename:
            return frame
        frame = frame.f_back
    return None


def _forward_inputs(frame) -> tuple:
    """The forward op's input values, read in the frame that computes its gradient (for verify.py)."""
    forward = _gradient_frame(frame)
    if forward is None:
        return ()
    tensors = list(forward.f_locals.get("inputs") or [])
    if not tensors and forward.f_locals.get("op_name") == "Sqrt" and forward.f_locals.get("outputs"):
        out = stats.to_numpy(forward.f_locals["outputs"][0])   # its gradient keeps only y = sqrt(x): x = y * y
        return (out * out,) if stats.is_float_array(out) else ()
    return tuple(stats.to_numpy(t) if getattr(getattr(t, "dtype", None), "is_floating", False) else None
                 for t in tensors)


def _input_histogram(arrays):
    """Histogram of the first floating input (the one a reader looks at first)."""
    for i, arr in enumerate(arrays):
        hist = stats.histogram(arr)
        if hist is not None:
            hist["input"] = f"input:{i}"
            return hist
    return None
