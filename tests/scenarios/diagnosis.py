"""nanwatch's own NaN scenarios for the diagnosis, in the catalogue format (tests/scenarios/catalogue.py).

SCENARIOS: 18 NaN/Inf cases that must be located and diagnosed. FALSE_ALARMS: 11 healthy trainings
that must raise no alarm. `expect` is the ground truth measured on TensorFlow 2.21 / Keras 3.15 (CPU)
with tests/tools/measure_scenarios.py (`truth="check_numerics"`), which runs every scenario in a fresh
process twice:
  CN:    under `tf.debugging.enable_check_numerics()` with inter-op parallelism 1 (ops run one at a
         time, so the first op that raises is the first op whose output was NaN/Inf), cell compiled as
         "<cell>" so the op's creation stack names the cell line;
  plain: without instrumentation, timed; then every Keras model's weights, History and
         `predictions`/`loss` left in the namespace are checked for non-finite values.
Each scenario's `note` gives both results. Cause ids: nanwatch.diagnosis.CAUSES, which has two that the
original design's list had not: "input_drift" (predict inputs outside the training range) and "outlier_target".
"seed N" in a note is the article behind example_notebooks/seedN_*.ipynb. Each scenario's plain run
takes 0.1-2 s on an idle 2-core box (f05 ~3 s under load).
"""

from tests.scenarios.catalogue import Scenario, catalogue

