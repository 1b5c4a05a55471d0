"""Fast mode on a user's tf.function step: after its first call the state check runs inside the same
call as the step (engine/state_guard.py), and what was learnt of the step is kept across watches."""

import numpy as np
import pytest

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


def _body(model, optimizer, x, y):
    import tensorflow as tf
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


def _idioms():
    """How people write a custom step: (name, build(model, optimizer) -> step, call(step, x, y))."""
    import tensorflow as tf

    class Trainer(tf.Module):
        def __init__(self, model, optimizer):
            self.model, self.optimizer = model, optimizer

        @tf.function
        def step(self, x, y):
            return _body(self.model, self.optimizer, x, y)

    specs = [tf.TensorSpec([None, 4]), tf.TensorSpec([None, 1])]
    return [
        ("input_signature", lambda m, o: tf.function(lambda x, y: _body(m, o, x, y), input_signature=specs),
         lambda s, x, y: s(x, y)),
        ("jit_compile", lambda m, o: tf.function(lambda x, y: _body(m, o, x, y), jit_compile=True),
         lambda s, x, y: s(x, y)),
        ("keywords and a Python argument", lambda m, o: tf.function(lambda x, y, scale=1.0: _body(m, o, x * scale, y)),
         lambda s, x, y: s(x=x, y=y, scale=1.0)),
        ("a dict returned", lambda m, o: tf.function(lambda x, y: {"loss": _body(m, o, x, y), "n": tf.shape(x)[0]}),
         lambda s, x, y: s(x, y)),
        ("numpy arguments", lambda m, o: tf.function(lambda x, y: _body(m, o, x, y)),
         lambda s, x, y: s(np.asarray(x), np.asarray(y))),
        ("a method", lambda m, o: Trainer(m, o), lambda s, x, y: s.step(x, y)),
        ("nothing returned", lambda m, o: tf.function(lambda x, y: (_body(m, o, x, y), None)[1]),
         lambda s, x, y: s(x, y)),
    ]


def test_custom_step_idioms_are_healthy_when_healthy_and_stop_at_the_nan_with_the_weights_finite():
    import keras
    for name, build, call in _idioms():
        for bad in (None, 6):
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
            step = build(model, keras.optimizers.Adam(1e-2))
            with nanwatch.watch(panel=False, figures=False) as report:
                for x, y in _data(bad_batch=bad)[:10]:
                    call(step, x, y)
            first = report.to_dict().get("first_nonfinite") or {}
            if bad is None:
                assert report.status == "healthy", (name, first)
            else:
                assert report.status == "nonfinite" and first.get("step") == 6, (name, report.status, first)
                assert first.get("phase") == "input", (name, first)
            assert all(np.isfinite(w).all() for w in model.get_weights()), name


@pytest.mark.parametrize("bad_batch", [6, 0])
def test_a_step_that_draws_from_an_iterator_is_replayed_on_the_batch_it_drew(bad_batch):
    """`train_step(iterator)` with `next(iterator)` inside: the batch is drawn in the graph. The batches
    it draws come back with its result, so the harmful call, the first one too, is replayed on its own
    batch: the data named with its row and column, the update put back."""
    import tensorflow as tf
    model, _, _ = _loop()
    optimizer = __import__("keras").optimizers.Adam(1e-2)
    x = np.concatenate([b[0] for b in _data(bad_batch=bad_batch)])
    y = np.concatenate([b[1] for b in _data()])
    iterator = iter(tf.data.Dataset.from_tensor_slices((x, y)).batch(16))

    @tf.function
    def train_step(batches):
        features, target = next(batches)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(features, training=True) - target))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    with nanwatch.watch(panel=False, figures=False) as report:
        for _ in range(10):
            train_step(iterator)
    first = report.to_dict()["first_nonfinite"]
    notes = report.to_dict()["run"]["notes"]
    assert report.status == "nonfinite" and first["step"] == bad_batch, first
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert (first["context"], first["phase"]) == ("data", "input"), first
    assert first["data"]["rows"] == [3] and first["data"]["columns"] == [1], first["data"]
    assert not any("draws its batch from an iterator" in n for n in notes), notes


