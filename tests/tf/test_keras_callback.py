"""`nanwatch.Callback` in real Keras fits: the NaN found with its op, phase and layer, training stopped
before the failing update, a healthy run healthy, cleanup after exceptions (in a step, in another
callback, a KeyboardInterrupt between steps), reuse across calls, evaluate and predict."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import nanwatch  # noqa: E402
from nanwatch.session import active_session  # noqa: E402


def _state(model=None):
    """What a run installs: op callbacks, the trainer's methods, the tape, Keras's traceback filter,
    the model's step functions; and the active session."""
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer
    from keras.src.utils import traceback_utils
    from tensorflow.python.eager import context
    names = ("make_train_function", "make_test_function", "make_predict_function", "fit", "evaluate", "predict")
    state = {
        "op_callbacks": list(context.context().op_callbacks),
        "trainer": {n: TensorFlowTrainer.__dict__.get(n) for n in names},
        "tape_gradient": tf.GradientTape.__dict__["gradient"],
        "traceback_filter": traceback_utils._process_traceback_frames,
        "active": active_session(),
    }
    if model is not None:
        state["model_functions"] = (model.train_function, model.test_function, model.predict_function)
    return state


def _data(nan_row=None, n=64):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, 4)).astype("float32")
    if nan_row is not None:
        x[nan_row, 2] = np.nan
    return x, x.sum(axis=1, keepdims=True)


def _model(log_layer=False):
    layers = [keras.Input((4,)), keras.layers.Dense(8, name="hidden")]
    if log_layer:   # log of the hidden layer's (partly negative) outputs: NaN in the forward pass
        layers.append(keras.layers.Lambda(lambda t: tf.math.log(t), name="log_layer"))
    layers.append(keras.layers.Dense(1, name="out"))
    model = keras.Sequential(layers)
    model.compile(keras.optimizers.SGD(0.01), "mse")
    return model


@pytest.mark.parametrize("mode", ["auto", "exact"])
def test_nan_in_fit_found_with_op_phase_layer_and_training_stopped(mode):
    x, y = _data()
    model = _model(log_layer=True)
    model.make_train_function()                         # Keras's own train function, made before the run
    before = _state(model)
    weights = [w.copy() for w in model.get_weights()]
    callback = nanwatch.Callback(mode=mode)
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[callback])
    report = nanwatch.last_report()
    assert report is callback.report
    first = report.first_nonfinite
    assert report.status == "nonfinite" and report.stopped
    assert first["op_type"] == "Log" and first["phase"] == "forward" and first["layer"] == "log_layer"
    assert first["step"] == 0 and first["epoch"] == 0
    assert first["source"]["line"] is not None and "tf.math.log(t)" in first["source"]["code"]
    assert report.mode == ("fast" if mode == "auto" else "exact")
    assert len(history.epoch) == 1                      # stopped in the first epoch, as TerminateOnNaN does
    for old, new in zip(weights, model.get_weights()):  # the failing step's update was not applied
        np.testing.assert_array_equal(old, new)
    assert _state(model) == before


def test_healthy_fit_with_validation_is_healthy_and_counts_its_steps():
    x, y = _data()
    model = _model()
    before = _state()
    callback = nanwatch.Callback()
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, validation_split=0.25, callbacks=[callback])
    report = callback.report.to_dict()
    assert report["status"] == "healthy", report
    assert report["mode"] == "fast"
    assert report["run"]["epochs"] == 2 and report["run"]["steps"] == 6   # 48 training rows / 16, 2 epochs
    assert {s["phase"] for s in report["steps"]} == {"train", "evaluate"}  # validation is part of the run
    assert all(np.isfinite(history.history["val_loss"]))
    assert nanwatch.last_report() is callback.report
    assert _state() == dict(before, trainer=before["trainer"])


def test_nan_rows_in_the_data_found_at_the_input_with_their_rows():
    x, y = _data(nan_row=21)
    model = _model()
    callback = nanwatch.Callback()
    model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0, callbacks=[callback])
    first = callback.report.first_nonfinite
    assert first["phase"] == "input" and first["step"] == 1
    assert first["data"]["rows"] == [5] and first["data"]["columns"] == [2]
    assert first["data"]["array_rows"] == [21]        # the rows of the array given to fit (read from fit's frame)


class _Raises(keras.callbacks.Callback):
    def __init__(self, error, hook="on_train_batch_end", at=1):
        super().__init__()
        self.error, self.hook, self.at = error, hook, at
        setattr(self, hook, self._maybe_raise)

    def _maybe_raise(self, batch, logs=None):
        if batch == self.at:
            raise self.error