SCENARIOS = catalogue(
    "diagnosis", "check_numerics",
    Scenario(
        "d01_nan_in_target_dataframe",
        note=("CN: Placeholder in Dataset_map_grab_batch (Keras' data adapter), shape (200, 1): the"
              " target column. plain: no exception; every weight NaN after fit."),
        code='''
import numpy as np, pandas as pd, keras
rng = np.random.default_rng(1)
df = pd.DataFrame({"area": rng.uniform(0, 1, 200), "rooms": rng.uniform(0, 1, 200), "price": rng.uniform(0, 1, 200)})
df.loc[17, "price"] = np.nan
X, y = df[["area", "rooms"]], df["price"]
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, epochs=1, batch_size=32, verbose=0)
''',
        expect=dict(phase={"input"}, first_op=None, cause={"nan_in_target"}, status={"nonfinite"})),
    Scenario(
        "d02_inf_in_input_ratio_feature",
        note=("CN: Placeholder in Dataset_map_grab_batch, shape (128, 3): the features (income / 0 "
              "= +inf at row 40). plain: every weight NaN after fit."),
        code='''
import numpy as np, keras
rng = np.random.default_rng(2)
income = rng.uniform(1, 2, 128); debt = rng.uniform(0, 1, 128); debt[40] = 0.0
X = np.stack([income, debt, income / debt], axis=1).astype("float32")
y = rng.integers(0, 2, 128).astype("float32")
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="adam", loss="binary_crossentropy")
model.fit(X, y, epochs=1, batch_size=32, verbose=0)
''',
        expect=dict(phase={"input"}, first_op=None, cause={"inf_in_input"}, status={"nonfinite"})),
    Scenario(
        "d03_placeholder_minus_999",
        note=("CN: nothing raised. plain: weights finite. -999 placeholders do not make NaN here; "
              "they must warn."),
        code='''
import numpy as np, keras
rng = np.random.default_rng(3)
X = rng.uniform(0, 1, (200, 4)).astype("float32"); X[rng.choice(200, 12, replace=False), 1] = -999.0
y = rng.uniform(0, 1, (200, 1)).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, epochs=2, batch_size=32, verbose=0)
''',
        expect=dict(status={"warning"}, any_cause={"placeholder_values"})),
    Scenario(
        "d04_nan_in_weights_before_predict",
        note=("CN: ReadVariableOp sequential_1/out_1/Cast/ReadVariableOp (graph "
              "one_step_on_data_distributed), shape (8, 1). plain: predictions non-finite. (A NaN "
              "put in the *hidden* ReLU layer instead was hidden by the ReLU: predictions stayed "
              "finite; measured.)"),
        setup='''
import numpy as np, keras
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="hidden"), keras.layers.Dense(1, name="out")])
model.compile(optimizer="adam", loss="mse")
model.fit(np.random.rand(64, 4), np.random.rand(64, 1), epochs=1, verbose=0)
w, b = model.get_layer("out").get_weights(); w[3, 0] = np.nan
model.get_layer("out").set_weights([w, b])
''',
        code='''
predictions = model.predict(np.random.rand(16, 4), verbose=0)
''',
        expect=dict(layer="out", cause={"nan_in_weights"}, status={"nonfinite"})),
    Scenario(
        "d05_log_of_relu_output_custom_loss",
        note=("CN: Log (graph one_step_on_data), shape (64, 1), created at the cell line of my_bce "
              "(line 6). plain: every weight NaN after fit."),
        code='''
import numpy as np, tensorflow as tf, keras
rng = np.random.default_rng(5)
X = rng.normal(size=(64, 6)).astype("float32"); y = rng.integers(0, 2, (64, 1)).astype("float32")
def my_bce(y_true, y_pred):
    return -tf.reduce_mean(y_true * tf.math.log(y_pred) + (1 - y_true) * tf.math.log(1 - y_pred))
model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="relu", name="score")])
model.compile(optimizer="adam", loss=my_bce)
model.fit(X, y, epochs=1, batch_size=64, verbose=0)
''',
        expect=dict(phase={"loss"}, first_op={"Log"}, line_contains="tf.math.log(", cause={"log_of_nonpositive"})),
    Scenario(
        "d06_sqrt_of_negative_rmsnorm",
        note=("CN: Sqrt (graph one_step_on_data), shape (64, 1), at the RMSNorm.call line. plain: "
              "weights NaN."),
        code='''
import numpy as np, tensorflow as tf, keras
class RMSNorm(keras.layers.Layer):
    def call(self, x):
        return x / tf.sqrt(tf.reduce_mean(x, axis=-1, keepdims=True) + 1e-6)
X = np.random.default_rng(6).normal(size=(64, 8)).astype("float32"); y = np.zeros((64, 1), "float32")
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, name="proj"), RMSNorm(name="rmsnorm"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, epochs=1, batch_size=64, verbose=0)
''',
        expect=dict(phase={"forward"}, first_op={"Sqrt"}, layer="rmsnorm", line_contains="tf.sqrt", cause={"sqrt_of_negative"})),
    Scenario(
        "d07_division_by_zero_mape_loss",
        note=("CN: RealDiv (graph one_step_on_data), shape (32, 1), at the mape line. plain: "
              "weights NaN."),
        code='''
import numpy as np, tensorflow as tf, keras
rng = np.random.default_rng(7)
X = rng.uniform(0, 1, (96, 3)).astype("float32"); y = rng.uniform(1, 2, (96, 1)).astype("float32"); y[10] = 0.0
def mape(y_true, y_pred):
    return tf.reduce_mean(tf.abs(y_true - y_pred) / y_true)
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss=mape)
model.fit(X, y, epochs=1, batch_size=32, verbose=0)
''',
        expect=dict(phase={"loss"}, first_op={"RealDiv"}, line_contains="/ y_true", cause={"division_by_zero"})),
    Scenario(
        "d08_standardize_constant_column_eager",
        note=("CN: eagerly-executing RealDiv, shape (128, 4) (the standardisation line, before "
              "fit). plain: dense/kernel NaN after fit."),
        code='''
import numpy as np, tensorflow as tf, keras
rng = np.random.default_rng(8)
raw = rng.uniform(0, 10, (128, 4)).astype("float32"); raw[:, 2] = 1.0
X = (raw - tf.reduce_mean(raw, axis=0)) / tf.math.reduce_std(raw, axis=0)
y = rng.uniform(0, 1, (128, 1)).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, epochs=1, batch_size=32, verbose=0)
''',
        expect=dict(first_op={"RealDiv"}, line_contains="reduce_std", cause={"division_by_zero", "zero_variance_normalization"},
                    any_cause={"zero_variance_normalization"})),
    Scenario(
        "d09_exp_overflow_poisson_loss",
        note=("CN: Exp (graph one_step_on_data), shape (64, 1), at the poisson_nll line (log_rate "
              "up to ~1500). plain: weights NaN."),
        code='''
import numpy as np, tensorflow as tf, keras
rng = np.random.default_rng(9)
X = rng.uniform(0, 300, (64, 5)).astype("float32"); counts = rng.poisson(3, (64, 1)).astype("float32")
def poisson_nll(y_true, log_rate):
    return tf.reduce_mean(tf.exp(log_rate) - y_true * log_rate)
model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1, kernel_initializer="ones", name="log_rate")])
model.compile(optimizer="adam", loss=poisson_nll)
model.fit(X, counts, epochs=1, batch_size=64, verbose=0)
''',
        expect=dict(phase={"loss"}, first_op={"Exp"}, line_contains="tf.exp(log_rate)", cause={"exp_overflow"})),
    Scenario(
        "d10_float16_overflow_matmul",
        note=("CN: MatMul, dtype float16, shape (32, 4): 300 x 250 x 1 = 75000 > 65504 from finite "
              "inputs. plain: History loss [nan, nan] and predictions NaN (measured with epochs=2);"
              " the weights stay finite (the LossScaleOptimizer skips the non-finite steps; its "
              "scale fell 32768 -> 8192)."),
        setup='''
import keras
keras.mixed_precision.set_global_policy("mixed_float16")
''',
        code='''
import numpy as np, keras
X = np.full((32, 300), 250.0, "float32"); y = np.random.rand(32, 1).astype("float32")
model = keras.Sequential([keras.Input((300,)), keras.layers.Dense(4, kernel_initializer="ones", name="wide"), keras.layers.Dense(1, dtype="float32")])
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, epochs=1, batch_size=32, verbose=0)
''',
        expect=dict(phase={"forward"}, first_op={"MatMul"}, layer="wide", cause={"float16_overflow"}, status={"nonfinite"})),
    Scenario(
        "d11_exploding_gradients_rnn",
        note=("CN: MatMul sequential_1/rnn_1/while/simple_rnn_cell_1/MatMul_1 (the recurrence, "
              "graph ..._rnn_1_while_body), shape (16, 16). plain: every weight NaN. The same model"
              ' in a GradientTape loop (tests/tools/record_dynamics.py "explode_rnn_relu"): loss flat '
              "~600, gradient norm 65 -> 88 -> 112 -> 218 -> 651 -> 1.7e17 over 14 steps, weights "
              "4.18 -> 4.23, NaN at step 15; with clipnorm=1.0 it stays finite."),
        code='''
import numpy as np, keras
keras.utils.set_random_seed(11)
X = np.random.rand(64, 50, 1).astype("float32"); y = X.sum(1)
model = keras.Sequential([keras.Input((50, 1)), keras.layers.SimpleRNN(16, activation="relu", name="rnn"), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.001), loss="mse")
model.fit(X, y, epochs=6, batch_size=16, verbose=0)
''',
        expect=dict(layer="rnn", cause={"exploding_gradients"}, status={"nonfinite"})),
    Scenario(
        "d12_learning_rate_too_high_sgd",
        note=("CN: MatMul sequential_1/dense_2_1/MatMul, shape (32, 1) (forward, after the weights "
              "blew up). plain: History loss [3e33, nan, nan], every weight NaN. Recorded loop "
              '("lr_sgd1_deep_mlp"): first update lr*|g| = 28x the weight norm, loss 168 -> 4.4e8 '
              "-> 1.7e9 -> 4.6e15."),
        code='''
import numpy as np, keras
keras.utils.set_random_seed(12)
X = np.random.rand(256, 8).astype("float32"); y = (X @ np.arange(8.0).reshape(8, 1)).astype("float32")
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss="mse")
model.fit(X, y, epochs=3, batch_size=32, verbose=0)
''',
        expect=dict(phase={"forward"}, first_op={"MatMul"}, cause={"learning_rate_too_high"}, status={"nonfinite"})),
    Scenario(
        "d13_large_initial_weights",
        note=("CN: Square adam/Square (graph one_step_on_data), shape (32, 64): Adam's grad**2 "
              "overflows at the first step (gradients ~1e20 from RandomNormal(stddev=50) kernels, "
              "400x the Glorot scale). plain: weights NaN."),
        code='''
import numpy as np, keras
X = np.random.rand(64, 32).astype("float32"); y = np.random.rand(64, 1).astype("float32")
init = keras.initializers.RandomNormal(stddev=50.0)
model = keras.Sequential([keras.Input((32,))] + [keras.layers.Dense(64, activation="relu", kernel_initializer=init) for _ in range(6)] + [keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, epochs=1, batch_size=32, verbose=0)
''',
        expect=dict(phase={"optimizer"}, first_op={"Square"}, cause={"large_initial_weights"}, status={"nonfinite"})),
    Scenario(
        "d14_predict_unscaled_after_scaled_training",
        note=("CN: nothing raised. plain: predictions finite (the sigmoid saturates). Seed 003's "
              '"scaling inconsistencies": the model is fitted on standardised features (about '
              "-1.7..1.7), then asked to predict on raw ones (1500..2500). Fit and predict share "
              "the watched cell so the engine has the training ranges (it keeps them per model "
              "across watched cells; a fit in an unwatched setup cell leaves none)."),
        code='''
import numpy as np, keras
rng = np.random.default_rng(14)
raw = np.column_stack([rng.uniform(1000, 3000, 200), rng.uniform(0.1, 0.3, 200)])
mu, sd = raw.mean(0), raw.std(0)
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(10, activation="sigmoid"), keras.layers.Dense(1)])
model.compile(loss="mse", optimizer="adam")
model.fit((raw - mu) / sd, rng.uniform(0, 1, 200), epochs=2, verbose=0)
new = np.array([[1500.0, 0.15], [2500.0, 0.25]])
predictions = model.predict(new, verbose=0)
''',
        expect=dict(status={"warning"}, any_cause={"input_drift"})),
    Scenario(
        "d15_inf_in_target_log_transform",
        note=("CN: a data-adapter op in Dataset_map_grab_batch: GatherV2 shape (None,) in one run, "
              "Placeholder shape (120,) in the next (both the targets). np.log(0) = -inf at rows 9,"
              " 77. plain: every weight NaN."),
        code='''
import numpy as np, keras
rng = np.random.default_rng(15)
X = rng.uniform(0, 1, (120, 4)).astype("float32"); price = rng.uniform(1e3, 1e4, 120); price[[9, 77]] = 0.0
y = np.log(price).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, epochs=1, batch_size=32, verbose=0)
''',
        expect=dict(phase={"input"}, first_op=None, cause={"inf_in_target"}, status={"nonfinite"})),
    Scenario(
        "d16_unscaled_features_sgd",
        note=("CN: nothing raised. plain: weights finite. Unscaled features (500..5000 next to "
              '1..6) do not make NaN with SGD(0.01) here (seed 002/004 say they "often" do): '
              "History loss ~1e15..1e24 but finite for all 8 weight seeds tried "
              "(keras.utils.set_random_seed(0..7), measured); they must warn."),
        code='''
import numpy as np, keras
keras.utils.set_random_seed(16)
rng = np.random.default_rng(16)
X = np.column_stack([rng.uniform(500, 5000, 200), rng.integers(1, 7, 200)]).astype("float32")
y = (X[:, :1] / 5000 + rng.normal(0, 0.05, (200, 1))).astype("float32")
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(X, y, epochs=3, batch_size=32, verbose=0)
''',
        expect=dict(status={"warning"}, any_cause={"unscaled_input"})),
    Scenario(
        "d17_nan_in_tf_data_pipeline",
        note=("CN: IteratorGetNext (graph multi_step_on_iterator), shape (None, 5): the NaN arrives"
              " from tf.data (row 61 of X is batch 3, row 13). plain: dense/kernel NaN."),
        code='''
import numpy as np, tensorflow as tf, keras
rng = np.random.default_rng(17)
X = rng.random((96, 5)).astype("float32"); X[61, 3] = np.nan
y = rng.random((96, 1)).astype("float32")
ds = tf.data.Dataset.from_tensor_slices((X, y)).batch(16)
model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(ds, epochs=1, verbose=0)
''',
        expect=dict(phase={"input"}, first_op=None, cause={"nan_in_input"}, status={"nonfinite"})),
    Scenario(
        "d18_log_in_tf_function_train_step",
        note=("CN: Log (graph train_step, i.e. inside the user's tf.function), shape (64, 1), at "
              "the `loss = tf.reduce_mean(tf.math.log(e))` line (e = a linear layer's output, about"
              " half negative). plain: loss NaN; the weights stay finite (d log(e)/de = 1/e is "
              "finite)."),
        code='''
import numpy as np, tensorflow as tf, keras
X = tf.constant(np.random.default_rng(18).normal(size=(64, 4)).astype("float32"))
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, name="energy")])
optimizer = keras.optimizers.SGD(learning_rate=0.01)
@tf.function
def train_step(x):
    with tf.GradientTape() as tape:
        e = model(x)
        loss = tf.reduce_mean(tf.math.log(e))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss
for step in range(3):
    loss = train_step(X)
''',
        expect=dict(phase={"loss"}, first_op={"Log"}, layer=None, line_contains="tf.math.log(e)", cause={"log_of_nonpositive"})),
)

