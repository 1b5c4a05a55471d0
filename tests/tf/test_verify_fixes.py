"""engine/verify.py on real failing steps, called directly: a changed hyperparameter re-run from the
pre-step weights (a lower rate cures a step whose own update overflows; the same rate does not), and
the user's state after verification exactly as before it: the model's weights, dropout seed states and
metrics, the optimizer's slots and iteration count, Python's, numpy's, TensorFlow's and Keras's global
random states, and Keras's name counters (the next unnamed optimizer gets the same name)."""

import random

import numpy as np


def _failing_model(learning_rate, epsilon=1e-7):
    import keras
    keras.utils.set_random_seed(5)
    x = np.random.rand(32, 8).astype("float32")
    x[:, 3] = 0.0                                   # a dead feature: its weights never get a gradient
    y = (x @ np.arange(8.0).reshape(8, 1)).astype("float32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dropout(0.2), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, epsilon=epsilon) if epsilon != 1e-7
                  else keras.optimizers.SGD(learning_rate), loss="mse", metrics=["mae"])
    model.optimizer.build(model.trainable_variables)
    return model, (x, y)


def _entry(cause, fix):
    return {"cause": cause, "confidence": 0.9, "evidence": "", "fix": fix}


def _failed(model, batch):
    from nanwatch.engine.verify import FailedStep
    return FailedStep(model=model, kind="train", batch=batch, weights=model.get_weights(), detection=None,
                      first={"step": 0, "phase": "optimizer"})


def test_a_lower_rate_cures_a_step_whose_update_overflows_and_the_same_rate_does_not():
    from nanwatch.engine.verify import verify_fixes

    model, batch = _failing_model(1e38)             # lr * gradient overflows float32 in the update
    lower = _entry("learning_rate_too_high", "`optimizer=keras.optimizers.SGD(learning_rate=0.01)`")
    same = _entry("learning_rate_too_high", "`optimizer=keras.optimizers.SGD(learning_rate=1e38)`")
    clipped = _entry("exploding_gradients", "`keras.optimizers.SGD(learning_rate=1e38, clipnorm=1.0)`")
    verify_fixes([lower, same, clipped], _failed(model, batch), budget_s=60)   # this shared machine's load aside
    assert lower["verified"] == "true", lower
    assert "learning_rate=0.01" in lower["verified_how"] and "the weights the update wrote" in lower["verified_how"]
    assert same["verified"] == "false" and "still non-finite (the weights the update wrote" in same["verified_how"]
    assert clipped["verified"] == "true", clipped   # |update| <= 1e38 * 1: finite
    spent = [_entry("learning_rate_too_high", lower["fix"])]
    verify_fixes(spent, _failed(model, batch), budget_s=0.0)
    assert spent[0]["verified"] == "not tried" and "time budget" in spent[0]["verified_how"]


def _state(model):
    import keras
    import tensorflow as tf
    from keras.src.backend.common import global_state
    from tensorflow.python.eager import context
    return {
        "variables": [v.numpy().copy() for v in model.variables],   # weights and the dropout seed state
        "optimizer": [v.numpy().copy() for v in model.optimizer.variables],
        "metrics": [v.numpy().copy() for v in model.metrics_variables],
        "python": random.getstate(), "numpy": np.random.get_state()[1].copy(),
        "tf_generator": tf.random.get_global_generator().state.numpy().copy(),
        "tf_op_seeds": context.context()._rng.getstate(),
        "keras_seed": global_state.get_global_attribute("global_seed_generator").state.numpy().copy(),
        "names": dict(global_state.get_global_attribute("object_name_uids")),
        "trainable": [v.trainable for v in model.variables],
        "lr": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
    }


def _same(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def test_verification_leaves_the_users_model_optimizer_and_random_states_as_they_were():
    import keras
    import tensorflow as tf
    from nanwatch.engine.verify import verify_fixes

    model, batch = _failing_model(1e-3, epsilon=0.0)   # Adam with epsilon 0: 0/0 on the dead feature's weights
    tf.random.set_seed(7)                               # the global op-seed counter exists and moves on draws
    tf.random.get_global_generator()
    keras.random.normal((1,))                           # Keras's global seed generator exists
    before = _state(model)
    fixed = _entry("optimizer_epsilon_zero", "`optimizer=keras.optimizers.Adam(learning_rate=0.001, epsilon=1e-7)`")
    data = _entry("nan_in_input", "drop the rows")      # no non-finite row in this batch: not tried
    verify_fixes([fixed, data], _failed(model, batch), budget_s=60)
    assert fixed["verified"] == "true", fixed
    assert data["verified"] == "not tried", data
    after = _state(model)
    assert _same(before, after), [k for k in before if not _same(before[k], after[k])]
