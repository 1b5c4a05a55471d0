"""Keras step functions for a watched cell: exact (every op checked), fast (a sentinel only),
or plain (no checks), and running one step under them.

Our step function keeps the batch it ran (for replay and data rows), checks it for
non-finite values before the step in exact mode, and returns per-variable gradient norms
beside the logs (stripped before Keras sees them). Fast mode's sentinel is in the same
graph: an all-finite verdict on the gradients, with the optimizer update under
`tf.cond(all finite)`, so a non-finite step leaves weights and optimizer state as they were.
"""

from __future__ import annotations

import sys
import time
import weakref

import numpy as np

from . import model_facts, readback, stats, step_failure
from .direct_call import DirectCalls
from .sentinel import SQUARES_OVERFLOW, capturing_gradients, replica_verdicts, replicas_to_replay, verdict_reason
from .batches import bad_batch_detection, numpy_structure, pipeline_data_error
from .frames import resolve
from .model_facts import loss_scaled, step_method
from .probe import detached_current, paused_current

_GRAD_KEY = "__nanwatch_grad_sq__"   # per-variable sum(g**2)/2, beside the logs
_OK_KEY = "__nanwatch_finite__"       # fast mode: were all gradients finite
_REPLICAS_KEY = "__nanwatch_replicas__"   # fast mode under a strategy: each replica's logs finite

