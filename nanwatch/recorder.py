"""The recorder: the run's side of the engine interface. It owns the steps, the per-layer
records, the evidence record and the first detection, and publishes them to the sinks.

The engine (probe, Keras hooks, tape patch, step investigation) tells it what happened
through `RunEvents`; it never reaches into the engine except to read what a watched model
holds (model_facts) and, once the first non-finite value is recorded under `--no-stop`, to
turn the checks off. The run's mode is announced (`run_started`) only once it is known.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import time

import numpy as np

from . import locate
from .engine import model_facts, stats
from .engine.detection import Detection, NonFiniteFound
from .engine.events import RunEvents
from .engine.frames import Where
from .evidence import Evidence
from .series import history_series
from .sinks import SinkSet

# Keras call -> schema.CallKind of its steps. The *_on_batch forms run one step on the batch given
# (already checked before its step): their data is not profiled as a whole array.
CALL_KINDS = {"fit": "train", "evaluate": "evaluate", "predict": "predict",
              "train_on_batch": "train", "test_on_batch": "evaluate", "predict_on_batch": "predict"}
WHOLE_ARRAY_CALLS = ("fit", "evaluate", "predict")
_WHOLE_ARRAY_FORM = {"train": "fit", "evaluate": "evaluate", "predict": "predict"}

# id(model) -> the ranges of the features it was fitted on (predict-time drift), kernel lifetime
_TRAIN_RANGES: dict = {}


def forget_training_ranges():
    _TRAIN_RANGES.clear()


class Recorder(RunEvents):
    def __init__(self, options, report, layers, sinks=(), cell_id=None):
        self.options = options
        self.report = report
        self.layers = layers                  # LayerIndex, filled by the Keras hooks
        self.evidence = Evidence()
        self.sinks = SinkSet(sinks, self.note)
        self.cell_id = cell_id
        self.probe = None                     # set by `attach` when the run is watched
        self.layer_stats = None
        self.detection: Detection | None = None
        self.t_detected: float | None = None  # perf_counter when the first non-finite value was seen
        self.modes: set = set()               # modes of the Keras step functions built in the cell
        self.epoch: int | None = None
        self.train_step = 0
        self.batch_index = 0
        self.tape_steps = 0
        self._calls: list = []                # names of the running Keras calls
        self._loss_scales: dict = {}          # id(model) -> last dynamic loss scale (LossScaleOptimizer)
        self._announced = False
        self._gc_was_enabled = None           # set while the full GC is held (see _hold_gc)
        self._histories: dict = {}            # layer -> its history points (a bounded series)
        # nanwatch.Callback: a stop found in Keras's own loop code (predict's batch fetch) is left
        # pending, for the callback to end the run at its next step; raising there would end the call
        self.defer_stop = False
        self.stop_pending = False
        self._optimizer = None                # the optimizer whose facts the evidence holds
        self._lr_origin = None                # (train step, optimizer iteration) when it was first seen
        self._custom_loop_rates = False       # that step counts a custom loop's steps (tape_steps)
        self._failing_step = None             # the train step whose value went non-finite
        self.last_step = self.failed_step = None   # (model, kind) of the latest Keras step / the failing one

    def attach(self, probe, layer_stats):
        self.probe = probe
        self.layer_stats = layer_stats

    # --- publishing ----------------------------------------------------------------------------
    def announce(self):
        """`run_started`, once, with the mode the run's steps use (exact unless Keras steps ran fast)."""
        if self._announced:
            return
        self._announced = True
        r = self.report
        self.sinks.emit("run_started", {"run_id": r.run_id, "cell": r.cell, "cell_id": self.cell_id,
                                        "mode": r.mode, "started": r.started})

    def publish(self, hook, *args):
        self.announce()
        self.sinks.emit(hook, *args)

    def _paused(self):
        return self.probe.paused() if self.probe is not None else contextlib.nullcontext()

    # --- RunEvents: what the engine asks -------------------------------------------------------
    def checks_on(self) -> bool:
        return self.detection is None or self.options.stop

    def in_keras_call(self) -> bool:
        return bool(self._calls)

    # --- RunEvents: what the engine tells -----------------------------------------------------
    def note(self, text: str):
        if text not in self.report.notes:
            self.report.notes.append(text)

    def model_seen(self, model):
        """Weights already non-finite? optimizer, loss, layers, dtype policy: the evidence."""
        ev = self.evidence
        with self._paused():   # nanwatch's own reads: a NaN weight is reported by call_started, below
            nonfinite = model_facts.nonfinite_weights(model, self.layers)
            # before any step of this cell: the weights as the cell found them
            norms = None if ev.initial_weight_norms else model_facts.initial_norms(model, self.layers)
        for entry in nonfinite:
            if entry not in ev.nan_weights:
                ev.nan_weights.append(entry)
        if norms is not None:
            ev.initial_weight_norms = norms
        if not ev.layers_config:
            ev.layers_config = model_facts.layers_config(model)
        if ev.loss_config is None:
            try:
                ev.loss_config = model_facts.loss_facts(model)
            except Exception as exc:   # a fact we could not read is not worth failing the run
                self.note(f"loss configuration not read: {exc!r}"[:300])
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and ev.optimizer is None:
            self._first_optimizer(optimizer, self.train_step)
        if model_facts.loss_scaled(model):
            self._loss_scales[id(model)] = model_facts.loss_scale(model)
            self.note("mixed precision with a LossScaleOptimizer: Inf/NaN gradients are expected there and the "
                      "optimizer skips those steps (counted below, not an alarm); nanwatch checks the forward pass, "
                      "the loss and the metrics.")
        policy = getattr(getattr(model, "dtype_policy", None), "name", None)
        if policy:
            ev.dtype_policy = policy

    def optimizer_seen(self, optimizer):
        if not self._calls and self.evidence.optimizer is None:
            self._first_optimizer(optimizer, self.tape_steps, custom_loop=True)

    def _first_optimizer(self, optimizer, step, custom_loop=False):
        """The optimizer whose facts the evidence holds, and the step its rates are counted from."""
        import tensorflow as tf
        with self._paused(), tf.init_scope():    # read eagerly, even while a user's step is traced
            self.evidence.optimizer = model_facts.optimizer_facts(optimizer)
        self._optimizer = optimizer
        self._lr_origin = (step, self.evidence.optimizer.get("iterations"))
        self._custom_loop_rates = custom_loop
        self._note_rate(self.evidence.optimizer.get("learning_rate"), step)

    def call_started(self, model, call, x, y, weights=None):
        self._calls.append(call)
        self.batch_index = 0
        if self.layer_stats is not None:
            self.layer_stats.forget_variables(model)
        self.evidence.call = call if call in WHOLE_ARRAY_CALLS else _WHOLE_ARRAY_FORM[CALL_KINDS[call]]
        if call in WHOLE_ARRAY_CALLS:
            self._profile_inputs(model, call, x, y)
        if weights and isinstance(self.evidence.loss_config, dict):
            self.evidence.loss_config["weights"] = model_facts.weight_facts(weights)
        if self.evidence.nan_weights and self.detection is None:
            bad = self.evidence.nan_weights[0]
            detection = Detection(context="weights", op_type="ReadVariableOp", op_name=None, slot=0,
                                  where=Where(layer=bad["layer"], layer_path=bad["layer"], phase="input", source=None),
                                  counts=bad["counts"], weight=(bad["layer"], bad["variable"]))
            self._record(detection)
            if self.options.stop:
                raise NonFiniteFound(detection)

    def call_ended(self, model, call):
        if self._calls:
            self._calls.pop()

    def epoch_started(self, epoch):
        self.epoch = epoch
        if self._optimizer is not None and not (self.evidence.optimizer or {}).get("schedule"):
            with self._paused():   # once per epoch: a callback (ReduceLROnPlateau, LearningRateScheduler) sets it
                self._note_rate(model_facts.current_learning_rate(self._optimizer))

    def _note_rate(self, rate, step=None):
        """The rate in force from this train step on (kept only when it changed)."""
        rates = self.evidence.learning_rates
        step = self.train_step if step is None else step
        if rate is None or (rates and rates[-1][1] == rate):
            return
        if rates and rates[-1][0] == step:
            rates[-1][1] = rate
        else:
            rates.append([step, rate])

    def complete_evidence(self):
        """At the run's end: the schedule's rate at every train step the cell ran (no per-step read while
        it trained: a schedule is a function of the optimizer's iteration)."""
        opt = self.evidence.optimizer or {}
        if self._optimizer is None or not opt.get("schedule") or self._lr_origin is None:
            return
        step0, iter0 = self._lr_origin
        if iter0 is None:
            return
        steps_run = self.tape_steps if self._custom_loop_rates else self.train_step
        last = self._failing_step if self._failing_step is not None else steps_run - 1
        steps = range(step0, max(step0, last) + 1)
        try:
            with self._paused():
                rates = model_facts.schedule_rates(self._optimizer, [iter0 + s - step0 for s in steps])
        except Exception as exc:
            self.note(f"the learning-rate schedule could not be evaluated: {exc!r}"[:300])
            return
        self.evidence.learning_rates = [[step0 + it - iter0, rate] for it, rate in rates]

    def mode_decided(self, mode):
        """The report's mode is "fast" only if every Keras step function of the cell was fast."""
        self.modes.add(mode)
        self.report.mode = "fast" if self.modes == {"fast"} else "exact"
        self.announce()

    def step_started(self, model, kind) -> int:
        self.last_step = (model, kind)        # the Keras step running now (engine/verify.py re-runs a failing one)
        if kind == "train":
            step = self.train_step
            self.train_step += 1
        else:
            step = self.batch_index
        self.batch_index += 1
        return step

    def step_ended(self, model, kind, step, logs, grad_norms):
        record = {"step": step, "epoch": self.epoch if kind == "train" else None, "phase": kind,
                  "loss": None, "metrics": {}, "grad_norm": None}
        if kind != "predict" and isinstance(logs, dict):
            for name, value in logs.items():
                val = stats.scalar(value)
                if val is None:
                    continue
                if name == "loss":
                    record["loss"] = val
                else:
                    record["metrics"][name] = val
        if grad_norms is not None:
            record["grad_norm"] = float(np.sqrt(np.sum(np.square(grad_norms))))
        if kind == "train" and self.layer_stats is not None and self.layer_stats.due(step):
            records = self._with_histories(self.layer_stats.take(model, step, grad_norms, self.note))
            if records:
                self.report.layers = records
                self.publish("layers", records)
        if kind == "train" and id(model) in self._loss_scales:
            self._count_skipped_step(model)
        if kind == "predict":
            return None
        self.report.steps.append(record)
        self.publish("step", record)
        return record

    def _with_histories(self, records: list) -> list:
        """Each layer record's `point` appended to its layer's history (bounded, nanwatch/series.py),
        the record given the history's sample and how it was sampled."""
        for record in records:
            history = self._histories.get(record["layer"])
            if history is None:
                history = self._histories[record["layer"]] = history_series()
            history.append(record.pop("point"))
            record["history"] = history.records()
            record["history_sampling"] = history.sampling()
        return records

    def tape_step(self, loss, grad_norm):
        record = {"step": self.tape_steps, "epoch": None, "phase": "train", "loss": loss, "metrics": {},
                  "grad_norm": grad_norm}
        self.tape_steps += 1
        self.report.steps.append(record)
        self.publish("step", record)

    def detected(self, detection, bad_batch=None):
        if bad_batch is not None:
            self.report.bad_batch = bad_batch
        if self.detection is not None:
            return
        self._record(detection)
        self._stop_or_go_on(detection)

    def step_failed(self, failure):
        if failure.benign:
            return   # absorbed: the engine says so in a note, the report lists it as info
        self.t_detected = failure.detected_at or time.perf_counter()
        for text in failure.notes:
            self.note(text)
        if failure.bad_batch is not None:
            self.report.bad_batch = failure.bad_batch
        if failure.detection is None:
            return   # not an alarm: the replay showed the step harmless
        if failure.pre_step_weights is not None:
            self.report.pre_nan_weights = failure.pre_step_weights
        self._record(failure.detection, replayed=failure.replayed, reproduced=failure.reproduced)
        self._stop_or_go_on(self.detection)

    def left_over(self, origin):
        """A non-finite value the cell made and still holds, never absorbed: shown or kept, it is an
        output of the cell, so the run is not healthy."""
        if self.detection is not None or origin is None:
            return
        self.note("the cell holds a non-finite value it made and nothing absorbed (a result it printed or "
                  "kept); nanwatch names where it was made.")
        self._record(origin)

    def check_final_state(self, models):
        """Trust: a run is never called healthy while a weight or slot it watched is non-finite.
        Found here only when no check saw the value made (the report says so)."""
        if self.detection is not None or not models:
            return
        with self._paused():
            bad = model_facts.nonfinite_state(models, self.layers)
        if bad is None:
            return
        layer, name = bad
        self.note(f"after the run, {f'layer {layer!r} ' if layer else ''}variable {name!r} holds NaN/Inf, and no "
                  "check saw the value made (it was written where nanwatch does not watch): the run is not healthy.")
        self._record(Detection(context="weights", op_type="ReadVariableOp", op_name=None, slot=0,
                               where=Where(layer=layer, layer_path=layer, phase="input", source=None),
                               weight=(layer, name)))

    def graph_error(self, detection):
        """A tf.function of the user's own (custom loop) failed one of our checks: the error
        reached the run's end, so the run stops here."""
        self._record(detection, replayed=False, reproduced=None)

    # --- recording ----------------------------------------------------------------------------------
    def _stop_or_go_on(self, detection):
        if self.options.stop and self.defer_stop:
            self.stop_pending = True
        elif self.options.stop:
            raise NonFiniteFound(detection) from None
        if self.probe is not None:
            self.probe.deactivate()

    def _record(self, detection, replayed=None, reproduced=None):
        if self.detection is not None:
            return
        self.t_detected = self.t_detected or time.perf_counter()
        self._hold_gc()
        if detection.op_type == "ReadVariableOp" and detection.weight is None:
            with self._paused():
                weight = model_facts.first_nonfinite_variable(self.layers.models, self.layers)
            if weight is not None:
                detection = dataclasses.replace(detection, weight=weight)
        self.detection = detection
        self.failed_step = self.last_step if self._calls else None
        self._rate_at_failure()
        for text in detection.notes:
            self.note(text)
        if (detection.op_type or "").startswith("__inference_"):
            name = detection.op_type[len("__inference_"):].rsplit("_", 1)[0]
            self.note(f"the NaN/Inf came out of tf.function '{name}', traced before this cell, so the ops inside "
                      "were not instrumented. Define (or re-create) the function inside the watched cell to see "
                      "the op that made it.")
        step = detection.step if detection.step is not None else self.current_step()
        first = locate.first_nonfinite(detection, step=step, epoch=self.epoch,
                                       layer_names=self.layers.names, replayed=replayed, reproduced=reproduced)
        self.report.first_nonfinite = first
        self.publish("first_nonfinite", first, [])

    def _rate_at_failure(self):
        """The optimizer's iteration and the rate its next update uses, read when the value is found (the
        failing step's update was not applied)."""
        if self._optimizer is None or self.evidence.optimizer is None:
            return
        with self._paused():
            rate = model_facts.current_learning_rate(self._optimizer)
            try:
                count = model_facts.iterations(self._optimizer)
            except Exception:
                count = None
        self._failing_step = self.current_step()
        self.evidence.optimizer.update(learning_rate_at_failure=rate, iterations_at_failure=count)
        if not self.evidence.optimizer.get("schedule"):
            self._note_rate(rate, self._failing_step)

    def _hold_gc(self):
        """The run stops here: hold Python's full garbage collection (0.2-7 s over TensorFlow's
        objects, measured) until the report is complete (`release_gc`); not under --no-stop, where
        the training goes on."""
        if self.options.stop and self._gc_was_enabled is None:
            self._gc_was_enabled = gc.isenabled()
            gc.disable()

    def release_gc(self):
        if self._gc_was_enabled:
            gc.enable()
        self._gc_was_enabled = None

    def current_step(self) -> int:
        if self._calls:
            training = CALL_KINDS.get(self._calls[-1]) == "train"
            return max(0, self.train_step - 1 if training else self.batch_index - 1)
        return self.tape_steps

    def _count_skipped_step(self, model):
        """A LossScaleOptimizer halves its scale when it skips a step with non-finite gradients."""
        scale = stats.scalar(getattr(model.optimizer, "dynamic_scale", None))
        previous = self._loss_scales.get(id(model))
        if previous is not None and scale is not None and scale < previous:
            self.evidence.fp16_skipped_steps += 1
        self._loss_scales[id(model)] = scale

    def _profile_inputs(self, model, call, x, y):
        """Data forensics on the arrays given to fit/evaluate/predict (diagnosis package)."""
        try:
            from .diagnosis import data_checks, drift
        except ImportError:
            return
        for role, value in (("features", x), ("targets", y)):
            if value is None or not _array_like(value):
                continue
            try:
                profile = data_checks.profile_array("X" if role == "features" else "y", value, role)
            except Exception as exc:
                self.note(f"data check of {role} failed: {exc!r}"[:300])
                continue
            profile["call"] = call
            self.evidence.data.append(profile)
            if call == "fit" and role == "features":
                try:
                    _TRAIN_RANGES[id(model)] = drift.training_ranges(profile)
                except Exception:
                    pass
            if call == "predict" and role == "features" and id(model) in _TRAIN_RANGES:
                self.evidence.train_ranges = _TRAIN_RANGES[id(model)]


def _array_like(value) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype") or type(value).__name__ in ("DataFrame", "Series")
