"""`nanwatch.Callback(**options)`: a watched run attached the Keras way, `model.fit(..., callbacks=[...])`.

The run starts at the first of `on_train_begin` / `on_test_begin` / `on_predict_begin` and ends at the
matching end, with the session, engine and options of `%%nanwatch`. Keras has already made its step
function when a callback begins (fit calls `make_train_function()` before `on_train_begin`), and reads
`model.train_function` again at every step: so the callback rebuilds it through the session's Keras
hooks (fast mode serves it as in the magic), and the model's own is put back at the end.

At the first harmful NaN/Inf (unless `stop=False`) the run ends there: fit stops training, as
`TerminateOnNaN` does, before the failing step's update; evaluate stops at that batch; predict goes on
unwatched and returns every prediction. Cleanup is absolute: an exception from a step ends the run in
the step's guard; one that escapes the call elsewhere ends it in Keras's own traceback filter, and,
with that filter off or for a KeyboardInterrupt between steps, the next run or `last_report()`
ends it (its Keras call is no longer on the stack).
"""

from __future__ import annotations

import sys

import keras

from .engine.detection import NonFiniteFound
from .options import from_kwargs
from .session import WatchSession, active_session, close_abandoned

# the callback's begin hook -> the Keras call it watches, and that call's kind of steps
_CALLS = {"train": "fit", "test": "evaluate", "predict": "predict"}
_KINDS = {"fit": "train", "evaluate": "evaluate", "predict": "predict"}


class Callback(keras.callbacks.Callback):
    """Watch a Keras fit/evaluate/predict as `%%nanwatch` watches a cell; `last_report()` (or
    `.report`) gives its report. Options: those of `nanwatch.watch()`. Reusable across calls."""

    def __init__(self, **options):
        super().__init__()
        self.options = from_kwargs(**{"panel": False, **options})
        self.report = None
        self._run = None

    # --- Keras's hooks --------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._begin("fit")

    def on_test_begin(self, logs=None):
        self._begin("evaluate")

    def on_predict_begin(self, logs=None):
        self._begin("predict")

    def on_epoch_begin(self, epoch, logs=None):
        if self._run is not None:
            self._run.session.recorder.epoch_started(epoch)

    def on_train_end(self, logs=None):
        self._end_of("fit")

    def on_test_end(self, logs=None):
        self._end_of("evaluate")

    def on_predict_end(self, logs=None):
        self._end_of("predict")

    # --- the run ---------------------------------------------------------------------------------
    def _begin(self, call):
        if self._run is not None:          # evaluate inside fit (validation): part of fit's run
            return
        model = self.model
        close_abandoned()
        if active_session() is not None:   # inside %%nanwatch or watch(): that run watches this call
            return
        frame = _call_frame(call, model)
        cells = _cells()
        session = WatchSession(self.options, cells=cells, sinks=_sinks(cells))
        session.__enter__()
        run = _Run(session, model, call, frame)
        self._run = run
        session.close_if_abandoned = lambda: self._close_if_gone(run)
        hooks = session.hooks
        try:
            if hooks is None:              # no TensorFlow, or legacy tf.keras: the run watches what it can
                return
            hooks.guard = self._guard
            session.recorder.defer_stop = True
            run.filter_saved = _guard_traceback_filter(self, run)
            x, y = (frame.f_locals.get("x"), frame.f_locals.get("y")) if frame is not None else (None, None)
            hooks.begin_call(model, call, x, y, frame.f_back if frame is not None else sys._getframe(2))
            run.call_begun = True
            hooks.rebuild(model, _KINDS[call])
        except NonFiniteFound as exc:      # weights already non-finite: the call stops after one step, unwatched
            self._end(exc)
            _stop(model, call)
        except BaseException as exc:
            self._end(exc)
            raise

    def _end_of(self, call):
        run = self._run
        if run is not None and run.call == call:
            recorder = run.session.recorder
            self._end(NonFiniteFound(recorder.detection) if recorder.stop_pending else None)

    def _end(self, exc) -> bool:
        """End the run (with the exception that ended it); True when the session absorbed it."""
        run, self._run = self._run, None
        if run is None:
            return False
        session = run.session
        try:
            _restore_traceback_filter(run)
            if run.call_begun and session.hooks is not None:
                session.hooks.end_call(run.model, run.call)
        finally:
            suppressed = session.__exit__(type(exc) if exc is not None else None, exc,
                                          exc.__traceback__ if exc is not None else None)
            self.report = session.report
        return bool(suppressed)

    def _close_if_gone(self, run):
        # no frame: the callback's hooks were called by hand (a custom loop), not from a Keras call
        if self._run is run and run.frame is not None and not _on_stack(run.frame):
            run.session.report.error = run.session.report.error or (
                f"the Keras {run.call} ended with an exception nanwatch did not see (a KeyboardInterrupt "
                "between steps, or Keras's traceback filtering off): the run was closed afterwards")
            self._end(None)

    def _guard(self, function, model, kind):
        """A step function that ends the run at the first NaN/Inf (or at an exception) inside the call."""
        callback = self

        def guarded(data):
            run = callback._run
            if run is None:   # the run ended in this call (a NaN): its steps run as Keras made them
                return _own_function(model, kind)(data)
            recorder = run.session.recorder
            try:
                if recorder.stop_pending:   # found in Keras's own code since the last step
                    raise NonFiniteFound(recorder.detection)
                recorder.defer_stop = False
                try:
                    return function(data)
                finally:
                    recorder.defer_stop = True
            except (StopIteration, _out_of_range()):   # the end of the data: Keras's control flow
                raise
            except BaseException as exc:
                absorbed = callback._end(exc)
                if not (isinstance(exc, NonFiniteFound) or absorbed):
                    raise
            _stop(model, run.call)
            if kind == "predict":    # predict goes on unwatched: every prediction, as without nanwatch
                return _own_function(model, kind)(data)
            return {}
        guarded.__wrapped__ = function
        return guarded


