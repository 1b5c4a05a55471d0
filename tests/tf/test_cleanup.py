"""Nothing lost, nothing leaked: whatever the cell does, nanwatch leaves TF/Keras as it found them."""

import glob
import os
import tempfile

import pytest


def _state():
    """Everything nanwatch may touch while a cell runs, as comparable values."""
    import keras
    import tensorflow as tf
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer
    from keras.src.optimizers.base_optimizer import BaseOptimizer
    from tensorflow.python.eager import context

    names = ("make_train_function", "make_test_function", "make_predict_function", "fit", "evaluate", "predict")
    return {
        "op_callbacks": list(context.context().op_callbacks),
        "trainer": {n: TensorFlowTrainer.__dict__.get(n) for n in names},
        "tape_gradient": tf.GradientTape.__dict__["gradient"],
        "optimizer_classes": {cls.__name__: dict(vars(cls)) for cls in
                              (BaseOptimizer, keras.optimizers.Adam, keras.optimizers.SGD)},
        "run_eagerly": tf.config.functions_run_eagerly(),
        "policy": keras.config.dtype_policy().name,
        # nanwatch writes nothing to disk (the fixture gives this process a private temp dir)
        "temp_entries": sorted(glob.glob(os.path.join(tempfile.gettempdir(), "*"))),
        "open_fds": len(os.listdir("/proc/self/fd")),
    }


HEALTHY = '''
import numpy as np, keras
X = np.random.rand(64, 4).astype("float32"); y = np.random.rand(64, 1).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, epochs=1, verbose=0)
'''


@pytest.fixture(autouse=True, scope="module")
def private_tempdir():
    saved = tempfile.tempdir
    tempfile.tempdir = tempfile.mkdtemp(prefix="cleanup-test-")
    yield tempfile.tempdir
    tempfile.tempdir = saved


@pytest.fixture(autouse=True, scope="module")
def warm(shell, private_tempdir):
    """TensorFlow (threads) and matplotlib (its font cache keeps fonts open) open files on first
    use: do that once before measuring, so the comparisons see only what a watched run leaves."""
    assert shell.run_cell(HEALTHY).success
    assert shell.run_cell("%%nanwatch --no-panel\n" + HEALTHY.replace("X[", "X[")).success


def test_success_leaves_no_trace(cell):
    before = _state()
    result, report = cell.run(HEALTHY)
    assert result.success and report.status == "healthy"
    assert _state() == before


def test_user_exception_reaches_user_unchanged(cell):
    before = _state()
    result, report = cell.run(HEALTHY + "raise ValueError('the user broke it')\n")
    assert isinstance(result.error_in_exec, ValueError)
    assert str(result.error_in_exec) == "the user broke it"
    assert report.status == "error" and "the user broke it" in report.error
    assert _state() == before


def test_keyboard_interrupt_during_fit(cell):
    before = _state()
    code = HEALTHY.replace("model.fit(X, y, epochs=1, verbose=0)", """
class Interrupt(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 1:
            raise KeyboardInterrupt
model.fit(X, y, epochs=3, batch_size=8, verbose=0, callbacks=[Interrupt()])
""")
    result, report = cell.run(code)
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert "interrupted" in report.error
    assert _state() == before


def test_bad_option_runs_nothing(cell):
    before = _state()
    result, _ = cell.run("ran = True", options="--stats-every zero")
    assert result.error_in_exec is not None and "stats-every" in str(result.error_in_exec)
    assert "ran" not in cell.ip.user_ns
    result, _ = cell.run("ran = True", options="--no-such-option")
    assert "unrecognized arguments: --no-such-option" in str(result.error_in_exec)
    assert "ran" not in cell.ip.user_ns
    assert _state() == before


def test_repeated_runs_stay_clean(cell):
    before = _state()
    for _ in range(4):
        result, report = cell.run(HEALTHY)
        assert result.success and report.status == "healthy"
        result, report = cell.run(HEALTHY.replace("X = np", "X = np").replace(
            'y = np.random.rand(64, 1).astype("float32")', 'y = np.random.rand(64, 1).astype("float32"); X[3, 1] = np.nan'))
        assert report.status == "nonfinite"
        assert _state() == before


def test_model_functions_and_jit_restored(cell):
    setup = HEALTHY.replace('model.compile(optimizer="adam", loss="mse")',
                            'model.compile(optimizer="adam", loss="mse", jit_compile=True)')
    setup += "before_fn = model.train_function\n"
    result, report = cell.run("model.fit(X, y, epochs=1, verbose=0)\nduring = model.train_function", setup=setup)
    ns = cell.ip.user_ns
    assert result.success and report.status == "healthy"
    assert ns["during"] is not ns["before_fn"]          # the cell ran a function traced under the probe
    assert ns["model"].train_function is ns["before_fn"]  # and the model has its own back
    assert ns["model"].jit_compile is True
    assert any("jit_compile=True" in n for n in report.notes)


def test_nested_watch_is_a_clear_error(cell):
    result, _ = cell.run("import nanwatch\nwith nanwatch.watch():\n    pass")
    assert type(result.error_in_exec).__name__ == "NestedWatchError"


def test_cell_without_tensorflow_just_runs(cell):
    result, report = cell.run("x = sum(range(10))\nx")
    assert result.success and result.result == 45
    assert report.status == "healthy"


def test_watch_context_manager_outside_ipython():
    import numpy as np
    import keras
    import nanwatch

    X = np.random.rand(32, 3).astype("float32")
    X[4, 0] = np.inf
    y = np.random.rand(32, 1).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, name="only")])
    model.compile(optimizer="sgd", loss="mse")
    with nanwatch.watch(stop=True) as report:
        model.fit(X, y, epochs=1, verbose=0, shuffle=False)
        reached = True  # noqa: F841  (not reached: the run stops at the first Inf)
    first = report.to_dict()["first_nonfinite"]
    assert first["phase"] == "input" and first["data"]["array_rows"] == [4]
    assert first["source"]["code"].startswith("model.fit(")
    assert nanwatch.last_report() is report
    with pytest.raises(nanwatch.UsageError):
        with nanwatch.watch(stats_every=0):
            pass
    with pytest.raises(nanwatch.UsageError):
        with nanwatch.watch(colour="red"):
            pass