FALSE_ALARMS = catalogue(
    "false_alarms", "check_numerics",
    Scenario(
        "f01_cnn_batchnorm_dropout",
        note="CN: nothing raised. plain: all finite (1.2 s).",
        code='''
import numpy as np, keras
X = np.random.rand(64, 16, 16, 1).astype("float32"); y = np.random.randint(0, 3, 64)
model = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.BatchNormalization(),
                          keras.layers.MaxPooling2D(), keras.layers.Dropout(0.3), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=2, batch_size=16, verbose=0)
''',
        expect=dict(status={"healthy"})),
    Scenario(
        "f02_lstm_sequences",
        note="CN: nothing raised. plain: all finite.",
        code='''
import numpy as np, keras
X = np.random.rand(64, 12, 3).astype("float32"); y = np.random.rand(64, 1).astype("float32")
model = keras.Sequential([keras.Input((12, 3)), keras.layers.LSTM(16), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, epochs=2, batch_size=16, verbose=0)
''',
        expect=dict(status={"healthy"})),
    Scenario(
        "f03_mixed_precision_mlp",
        note="CN: nothing raised (no Inf even in the scaled gradients here). plain: all finite.",
        setup='''
import keras
keras.mixed_precision.set_global_policy("mixed_float16")
''',
        code='''
import numpy as np, keras
X = np.random.rand(128, 16).astype("float32"); y = np.random.randint(0, 2, 128).astype("float32")
model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1, activation="sigmoid", dtype="float32")])
model.compile(optimizer="adam", loss="binary_crossentropy")
model.fit(X, y, epochs=2, batch_size=32, verbose=0)
''',
        expect=dict(status={"healthy"})),
    Scenario(
        "f04_class_imbalance",
        note="CN: nothing raised. plain: all finite. 1% positives, class_weight 50.",
        code='''
import numpy as np, keras
rng = np.random.default_rng(4)
X = rng.normal(size=(400, 10)).astype("float32"); y = (rng.random(400) < 0.01).astype("float32")
model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy", keras.metrics.AUC()])
model.fit(X, y, epochs=2, batch_size=32, class_weight={0: 1.0, 1: 50.0}, verbose=0)
''',
        expect=dict(status={"healthy"})),
    Scenario(
        "f05_tiny_dataset_overfit",
        note="CN: nothing raised. plain: all finite. 4 samples, 20 epochs.",
        code='''
import numpy as np, keras
X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], "float32"); y = np.array([0, 1, 1, 0], "float32")
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
model.fit(X, y, epochs=20, verbose=0)
''',
        expect=dict(status={"healthy"})),
    Scenario(
        "f06_large_finite_loss_prices",
        note=("CN: nothing raised. plain: all finite; MSE ~1.4e11 (unscaled price targets: large, "
              "finite, healthy)."),
        code='''
import numpy as np, keras
rng = np.random.default_rng(6)
X = rng.uniform(0, 1, (256, 5)).astype("float32"); y = (2e5 + 3e5 * X[:, :1] + rng.normal(0, 2e4, (256, 1))).astype("float32")
model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, epochs=3, batch_size=32, verbose=0)
''',
        expect=dict(status={"healthy"})),
    Scenario(
        "f07_onehot_dataframe",
        note=("CN: nothing raised. plain: all finite. One-hot columns with rare categories and a "
              "constant bias column."),
        code='''
import numpy as np, pandas as pd, keras
rng = np.random.default_rng(7)
df = pd.DataFrame({"city": rng.choice(["paris", "oslo", "rome", "lima", "kyiv"], 300, p=[.6, .3, .07, .02, .01]),
                   "age": rng.uniform(0, 1, 300), "bias": 1.0})
X = pd.get_dummies(df, columns=["city"], dtype="float32").astype("float32"); y = rng.integers(0, 2, 300).astype("float32")
model = keras.Sequential([keras.Input((X.shape[1],)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="adam", loss="binary_crossentropy")
model.fit(X, y, epochs=2, batch_size=32, verbose=0)
''',
        expect=dict(status={"healthy"})),
    Scenario(
        "f08_raw_uint8_images",
        note=("CN: nothing raised. plain: all finite. Raw 0..255 uint8 images into a model that rescales them "
              "(issue 15: without the Rescaling layer they are now a warning, tests/scenarios/loss_data.py l05)."),
        code='''
import numpy as np, keras
rng = np.random.default_rng(8)
X = rng.integers(0, 256, (64, 12, 12, 3), dtype="uint8"); y = rng.integers(0, 2, 64)
model = keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Rescaling(1.0 / 255), keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=2, batch_size=16, verbose=0)
''',
        expect=dict(status={"healthy"})),
    Scenario(
        "f09_saturated_sigmoid_builtin_bce",
        note=("CN: nothing raised. plain: all finite. Seed 000 ex. 3 with the built-in BCE: "
              "sigmoid(200) == 1.0, all targets 0, yet Keras clips the probabilities, so the loss "
              "stays finite."),
        code='''
import numpy as np, keras
X = np.full((64, 10), 20.0, "float32"); y = np.zeros((64, 1), "float32")
model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(1, activation="sigmoid", kernel_initializer="ones")])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=2, batch_size=32, verbose=0)
''',
        expect=dict(status={"healthy"})),
    Scenario(
        "f10_noisy_sgd_momentum",
        note=("CN: nothing raised. plain: all finite. (With learning_rate=0.05 instead of 0.01 this"
              " run went NaN: CN MatMul, measured; so 0.01.)"),
        code='''
import numpy as np, keras
rng = np.random.default_rng(10)
X = rng.normal(size=(512, 20)).astype("float32"); y = (X[:, :1] * 3 + rng.normal(0, 1, (512, 1))).astype("float32")
model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9), loss="mse")
model.fit(X, y, epochs=3, batch_size=8, verbose=0)
''',
        expect=dict(status={"healthy"})),
    Scenario(
        "f11_embedding_padded_token_ids",
        note=("CN: nothing raised. plain: all finite. Integer token ids up to 4999 (padded with 0) "
              'are not "unscaled".'),
        code='''
import numpy as np, keras
rng = np.random.default_rng(11)
lengths = rng.integers(3, 30, 128)
X = np.zeros((128, 30), "int32")
for i, n in enumerate(lengths):
    X[i, :n] = np.minimum(rng.zipf(1.3, n), 4999)
y = rng.integers(0, 2, 128).astype("float32")
model = keras.Sequential([keras.Input((30,), dtype="int32"), keras.layers.Embedding(5000, 16, mask_zero=True),
                          keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=2, batch_size=32, verbose=0)
''',
        expect=dict(status={"healthy"})),
)