class _Run:
    def __init__(self, session, model, call, frame):
        self.session, self.model, self.call, self.frame = session, model, call, frame
        self.call_begun = False
        self.filter_saved = None


def _out_of_range():
    import tensorflow as tf
    return tf.errors.OutOfRangeError


def _stop(model, call):
    """Keras's own way to end a call early (TerminateOnNaN sets stop_training)."""
    if call == "fit":
        model.stop_training = True
        model.stop_evaluating = True
    elif call == "evaluate":
        model.stop_evaluating = True


def _own_function(model, kind):
    """The model's own step function (put back when the run ended)."""
    attr = {"train": "train_function", "evaluate": "test_function", "predict": "predict_function"}[kind]
    function = getattr(model, attr, None)
    while getattr(function, "__wrapped__", None) is not None and getattr(function, "__name__", "") == "guarded":
        function = function.__wrapped__
    return function


def _call_frame(call, model):
    """The frame of the running Keras `fit`/`evaluate`/`predict` of `model` (its locals hold x and y)."""
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        if code.co_name == call and frame.f_locals.get("self") is model and "keras" in code.co_filename:
            return frame
        frame = frame.f_back
    return None


def _on_stack(frame) -> bool:
    if frame is None:
        return False
    current = sys._getframe(1)
    while current is not None:
        if current is frame:
            return True
        current = current.f_back
    return False


def _cells():
    """Notebook cells when IPython runs this (cell lines in the report); a script's frames are its file's."""
    from .engine.frames import CellMap
    cells = CellMap()
    ipython = sys.modules.get("IPython")
    cells.shell = ipython.get_ipython() if ipython is not None else None
    return cells


def _sinks(cells) -> list:
    """In a notebook's kernel, the sidebar sees the callback's runs as it sees the magic's."""
    if cells.shell is None:
        return []
    try:
        from .comm import CommBroadcaster
        return [CommBroadcaster.instance()]
    except (ImportError, AttributeError):
        return []


def _guard_traceback_filter(callback, run):
    """Keras filters the traceback of any Exception leaving fit/evaluate/predict: an exception that
    leaves the watched call there ends the run first."""
    try:
        from keras.src.utils import traceback_utils
    except ImportError:
        return None
    original = traceback_utils.__dict__.get("_process_traceback_frames")
    if original is None:
        return None

    def process_traceback_frames(tb):
        if callback._run is run and any(f is run.frame for f, _ in _walk(tb)):
            callback._end(sys.exc_info()[1])
        return original(tb)

    traceback_utils._process_traceback_frames = process_traceback_frames
    return (traceback_utils, original)


def _restore_traceback_filter(run):
    if run.filter_saved is not None:
        module, original = run.filter_saved
        module._process_traceback_frames = original
        run.filter_saved = None


def _walk(tb):
    while tb is not None:
        yield tb.tb_frame, tb.tb_lineno
        tb = tb.tb_next
