"""Which traced steps give every worker the same checked values (engine/distributed.py,
`same_on_every_worker`): then a non-finite output or weight is seen by every worker in the same call and
the workers do not agree on the verdict after each call. A wrong True would let one worker stop alone
(the others left waiting in a collective), so each way a worker's own value reaches an output or a
variable is tried. The functions are only traced, never run (their collectives would need a cluster)."""

import tensorflow as tf
from tensorflow.python.ops import collective_ops

from nanwatch.engine import distributed


def _all_reduced(value):
    return collective_ops.all_reduce_v2(value, group_size=2, group_key=77, instance_key=1, merge_op="Add")


def _verdict(body, *specs):
    return distributed.same_on_every_worker(tf.function(body).get_concrete_function(*specs))


X = tf.TensorSpec([None, 3], tf.float32)


def test_the_guides_step_an_all_reduced_gradient_applied_and_the_reduced_loss_returned():
    w = tf.Variable(tf.ones([3, 1]), name="dense/kernel")
    step = tf.Variable(0, dtype=tf.int64, name="sgd/iteration")

    def train_step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(x @ w))
        grad = _all_reduced(tape.gradient(loss, w))
        w.assign_sub(0.1 * grad)
        step.assign_add(1)
        return _all_reduced(loss)

    assert _verdict(train_step, X) is True


def test_a_worker_s_own_loss_returned_differs():
    w = tf.Variable(tf.ones([3, 1]), name="dense/kernel")
    bias = tf.Variable(0.0, name="dense/bias")

    def train_step(x):
        loss = tf.reduce_mean(x @ w)
        bias.assign_sub(0.1 * _all_reduced(loss))
        return loss                                # the local loss, not reduced

    assert _verdict(train_step, X) is False
    split = _split(train_step, X)                  # the output is the worker's own, no variable is
    assert split.outputs_differ is True and split.local == []


def test_a_weight_written_from_local_data_differs():
    w = tf.Variable(1.0, name="dense/bias")

    def train_step(x):
        w.assign_sub(0.1 * tf.reduce_mean(x))      # not all-reduced
        return _all_reduced(tf.reduce_sum(x))

    assert _verdict(train_step, X) is False


def test_a_local_write_read_back_into_the_output_differs():
    stat = tf.Variable(0.0, name="bn/moving_mean")

    def train_step(x):
        out = _all_reduced(tf.reduce_sum(x)) + stat   # read before the write below, in creation order
        with tf.control_dependencies([out]):
            stat.assign(tf.reduce_mean(x))
        return out

    assert _verdict(train_step, X) is False


def test_a_random_draw_differs():
    def train_step(x):
        return _all_reduced(tf.reduce_sum(x)) + tf.random.uniform([])

    assert _verdict(train_step, X) is False


def test_a_variable_written_inside_control_flow_is_not_trusted():
    w = tf.Variable(1.0, name="dense/kernel")

    def train_step(x):
        total = _all_reduced(tf.reduce_sum(x))
        tf.cond(total > 0, lambda: w.assign_sub(total), lambda: w.assign_add(total))
        return total

    assert _verdict(train_step, X) is False
    assert _split(train_step, X) is None       # nothing known: the workers agree after each call


def test_only_float_outputs_count_and_a_step_without_output_is_judged_by_its_writes():
    w = tf.Variable(tf.ones([3]), name="dense/kernel")

    def train_step(x):
        w.assign_sub(_all_reduced(tf.reduce_mean(x, axis=0)))
        return tf.shape(x)[0]                      # an int: not a checked sink

    assert _verdict(train_step, X) is True


# `worker_split`: which checked values are a worker's own, so that a step with some can still be checked in the
# call (the shared ones seen by every worker at once, a worker's own ones agreed at the next call)

def _split(body, *specs):
    return distributed.worker_split(tf.function(body).get_concrete_function(*specs))


def test_the_guides_metric_is_local_the_weights_and_the_reduced_loss_are_not():
    w = tf.Variable(tf.ones([3, 1]), name="dense/kernel")
    total = tf.Variable(0.0, name="accuracy/total")
    count = tf.Variable(0.0, name="accuracy/count")

    def train_step(x):
        with tf.GradientTape() as tape:
            pred = x @ w
            loss = tf.reduce_mean(tf.square(pred))
        w.assign_sub(0.1 * _all_reduced(tape.gradient(loss, w)))
        total.assign_add(tf.reduce_sum(tf.cast(pred > 0, tf.float32)))    # train_accuracy.update_state
        count.assign_add(tf.cast(tf.shape(x)[0], tf.float32))
        return _all_reduced(loss)

    split = _split(train_step, X)
    assert split.outputs_differ is False
    assert {v.name for v in split.local} == {"accuracy/total:0", "accuracy/count:0"}


def test_locality_spreads_through_reads_and_through_an_update_sharing_a_local_slot():
    a = tf.Variable(0.0, name="stat/a")
    b = tf.Variable(0.0, name="stat/b")
    w = tf.Variable(tf.ones([3]), name="dense/kernel")
    m = tf.Variable(tf.zeros([3]), name="adam/m")
    v = tf.Variable(tf.zeros([3]), name="adam/v")
    step = tf.Variable(0, dtype=tf.int64, name="adam/iteration")

    def train_step(x):
        with tf.control_dependencies([b.assign(a * 2.0)]):    # b reads a before a is written (creation order)
            a.assign(tf.reduce_mean(x))                       # a: from this worker's data
        w.read_value(), v.read_value()                        # (a raw op alone does not list them as variables)
        m.assign(tf.reduce_mean(x, axis=0))                   # a slot from local data ...
        tf.raw_ops.ResourceApplyAdam(var=w.handle, m=m.handle, v=v.handle, beta1_power=0.9, beta2_power=0.9,
                                     lr=0.1, beta1=0.9, beta2=0.99, epsilon=1e-7,
                                     grad=_all_reduced(tf.ones([3])))   # ... makes the update local
        step.assign_add(1)
        return _all_reduced(tf.reduce_sum(x))

    split = _split(train_step, X)
    assert split.outputs_differ is False
    assert {v.name for v in split.local} == {"stat/a:0", "stat/b:0", "adam/m:0", "adam/v:0", "dense/kernel:0"}
