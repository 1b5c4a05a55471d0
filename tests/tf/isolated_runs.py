"""Runs that need a process of their own (global TensorFlow set-up), printed as JSON.

`python tests/tf/isolated_runs.py NAME` — used by tests/tf/test_reliability.py through subprocess (also
with the Python of .venv-tf215, which has no nanwatch installed: the repository root is put on sys.path).
"""

import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("IPYTHONDIR", tempfile.mkdtemp(prefix="nanwatch-ipython-"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from tests.support.ipython import nanwatch_shell as _shell  # noqa: E402


MIRRORED = '''
import numpy as np, tensorflow as tf, keras
class LogLayer(keras.layers.Layer):
    def call(self, x):
        return tf.math.log(x)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
X = np.random.rand(64, 4).astype("float32"); X[48:, 1] = -1.0   # only replica 1's half of batch 1
y = np.random.rand(64, 1).astype("float32")
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), LogLayer(name="logl"), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
model.fit(X, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
'''


def _two_logical_cpus():
    """Split the CPU into two logical devices (before TensorFlow initialises them) for MirroredStrategy."""
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def mirrored():
    """MirroredStrategy over two logical CPU devices."""
    _two_logical_cpus()
    ip = _shell()
    out = {mode: _watched(ip, MIRRORED, mode) for mode in ("auto", "exact")}
    # evaluate (no gradients, no update): the replica is told by each replica's own logs; the metric
    # state the graph step already made NaN must not be mistaken for the origin in the other's replay
    ip.run_cell(MIRRORED.replace("model.fit(X, y,", "model.fit(np.abs(X), y,"))
    out["evaluate"] = _watched(ip, "model.evaluate(X, y, batch_size=32, verbose=0)")
    return out


MIRRORED_DATA = '''
import numpy as np, tensorflow as tf, keras
keras.utils.set_random_seed(0)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
X = np.random.rand(128, 4).astype("float32"); X[90, 2] = np.nan   # batch 2, in replica 1's half
y = np.random.rand(128, 1).astype("float32")
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
model.fit(X, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
'''


def mirrored_data():
    """MirroredStrategy over two logical CPU devices, a NaN in the user's x: the data is the origin."""
    _two_logical_cpus()
    ip = _shell()
    return {mode: _watched(ip, MIRRORED_DATA, mode, replicas=False) for mode in ("fast", "exact")}


def mirrored_one_device():
    """MirroredStrategy over one device: one replica, but its optimizer still merges to update."""
    return _watched(_shell(), MIRRORED.replace('["/cpu:0", "/cpu:1"]', '["/cpu:0"]'))


def _watched(ip, cell, mode=None, replicas=True) -> dict:
    """`cell` run under `%%nanwatch --no-panel` (in `mode`): whether it ran, its report and, with
    `replicas`, the state of every replica's copy of the model (`_replica_state`)."""
    import nanwatch
    result = ip.run_cell("%%nanwatch --no-panel" + (f" --mode {mode}" if mode else "") + "\n" + cell)
    out = {"ok": result.error_in_exec is None, "report": nanwatch.last_report().to_dict()}
    return dict(out, **_replica_state(ip.user_ns["model"])) if replicas else out


def _replica_state(model):
    """Every replica's copy of every weight and optimizer variable, after the run: all finite, and the
    copies of each variable equal (a replica that applied a step the other skipped would differ)."""
    import numpy as np
    strategy = model.distribute_strategy
    copies = [[np.asarray(c) for c in strategy.experimental_local_results(getattr(v, "value", v))]
              for v in list(model.weights) + list(model.optimizer.variables)]
    return {"copies": min(len(c) for c in copies),
            "state_finite": all(bool(np.isfinite(c).all()) for group in copies for c in group),
            "copies_agree": all(np.array_equal(group[0], c) for group in copies for c in group[1:]),
            "iterations": int(np.asarray(model.optimizer.iterations))}


MIRRORED_OPTIMIZER = '''
import numpy as np, tensorflow as tf, keras
keras.utils.set_random_seed(7)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
X = np.random.rand(64, 4).astype("float32"); X[:, 2] = 0.0     # a feature that is always 0
y = np.random.rand(64, 1).astype("float32")
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="hidden"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3, epsilon=0.0), loss="mse")
model.fit(X, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
'''


def mirrored_optimizer():
    """MirroredStrategy: an update that would write NaN into a weight (Adam, epsilon 0, a zero column)."""
    _two_logical_cpus()
    ip = _shell()
    # the watched cell stops at the NaN: its weights (every replica's copy), read after it
    return {mode: _watched(ip, MIRRORED_OPTIMIZER, mode) for mode in ("auto", "exact")}


DETERMINISTIC = '''
import numpy as np, keras, tensorflow as tf
keras.utils.set_random_seed(3)
X = np.random.rand(512, 12).astype("float32"); y = np.random.rand(512, 1).astype("float32")
model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dropout(0.2),
                          keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse", metrics=["mae"])
model.fit(X, y, batch_size=32, epochs=3, verbose=0)
weights = [w.tobytes().hex() for w in model.get_weights()]
'''


# GELU and LayerNormalization: grappler's arithmetic optimizer reorders their Mul/Add chains,
# which exact mode's checks between the ops prevent (README "Two modes"); fast mode checks nothing
# inside the step, so it must stay bit-identical here too.
DETERMINISTIC_REORDERED = DETERMINISTIC.replace(
    'keras.layers.Dense(32, activation="relu")', 'keras.layers.Dense(32, activation="gelu"), keras.layers.LayerNormalization()')


def determinism(cell=DETERMINISTIC):
    """Weights after a healthy run: without nanwatch, and under both modes."""
    import tensorflow as tf
    tf.config.experimental.enable_op_determinism()
    import nanwatch
    ip = _shell()
    out = {}
    for label, prefix in (("plain", ""), ("exact", "%%nanwatch --no-panel --mode exact\n"),
                          ("fast", "%%nanwatch --no-panel --mode fast\n"), ("plain_again", "")):
        assert ip.run_cell(prefix + cell).success
        out[label] = ip.user_ns["weights"]
        if prefix:
            out[label + "_status"] = nanwatch.last_report().status
            out[label + "_mode"] = nanwatch.last_report().to_dict()["mode"]
    return out


def determinism_reordered():
    return determinism(DETERMINISTIC_REORDERED)


# The same training under MirroredStrategy on two logical CPUs: fast mode's sentinel takes the update
# into a cross-replica cond there, which must not change what the update computes.
DETERMINISTIC_MIRRORED = '''
import numpy as np, keras, tensorflow as tf
keras.utils.set_random_seed(3)
X = np.random.rand(512, 12).astype("float32"); y = np.random.rand(512, 1).astype("float32")
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dropout(0.2),
                              keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
model.fit(X, y, batch_size=32, epochs=3, verbose=0)
weights = [w.tobytes().hex() for w in model.get_weights()]
'''


def determinism_mirrored():
    """Weights after a healthy run under MirroredStrategy: without nanwatch, and under both modes."""
    _two_logical_cpus()
    out = determinism(DETERMINISTIC_MIRRORED)
    out["modes"] = [out.pop("exact_mode"), out.pop("fast_mode")]
    return out


def mirrored_reads():
    """Device->host reads by nanwatch in healthy fast-mode fits under MirroredStrategy (20 and 220
    steps, statistics off): tests/tf/test_long_runs.py's counter, as on one device."""
    import numpy as np
    import tensorflow as tf
    _two_logical_cpus()
    import keras
    import nanwatch
    from tests.tf.test_long_runs import HostReads
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = {}
    for steps in (20, 220):
        rng = np.random.default_rng(0)
        x, y = rng.random((steps * 8, 8), dtype=np.float32), rng.random((steps * 8, 1), dtype=np.float32)
        with strategy.scope():
            model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
            model.compile(optimizer="adam", loss="mse", metrics=["mae"])
        with HostReads() as reads:
            with nanwatch.watch(mode="fast", stats_every=10_000, panel=False) as report:
                model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        out[steps] = {"reads": reads.count, "where": reads.where, "status": report.status, "mode": report.mode}
    return out


def no_tensorflow():
    """A kernel where TensorFlow cannot be imported: the cell just runs."""
    sys.modules["tensorflow"] = None   # makes `import tensorflow` raise ImportError
    import nanwatch
    ip = _shell()
    result = ip.run_cell("%%nanwatch --no-panel\nanswer = 6 * 7")
    return {"ok": result.success, "answer": ip.user_ns.get("answer"),
            "notes": nanwatch.last_report().to_dict()["run"]["notes"],
            "status": nanwatch.last_report().status}


OLD_TF_CELL = '''
import numpy as np, tensorflow as tf
X = np.random.rand(32, 4).astype("float32"); y = np.random.rand(32, 1).astype("float32")
model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
history = model.fit(X, y, epochs=2, verbose=0)
'''


def old_tensorflow():
    """A kernel with a TensorFlow older than nanwatch supports (run in a venv that has one)."""
    import tensorflow as tf
    from tensorflow.python.eager import context
    import nanwatch
    ip = _shell()
    result = ip.run_cell("%%nanwatch --no-panel\n" + OLD_TF_CELL)
    return {"tf": tf.__version__, "ok": result.success, "epochs": len(ip.user_ns["history"].history["loss"]),
            "notes": nanwatch.last_report().to_dict()["run"]["notes"], "status": nanwatch.last_report().status,
            "op_callbacks": len(context.context().op_callbacks),
            "text": nanwatch.last_report()._repr_mimebundle_()["text/plain"]}


LEGACY = '''
import numpy as np, tensorflow as tf
import tf_keras
class LogLayer(tf_keras.layers.Layer):
    def call(self, x):
        return tf.math.log(x)
X = np.random.randn(32, 4).astype("float32"); y = np.random.rand(32, 1).astype("float32")
model = tf_keras.Sequential([tf_keras.Input((4,)), LogLayer(name="logl"), tf_keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, epochs=1, verbose=0)
'''


def legacy_keras():
    """TF_USE_LEGACY_KERAS=1 with tf_keras: exact mode through the op checks, and a note."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import nanwatch
    ip = _shell()
    result = ip.run_cell("%%nanwatch --no-panel\n" + LEGACY)
    report = nanwatch.last_report().to_dict()
    return {"ok": result.error_in_exec is None, "report": report}


if __name__ == "__main__":
    print("JSON:" + json.dumps(globals()[sys.argv[1]]()))
