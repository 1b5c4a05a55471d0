"""Keras 3 hooks for a watched cell: fresh, un-jitted, observed step functions.

Instrumentation only reaches functions traced while the probe is on, so each model used in
the cell gets new train/test/predict functions (built by keras_steps), and its old ones back
afterwards. fit/evaluate/predict and their *_on_batch forms are wrapped to tell the run which
call runs, on which data, and which epoch. The patches live on the TensorFlow trainer class only for the cell.
"""

from __future__ import annotations

import inspect
import sys

from .keras_steps import StepRunner
from .model_facts import loss_scaled

# schema.CallKind -> the model attribute Keras caches that kind's step function in
_FUNCTION_ATTRS = {"train": "train_function", "evaluate": "test_function", "predict": "predict_function"}
_MAKERS = {"train": "make_train_function", "evaluate": "make_test_function", "predict": "make_predict_function"}
# The Keras calls that run steps, wrapped to tell the run which call runs on which data
# (schema.CallKind of each: nanwatch.recorder.CALL_KINDS).
CALLS = ("fit", "evaluate", "predict", "train_on_batch", "test_on_batch", "predict_on_batch")


def _trainer_class():
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer
    return TensorFlowTrainer


def _epoch_callback(events):
    """A Keras callback that tells the run which epoch it is (made lazily: needs keras)."""
    import keras

    class NanwatchCallback(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            events.epoch_started(epoch)

    return NanwatchCallback()


class KerasHooks:
    """Patches `TensorFlowTrainer` for one watched cell and undoes it afterwards."""

    def __init__(self, events, probe, options, cells, layers):
        self.events = events
        self.probe = probe
        self.layers = layers               # LayerIndex, filled as models are seen
        self.calls: list = []              # running Keras calls: {model, call, x, y, batches}
        self.steps = StepRunner(events, probe, options, cells, self.calls)
        self._saved_class_attrs: dict = {}
        self._saved_models: dict = {}      # id(model) -> (model, {attr: old value})
        self._built: dict = {}             # (id(model), kind) -> our function
        # wraps each step function built (nanwatch.Callback: a NaN inside a running Keras call ends
        # the run there); None: the functions as built
        self.guard = None

    # --- install / uninstall ---------------------------------------------------------------
    def install(self):
        cls = _trainer_class()
        for name in list(_MAKERS.values()) + list(CALLS):
            self._saved_class_attrs[name] = cls.__dict__.get(name)
        for kind, maker in _MAKERS.items():
            setattr(cls, maker, self._make_function(kind))
        for call in CALLS:
            setattr(cls, call, self._wrap_call(call, self._saved_class_attrs[call]))

    def uninstall(self):
        cls = _trainer_class()
        for name, value in self._saved_class_attrs.items():
            if value is None:
                if name in cls.__dict__:
                    delattr(cls, name)
            else:
                setattr(cls, name, value)
        self._saved_class_attrs.clear()
        for model, attrs in self._saved_models.values():
            for attr, value in attrs.items():
                try:
                    object.__setattr__(model, attr, value)
                except Exception:
                    setattr(model, attr, value)
        self._saved_models.clear()
        self._built.clear()

    def _make_function(self, kind):
        attr = _FUNCTION_ATTRS[kind]

        def make_function(model, force=False):
            key = (id(model), kind)
            if key not in self._built or force:
                self._remember(model)
                built = self.steps.build(model, kind)
                self._built[key] = self.guard(built, model, kind) if self.guard is not None else built
            setattr(model, attr, self._built[key])
            return self._built[key]
        return make_function

    # --- per model ---------------------------------------------------------------------------
    def _remember(self, model):
        if id(model) in self._saved_models:
            return
        self._saved_models[id(model)] = (model, {attr: getattr(model, attr, None) for attr in _FUNCTION_ATTRS.values()})
        if getattr(model, "jit_compile", False) and not getattr(model, "run_eagerly", False):
            self.events.note(f"model '{model.name}' has jit_compile=True: nanwatch ran it un-jitted for this cell "
                             "(debug checks have no XLA kernels); the setting is unchanged afterwards.")
        self.layers.add_model(model)
        if loss_scaled(model):
            # a LossScaleOptimizer skips steps with Inf gradients by design: check the forward pass only
            self.probe.tolerated_phases |= {"backward", "optimizer"}
        self.events.model_seen(model)

    def _data_made_in_cell(self, x, y, frame):
        """Tensors given to a Keras call are fed to the training: one an eager op of the cell made
        non-finite (a standardisation dividing by a zero std) is an alarm at that op."""
        if not self.probe.active:
            return
        import tensorflow as tf
        for tensor in tf.nest.flatten((x, y)):
            if isinstance(tensor, tf.Tensor) and getattr(tensor.dtype, "is_floating", False):
                self.probe.eager.sink_if_made(tensor, frame)

    def begin_call(self, model, call, x, y, frame):
        """A Keras call starts (`frame`: its caller's): the run is told, its data and model seen.
        May raise NonFiniteFound (weights already non-finite)."""
        self._remember(model)
        self._data_made_in_cell(x, y, frame)
        self.calls.append({"model": model, "call": call, "x": x, "y": y, "batches": 0})
        self.events.call_started(model, call, x, y)

    def end_call(self, model, call):
        if self.calls:
            self.calls.pop()
        self.events.call_ended(model, call)

    def rebuild(self, model, kind):
        """Our step function for a call already running (nanwatch.Callback: Keras made its own
        before the callback began); the model's own is put back by `uninstall`."""
        self._remember(model)
        return self._make_function(kind)(model, force=True)

    def _wrap_call(self, call, original):
        hooks = self
        takes_callbacks = "callbacks" in inspect.signature(original).parameters

        def wrapped(model, *args, **kwargs):
            try:
                bound = inspect.signature(original).bind(model, *args, **kwargs)
            except TypeError:
                return original(model, *args, **kwargs)
            arguments = bound.arguments
            callbacks = arguments.get("callbacks")
            if takes_callbacks and (callbacks is None or isinstance(callbacks, (list, tuple))):
                arguments["callbacks"] = list(callbacks or []) + [_epoch_callback(hooks.events)]
            x, y = arguments.get("x"), arguments.get("y")
            hooks._remember(model)
            hooks._data_made_in_cell(x, y, sys._getframe(1))
            hooks.calls.append({"model": model, "call": call, "x": x, "y": y, "batches": 0})
            try:
                weights = {k: arguments[k] for k in ("sample_weight", "class_weight") if arguments.get(k) is not None}
                # passed only when given: a RunEvents written before the argument keeps working
                hooks.events.call_started(model, call, x, y, **({"weights": weights} if weights else {}))
                return original(*bound.args, **bound.kwargs)
            finally:
                hooks.end_call(model, call)

        wrapped.__name__ = call
        wrapped.__doc__ = getattr(original, "__doc__", None)
        wrapped.__wrapped__ = original
        return wrapped


__all__ = ["KerasHooks"]
