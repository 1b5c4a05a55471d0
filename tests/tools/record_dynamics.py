"""Record real training dynamics (per-step loss and gradient norm, per-layer weight/gradient norms).

Not a test: a tool that writes the fixtures tests/data/dynamics/*.json that tests/unit/test_dynamics.py and
tests/unit/test_diagnosis_rules.py read. Each recording runs a small Keras model in a GradientTape loop that
does what `fit` does (shuffled mini-batches, the compiled loss plus `model.losses`, `optimizer.apply`),
and logs, at every step, what nanwatch's engine streams (schema 1 `steps[]` and `layers[].history`):
the loss, the global gradient norm, and each layer's weight and gradient norms. It stops at the first
non-finite loss or gradient (the record of that step is kept, with its non-finite values as strings).

    .venv/bin/python tests/tools/record_dynamics.py [name ...]
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

RECORDINGS = {
    # zoo p04 / seed 001 ex. 3: SGD(10.0) on an MLP. Learning rate far too high.
    "lr_sgd10_mlp": '''
keras.utils.set_random_seed(4)
X = np.random.rand(256, 10).astype("float32"); y = (X.sum(1, keepdims=True) * 5).astype("float32")
model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
optimizer = keras.optimizers.SGD(learning_rate=10.0); loss_fn = keras.losses.MeanSquaredError(); batch_size, epochs = 32, 5
''',
    # diagnosis d12 (tests/scenarios/diagnosis.py): SGD(1.0) on a 3-layer MLP.
    "lr_sgd1_deep_mlp": '''
keras.utils.set_random_seed(12)
X = np.random.rand(256, 8).astype("float32"); y = (X @ np.arange(8.0).reshape(8, 1)).astype("float32")
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)])
optimizer = keras.optimizers.SGD(learning_rate=1.0); loss_fn = keras.losses.MeanSquaredError(); batch_size, epochs = 32, 3
''',
    # Adam with learning rate 5.0 (seed 004 ex. 3 with a float lr)
    "lr_adam5_mlp": '''
keras.utils.set_random_seed(5)
X = np.random.rand(100, 1).astype("float32"); y = (2 * X + 1 + np.random.randn(100, 1)).astype("float32")
model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(10, activation="relu"), keras.layers.Dense(1)])
optimizer = keras.optimizers.Adam(learning_rate=5.0); loss_fn = keras.losses.MeanSquaredError(); batch_size, epochs = 32, 10
''',
    # diagnosis d11 (tests/scenarios/diagnosis.py): a ReLU SimpleRNN over 50 steps, plain SGD(0.001):
    # the gradient through time grows while the loss does not, then explodes.
    "explode_rnn_relu": '''
keras.utils.set_random_seed(11)
X = np.random.rand(64, 50, 1).astype("float32"); y = X.sum(1)
model = keras.Sequential([keras.Input((50, 1)), keras.layers.SimpleRNN(16, activation="relu", name="rnn"), keras.layers.Dense(1)])
optimizer = keras.optimizers.SGD(learning_rate=0.001); loss_fn = keras.losses.MeanSquaredError(); batch_size, epochs = 16, 10
''',
    # the same with gradient clipping (the fix the diagnosis proposes): it trains
    "explode_rnn_relu_clipnorm": '''
keras.utils.set_random_seed(11)
X = np.random.rand(64, 50, 1).astype("float32"); y = X.sum(1)
model = keras.Sequential([keras.Input((50, 1)), keras.layers.SimpleRNN(16, activation="relu", name="rnn"), keras.layers.Dense(1)])
optimizer = keras.optimizers.SGD(learning_rate=0.001, clipnorm=1.0); loss_fn = keras.losses.MeanSquaredError(); batch_size, epochs = 16, 10
''',
    # seed 001 ex. 1 as written: SimpleRNN(100, tanh) on inputs *100 (the article says "often leads to NaN")
    "seed001_rnn_tanh_x100": '''
keras.utils.set_random_seed(1)
X = (np.random.rand(100, 10, 1) * 100).astype("float32"); y = (np.random.rand(100, 1) * 100).astype("float32")
model = keras.Sequential([keras.Input((10, 1)), keras.layers.SimpleRNN(100, activation="tanh", name="simple_rnn"), keras.layers.Dense(1)])
optimizer = keras.optimizers.Adam(); loss_fn = keras.losses.MeanSquaredError(); batch_size, epochs = 32, 10
''',
    # zoo p07 / seed 004 ex. 1: one 1e10 outlier in X (a bad row, not a bad learning rate)
    "outlier_1e10_adam": '''
keras.utils.set_random_seed(7)
X = (np.random.rand(100, 1) * 10).astype("float32"); y = (2 * X + 1 + np.random.randn(100, 1)).astype("float32")
X[0, 0] = 1e10
model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(10, activation="relu"), keras.layers.Dense(1)])
optimizer = keras.optimizers.Adam(learning_rate=0.001); loss_fn = keras.losses.MeanSquaredError(); batch_size, epochs = 32, 3
''',
    # healthy: zoo p10
    "healthy_adam_mlp": '''
keras.utils.set_random_seed(10)
X = np.random.rand(256, 8).astype("float32"); y = np.random.rand(256, 1).astype("float32")
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)])
optimizer = keras.optimizers.Adam(); loss_fn = keras.losses.MeanSquaredError(); batch_size, epochs = 32, 4
''',
    # healthy: small-batch SGD with momentum, noisy
    "healthy_noisy_sgd_momentum": '''
keras.utils.set_random_seed(10)
rng = np.random.default_rng(10)
X = rng.normal(size=(512, 20)).astype("float32"); y = (X[:, :1] * 3 + rng.normal(0, 1, (512, 1))).astype("float32")
model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
optimizer = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9); loss_fn = keras.losses.MeanSquaredError(); batch_size, epochs = 8, 2
''',
    # healthy: LSTM
    "healthy_lstm": '''
keras.utils.set_random_seed(2)
X = np.random.rand(64, 12, 3).astype("float32"); y = np.random.rand(64, 1).astype("float32")
model = keras.Sequential([keras.Input((12, 3)), keras.layers.LSTM(16, name="lstm"), keras.layers.Dense(1)])
optimizer = keras.optimizers.Adam(); loss_fn = keras.losses.MeanSquaredError(); batch_size, epochs = 16, 6
''',
    # healthy: tiny dataset fitted to near-zero loss (relative noise is large, absolute tiny)
    "healthy_tiny_overfit": '''
keras.utils.set_random_seed(5)
X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], "float32"); y = np.array([[0], [1], [1], [0]], "float32")
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1, activation="sigmoid")])
optimizer = keras.optimizers.Adam(0.05); loss_fn = keras.losses.BinaryCrossentropy(); batch_size, epochs = 4, 150
''',
    # healthy: unscaled price targets, MSE ~1e10 to 1e11, finite and decreasing slowly
    "healthy_large_loss_prices": '''
keras.utils.set_random_seed(6)
rng = np.random.default_rng(6)
X = rng.uniform(0, 1, (256, 5)).astype("float32"); y = (2e5 + 3e5 * X[:, :1] + rng.normal(0, 2e4, (256, 1))).astype("float32")
model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)])
optimizer = keras.optimizers.Adam(); loss_fn = keras.losses.MeanSquaredError(); batch_size, epochs = 32, 4
''',
    # healthy: CNN + BatchNorm + Dropout
    "healthy_cnn_bn_dropout": '''
keras.utils.set_random_seed(1)
X = np.random.rand(64, 16, 16, 1).astype("float32"); y = np.random.randint(0, 3, 64)
model = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.BatchNormalization(),
                          keras.layers.MaxPooling2D(), keras.layers.Dropout(0.3), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
optimizer = keras.optimizers.Adam(); loss_fn = keras.losses.SparseCategoricalCrossentropy(); batch_size, epochs = 16, 4
''',
    # healthy: class imbalance with class weights folded in as sample weights (99:1, weight 50)
    "healthy_class_imbalance": '''
keras.utils.set_random_seed(4)
rng = np.random.default_rng(4)
X = rng.normal(size=(400, 10)).astype("float32"); y = (rng.random((400, 1)) < 0.01).astype("float32")
sample_weight = np.where(y[:, 0] > 0, 50.0, 1.0).astype("float32")
model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
optimizer = keras.optimizers.Adam(); loss_fn = keras.losses.BinaryCrossentropy(); batch_size, epochs = 32, 3
''',
    # healthy: higher but fine SGD learning rate; loss drops fast then plateaus with noise
    "healthy_sgd_lr0p1": '''
keras.utils.set_random_seed(3)
X = np.random.rand(256, 8).astype("float32"); y = (X @ np.ones((8, 1)) + 0.1 * np.random.randn(256, 1)).astype("float32")
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)])
optimizer = keras.optimizers.SGD(learning_rate=0.1); loss_fn = keras.losses.MeanSquaredError(); batch_size, epochs = 16, 4
''',
}


def _num(v):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def record(name: str, src: str) -> dict:
    import numpy as np
    import tensorflow as tf
    import keras
    ns = {"np": np, "tf": tf, "keras": keras}
    exec(src, ns)
    model, X, y = ns["model"], ns["X"], ns["y"]
    optimizer, loss_fn = ns["optimizer"], ns["loss_fn"]
    batch_size, epochs = ns["batch_size"], ns["epochs"]
    sw = ns.get("sample_weight")
    layers = [l for l in model.layers if l.trainable_weights]
    var_ids = {id(v): i for i, v in enumerate(model.trainable_variables)}
    layer_idx = [[var_ids[id(v)] for v in l.trainable_weights] for l in layers]
    history = {l.name: [] for l in layers}
    steps, stopped, step = [], None, 0
    init = [{"layer": l.name, "variable": w.name, "norm": float(np.linalg.norm(w.numpy())),
             "shape": list(w.shape)} for l in layers for w in l.trainable_weights]
    rng = np.random.default_rng(0)
    t0 = time.time()
    for epoch in range(epochs):
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch_size):
            idx = order[start:start + batch_size]
            xb, yb = tf.constant(X[idx]), tf.constant(y[idx])
            with tf.GradientTape() as tape:
                pred = model(xb, training=True)
                loss = loss_fn(yb, pred, sample_weight=None if sw is None else tf.constant(sw[idx]))
                if model.losses:
                    loss = loss + tf.add_n(model.losses)
            grads = tape.gradient(loss, model.trainable_variables)
            gnorm = float(tf.linalg.global_norm(grads))
            steps.append({"step": step, "epoch": epoch, "phase": "train", "loss": _num(loss), "metrics": {},
                          "grad_norm": _num(gnorm)})
            for l, ix in zip(layers, layer_idx):
                history[l.name].append({
                    "step": step,
                    "weight_norm": _num(tf.linalg.global_norm([model.trainable_variables[i] for i in ix])),
                    "grad_norm": _num(tf.linalg.global_norm([grads[i] for i in ix])),
                })
            if not (np.isfinite(float(loss)) and np.isfinite(gnorm)):
                stopped = {"step": step, "reason": "non-finite loss or gradient"}
                break
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            bad = [v.path for v in model.trainable_variables if not np.isfinite(v.numpy()).all()]
            step += 1
            if bad:
                stopped = {"step": step, "reason": f"non-finite weights after update: {bad[:3]}"}
                break
        if stopped:
            break
    cfg = optimizer.get_config()
    return {
        "name": name,
        "source": src.strip(),
        "measured_with": "tests/tools/record_dynamics.py (TF %s, Keras %s), %.1f s" % (tf.__version__, keras.__version__,
                                                                               time.time() - t0),
        "optimizer": {"class": type(optimizer).__name__, "learning_rate": float(cfg["learning_rate"]),
                      "clipnorm": cfg.get("clipnorm"), "clipvalue": cfg.get("clipvalue"),
                      "global_clipnorm": cfg.get("global_clipnorm")},
        "stopped": stopped,
        "initial_weight_norms": init,
        "steps": steps,
        "layers": [{"layer": l.name, "class": type(l).__name__, "history": history[l.name]} for l in layers],
    }


def main(names):
    out_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "dynamics")
    os.makedirs(out_dir, exist_ok=True)
    for name in names or list(RECORDINGS):
        rec = record(name, RECORDINGS[name])
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump(rec, f, indent=None, separators=(",", ":"))
        s = rec["steps"]
        print(f"{name}: {len(s)} steps, stopped={rec['stopped']}, loss {s[0]['loss']} -> {s[-1]['loss']}, "
              f"grad {s[0]['grad_norm']} -> {s[-1]['grad_norm']}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
