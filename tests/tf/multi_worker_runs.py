"""The custom training loop of TensorFlow's distributed guides, as one worker of a cluster runs it.

Not a test: tests/tf/test_multi_worker.py starts it in two processes with TF_CONFIG (a
MultiWorkerMirroredStrategy over two local workers), or in one process without TF_CONFIG (a
MirroredStrategy over two logical CPUs, one worker holding both replicas). Each worker makes its own
data (512 rows, 4 features, seeded by its task); the case decides what worker 1 (or replica 1) puts in:

- `nan`: a NaN at row 100, column 2 of x (the loop reduces the loss with `strategy.reduce`);
- `output`: x[100, 0] = -2.0 (row 116 with both replicas in one process), and the step adds
  `stop_gradient(log(min(x) + 1))` to its loss: a NaN in that replica's output, the gradients finite;
  a worker returns its own replica's value (`experimental_local_results`), so the NaN reaches worker
  1's training only; in one process the two replicas' values are summed;
- `last`: as `output`, at row 500 (the last batch: the finding is agreed when the watch ends);
- `metric`: as `output`, but the step returns the all-reduced loss and updates a Keras metric (as the guide's
  `train_accuracy.update_state`) with `log(min(x) + 1)`: a NaN in that worker's metric only;
- `raised` (in `--sequence`): healthy, the step returning each worker's own loss, and worker 1's cell
  raising after its loop, inside the watch;
- `healthy`: nothing.

`--out DIR`: the worker writes DIR/weights-TASK.npz (the model's weights when the script ends, in a
`finally`, so also when nanwatch stopped it) and DIR/steps-TASK.json (the steps it completed).
`--sequence`: in one process, with `nanwatch.watch()`: an unwatched healthy run, a watched healthy run
from the same initial weights, `mode="exact"` on the `nan` case (watched in fast mode under several
replicas), the `output` case, then the `nan` case with the guide's `train_step(iterator)` form (the
batch drawn inside the function), and healthy runs where worker 1 (or the one process) calls the model on
a NaN between steps 5 and 6, eagerly, then in a tf.function of its own (the healthy watched run has worker
0 call that function after every step); each run's weights and steps, and the reports, written to DIR.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

GLOBAL_BATCH = 32
ROWS = 512
METRICS: list = []     # the metric of each model built, last last


def strategy_and_task():
    if os.environ.get("TF_CONFIG"):
        task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
        return tf.distribute.MultiWorkerMirroredStrategy(), task
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), 0


def data(task: int, case: str, replicas_here: int):
    """The worker's own rows; the bad row goes to worker 1, or, with both replicas in one process, into
    replica 1's half of its batch."""
    rng = np.random.default_rng(task)
    x = rng.random((ROWS, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True).astype("float32")
    bad_row = 100 if replicas_here == 1 else 100 + GLOBAL_BATCH // 2   # row 116: batch 3, replica 1's half
    bad_row = ROWS - 12 if case == "last" else bad_row
    if task == 1 or replicas_here > 1:
        if case == "nan":
            x[bad_row, 2] = np.nan
        elif case in ("output", "last", "metric"):
            x[bad_row, 0] = -2.0
    return x, y


def build(strategy, task, case, iterator=False, own_loss=None, width=8, depth=1, metric=None):
    """The model, optimizer, distributed dataset and train step. `own_loss`: the step returns this worker's
    own loss rather than the all-reduced one (as the `output` case does); `width`, `depth`: its hidden
    layers (bench/bench_multi_worker.py times a larger step too); `metric`: the step updates a Keras metric (as
    the `metric` case does)."""
    import keras
    own_loss = case in ("output", "last") if own_loss is None else own_loss
    updates_metric = case == "metric" if metric is None else metric
    replicas_here = len(strategy.extended.worker_devices)
    x, y = data(task, case, replicas_here)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    # each worker's batches of 32 rows are split among the replicas in sync: 16 rows per replica and step
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH).with_options(options)
    dist_dataset = strategy.experimental_distribute_dataset(dataset)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        hidden = [keras.layers.Dense(width, activation="relu", name="hidden" if i == 0 else f"hidden_{i}")
                  for i in range(depth)]
        model = keras.Sequential([keras.Input((4,)), *hidden, keras.layers.Dense(1, name="out")])
        optimizer = keras.optimizers.SGD(learning_rate=0.01)
        metric = keras.metrics.Mean(name="log_min")
        METRICS.append(metric)

    def step_fn(inputs):
        features, target = inputs
        with tf.GradientTape() as tape:
            pred = model(features, training=True)
            loss = tf.nn.compute_average_loss(tf.square(pred - target)[:, 0], global_batch_size=GLOBAL_BATCH)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        if case in ("output", "last"):
            return loss + tf.stop_gradient(tf.math.log(tf.reduce_min(features) + 1.0))
        if updates_metric:
            metric.update_state(tf.math.log(tf.reduce_min(features) + 1.0))
        return loss

    @tf.function
    def train_step(inputs):
        if iterator:
            inputs = next(inputs)      # the multi-worker guide's form: train_step(iterator)
        per_replica = strategy.run(step_fn, args=(inputs,))
        if own_loss and len(strategy.extended.worker_devices) == 1:
            return strategy.experimental_local_results(per_replica)[0]   # this worker's own loss
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return model, optimizer, dist_dataset, train_step


