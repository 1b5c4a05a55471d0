"""A watched run's lifecycle: set up, run, and always clean up.

`WatchSession` is the one place that turns on instrumentation (probe, Keras
hooks) and the one place that turns it off, whatever the cell did: success,
exception, KeyboardInterrupt. It receives the engine's events (steps, batches,
detections) and fills the Report; views and the sidebar get them as sinks.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

import numpy as np

from . import locate
from .engine import stats
from .engine.frames import CellMap
from .engine.probe import Detection, NonFiniteFound, Probe
from .options import Options, UsageError
from .report import Report

MIN_TF = (2, 16)
DEFAULT_STATS_EVERY = 10
LAYER_STATS_BUDGET = 0.02   # share of training time per-layer statistics may take (unless --stats-every)
_active = threading.local()
_last_report: list = [None]
_train_ranges: dict = {}   # id(model) -> training feature ranges (predict-time drift), kernel lifetime


def last_report() -> Report | None:
    return _last_report[0]


def reset():
    _last_report[0] = None
    _train_ranges.clear()


def active_session():
    return getattr(_active, "session", None)


class NestedWatchError(UsageError):
    """`%%nanwatch` or `watch()` inside a run that is already watched."""


class WatchSession:
    """Context manager for one watched run."""

    def __init__(self, options: Options, cells: CellMap | None = None, cell: int | None = None, sinks=()):
        self.options = options
        self.cells = cells or CellMap()
        self.report = Report(mode="exact", cell=cell, figures=options.figures)   # "fast" once Keras steps ran fast
        self.sinks = list(sinks)
        self.detection: Detection | None = None
        self.probe: Probe | None = None
        self.hooks = None
        self.tf = None
        self.epoch: int | None = None
        self.layer_names: set = set()
        self.train_step = 0
        self.batch_index = 0
        self.tape_steps = 0
        self.call_stack: list = []
        self.evidence: dict = {"data": [], "nan_weights": [], "optimizer": None, "loss": None,
                               "initial_weight_norms": [], "fp16_skipped_steps": 0}
        self._layer_history: dict = {}
        self._layer_variables: dict = {}   # id(model) -> [(variable, layer)] for this call
        self._train_started = None         # perf_counter at the first per-layer statistics
        self._layer_stats_spent = 0.0      # seconds spent on per-layer statistics (after the first)
        self._layer_stats_calls = 0
        self._saved_tape_gradient = None
        self._modes: set = set()
        self._loss_scales: dict = {}   # id(model) -> last dynamic loss scale (LossScaleOptimizer)
        self._t_detected: float | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    def __enter__(self):
        if active_session() is not None:
            raise NestedWatchError("nanwatch is already watching this run: %%nanwatch / watch() cannot be nested")
        _active.session = self
        try:
            self._setup()
        except BaseException:
            self._cleanup()
            _active.session = None
            raise
        self._emit("run_started", {"run_id": self.report.run_id, "cell": self.report.cell,
                                   "mode": self.report.mode, "started": self.report.started})
        return self

    def _setup(self):
        try:
            import tensorflow as tf
        except ImportError:
            self.note("TensorFlow is not installed: the cell ran unwatched.")
            self.report.watched = False
            return
        version = tuple(int(p) for p in tf.__version__.split(".")[:2] if p.isdigit())
        if version < MIN_TF:
            self.note(f"TensorFlow {tf.__version__} is older than {MIN_TF[0]}.{MIN_TF[1]}, which nanwatch "
                      "needs: the cell ran unwatched.")
            self.report.watched = False
            return
        self.tf = tf
        self.probe = Probe(self.cells, self.on_detection, stop=self.options.stop)
        if _legacy_keras():
            self.note("legacy tf.keras (TF_USE_LEGACY_KERAS=1): exact mode only, through the op checks; not "
                      "supported there: fast mode, the per-step statistics, the eager replay (counts and input "
                      "values), data rows in your arrays, and rebuilding a tf.keras model's train function cached "
                      "before this cell (create or compile the model in the watched cell).")
        else:
            try:
                from .engine.keras_hooks import KerasHooks
                self.hooks = KerasHooks(self)
                self.hooks.install()
            except ImportError:
                self.hooks = None
        self._count_tape_gradients(tf)
        self.probe.install()

    def __exit__(self, exc_type, exc, tb):
        __tracebackhide__ = True
        suppress = False
        try:
            if exc is not None:
                suppress = self._on_exception(exc)
        finally:
            self._cleanup()
            _active.session = None
            self._finish()
        return suppress

    def _on_exception(self, exc) -> bool:
        if isinstance(exc, NonFiniteFound):
            self.report.stopped = True
            return True
        if self.probe is not None and self.tf is not None and isinstance(exc, self.tf.errors.InvalidArgumentError):
            detection = self.probe.detection_from_error(exc)
            if detection is not None:
                # A tf.function of the user's own (custom loop) failed one of our checks.
                self._record_detection(detection, replayed=False, reproduced=None)
                self.report.stopped = True
                return True
        if isinstance(exc, KeyboardInterrupt):
            self.report.error = "interrupted (KeyboardInterrupt)"
        else:
            self.report.error = f"{type(exc).__name__}: {exc}"[:2000]
        return False

    def _cleanup(self):
        """Absolute: no op callback, no patched method, no directory left behind."""
        for undo in (self._uninstall_probe, self._uninstall_hooks, self._restore_tape_gradient):
            try:
                undo()
            except Exception as exc:  # keep undoing the rest; say what failed
                self.note(f"cleanup step {undo.__name__} failed: {exc!r}")

    def _uninstall_probe(self):
        if self.probe is not None:
            self.probe.uninstall()

    def _uninstall_hooks(self):
        if self.hooks is not None:
            self.hooks.uninstall()

    def _count_tape_gradients(self, tf):
        """Custom loops have no Keras step counter: count completed eager `tape.gradient` calls."""
        cls = tf.GradientTape
        original = cls.__dict__["gradient"]
        session = self

        def gradient(tape, target, *args, **kwargs):
            result = original(tape, target, *args, **kwargs)
            if tf.executing_eagerly() and not session.call_stack:
                session.on_tape_gradient(target, result)
            return result

        gradient.__wrapped__ = original
        self._saved_tape_gradient = (cls, original)
        cls.gradient = gradient

    def _restore_tape_gradient(self):
        if self._saved_tape_gradient is not None:
            cls, original = self._saved_tape_gradient
            cls.gradient = original
            self._saved_tape_gradient = None

    # --- events from the engine -----------------------------------------------------------------
    def on_tape_gradient(self, target, gradients):
        """A custom loop's step: the loss it differentiated and the gradient norm, as a step record."""
        step = self.tape_steps
        self.tape_steps += 1
        with self.probe_paused():
            loss = _scalar(target) if getattr(target, "shape", None) is not None else None
            squares = [float(np.sum(np.square(a.astype(np.float64)))) for a in
                       (stats.to_numpy(getattr(g, "values", g)) for g in self.tf.nest.flatten(gradients)
                        if g is not None) if a is not None and a.dtype.kind == "f"]
        record = {"step": step, "epoch": None, "phase": "train", "loss": loss, "metrics": {},
                  "grad_norm": float(np.sqrt(sum(squares))) if squares else None}
        self.report.steps.append(record)
        self._emit("step", record)

    def note(self, text: str):
        if text not in self.report.notes:
            self.report.notes.append(text)

    @contextlib.contextmanager
    def probe_paused(self):
        if self.probe is None:
            yield
            return
        with self.probe.paused():
            yield

    @contextlib.contextmanager
    def probe_detached(self):
        if self.probe is None:
            yield
            return
        with self.probe.detached():
            yield

    def on_model(self, model):
        """First sight of a Keras model in this cell: weights already non-finite? optimizer? loss?"""
        weights = self.hooks.layer_of_variable if self.hooks else {}
        for var in getattr(model, "weights", []):
            arr = stats.to_numpy(var)
            if arr is not None and not stats.all_finite(arr):
                layer, name = weights.get(id(var), (None, getattr(var, "name", "?")))
                entry = {"layer": layer, "variable": name, "counts": stats.counts(arr)}
                if entry not in self.evidence["nan_weights"]:
                    self.evidence["nan_weights"].append(entry)
        if not self.evidence["initial_weight_norms"] and self.hooks is not None:
            # before any step of this cell: the weights as the cell found them
            self.evidence["initial_weight_norms"] = _initial_norms(model, self.hooks.layer_of_variable)
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and self.evidence["optimizer"] is None:
            self.evidence["optimizer"] = _optimizer_facts(optimizer)
        if hasattr(optimizer, "inner_optimizer") and self.probe is not None:
            self.probe.tolerated_phases |= {"backward", "optimizer"}
            scale = _scalar(getattr(optimizer, "dynamic_scale", None)) if getattr(optimizer, "built", False) else None
            self._loss_scales[id(model)] = scale if scale is not None else getattr(optimizer, "initial_scale", None)
            self.note("mixed precision with a LossScaleOptimizer: Inf/NaN gradients are expected there and the "
                      "optimizer skips those steps (counted below, not an alarm); nanwatch checks the forward pass, "
                      "the loss and the metrics.")
        if self.evidence["loss"] is None and getattr(model, "loss", None) is not None:
            self.evidence["loss"] = _loss_facts(model.loss)
        policy = getattr(getattr(model, "dtype_policy", None), "name", None)
        if policy:
            self.evidence["dtype_policy"] = policy

    def enter_call(self, model, call, x, y):
        self.call_stack.append({"model": model, "call": call, "x": x, "y": y})
        self.batch_index = 0
        self._layer_variables.pop(id(model), None)   # a model may have grown since the last call
        self.evidence.setdefault("calls", []).append(call)
        self.evidence["call"] = call
        _profile_inputs(self, model, call, x, y)
        if self.evidence["nan_weights"] and self.detection is None:
            bad = self.evidence["nan_weights"][0]
            det = Detection(context="weights", op_type="ReadVariableOp", op_name=None, slot=0,
                            where=_where_of_layer(bad["layer"]), counts=bad["counts"])
            self._record_detection(det, weight=(bad["layer"], bad["variable"]))
            if self.options.stop:
                raise NonFiniteFound(det)

    def exit_call(self):
        if self.call_stack:
            self.call_stack.pop()

    def begin_step(self, model, kind) -> int:
        if kind == "train":
            step = self.train_step
            self.train_step += 1
        else:
            step = self.batch_index
        self.batch_index += 1
        return step

    def check_batch(self, model, kind, data, step):
        """Non-finite values in the batch itself: the data is the origin (phase input)."""
        from .engine.keras_hooks import batch_arrays, match_rows
        for name, arr in batch_arrays(data):
            if arr is None or stats.all_finite(arr):
                continue
            cells = stats.nonfinite_cells(arr) or {}
            call = self.call_stack[-1] if self.call_stack else {}
            user = _component(call.get("y") if name.startswith("y") else call.get("x"), name)
            array_rows = match_rows(arr[cells.get("rows", [])], user) if user is not None and cells.get("rows") else []
            det = Detection(context="data", op_type=None, op_name=None, slot=0,
                            where=_where_of_call(self), dtype=str(arr.dtype), counts=stats.counts(arr),
                            histogram=stats.histogram(arr), output=arr,
                            data=dict(cells, source=name, batch=self.batch_index - 1, array_rows=array_rows))
            self.report.bad_batch = _numpy_structure(data)
            self.on_detection(det)
            return

    def on_graph_failure(self, model, kind, data, detection: Detection, step):
        """A check failed inside a Keras step function: replay it for the numbers, then report."""
        self._t_detected = time.perf_counter()
        self.report.bad_batch = _numpy_structure(data)
        if kind == "train":
            with self.probe_paused():
                self.report._pre_nan_weights = model.get_weights()
        replayed = None
        if self.options.replay:
            from .engine.replay import replay_step
            try:
                replayed = replay_step(model, kind, data, self.probe, replica=locate.replica_of(detection.device))
            except Exception as exc:
                self.note(f"the eager replay of the failing step raised {type(exc).__name__}: {str(exc)[:200]}")
        upstream = list(detection.upstream)
        detection, reproduced = locate.merge_replay(detection, replayed)
        if self.options.replay and not reproduced:
            self.note("the eager replay of the failing step did not reproduce the same op "
                      "(random ops such as dropout draw anew); counts and input values are not available.")
        if upstream and not reproduced:
            chain = " <- ".join(f"{op} ({name})" for op, name in upstream)
            self.note(f"the check that failed follows {chain}, left unchecked so that TensorFlow "
                      f"fuses them as in an unwatched run; the non-finite value may have come from "
                      f"{'one of them' if len(upstream) > 1 else 'it'} rather than from {detection.op_type}.")
        self._record_detection(detection, replayed=self.options.replay, reproduced=reproduced if self.options.replay else None)
        if self.options.stop:
            raise NonFiniteFound(detection) from None
        self.probe.active = False

    def on_detection(self, detection: Detection):
        """From the probe's eager checks and the batch checks."""
        if self.detection is not None:
            return
        self._record_detection(detection)
        if self.options.stop:
            raise NonFiniteFound(detection)
        self.probe.active = False

    def _record_detection(self, detection: Detection, replayed=None, reproduced=None, weight=None):
        if self.detection is not None:
            return
        self._t_detected = self._t_detected or time.perf_counter()
        self.detection = detection
        if detection.op_type == "ReadVariableOp" and weight is None:
            weight = self._nonfinite_variable()
        if (detection.op_type or "").startswith("__inference_"):
            name = detection.op_type[len("__inference_"):].rsplit("_", 1)[0]
            self.note(f"the NaN/Inf came out of tf.function '{name}', traced before this cell, so the ops inside "
                      "were not instrumented. Define (or re-create) the function inside the watched cell to see "
                      "the op that made it.")
        step = self._current_step()
        first = locate.first_nonfinite(detection, step=step, epoch=self.epoch, layer_names=self.layer_names,
                                       replayed=replayed, reproduced=reproduced, weight=weight)
        self.report.first_nonfinite = first
        self._emit("first_nonfinite", first, [])

    def _nonfinite_variable(self):
        if self.hooks is None:
            return None
        for model in self.hooks.models:
            for var in getattr(model, "weights", []):
                with self.probe_paused():
                    arr = stats.to_numpy(var)
                if arr is not None and not stats.all_finite(arr):
                    return self.hooks.layer_of_variable.get(id(var), (None, getattr(var, "name", "?")))
        return None

    def _current_step(self):
        if self.call_stack:
            call = self.call_stack[-1]["call"]
            return max(0, self.train_step - 1 if call == "fit" else self.batch_index - 1)
        return self.tape_steps

    def used_mode(self, flavour: str):
        """The report's mode is "fast" only if every Keras step function of the cell was fast."""
        self._modes.add(flavour)
        self.report.mode = "fast" if self._modes == {"fast"} else "exact"

    def on_sentinel_trip(self, model, kind, data, step, reason: str, update_skipped: bool, alarm: bool = True) -> bool:
        """Fast mode saw a non-finite step: replay it exactly. Returns whether the update was skipped
        (then the caller applies the step unchecked, as the user's own run would have)."""
        self._t_detected = time.perf_counter()
        self.check_batch(model, kind, data, step)   # bad data: reported with its rows (raises when stopping)
        if self.detection is not None:
            return update_skipped
        self.report.bad_batch = _numpy_structure(data)
        if kind == "train" and update_skipped:
            with self.probe_paused():
                self.report._pre_nan_weights = model.get_weights()
        replayed = None
        if self.options.replay:
            from .engine.replay import replay_step
            try:
                replayed = replay_step(model, kind, data, self.probe)
            except Exception as exc:
                self.note(f"the exact replay of step {step} raised {type(exc).__name__}: {str(exc)[:200]}")
        if replayed is not None:
            self._record_detection(replayed, replayed=True, reproduced=True)
        elif not alarm:
            # e.g. finite gradients whose squares overflow: a risk the replay shows was not realised
            self.note(f"fast mode saw {reason} at step {step}; the exact replay found nothing non-finite, "
                      "so the step was applied as usual.")
            self.report._pre_nan_weights = None
            return update_skipped
        else:
            self.note(f"fast mode saw {reason} at step {step}, but the exact replay of that step did not reproduce "
                      "it (random ops such as dropout draw anew): rerun the cell with --mode exact to pinpoint the op.")
            where = _where_of_call(self)
            where.phase = "backward" if reason == "non-finite gradients" else (
                "forward" if kind == "predict" else "loss")
            self._record_detection(Detection(context="sentinel", op_type=None, op_name=None, slot=0, where=where,
                                             kind=reason), replayed=self.options.replay, reproduced=False)
        if self.options.stop:
            raise NonFiniteFound(self.detection)
        self.probe.active = False
        return update_skipped

    def end_step(self, model, kind, step, outputs, grad_sq):
        record = {"step": step, "epoch": self.epoch if kind == "train" else None,
                  "phase": {"train": "train", "test": "evaluate", "predict": "predict"}[kind],
                  "loss": None, "metrics": {}, "grad_norm": None}
        if kind != "predict" and isinstance(outputs, dict):
            for name, value in outputs.items():
                val = _scalar(value)
                if val is None:
                    continue
                if name == "loss":
                    record["loss"] = val
                else:
                    record["metrics"][name] = val
        norms = None
        if grad_sq is not None:
            sq = stats.to_numpy(grad_sq)
            norms = np.sqrt(2.0 * sq.astype(np.float64)) if sq is not None else None
            record["grad_norm"] = float(np.sqrt(np.sum(np.square(norms)))) if norms is not None else None
        every = self.options.stats_every or DEFAULT_STATS_EVERY
        if kind == "train" and step % every == 0 and (self.options.stats_every or self._layer_stats_due()):
            started = time.perf_counter()
            self._layer_stats(model, step, norms)
            if self._layer_stats_calls:   # the first call may trace the reading function: not a steady cost
                self._layer_stats_spent += time.perf_counter() - started
            self._layer_stats_calls += 1
        if kind == "train" and id(model) in self._loss_scales:
            self._count_skipped_step(model)
        if kind == "predict":
            return None
        self.report.steps.append(record)
        self._emit("step", record)
        return record

    def _count_skipped_step(self, model):
        """A LossScaleOptimizer halves its scale when it skips a step with non-finite gradients."""
        scale = _scalar(getattr(model.optimizer, "dynamic_scale", None))
        previous = self._loss_scales.get(id(model))
        if previous is not None and scale is not None and scale < previous:
            self.evidence["fp16_skipped_steps"] = self.evidence.get("fp16_skipped_steps", 0) + 1
        self._loss_scales[id(model)] = scale

    def _layer_stats_due(self) -> bool:
        """Per-layer statistics read every weight (about a millisecond even for a small model, as
        TensorFlow pays ~10 us per op): by default take them every 10 steps only while they have
        cost at most LAYER_STATS_BUDGET of the cell's training time so far (measured: 5-10% on a
        small CNN without the budget). An explicit --stats-every N is followed exactly."""
        now = time.perf_counter()
        if self._train_started is None:
            self._train_started = now
            return True
        return self._layer_stats_spent <= LAYER_STATS_BUDGET * (now - self._train_started)

    def _variables_by_layer(self, model, mapping) -> list:
        """[(trainable variable, its layer)], listed once per model and call: Keras walks every
        layer to answer `trainable_variables`, too slow to repeat every N steps."""
        cached = self._layer_variables.get(id(model))
        if cached is None:
            cached = [(var, mapping[id(var)][0]) for var in getattr(model, "trainable_variables", [])
                      if id(var) in mapping and "float" in str(getattr(var, "dtype", ""))]
            self._layer_variables[id(model)] = cached
        return cached

    def _layer_stats(self, model, step, grad_norms):
        """Weight norms (numpy) and gradient norms (from the step) per layer, every N steps."""
        by_layer: dict = {}
        mapping = self.hooks.layer_of_variable if self.hooks else {}
        pairs = self._variables_by_layer(model, mapping)
        try:
            with self.probe_detached():   # nanwatch's own reading: neither instrumented nor checked
                summary = stats.weight_summary([var for var, _ in pairs])
        except Exception as exc:
            self.note(f"per-layer weight statistics failed: {type(exc).__name__}: {exc}"[:300])
            summary, pairs = None, []
        for (_, layer), row in zip(pairs, summary if summary is not None else []):
            entry = by_layer.setdefault(layer, {"g2": None, "min": None, "max": None,
                                                "sum": 0.0, "sq": 0.0, "n": 0, "nan": 0, "inf": 0})
            _accumulate(entry, row)
        if grad_norms is not None:
            from .engine.keras_hooks import grad_variables
            for var, gnorm in zip(grad_variables(model), grad_norms):
                layer, _ = mapping.get(id(var), (None, None))
                if layer in by_layer:
                    by_layer[layer]["g2"] = (by_layer[layer]["g2"] or 0.0) + float(gnorm) ** 2
        records = []
        for layer, e in by_layer.items():
            mean = e["sum"] / e["n"] if e["n"] else None
            std = float(np.sqrt(max(e["sq"] / e["n"] - mean * mean, 0.0))) if e["n"] else None
            point = {"step": step, "weight_norm": float(np.sqrt(e["sq"])),
                     "grad_norm": float(np.sqrt(e["g2"])) if e["g2"] is not None else None,
                     "activation_norm": None}
            history = self._layer_history.setdefault(layer, [])
            history.append(point)
            records.append({"layer": layer, "weight_norm": point["weight_norm"], "grad_norm": point["grad_norm"],
                            "activation_norm": None, "min": e["min"], "max": e["max"], "mean": mean, "std": std,
                            "nan": e["nan"], "inf": e["inf"], "history": history})
        if records:
            self.report.layers = records
            self._emit("layers", records)

    # --- the end ------------------------------------------------------------------------------------
    def _finish(self):
        report = self.report
        report.info.extend(self._info())
        self.evidence.update(first_nonfinite=report.first_nonfinite, steps=report.steps, layers=report.layers)
        try:
            from .diagnosis import diagnose
            report.diagnosis, report.warnings = diagnose(self.evidence)
        except ImportError:
            pass
        except Exception as exc:
            self.note(f"the diagnosis failed: {type(exc).__name__}: {exc}"[:300])
        report.finish()
        if self._t_detected is not None:
            report.nan_to_report_s = round(time.perf_counter() - self._t_detected, 3)
        _last_report[0] = report
        if report.first_nonfinite is not None:
            self._emit("first_nonfinite", report.first_nonfinite, report.diagnosis)
        self._emit("run_finished", report.to_dict())

    def _info(self) -> list:
        info = []
        if self.options.mode in ("auto", "fast") and "fast" not in self._modes and self.probe is not None \
                and (self.probe.eager_ops_checked or self.probe.graph_ops_instrumented):
            info.append("custom code (no Keras fit/evaluate/predict step) ran in exact mode: every op checked; "
                        "fast mode serves Keras steps")
        if self.probe is not None:
            info.append(f"checked {self.probe.graph_ops_instrumented} graph ops and {self.probe.eager_ops_checked} "
                        "eager op runs")
        skipped = self.evidence.get("fp16_skipped_steps") or 0
        if skipped:
            info.append(f"LossScaleOptimizer skipped {skipped} step(s) with Inf gradients (by design, not an alarm)")
        return info

    def _emit(self, event, *args):
        for sink in self.sinks:
            method = getattr(sink, event, None)
            if method is None:
                continue
            try:
                method(*args)
            except Exception as exc:  # a view must never break the user's run
                self.note(f"view {type(sink).__name__}.{event} failed: {exc!r}"[:300])


