"""nanwatch's own core scenarios (issue #2), in the catalogue format (tests/scenarios/catalogue.py).

Each is checked twice in tests/scenarios/test_core.py: against `expect`, and against raw tfdbg2 run
in the test process (`truth="tfdbg2_oracle"`, tests/scenarios/tfdbg2_oracle.py: the first non-finite
op by wall time with finite inputs). They use the origin's detail keys too: `source_cell` ("setup":
the culprit line is in the setup cell), `data_source`, `array_rows`, `variable`.
"""

from tests.scenarios.catalogue import Scenario, catalogue

SCENARIOS = catalogue(
    "core", "tfdbg2_oracle",
    Scenario(
        "c01_backward_sqrt_at_zero",
        note="NaN only in the backward pass: sqrt is fine at 0, its gradient is not.",
        code='''
import numpy as np, tensorflow as tf, keras
class Root(keras.layers.Layer):
    def call(self, x):
        return tf.sqrt(tf.nn.relu(x))
X = np.random.randn(64, 4).astype("float32"); y = np.random.rand(64, 1).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="proj"), Root(name="root"), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
model.fit(X, y, epochs=1, verbose=0)
''',
        expect=dict(phase={"backward"}, first_op={"SqrtGrad"}, layer="root")),
    Scenario(
        "c02_tfdata_map",
        note="NaN made inside a tf.data map function.",
        code='''
import numpy as np, tensorflow as tf, keras
X = np.random.rand(64, 3).astype("float32"); X[10, 1] = 0.0
y = np.random.rand(64, 1).astype("float32")
ds = tf.data.Dataset.from_tensor_slices((X, y)).map(lambda a, b: (tf.math.log(a), b)).batch(16)
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(ds, epochs=1, verbose=0)
''',
        expect=dict(phase={"input"}, first_op={"Log"}, line_contains="tf.math.log(a)")),
    Scenario(
        "c03_inf_in_metric",
        note="Inf in a metric only: the loss is fine.",
        code='''
import numpy as np, tensorflow as tf, keras
def log_output(y_true, y_pred):
    return tf.reduce_mean(tf.math.log(y_pred))
X = -np.random.rand(32, 4).astype("float32"); y = np.random.rand(32, 1).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="relu", kernel_initializer="ones", name="out")])
model.compile(optimizer="sgd", loss="mse", metrics=[log_output])
model.fit(X, y, epochs=1, verbose=0)
''',
        expect=dict(phase={"metric"}, first_op={"Log"}, line_contains="tf.math.log(y_pred)")),
    Scenario(
        "c04_evaluate",
        note="evaluate(): a layer takes the log of negative values.",
        code='''
import numpy as np, tensorflow as tf, keras
class LogLayer(keras.layers.Layer):
    def call(self, x):
        return tf.math.log(x)
X = np.random.randn(40, 5).astype("float32"); y = np.random.rand(40, 1).astype("float32")
model = keras.Sequential([keras.Input((5,)), LogLayer(name="logl"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.evaluate(X, y, verbose=0)
''',
        expect=dict(phase={"forward"}, first_op={"Log"}, layer="logl", line_contains="tf.math.log(x)")),
    Scenario(
        "c05_functional_two_inputs",
        note="A functional model with two inputs; the second input holds an Inf at row 7.",
        code='''
import numpy as np, keras
a = np.random.rand(50, 3).astype("float32"); b = np.random.rand(50, 2).astype("float32"); b[7, 1] = np.inf
y = np.random.rand(50, 1).astype("float32")
in_a, in_b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
h = keras.layers.Concatenate()([keras.layers.Dense(4)(in_a), keras.layers.Dense(4)(in_b)])
model = keras.Model([in_a, in_b], keras.layers.Dense(1)(h))
model.compile(optimizer="adam", loss="mse")
model.fit([a, b], y, batch_size=10, epochs=1, verbose=0)
''',
        expect=dict(phase={"input"}, first_op=None, data_source="x[1]", array_rows=[7])),
    Scenario(
        "c06_subclassed_model",
        note="A subclassed model whose own call takes a log.",
        code='''
import numpy as np, tensorflow as tf, keras
class Net(keras.Model):
    def __init__(self):
        super().__init__(name="net")
        self.hidden = keras.layers.Dense(6)
    def call(self, x):
        return tf.math.log(self.hidden(x))
X = np.random.randn(32, 4).astype("float32"); y = np.random.rand(32, 6).astype("float32")
model = Net()
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, epochs=1, verbose=0)
''',
        expect=dict(phase={"forward"}, first_op={"Log"}, layer="net", line_contains="tf.math.log(self.hidden(x))")),
    Scenario(
        "c07_helper_from_earlier_cell",
        note="The op is made by a helper defined in an earlier cell.",
        setup='''
import numpy as np, tensorflow as tf, keras
def scale_by(a, b):
    return a / b
class Scale(keras.layers.Layer):
    def call(self, x):
        return scale_by(x, tf.reduce_min(tf.abs(x), axis=0))
''',
        code='''
X = np.random.rand(32, 3).astype("float32"); X[:, 2] = 0.0
y = np.random.rand(32, 1).astype("float32")
model = keras.Sequential([keras.Input((3,)), Scale(name="scale"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, batch_size=32, epochs=1, verbose=0)
''',
        expect=dict(phase={"forward"}, first_op={"RealDiv"}, layer="scale", line_contains="a / b", source_cell="setup")),
    Scenario(
        "c08_preexisting_nan_weights",
        note="Weights already NaN before the cell.",
        setup='''
import numpy as np, keras
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense_a"), keras.layers.Dense(1, name="dense_b")])
model.compile(optimizer="adam", loss="mse")
kernel, bias = model.get_layer("dense_b").get_weights(); kernel[1, 0] = np.nan
model.get_layer("dense_b").set_weights([kernel, bias])
X = np.random.rand(16, 4).astype("float32"); y = np.random.rand(16, 1).astype("float32")
''',
        code='''
model.fit(X, y, epochs=1, verbose=0)
''',
        expect=dict(phase={"input"}, first_op={"ReadVariableOp"}, layer="dense_b", variable="kernel")),
    Scenario(
        "c09_tf_function_custom_step",
        note="A custom training loop with the step in a tf.function of the user's.",
        code='''
import numpy as np, tensorflow as tf, keras
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, name="lin")])
opt = keras.optimizers.SGD(0.01)
X = tf.constant(np.random.randn(16, 3).astype("float32")); y = tf.ones((16, 1))
@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.math.log(model(x)) - y)
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return loss
for step in range(3):
    train_step(X, y)
''',
        expect=dict(phase={"loss"}, first_op={"Log"}, line_contains="tf.math.log(model(x))")),
    Scenario(
        "c10_predict_overflow",
        note="predict() on finite inputs that overflow inside the model.",
        setup='''
import numpy as np, tensorflow as tf, keras
class Expo(keras.layers.Layer):
    def call(self, x):
        return tf.exp(x)
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, kernel_initializer="ones", name="lift"), Expo(name="expo")])
''',
        code='''
out = model.predict(np.array([[1.0, 2.0], [100.0, 3.0]], "float32"), verbose=0)
''',
        expect=dict(phase={"forward"}, first_op={"Exp"}, layer="expo", line_contains="tf.exp(x)")),
)
