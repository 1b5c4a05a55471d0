"""The engine through its declared interface (nanwatch.engine.events.RunEvents): a recording
subclass stands where the run's Recorder would, and real TensorFlow / Keras run under a real
probe, real Keras hooks and the real tape patch. What the engine must tell, in which order,
and what it must leave behind."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from nanwatch.engine.detection import Detection, StepFailure  # noqa: E402
from nanwatch.engine.events import RunEvents  # noqa: E402
from nanwatch.engine.frames import CellMap  # noqa: E402
from nanwatch.engine.keras_hooks import KerasHooks, _trainer_class  # noqa: E402
from nanwatch.engine.layer_index import LayerIndex  # noqa: E402
from nanwatch.engine.probe import Probe  # noqa: E402
from nanwatch.engine.tape import TapePatch  # noqa: E402
from nanwatch.options import Options  # noqa: E402


class Recording(RunEvents):
    """Keeps every event; never stops the run (so the engine's own continuation is visible)."""

    def __init__(self, checks=True, keras_call=None):
        self.events = []
        self.checks = checks
        self.keras_call = keras_call
        self.steps = 0

    def checks_on(self):
        return self.checks

    def in_keras_call(self):
        return bool(self.keras_call) if self.keras_call is not None else any(
            e[0] == "call_started" for e in self.events) and not any(e[0] == "call_ended" for e in self.events)

    def note(self, text):
        self.events.append(("note", text))

    def model_seen(self, model):
        self.events.append(("model_seen", model.name))

    def call_started(self, model, call, x, y):
        self.events.append(("call_started", call))

    def call_ended(self, model, call):
        self.events.append(("call_ended", call))

    def epoch_started(self, epoch):
        self.events.append(("epoch_started", epoch))

    def mode_decided(self, mode):
        self.events.append(("mode_decided", mode))

    def step_started(self, model, kind):
        self.events.append(("step_started", kind))
        self.steps += 1
        return self.steps - 1

    def step_ended(self, model, kind, step, logs, grad_norms):
        self.events.append(("step_ended", kind, step, None if grad_norms is None else len(grad_norms)))
        return {"loss": float(np.asarray(logs["loss"]))} if isinstance(logs, dict) and "loss" in logs else None

    def tape_step(self, loss, grad_norm):
        self.events.append(("tape_step", loss, grad_norm))

    def detected(self, detection, bad_batch=None):
        self.events.append(("detected", detection, bad_batch))

    def step_failed(self, failure):
        self.events.append(("step_failed", failure))

    def names(self):
        return [e[0] for e in self.events]


class Engine:
    """Installs probe, hooks and tape patch around a block, as WatchSession does."""

    def __init__(self, events, mode="auto"):
        self.events = events
        self.layers = LayerIndex()
        self.probe = Probe(CellMap(), self.layers, events)
        self.hooks = KerasHooks(events, self.probe, Options(mode=mode, panel=False), CellMap(), self.layers)
        self.tape = TapePatch(events, self.probe)

    def __enter__(self):
        self.hooks.install()
        self.tape.install(tf)
        self.probe.install()
        return self

    def __exit__(self, *exc):
        self.probe.uninstall()
        self.hooks.uninstall()
        self.tape.uninstall()
        return False


def _model(name="m"):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="hidden"),
                              keras.layers.Dense(1, name="out")], name=name)
    model.compile(keras.optimizers.SGD(0.01), "mse")
    return model


def _data(n=32, nan_row=None):
    rng = np.random.default_rng(0)
    x = rng.random((n, 4)).astype("float32")
    if nan_row is not None:
        x[nan_row, 2] = np.nan
    return x, rng.random((n, 1)).astype("float32")


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_healthy_fit_tells_calls_modes_epochs_and_steps_in_order(mode):
    events = Recording()
    x, y = _data()
    with Engine(events, mode=mode):
        _model().fit(x, y, epochs=2, batch_size=8, verbose=0)
    names = events.names()
    assert names[0] == "model_seen" and names[1] == "call_started"
    assert ("mode_decided", mode) in events.events
    assert names.index("mode_decided") < names.index("step_started")
    assert [e[1] for e in events.events if e[0] == "epoch_started"] == [0, 1]
    ended = [e for e in events.events if e[0] == "step_ended"]
    assert len(ended) == 8 and all(e[1] == "train" and e[3] == 4 for e in ended)   # 4 variables' gradient norms
    assert [e[2] for e in ended] == list(range(8))
    assert names[-1] == "call_ended"
    assert "detected" not in names and "step_failed" not in names and "tape_step" not in names