# --- helpers ------------------------------------------------------------------------------------------
def _legacy_keras() -> bool:
    return os.environ.get("TF_USE_LEGACY_KERAS", "").lower() in ("1", "true", "yes")


def _scalar(value):
    arr = stats.to_numpy(value)
    if arr is None or arr.size != 1 or arr.dtype.kind not in "fiu":
        return None
    return float(arr.reshape(()))


def _accumulate(entry, row):
    """Add one variable's weight summary row (stats.weight_summary) to its layer's entry."""
    total, sumsq, lo, hi, nan, inf, finite = (float(v) for v in row)
    entry["nan"] += int(nan)
    entry["inf"] += int(inf)
    if finite:
        entry["sum"] += total
        entry["sq"] += sumsq
        entry["n"] += int(finite)
        entry["min"] = lo if entry["min"] is None else min(entry["min"], lo)
        entry["max"] = hi if entry["max"] is None else max(entry["max"], hi)


def _initial_norms(model, mapping) -> list:
    out = []
    for var in getattr(model, "trainable_variables", []):
        arr = stats.to_numpy(var)
        if arr is None or arr.ndim < 2:
            continue
        layer, name = mapping.get(id(var), (None, getattr(var, "name", "?")))
        out.append({"layer": layer, "variable": name, "norm": stats.norm(arr),
                    "fan_in": int(np.prod(arr.shape[:-1])), "fan_out": int(arr.shape[-1])})
    return out


