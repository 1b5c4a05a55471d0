"""The sinks of eager Keras code (custom training loops, replays): what a model returns, and
which variables are the model's state.

A model called eagerly at top level returns predictions to the training code: a non-finite
output there is an alarm. Its variables (weights, trainable or not) and its optimizer's (slots)
are the model's state: a non-finite value written into one is an alarm (engine/eager_checks.py);
a user's own variable, such as a best-loss tracker holding inf, is not registered and not watched.
"""

from __future__ import annotations

import sys


class KerasStatePatch:
    """Wraps `keras.Model.__call__` and `BaseOptimizer.apply` for one watched cell."""

    def __init__(self, probe):
        self.probe = probe
        self._saved: list = []     # (class, attribute, original value or None)
        self._depth = 0            # model calls in progress: only the outermost returns to the user
        self._registered: set = set()
        self.models: list = []     # models called eagerly at top level (custom loops), in order
        self.traced_applies = 0    # optimizer updates traced into a graph (a user's tf.function step)

    def install(self):
        import keras
        from keras.src.optimizers.base_optimizer import BaseOptimizer
        self._wrap(keras.Model, "__call__", self._model_call)
        self._wrap(BaseOptimizer, "apply", self._optimizer_apply)

    def uninstall(self):
        for cls, name, value in reversed(self._saved):
            if value is None:
                if name in cls.__dict__:
                    delattr(cls, name)
            else:
                setattr(cls, name, value)
        self._saved.clear()

    def register(self, owner, variables):
        """Remember `owner`'s variables as model state (again when it has grown)."""
        variables = list(variables)
        key = (id(owner) if not isinstance(owner, list) else tuple(id(v) for v in owner), len(variables))
        if key not in self._registered:
            self._registered.add(key)
            self.probe.eager.register_state(variables)

    def _wrap(self, cls, name, make):
        own = cls.__dict__.get(name)
        self._saved.append((cls, name, own))
        original = getattr(cls, name)
        wrapper = make(original)
        wrapper.__wrapped__ = original
        setattr(cls, name, wrapper)

    def _model_call(self, original):
        patch = self

        def __call__(model, *args, **kwargs):
            patch._depth += 1
            try:
                result = original(model, *args, **kwargs)
            finally:
                patch._depth -= 1
            if patch._depth == 0 and patch.probe.active and _eager():
                patch._returned(model, result, sys._getframe(1))
            return result
        return __call__

    def _returned(self, model, result, frame):
        import tensorflow as tf
        if not any(m is model for m in self.models):
            self.models.append(model)
        self.register(model, getattr(model, "variables", []))
        with self.probe.paused():
            outputs = [t for t in tf.nest.flatten(result) if getattr(getattr(t, "dtype", None), "is_floating", False)]
        for tensor in outputs:
            self.probe.eager.sink(tensor, frame)

    def _optimizer_apply(self, original):
        patch = self

        def apply(optimizer, grads, trainable_variables=None):
            if patch.probe.active:
                patch.probe.events.optimizer_seen(optimizer)   # a custom loop's optimizer: its facts
            if not _eager():
                patch.traced_applies += 1      # a tf.function being traced applies gradients: a step
            if _eager() and patch.probe.active and trainable_variables is not None:
                trainable_variables = list(trainable_variables)
                patch.register(trainable_variables, trainable_variables)
                patch.register(optimizer, getattr(optimizer, "variables", []))
            result = original(optimizer, grads, trainable_variables)
            if patch.probe.active and _eager():
                patch.register(optimizer, getattr(optimizer, "variables", []))
            return result
        return apply


def _eager() -> bool:
    import tensorflow as tf
    return tf.executing_eagerly()