# Traced step functions per model, kept across watched cells: re-tracing every cell would cost
# the tracing time again and, as TensorFlow keeps each retired function graph, memory per cell.
_TRACED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class StepRunner:
    """Builds a model's step functions for the cell and runs each step under them."""

    def __init__(self, events, probe, options, cells, calls):
        self.events = events
        self.probe = probe
        self.options = options
        self.cells = cells
        self.calls = calls               # the hooks' stack of running Keras calls (x, y, batches)
        self._plain: dict = {}           # (id(model), kind) -> uninstrumented function
        self._functions: dict = {}       # (id(model), kind) -> (traced, traced_fetch, flavour) its steps use now

    def mode_for(self, model) -> str:
        """exact or fast for this model's steps (fast cannot serve some set-ups: say why)."""
        if self.options.mode == "exact":
            return "exact"
        reason = _fast_cannot_serve(model)
        if reason:
            self.events.note(f"fast mode cannot serve model '{model.name}' ({reason}): it ran in exact mode.")
            return "exact"
        return "fast"

    def build(self, model, kind, flavour=None):
        """A step function: "exact" (every op checked), "fast" (sentinel only) or "plain" (no checks)."""
        import tensorflow as tf

        flavour = flavour or self.mode_for(model)
        traced, traced_fetch = _traced(model, kind, flavour)
        if flavour == "plain":
            return traced
        self.events.mode_decided(flavour)
        runner, events = self, self.events

        key = (id(model), kind)
        runner._functions[key] = (traced, traced_fetch, flavour)

        if kind == "predict":
            def predict_function(batches):
                outputs = None
                for data in batches:
                    traced, _, flavour = runner._functions[key]
                    out = runner.run_step(model, kind, traced, data, flavour)
                    outputs = out if outputs is None else tf.nest.map_structure(
                        lambda a, b: tf.concat([a, b], axis=0), outputs, out)
                return outputs
            return predict_function

        def function(iterator):
            outputs = None
            for _ in range(max(1, int(getattr(model, "steps_per_execution", 1) or 1))):
                traced, traced_fetch, flavour = runner._functions[key]
                if traced_fetch is not None and events.checks_on() and isinstance(
                        iterator, (tf.data.Iterator, tf.distribute.DistributedIterator)):
                    try:
                        out, data = traced_fetch(iterator)
                    except tf.errors.OutOfRangeError:
                        break
                    except tf.errors.InvalidArgumentError as exc:   # a check in the input pipeline
                        pipeline_data_error(exc, runner.probe, events, runner.calls[-1] if runner.calls else {})
                        raise
                    outputs = runner.finish_step(model, kind, runner.begin(model, kind), out, data, flavour)
                    continue
                try:
                    with self.probe.detached():
                        data = _next_batch(iterator)
                except tf.errors.InvalidArgumentError as exc:
                    pipeline_data_error(exc, runner.probe, events, runner.calls[-1] if runner.calls else {})
                    raise
                if data is None:
                    break
                outputs = runner.run_step(model, kind, traced, data, flavour)
            if outputs is None:
                raise StopIteration
            return outputs
        return function

    def begin(self, model, kind) -> int:
        if self.calls:
            self.calls[-1]["batches"] += 1
        return self.events.step_started(model, kind)

    def _check_batch(self, data):
        """Bad data in the batch: reported with its rows (raises when stopping)."""
        call = self.calls[-1] if self.calls else {}
        where = resolve(sys._getframe(1), self.cells)
        detection = bad_batch_detection(data, call.get("x"), call.get("y"), call.get("batches", 1) - 1, where)
        if detection is not None:
            self.events.detected(detection, bad_batch=numpy_structure(data))
        return detection

    def run_step(self, model, kind, traced, data, flavour):
        """One step: run it, catch what went non-finite, record stats.

        exact: the batch is checked in numpy first, every op in the graph is checked.
        fast: nothing per op; the sentinel's verdict (gradients, loss, metrics, outputs)
        is read after the step, and only a tripped step gets the batch check and the replay.
        """
        import tensorflow as tf

        step = self.begin(model, kind)
        fn = traced
        if not self.events.checks_on():
            fn, flavour = self.plain_function(model, kind), "plain"
        elif flavour == "exact":
            self._check_batch(data)
        # an exact step stopped by a check may have run the optimizer's step count already (it does not
        # wait for the gradients): read before, put back after a stop
        iterations = model_facts.iterations(model.optimizer) if flavour == "exact" and kind == "train" \
            and getattr(model, "optimizer", None) is not None else None
        try:
            if flavour == "exact":
                with self.probe.graph_only():
                    outputs = fn(data)
            else:
                outputs = fn(data)
        except tf.errors.InvalidArgumentError as exc:
            detection = self.probe.detection_from_error(exc)
            if detection is None:
                raise
            model_facts.put_back_iterations(model.optimizer, iterations)
            failure = step_failure.graph_failure(model, kind, data, step, detection, self.probe, self.options.replay)
            self.events.step_failed(failure)   # raises NonFiniteFound when stopping
            if failure.benign:
                fn, flavour = self._watch_sinks_only(model, kind, failure)
                outputs = fn(data)
            else:
                outputs, flavour = self.plain_function(model, kind)(data), "plain"
        return self.finish_step(model, kind, step, outputs, data, flavour)

    def finish_step(self, model, kind, step, outputs, data, flavour):
        """Statistics of a step that ran; in fast mode, the sentinel's verdict."""
        outputs, grad_sq, ok, packed, replicas = _split_extras(outputs)
        logs = outputs
        read = readback.unpack(model, kind, packed) if packed is not None else None
        if read is not None:   # one read for the logs, the gradients' squares and the verdict
            logs, grad_sq, ok = read
        norms = None
        if grad_sq is not None:
            sq = stats.to_numpy(grad_sq)
            norms = np.sqrt(2.0 * sq.astype(np.float64)) if sq is not None else None
        record = self.events.step_ended(model, kind, step, logs, norms)
        if flavour == "fast":
            scaled = loss_scaled(model)
            reason = verdict_reason(kind, outputs, record, ok, scaled)
            if reason and self._sentinel_tripped(model, kind, data, step, reason,
                                                 update_skipped=ok is not None and not scaled,
                                                 alarm=reason != SQUARES_OVERFLOW,
                                                 replicas=replicas_to_replay(model, ok, replicas)):
                # --no-stop: apply the skipped step unchecked, as the user's own run would have
                outputs = _split_extras(self.plain_function(model, kind)(data))[0]
        return outputs

    def _sentinel_tripped(self, model, kind, data, step, reason, update_skipped, alarm, replicas) -> bool:
        """Fast mode saw a non-finite step: replay it exactly. Returns whether the update was skipped
        (then the caller applies the step unchecked, as the user's own run would have)."""
        detected_at = time.perf_counter()
        if self._check_batch(data) is not None:
            return update_skipped
        where = resolve(sys._getframe(2), self.cells)
        failure = step_failure.sentinel_trip(model, kind, data, step, reason, where, self.probe,
                                             self.options.replay, update_skipped, alarm, detected_at, replicas)
        self.events.step_failed(failure)   # raises NonFiniteFound when stopping
        return update_skipped

    def _watch_sinks_only(self, model, kind, failure):
        """Exact mode's check met a value the training absorbs (the replay showed it): from this step
        on, the model's steps run with the sinks checked (fast mode's sentinel), where a check on every
        op would stop at the same absorbed value again."""
        flavour = "plain" if _fast_cannot_serve(model) else "fast"
        traced, traced_fetch = _traced(model, kind, flavour)
        self._functions[(id(model), kind)] = (traced, traced_fetch if flavour == "fast" else None, flavour)
        self.events.note(f"model '{model.name}': exact mode's check of {failure.checked_op} met a value the "
                         f"training absorbs (step {failure.step}); its steps ran with "
                         + ("the sinks checked (fast mode) from there on." if flavour == "fast" else
                            "no checks from there on (fast mode cannot serve this set-up)."))
        return traced, flavour

    def plain_function(self, model, kind):
        """The step without checks: for `--no-stop` after the first non-finite value, and to
        apply a step the sentinel skipped when the replay found nothing."""
        key = (id(model), kind)
        if key not in self._plain:
            self._plain[key] = self.build(model, kind, flavour="plain")
        return self._plain[key]