def _optimizer_facts(optimizer) -> dict:
    inner = getattr(optimizer, "inner_optimizer", None)
    facts = {"class": type(optimizer).__name__, "learning_rate": None, "clipnorm": None, "clipvalue": None,
             "global_clipnorm": None, "loss_scale": inner is not None}
    target = inner or optimizer
    if inner is not None:
        facts["inner_class"] = type(inner).__name__
    try:
        facts["learning_rate"] = float(np.asarray(target.learning_rate))
    except Exception:
        pass
    for key in ("clipnorm", "clipvalue", "global_clipnorm"):
        facts[key] = getattr(target, key, None)
    return facts


def _loss_facts(loss) -> dict:
    name = loss if isinstance(loss, str) else getattr(loss, "name", None) or type(loss).__name__
    from_logits = getattr(loss, "from_logits", None)
    if from_logits is None and hasattr(loss, "get_config"):
        try:
            from_logits = loss.get_config().get("from_logits")
        except Exception:
            from_logits = None
    return {"name": name, "from_logits": from_logits}


def _where_of_call(session):
    from .engine.frames import resolve
    where = resolve(sys._getframe(2), session.cells)
    where.phase = "input"
    where.layer = None
    return where


def _where_of_layer(layer):
    from .engine.frames import Where
    return Where(layer=layer, layer_path=layer, phase="input", source=None)


