"""Fast mode on a user's tf.function step: after its first call the state check runs inside the same
call as the step (engine/state_guard.py), and what was learnt of the step is kept across watches."""

import numpy as np

import nanwatch


def _loop(seed=0):
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam(1e-2)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    return model, optimizer, train_step


def _data(bad_batch=None):
    rng = np.random.default_rng(0)
    x = rng.random((20 * 16, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    if bad_batch is not None:
        x[bad_batch * 16 + 3, 1] = np.nan
    return [(x[i:i + 16], y[i:i + 16]) for i in range(0, len(x), 16)]


def test_a_step_watched_again_is_a_step_and_a_late_nan_is_found_with_the_weights_put_back():
    model, optimizer, train_step = _loop()
    with nanwatch.watch(panel=False, figures=False) as first:
        for x, y in _data():
            train_step(x, y)
    assert first.status == "healthy"
    assert len(first.to_dict()["steps"]) == 20
    with nanwatch.watch(panel=False, figures=False) as second:   # traced in the first watch: not traced again
        for x, y in _data()[:5]:
            train_step(x, y)
    assert second.status == "healthy" and len(second.to_dict()["steps"]) == 5

    with nanwatch.watch(panel=False, figures=False) as third:   # the run stops at the NaN (absorbed)
        for i, (x, y) in enumerate(_data(bad_batch=12)):
            if i == 12:
                before = [w.copy() for w in model.get_weights()]
                iterations = int(optimizer.iterations.numpy())
            train_step(x, y)
    report = third.to_dict()
    assert third.status != "healthy"
    assert report["first_nonfinite"]["step"] == 12
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))   # the harmful update undone
    assert int(optimizer.iterations.numpy()) == iterations
