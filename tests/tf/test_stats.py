"""The per-layer weight reader (engine/stats.weight_summary) against numpy, on real variables."""

import logging

import numpy as np
import pytest


def _numpy_rows(variables):
    rows = []
    for var in variables:
        x = np.asarray(var.numpy(), np.float64).ravel()
        finite = np.isfinite(x)
        kept = np.where(finite, x, 0.0)
        rows.append([kept.sum(), (kept * kept).sum(),
                     np.where(finite, x, np.inf).min(initial=np.inf), np.where(finite, x, -np.inf).max(initial=-np.inf),
                     np.isnan(x).sum(), np.isinf(x).sum(), finite.sum()])
    return np.array(rows)


def test_weight_summary_matches_numpy_for_small_large_empty_and_non_finite_variables():
    import tensorflow as tf
    from nanwatch.engine import stats

    rng = np.random.default_rng(0)
    big = rng.normal(size=(300, 40)).astype(np.float32)      # above the small-variable size: own reductions
    big[7, 3], big[100, 0] = np.nan, -np.inf
    variables = [
        tf.Variable(np.array([1.0, np.nan, np.inf, -np.inf], np.float32)),
        tf.Variable(big),
        tf.Variable(np.zeros((0, 3), np.float32)),
        tf.Variable(np.float16(3.0)),
        tf.Variable(np.full((2, 2), np.nan)),
        tf.Variable(rng.normal(size=(9000,)).astype(np.float32) * 1e30),   # large, finite, huge squares
        tf.Variable(np.arange(6.0).reshape(2, 3)),
    ]
    got = stats.weight_summary(variables)
    want = _numpy_rows(variables)
    assert got.shape == (len(variables), 7)
    np.testing.assert_array_equal(got[:, 2:], want[:, 2:])          # min, max and counts exactly
    np.testing.assert_allclose(got[:, :2], want[:, :2], rtol=1e-12)  # sums in float64, any order


def test_weight_summary_follows_assignments_and_new_variable_lists():
    import tensorflow as tf
    from nanwatch.engine import stats

    a, b = tf.Variable([1.0, 2.0]), tf.Variable([[3.0]])
    assert stats.weight_summary([a, b])[:, 0].tolist() == [3.0, 3.0]
    a.assign([np.nan, 5.0])
    assert stats.weight_summary([a, b])[0].tolist() == [5.0, 25.0, 5.0, 5.0, 1.0, 0.0, 1.0]
    assert stats.weight_summary([b])[:, 0].tolist() == [3.0]
    assert stats.weight_summary([]) is None


def test_models_of_new_shapes_do_not_set_off_tensorflows_retracing_warning(caplog):
    """Each new architecture traces its own reader; through tf.function's __call__ that made TF
    warn about "excessive retracing" of nanwatch's function after five models."""
    import tensorflow as tf
    from nanwatch.engine import stats

    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        for size in range(8):
            var = tf.Variable(np.ones((3, size + 11), np.float32))
            stats.weight_summary([var])
            stats.weight_summary([var])
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


def test_a_fresh_model_of_the_same_architecture_reuses_the_reader_and_is_not_kept_alive():
    import gc
    import weakref

    import keras
    from nanwatch.engine import stats

    def model(seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((5,)), keras.layers.Dense(4), keras.layers.Dense(1)])

    first = model(0)
    stats.weight_summary(first.trainable_variables)
    readers = len(stats._READERS)
    second = model(1)
    np.testing.assert_array_equal(stats.weight_summary(second.trainable_variables),
                                  _numpy_rows(second.trainable_variables))
    assert len(stats._READERS) == readers
    gone = weakref.ref(first)
    del first
    gc.collect()
    assert gone() is None


@pytest.mark.parametrize("n", [1, 40])
def test_weight_summary_of_many_small_variables(n):
    import tensorflow as tf
    from nanwatch.engine import stats

    variables = [tf.Variable(np.full((i + 1,), float(i), np.float32)) for i in range(n)]
    np.testing.assert_array_equal(stats.weight_summary(variables), _numpy_rows(variables))
