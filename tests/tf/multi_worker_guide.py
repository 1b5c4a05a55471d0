"""TensorFlow's "Custom training loop with Keras and MultiWorkerMirroredStrategy" guide
(tensorflow.org/tutorials/distribute/multi_worker_with_ctl), its model, dataset function, optimizer,
metric and `train_step(iterator)` as the guide writes them; MNIST replaced by random images (no
download). Not a test: tests/tf/test_multi_worker_guide.py runs it on two local workers.

`healthy`: 16 steps unwatched, then the same 16 from the same start watched; writes (guide-TASK.json, in
the working directory) the report's status and notes, whether the weights are bit-identical, and both
runs' mean loss and accuracy. `nan`: a NaN in pixel (5, 5) of worker 1's image 300 (its batch 4, row 44),
watched; writes the report.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
import nanwatch  # noqa: E402

case = sys.argv[1]
task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
strategy = tf.distribute.MultiWorkerMirroredStrategy()
per_worker_batch_size = 64
num_workers = 2
global_batch_size = per_worker_batch_size * num_workers

def mnist_dataset():
    rng = np.random.default_rng(task)
    x = rng.random((1024, 28, 28)).astype("float32")
    y = rng.integers(0, 10, 1024).astype("int64")
    if case == "nan" and task == 1:
        x[300, 5, 5] = np.nan
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(per_worker_batch_size)

def build_cnn_model():
    keras.utils.set_random_seed(1)
    return keras.Sequential([
        keras.layers.InputLayer(input_shape=(28, 28)),
        keras.layers.Reshape(target_shape=(28, 28, 1)),
        keras.layers.Conv2D(32, 3, activation='relu'),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation='relu'),
        keras.layers.Dense(10)])

options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
with strategy.scope():
    multi_worker_model = build_cnn_model()
    multi_worker_dataset = strategy.distribute_datasets_from_function(
        lambda input_context: mnist_dataset().with_options(options))
    optimizer = keras.optimizers.RMSprop(learning_rate=0.001)
    train_accuracy = keras.metrics.SparseCategoricalAccuracy(name='train_accuracy')

@tf.function
def train_step(iterator):
    def step_fn(inputs):
        x, y = inputs
        with tf.GradientTape() as tape:
            predictions = multi_worker_model(x, training=True)
            per_example_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")(y, predictions)
            loss = tf.nn.compute_average_loss(per_example_loss, global_batch_size=global_batch_size)
        grads = tape.gradient(loss, multi_worker_model.trainable_variables)
        optimizer.apply_gradients(zip(grads, multi_worker_model.trainable_variables))
        train_accuracy.update_state(y, predictions)
        return loss
    per_replica_losses = strategy.run(step_fn, args=(next(iterator),))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica_losses, axis=None)

def run(watched):
    """16 steps of the guide's epoch loop: (report or None, mean loss, steps run)."""
    iterator = iter(multi_worker_dataset)
    losses = []
    if not watched:
        for _ in range(16):
            losses.append(float(train_step(iterator)))
        return None, float(np.mean(losses)), len(losses)
    with nanwatch.watch(panel=False) as report:
        for _ in range(16):
            losses.append(float(train_step(iterator)))
    return report, float(np.mean(losses)) if losses else None, len(losses)


start = [w.numpy() for w in multi_worker_model.weights]
if case == "healthy":
    _, loss_plain, _ = run(False)
    plain = [w.numpy() for w in multi_worker_model.weights]
    accuracy_plain = float(train_accuracy.result())
    for weight, value in zip(multi_worker_model.weights, start):
        weight.assign(value)
    for variable in optimizer.variables:           # its slots and step count, not its learning rate
        if "learning_rate" not in variable.path:
            variable.assign(tf.zeros_like(variable))
    train_accuracy.reset_state()
    report, loss_watched, _ = run(True)
    result = ({"task": task, "status": report.status, "notes": report.to_dict()["run"]["notes"],
                      "same_weights": all(np.array_equal(a, b.numpy())
                                          for a, b in zip(plain, multi_worker_model.weights)),
                      "loss": [loss_plain, loss_watched],
                      "accuracy": [accuracy_plain, float(train_accuracy.result())]})
else:
    report, _, steps = run(True)
    result = ({"task": task, "steps": steps, "report": report.to_dict(),
               "finite": all(bool(np.isfinite(w.numpy()).all()) for w in multi_worker_model.weights)})
with open(f"guide-{task}.json", "w") as out:
    json.dump(result, out)
