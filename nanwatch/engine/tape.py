"""Custom training loops have no Keras step counter: count completed eager `tape.gradient`
calls, each with the loss it differentiated and the gradient norm, as the run's steps. The
loss differentiated is a sink of the harm semantics (engine/eager_checks.py)."""

from __future__ import annotations

import sys

import numpy as np

from . import stats


class TapePatch:
    """Wraps `tf.GradientTape.gradient` for one watched cell and puts it back afterwards."""

    def __init__(self, events, probe):
        self.events = events
        self.probe = probe
        self._saved = None
        self._pending = None     # (loss, gradient norm) of the step whose update may still run

    def install(self, tf):
        cls = tf.GradientTape
        original = cls.__dict__["gradient"]
        patch = self

        def gradient(tape, target, *args, **kwargs):
            result = original(tape, target, *args, **kwargs)
            if tf.executing_eagerly():
                patch._loss_reaches_training(tf, target)
                if not patch.events.in_keras_call() and not patch.probe.replaying:
                    patch._record(tf, target, result)
            return result

        gradient.__wrapped__ = original
        self._saved = (cls, original)
        cls.gradient = gradient

    def uninstall(self):
        self._flush()
        if self._saved is not None:
            cls, original = self._saved
            cls.gradient = original
            self._saved = None

    def _record(self, tf, target, gradients):
        with self.probe.paused():
            loss = stats.scalar(target) if getattr(target, "shape", None) is not None else None
            squares = [float(np.sum(np.square(a.astype(np.float64)))) for a in
                       (stats.to_numpy(getattr(g, "values", g)) for g in tf.nest.flatten(gradients)
                        if g is not None) if a is not None and a.dtype.kind == "f"]
        # told when the next step's gradient comes (or the run ends): until then, what goes wrong in
        # this step's update (an optimizer write) is counted in this step
        self._flush()
        self._pending = (loss, float(np.sqrt(sum(squares))) if squares else None)

    def _flush(self):
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self.events.tape_step(*pending)

    def _loss_reaches_training(self, tf, target):
        """A loss differentiated in eager code is a sink: a non-finite one is an alarm."""
        if not self.probe.active:
            return
        frame = sys._getframe(2)
        for tensor in tf.nest.flatten(target):
            if getattr(getattr(tensor, "dtype", None), "is_floating", False):
                self.probe.eager.sink(tensor, frame)