def train(dist_dataset, train_step, done: list, iterator: int = 0, between=None):
    """Every batch; with `iterator` (a step count), the guide's form: the step draws from an iterator.
    `between(steps done)` runs after each step."""
    if iterator:
        batches = iter(dist_dataset)
        for _ in range(iterator):
            train_step(batches)
            done.append(len(done))
        return
    for inputs in dist_dataset:
        train_step(inputs)
        done.append(len(done))
        if between is not None:
            between(len(done))


def save(out, name, model, steps):
    np.savez(os.path.join(out, f"weights-{name}.npz"), *[np.asarray(w) for w in model.get_weights()])
    with open(os.path.join(out, f"steps-{name}.json"), "w") as f:
        json.dump(len(steps), f)


def sequence(strategy, task, out):
    """Unwatched then watched healthy runs from the same start; then exact mode on the `nan` case, and the
    `output` case; each run's report in DIR/reports-TASK.json."""
    import nanwatch
    model, optimizer, dist_dataset, train_step = build(strategy, task, "healthy")
    start = model.get_weights()
    done: list = []
    train(dist_dataset, train_step, done)
    save(out, f"plain-{task}", model, done)
    model.set_weights(start)
    optimizer.iterations.assign(0)
    reports = {}
    # steps per run: each worker's 512 rows in 16-row shards, one per local replica
    steps = ROWS * strategy.num_replicas_in_sync // (GLOBAL_BATCH * len(strategy.extended.worker_devices))
    bad_here = task == 1 or len(strategy.extended.worker_devices) > 1

    def eager_nan(done_steps):
        if done_steps == 6 and bad_here:
            model(np.full((2, 4), np.nan, "float32"))     # an eager call on this worker's data, between steps

    @tf.function
    def evaluate(features):                               # a tf.function of one worker's own: no collective
        return model(features)

    def chief_evaluates(done_steps):
        if task == 0:
            evaluate(np.ones((8, 4), "float32"))

    def local_nan(done_steps):
        if done_steps == 6 and bad_here:
            evaluate(np.full((2, 4), np.nan, "float32"))

    between = {"watched": chief_evaluates, "eager": eager_nan, "local": local_nan}
    for name, case, mode in (("watched", "healthy", "auto"), ("exact", "nan", "exact"), ("output", "output", "auto"),
                             ("iterator", "nan", "auto"), ("eager", "healthy", "auto"), ("local", "healthy", "auto"),
                             ("last", "last", "auto"), ("metric", "metric", "auto"), ("raised", "healthy", "auto")):
        if name != "watched":
            model, optimizer, dist_dataset, train_step = build(strategy, task, case, iterator=name == "iterator",
                                                               own_loss=True if name == "raised" else None)
        done = []
        start = time.monotonic()
        try:
            with nanwatch.watch(panel=False, mode=mode) as report:
                train(dist_dataset, train_step, done, iterator=steps if name == "iterator" else 0,
                      between=between.get(name))
                if name == "raised" and bad_here:
                    raise RuntimeError("the cell failed after its loop")   # on worker 1 only
        except RuntimeError:
            pass
        seconds = time.monotonic() - start
        save(out, f"{name}-{task}", model, done)
        reports[name] = dict(report.to_dict(), seconds=seconds)
        reports[name]["metric_variables"] = [float(np.asarray(v)) for v in METRICS[-1].variables]
    with open(os.path.join(out, f"reports-{task}.json"), "w") as f:
        json.dump(reports, f)


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", default="nan", choices=("nan", "output", "last", "metric", "healthy"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--sequence", action="store_true")
    args = parser.parse_args(argv)
    strategy, task = strategy_and_task()
    if args.sequence:
        sequence(strategy, task, args.out)
        return
    model, _, dist_dataset, train_step = build(strategy, task, args.case)
    done: list = []
    try:
        train(dist_dataset, train_step, done)
    finally:
        save(args.out, str(task), model, done)


if __name__ == "__main__":
    main(sys.argv[1:])