@pytest.mark.parametrize("error", [RuntimeError("another callback's bug"), KeyboardInterrupt()])
def test_cleanup_when_another_callback_raises_between_steps(error):
    x, y = _data()
    model = _model()
    model.fit(x[:8], y[:8], epochs=1, verbose=0)
    before = _state(model)
    callback = nanwatch.Callback()
    with pytest.raises(type(error)):
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[callback, _Raises(error)])
    # An Exception ends the run in Keras's traceback filter; a KeyboardInterrupt (not an Exception)
    # is found by the next run or by last_report(), which ends the run first.
    report = nanwatch.last_report()
    assert _state(model) == before
    assert report is callback.report and report.status == "error"
    if isinstance(error, RuntimeError):
        assert report.error == "RuntimeError: another callback's bug"
    else:
        assert "ended with an exception nanwatch did not see" in report.error


def test_cleanup_when_a_step_raises():
    x, y = _data()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, name="out")])

    def loss(y_true, y_pred):   # a run-time error inside the step (not a NaN check)
        tf.debugging.assert_less(tf.reduce_max(y_true), 3.0, message="label too large")
        return tf.reduce_mean(tf.square(y_true - y_pred))

    model.compile("sgd", loss)
    before = _state()
    callback = nanwatch.Callback()
    with pytest.raises(tf.errors.InvalidArgumentError, match="label too large"):
        model.fit(x, y * 10, epochs=1, batch_size=16, verbose=0, callbacks=[callback])
    assert _state() == before
    assert callback.report.status == "error" and callback.report.error.startswith("InvalidArgumentError")


def test_reuse_across_fits_and_inside_a_watched_block():
    x, y = _data()
    model = _model()
    callback = nanwatch.Callback()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[callback])
    first_report = callback.report
    bad_x, bad_y = _data(nan_row=3)
    model.fit(bad_x, bad_y, epochs=1, batch_size=16, verbose=0, callbacks=[callback])
    second_report = callback.report
    assert first_report.status == "healthy" and second_report.status == "nonfinite"
    assert second_report.first_nonfinite["data"]["array_rows"] == [3]
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[callback])
    assert callback.report.status == "healthy" and callback.report is not first_report
    # inside watch(), the block's run watches the fit; the callback stays out of the way
    with nanwatch.watch() as block_report:
        model.fit(bad_x, bad_y, epochs=1, batch_size=16, verbose=0, callbacks=[callback])
    assert block_report.status == "nonfinite" and callback.report.status == "healthy"
    assert _state()["active"] is None


def test_evaluate_stops_at_the_nan_batch_and_predict_returns_every_prediction():
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=1, verbose=0)
    bad_x, bad_y = _data(nan_row=40)
    model.make_test_function()
    model.make_predict_function()        # Keras's own, as evaluate and predict make them before callbacks begin
    before = _state(model)
    callback = nanwatch.Callback()
    model.evaluate(bad_x, bad_y, batch_size=16, verbose=0, callbacks=[callback])
    first = callback.report.first_nonfinite
    assert first["phase"] == "input" and first["step"] == 2 and first["data"]["array_rows"] == [40]
    assert _state(model) == before
    predictions = model.predict(bad_x, batch_size=16, verbose=0, callbacks=[callback])
    assert predictions.shape == (64, 1)
    assert np.isnan(predictions[40, 0]) and np.isfinite(np.delete(predictions, 40, axis=0)).all()
    first = callback.report.first_nonfinite
    assert first["phase"] == "input" and first["data"]["rows"] == [8] and first["data"]["columns"] == [2]
    assert _state(model) == before


def test_in_a_notebook_the_report_names_the_cell_line_and_the_sidebar_sees_the_run(shell):
    from nanwatch.comm import CommBroadcaster
    shell.user_ns.update(nanwatch=nanwatch, keras=keras, tf=tf, data=_data)
    code = '''x, y = data()
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="hidden"),
                          keras.layers.Lambda(lambda t: tf.math.log(t), name="log_layer")])
model.compile("sgd", "mse")
model.fit(x, y[:, [0] * 8], epochs=2, batch_size=16, verbose=0, callbacks=[nanwatch.Callback()])'''
    result = shell.run_cell(code)
    assert result.success, result.error_in_exec
    report = nanwatch.last_report()
    source = report.first_nonfinite["source"]
    assert source["cell"] == result.execution_count and source["line"] == 3 and source["file"] is None
    assert CommBroadcaster.instance().runs[-1]["run"]["id"] == report.run_id
    assert _state()["active"] is None