def test_evaluate_and_predict_are_their_own_kinds():
    events = Recording()
    x, y = _data()
    with Engine(events, mode="exact"):
        model = _model()
        model.evaluate(x, y, batch_size=16, verbose=0)
        model.predict(x, batch_size=16, verbose=0)
    kinds = [e[1] for e in events.events if e[0] == "step_ended"]
    assert kinds == ["evaluate", "evaluate", "predict", "predict"]
    assert [e[1] for e in events.events if e[0] == "call_started"] == ["evaluate", "predict"]


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_nan_in_the_data_is_detected_as_data_with_the_rows_of_the_array(mode):
    events = Recording()
    x, y = _data(nan_row=13)
    with Engine(events, mode=mode):
        _model().fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    found = [e for e in events.events if e[0] == "detected"]
    assert found, events.names()
    detection, bad_batch = found[0][1], found[0][2]
    assert isinstance(detection, Detection) and detection.context == "data"
    assert detection.data["array_rows"] == [13] and detection.data["batch"] == 1 and detection.data["columns"] == [2]
    assert detection.where.phase == "input"
    assert np.isnan(bad_batch[0]).any()


class LogLayer(keras.layers.Layer):
    def call(self, x):
        return tf.math.log(x)


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_a_failing_step_is_investigated_once_and_handed_over_as_a_step_failure(mode):
    events = Recording()
    x, y = _data()
    x[20:, 1] = -1.0          # batch 2 onwards: log of a negative number
    model = keras.Sequential([keras.Input((4,)), LogLayer(name="log"), keras.layers.Dense(1, name="out")])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    with Engine(events, mode=mode):
        model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    failures = [e[1] for e in events.events if e[0] == "step_failed"]
    assert len(failures) >= 1
    failure = failures[0]
    assert isinstance(failure, StepFailure) and failure.kind == "train" and failure.step == 2
    assert failure.detection.op_type == "Log" and failure.detection.where.layer == "log"
    assert failure.reproduced is True and failure.replayed is True
    assert failure.pre_step_weights is not None and failure.bad_batch is not None
    # the run did not stop (this Recording never raises): the engine went on with the step
    assert events.names().count("step_ended") == 4


def test_with_checks_off_steps_run_unchecked():
    events = Recording(checks=False)
    x, y = _data(nan_row=3)
    with Engine(events, mode="exact"):
        _model().fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert "detected" not in events.names() and "step_failed" not in events.names()
    assert events.names().count("step_ended") == 4


def test_custom_loop_steps_come_from_the_tape_patch_only_outside_keras_calls():
    events = Recording(keras_call=False)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    x = tf.constant(_data()[0])
    with Engine(events):
        for _ in range(3):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(x)))
            tape.gradient(loss, model.trainable_variables)
    taped = [e for e in events.events if e[0] == "tape_step"]
    assert len(taped) == 3 and all(isinstance(e[1], float) and e[2] > 0 for e in taped)
    inside = Recording(keras_call=True)
    with Engine(inside):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x)))
        tape.gradient(loss, model.trainable_variables)
    assert "tape_step" not in inside.names()


def test_an_eager_value_is_an_alarm_when_it_reaches_the_training_not_before():
    events = Recording()
    x = tf.Variable([1.0, 0.0, 2.0])
    with Engine(events):
        tf.math.log(tf.constant([1.0, 0.0, 2.0]))          # made, never used: no alarm
        assert "detected" not in events.names()
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.math.log(x))
        tape.gradient(loss, [x])                           # the loss reaches the training
    found = [e[1] for e in events.events if e[0] == "detected"]
    assert found and found[0].context == "eager" and found[0].op_type == "Log"
    assert found[0].counts["neg_inf"] == 1 and found[0].inputs[0]["zeros"] == 1


def test_uninstall_puts_back_trainer_methods_tape_and_model_functions():
    cls = _trainer_class()
    before = {name: cls.__dict__.get(name) for name in ("fit", "evaluate", "predict", "make_train_function",
                                                        "make_test_function", "make_predict_function")}
    gradient = tf.GradientTape.__dict__["gradient"]
    model = _model()
    x, y = _data()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    train_function = model.train_function
    with Engine(Recording()):
        model.fit(x, y, epochs=1, batch_size=16, verbose=0)
        assert model.train_function is not train_function
    assert {name: cls.__dict__.get(name) for name in before} == before
    assert tf.GradientTape.__dict__["gradient"] is gradient
    assert model.train_function is train_function
    from tensorflow.python.framework import op_callbacks
    assert not op_callbacks.should_invoke_op_callbacks()


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_train_on_batch_loops_are_calls_with_steps_and_checked_batches(mode):
    import nanwatch
    x, y = _data(n=48, nan_row=37)
    model = _model()
    with nanwatch.watch(mode=mode, panel=False) as report:
        for start in range(0, 48, 8):
            model.train_on_batch(x[start:start + 8], y[start:start + 8])
        model.test_on_batch(x[:8], y[:8])
    first = report.first_nonfinite
    assert first["phase"] == "input" and first["step"] == 4        # the fifth train_on_batch call
    assert first["data"]["array_rows"] == [5] and first["data"]["columns"] == [2]   # row 5 of the slice passed
    assert [s["step"] for s in report.steps][:4] == [0, 1, 2, 3] and report.stopped
