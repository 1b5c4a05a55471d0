"""A Keras step stopped by exact mode's graph check leaves the model and its optimizer as they were
before that step: no weight written, and the optimizer's step count not advanced (Keras counts the
step without waiting for the gradients, so the count can run before the check stops the step)."""

import numpy as np
import pytest

import nanwatch


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_a_step_stopped_by_exact_mode_changes_no_weight_and_no_step_count(optimizer):
    import keras
    import tensorflow as tf

    class LogLayer(keras.layers.Layer):
        def call(self, x):
            return tf.math.log(x)

    keras.utils.set_random_seed(0)
    x = np.random.rand(64, 4).astype("float32")
    x[48:, 1] = -1.0                      # the second batch takes the log of negatives
    y = np.random.rand(64, 1).astype("float32")
    model = keras.Sequential([keras.Input((4,)), LogLayer(name="logl"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.1) if optimizer == "adamw" else "sgd",
                  loss="mse")
    model.fit(x[:32], y[:32], batch_size=32, epochs=1, verbose=0)
    weights = [w.copy() for w in model.get_weights()]
    slots = [np.asarray(v).copy() for v in model.optimizer.variables]
    with nanwatch.watch(mode="exact", panel=False, figures=False) as report:
        model.fit(x[32:], y[32:], batch_size=32, epochs=1, verbose=0, shuffle=False)
    assert report.status == "nonfinite"
    assert (report.to_dict()["first_nonfinite"]["op_type"], report.to_dict()["first_nonfinite"]["layer"]) == ("Log", "logl")
    assert int(model.optimizer.iterations.numpy()) == 1
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(slots, model.optimizer.variables))