def _profile_inputs(session, model, call, x, y):
    """Data forensics on the arrays given to fit/evaluate/predict (diagnosis package)."""
    try:
        from .diagnosis import data_checks
    except ImportError:
        return
    for role, value in (("features", x), ("targets", y)):
        if value is None or not _array_like(value):
            continue
        try:
            profile = data_checks.profile_array("X" if role == "features" else "y", value, role)
        except Exception as exc:
            session.note(f"data check of {role} failed: {exc!r}"[:300])
            continue
        profile["call"] = call
        session.evidence["data"].append(profile)
        if call == "fit" and role == "features":
            try:
                from .diagnosis import drift
                _train_ranges[id(model)] = drift.training_ranges(profile)
            except Exception:
                pass
        if call == "predict" and role == "features" and id(model) in _train_ranges:
            session.evidence["train_ranges"] = _train_ranges[id(model)]


def _numpy_structure(data):
    """A batch (nested tensors) as numpy arrays, for `report.bad_batch`."""
    try:
        import tensorflow as tf
        return tf.nest.map_structure(lambda t: stats.to_numpy(t) if hasattr(t, "numpy") else t, data)
    except Exception:
        return data


def _component(value, name: str):
    """The part of the user's x/y that a batch component came from: `x[1]` -> value[1]."""
    if value is None or "[" not in name:
        return value
    try:
        import tensorflow as tf
        flat = tf.nest.flatten(value)
        return flat[int(name.split("[", 1)[1].rstrip("]"))]
    except Exception:
        return None


def _array_like(value) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype") or type(value).__name__ in ("DataFrame", "Series")