def test_whether_a_call_kept_the_batches_it_drew_is_a_fact_of_its_own_trace():
    """A step that draws one batch for one kind of argument and several, in a graph loop, for another: the
    loop's batches cannot leave the graph, so those calls cannot be replayed; a call of the other kind can,
    even after the loop's kind was traced (that fact was once kept in one attribute, set by whichever trace
    came last: the harmful call was then not replayed, and its data rows not named)."""
    import keras
    import tensorflow as tf
    model, _, _ = _loop()
    optimizer = keras.optimizers.Adam(1e-2)
    x = np.concatenate([b[0] for b in _data(bad_batch=4)])
    y = np.concatenate([b[1] for b in _data()])
    iterator = iter(tf.data.Dataset.from_tensor_slices((x, y)).batch(16))

    @tf.function
    def train_step(batches, draws):
        if draws == 1:
            return _body(model, optimizer, *next(batches))
        loss = tf.constant(0.0)
        for _ in tf.range(draws):
            loss += _body(model, optimizer, *next(batches))
        return loss

    with nanwatch.watch(panel=False, figures=False) as report:
        for draws in (1, 2, 1, 1):       # batches 0, 1-2, 3, 4: the NaN in batch 4, drawn by the 1's trace
            train_step(iterator, draws)
    first, notes = report.to_dict()["first_nonfinite"], report.to_dict()["run"]["notes"]
    assert report.status == "nonfinite" and first["step"] == 3, (first, notes)
    assert (first["context"], first["phase"], first["data"]["rows"]) == ("data", "input", [3]), first
    assert not any("draws its batch from an iterator" in n for n in notes), notes
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_what_is_kept_of_a_step_across_watches_does_not_keep_it_or_its_model_alive():
    import gc
    import weakref

    model, _, train_step = _loop()
    with nanwatch.watch(panel=False, figures=False) as report:
        for x, y in _data()[:3]:
            train_step(x, y)
    assert report.status == "healthy"
    gone_step, gone_model = weakref.ref(train_step), weakref.ref(model)
    del model, train_step
    gc.collect()
    assert gone_step() is None and gone_model() is None


def test_a_step_with_a_keyword_named_flag_keeps_its_check_in_the_same_call():
    """Our function that calls the step takes a flag argument of its own (the workers' agreement); a step's
    keyword of that common name must still pass through it (not fall back to a second call)."""
    import tensorflow as tf
    from nanwatch.engine import functions
    model, optimizer, _ = _loop()
    step = tf.function(lambda x, y, flag=False: _body(model, optimizer, x, y) * (2.0 if flag else 1.0))
    with nanwatch.watch(panel=False, figures=False) as report:
        for x, y in _data()[:4]:
            step(x, y, flag=True)
    assert report.status == "healthy"
    assert functions._KNOWN[step].guard.fused


def test_the_state_check_flags_each_non_finite_value_and_not_finite_values_whose_sum_overflows():
    """The traced flag is the finiteness of a sum of sums: large finite weights can overflow it, and
    a half-precision variable is summed in float32; a False is confirmed value by value."""
    import tensorflow as tf
    from nanwatch.engine.state_guard import StateGuard
    big = tf.Variable([3e38, 3e38, -1.0], name="dense/kernel")        # finite; its sum is inf in float32
    half = tf.Variable(tf.fill([64], tf.constant(6e4, tf.float16)), name="dense/bias")   # finite, 65504 max
    steps = tf.Variable(0, dtype=tf.int64, name="sgd/iteration")
    guard = StateGuard([big, half, steps])
    ok, values = guard.read()
    assert ok is True and len(values) == 3
    for variable, bad in ((big, [3e38, np.nan, -1.0]), (big, [3e38, 3e38, -np.inf]),
                          (half, np.full([64], np.inf, "float16"))):
        before = variable.numpy()
        variable.assign(bad)
        assert guard.read()[0] is False, bad
        variable.assign(before)
    assert guard.read()[0] is True

    # the same in the fused call, for the state and for the outputs (checked in the call too)
    @tf.function
    def step(x):
        steps.assign_add(1)
        return {"big": big * x, "half": tf.cast(half, tf.float32) * x}
    fused = StateGuard([big, half, steps], step=step)
    checked = fused.call((tf.constant(1.0),), {})
    assert (checked.state_ok, checked.outputs_ok, checked.agreed, checked.local_ok) == (True, True, False, True)
    checked = fused.call((tf.constant(np.inf),), {}, flag=True)         # sums overflowed above, values finite
    assert (checked.state_ok, checked.outputs_ok, checked.agreed, checked.local_ok) == (True, False, True, True)
    assert int(steps.numpy()) == 2 and [int(v) for v in fused.before()[2:]] == [1]

    # several workers: the variables a step writes from a worker's own values are judged apart
    from nanwatch.engine.distributed import Split
    split = StateGuard([big, half, steps], step=step, split=Split(outputs_differ=True, local=[half]))
    assert split.local == [False, True, False] and split.local_outputs and split.splits
    half.assign(tf.fill([64], tf.constant(np.inf, tf.float16)))
    checked = split.call((tf.constant(1.0),), {})
    assert (checked.state_ok, checked.outputs_ok, checked.local_ok) == (True, False, False)
    big.assign([3e38, np.nan, -1.0])
    half.assign(tf.fill([64], tf.constant(6e4, tf.float16)))
    checked = split.call((tf.constant(1.0),), {})
    assert (checked.state_ok, checked.outputs_ok, checked.local_ok) == (False, False, True)