def _fast_cannot_serve(model) -> str | None:
    """Why the fast-mode sentinel cannot serve this model's steps (None: it can)."""
    if getattr(model, "run_eagerly", False):
        return "the model runs eagerly (run_eagerly=True)"
    strategy = getattr(model, "distribute_strategy", None)
    if getattr(strategy, "num_replicas_in_sync", 1) > 1 and type(strategy).__name__ != "MirroredStrategy":
        # the sentinel's cross-replica merge is tested under MirroredStrategy only
        return f"a {type(strategy).__name__} with several replicas (fast mode serves MirroredStrategy)"
    return None


def _compile_token(model, kind, flavour):
    """What a cached step function depends on: recompiling gives new loss/metric/optimizer objects."""
    return (kind, flavour, bool(getattr(model, "run_eagerly", False)), id(getattr(model, "optimizer", None)),
            id(getattr(model, "_compile_loss", None)), id(getattr(model, "_compile_metrics", None)))


def _traced(model, kind, flavour):
    """(step on a batch, fetch-and-step on an iterator or None): cached per model."""
    import tensorflow as tf
    from keras.src.backend.tensorflow.trainer import reduce_per_replica

    cache = _TRACED.setdefault(model, {})
    token = _compile_token(model, kind, flavour)
    if token in cache:
        return cache[token]
    step_fn = step_method(model, kind)
    strategy = model.distribute_strategy
    sentinel = flavour == "fast"

    @tf.autograph.experimental.do_not_convert
    def one_step_on_data(data):
        with capturing_gradients(model, skip_nonfinite=sentinel) as captured:
            outputs = strategy.run(step_fn, args=(data,))
        replicas = None
        if sentinel and kind != "predict" and strategy.num_replicas_in_sync > 1:
            with paused_current():   # each replica's own logs finite: read only when the sentinel trips
                replicas = replica_verdicts(strategy, outputs)
        outputs = reduce_per_replica(outputs, strategy, reduction="concat" if kind == "predict" else "auto")
        sq = captured.get("sq") if kind == "train" else None
        if sq is not None:
            outputs = dict(outputs) if isinstance(outputs, dict) else {"outputs": outputs}
        packed = None
        if kind != "predict" and isinstance(outputs, dict):
            with paused_current():   # nanwatch's own ops: an overflowing square is not checked
                packed = readback.pack(model, kind, outputs, sq, captured["ok"] if sentinel else None)
        extras = {readback.PACK_KEY: packed} if packed is not None else {
            _GRAD_KEY: sq, _OK_KEY: captured["ok"] if sentinel and sq is not None else None}
        extras[_REPLICAS_KEY] = replicas
        extras = {key: value for key, value in extras.items() if value is not None}
        return dict(outputs, **extras) if extras and isinstance(outputs, dict) else outputs

    def trace(fn):
        if getattr(model, "run_eagerly", False):
            return fn
        traced = tf.function(fn, reduce_retracing=True, jit_compile=False)
        traced._nanwatch_own = True   # engine/functions.py leaves nanwatch's own step functions alone
        return traced

    on_data = one_step_on_data
    if hasattr(model, "_autoconvert_optionals"):
        on_data = model._autoconvert_optionals(on_data)

    @tf.autograph.experimental.do_not_convert
    def fetch_and_step(iterator):
        """Fast mode: the batch is fetched inside the graph, as Keras does, and handed back."""
        data = iterator.get_next()
        return on_data(data), data

    traced = trace(on_data)
    traced_fetch = trace(fetch_and_step) if flavour == "fast" and kind != "predict" else None
    if flavour != "exact":
        # Traced and run with the op callback off: no per-op checks inside, no per-op cost.
        traced = _Unchecked(traced)
        traced_fetch = _Unchecked(traced_fetch) if traced_fetch else None
    cache[token] = (traced, traced_fetch)
    return cache[token]


class _Unchecked:
    """Calls a step function with the op callback off: tracing adds no per-op checks, and
    running it pays no per-op callback cost (TF sends every eager op through Python while
    any op callback is registered). A traced step is called straight on its trace for arguments
    of a kind seen before (engine/direct_call.py)."""

    def __init__(self, fn):
        self.fn = DirectCalls(fn) if hasattr(fn, "get_concrete_function") else fn

    def __call__(self, data):
        with detached_current():
            return self.fn(data)


def _split_extras(outputs):
    """(logs, per-variable gradient sum of squares / 2, all-finite flags, the packed read, each
    replica's logs finite) from a step's outputs."""
    keys = (_GRAD_KEY, _OK_KEY, readback.PACK_KEY, _REPLICAS_KEY)
    if isinstance(outputs, dict) and any(key in outputs for key in keys):
        outputs = dict(outputs)
        return (outputs,) + tuple(outputs.pop(key, None) for key in keys)
    return outputs, None, None, None, None


def _next_batch(iterator):
    import tensorflow as tf
    if isinstance(iterator, (tf.data.Iterator, tf.distribute.DistributedIterator)):
        optional = iterator.get_next_as_optional()
        if not optional.has_value():
            return None
        return optional.get_value()
    try:
        return next(iterator)
    except (StopIteration, tf.errors.OutOfRangeError):
        return None