def test_a_harmful_call_is_put_back_to_the_state_it_found_and_no_copy_stays_after_the_watch():
    """Another function writes the same weights between two calls of the step (a `tf.function` that
    nudges a weight, as a custom constraint or EMA would): the harmful call is undone to the weights as
    that call found them, the nudge kept. After the watch, no copy of the state is kept."""
    import tensorflow as tf
    from nanwatch.engine import functions
    model, optimizer, train_step = _loop()
    kernel = model.layers[0].kernel

    @tf.function
    def nudge():
        kernel.assign_add(tf.ones_like(kernel) * 0.5)

    batches = _data(bad_batch=6)
    with nanwatch.watch(panel=False, figures=False) as report:
        for i, (x, y) in enumerate(batches):
            if i == 6:
                nudge()
                found = [w.copy() for w in model.get_weights()]
                iterations = int(optimizer.iterations.numpy())
            train_step(x, y)
    assert report.status != "healthy" and report.to_dict()["first_nonfinite"]["step"] == 6
    assert all(np.array_equal(a, b) for a, b in zip(found, model.get_weights()))   # the nudge kept
    assert int(optimizer.iterations.numpy()) == iterations
    guard = functions._KNOWN[train_step].guard
    assert guard.fused
    assert sum(int(tf.size(s)) for s in guard._shadows) == 0     # emptied when the watch ended
    assert int(tf.size(guard.variables[0])) > 0


def _updates_weights(concrete):
    from nanwatch.engine import traced_graph
    return traced_graph.updates_weights(concrete, traced_graph.graph_def_of(concrete))


def test_a_step_traced_before_the_watch_is_a_training_step_and_an_evaluation_or_a_nudge_is_not():
    """The cell run once, then watched: the step was traced outside any watch. It is still watched as a
    training step (fast mode, one entry per call in the report's steps), read from its graph; an evaluation
    step updating a metric and a function nudging a weight are not steps."""
    import keras
    import tensorflow as tf
    model, optimizer, train_step = _loop()
    metric = keras.metrics.Mean()
    kernel = model.layers[0].kernel

    @tf.function
    def eval_step(x, y):
        loss = tf.reduce_mean(tf.square(model(x, training=False) - y))
        metric.update_state(loss)
        return loss

    @tf.function
    def nudge():
        kernel.assign(kernel * 0.999)

    @tf.function
    def step_under_cond(x, y, apply):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        grads = tape.gradient(loss, model.trainable_variables)
        if apply:       # autograph: a tf.cond, the update inside a branch function
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    batches = _data()
    x, y = batches[0]
    train_step(x, y), eval_step(x, y), nudge()        # traced before any watch
    assert _updates_weights(train_step.get_concrete_function(x, y))
    assert not _updates_weights(eval_step.get_concrete_function(x, y))
    assert not _updates_weights(nudge.get_concrete_function())
    assert _updates_weights(step_under_cond.get_concrete_function(x, y, tf.constant(True)))

    with nanwatch.watch(panel=False, figures=False) as report:
        for x, y in batches[:6]:
            train_step(x, y)
            eval_step(x, y)
            nudge()
    data = report.to_dict()
    assert report.status == "healthy" and data["mode"] == "fast"
    assert len(data["steps"]) == 6


def test_calls_that_skip_the_function_dispatch_run_the_trace_their_arguments_choose():
    """Later calls go straight to the trace an earlier call with the same kind of arguments used
    (engine/direct_call.py): a Python value baked into the trace, a keyword, a smaller last batch, a
    numpy batch and an iterator each choose their own, as in the unwatched run: the same losses and weights."""
    import tensorflow as tf
    from nanwatch.engine import functions

    def run(watched):
        model, optimizer, _ = _loop(seed=3)

        @tf.function
        def step(x, y, scale, apply=True):
            with tf.GradientTape() as tape:
                loss = scale * tf.reduce_mean(tf.square(model(x, training=True) - y))
            if apply:      # Python: each value its own trace
                grads = tape.gradient(loss, model.trainable_variables)
                optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        @tf.function
        def drawing(iterator):
            x, y = next(iterator)
            return step(x, y, 1.0)

        data = _data()
        calls = []
        for i in range(4):
            for j, (x, y) in enumerate(data):
                scale = (1.0, 2.0, 0.5)[(i + j) % 3]
                if j % 4 == 3:
                    calls.append(("kw", step(x, y=tf.constant(y), scale=scale, apply=False)))
                elif j % 4 == 2:
                    calls.append(("np", step(x[:8], y[:8], scale)))   # a numpy batch, a shape of its own
                else:
                    calls.append(("t", step(tf.constant(x), tf.constant(y), scale)))
        iterators = [iter(tf.data.Dataset.from_tensor_slices(_data()[0]).batch(4).repeat()) for _ in range(2)]
        for _ in range(3):
            for it in iterators:
                calls.append(("it", drawing(it)))
        guards = [functions._KNOWN[f].guard for f in (step, drawing) if watched and f in functions._KNOWN]
        return [(kind, float(loss)) for kind, loss in calls], [w.copy() for w in model.get_weights()], guards

    plain_calls, plain_weights, _ = run(False)
    with nanwatch.watch(panel=False, figures=False) as report:
        watched_calls, watched_weights, guards = run(True)
    assert report.status == "healthy", report.to_text()
    assert [k for k, _ in watched_calls] == [k for k, _ in plain_calls]
    np.testing.assert_allclose([v for _, v in watched_calls], [v for _, v in plain_calls], rtol=1e-5)
    for a, b in zip(plain_weights, watched_weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert len(guards) == 2 and all(guard.direct_calls > 0 for guard in guards)    # the dispatch was skipped
