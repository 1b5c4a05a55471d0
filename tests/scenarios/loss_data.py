"""Issue 15, part B: the loss configuration, preprocessing inside the model, data from generators, and the
data profile as the root cause of an overflow, in the catalogue format (tests/scenarios/catalogue.py).

SCENARIOS must be located and diagnosed (or warned about) as `expect` says; FALSE_ALARMS are the healthy
counter-examples of each new warning (no diagnosis and no warning allowed). Ground truth: each cell run
plainly (no nanwatch) on TensorFlow 2.21 / Keras 3.15, CPU; `note` gives what was measured. Every cell is
seeded. Run by tests/scenarios/test_loss_data.py.
"""

from tests.scenarios.catalogue import Scenario, catalogue

# 784 "pixels" (28x28), ink in [0.5, 1] in 20% of images for 150 central ones; 200 border pixels inked
# in one image only (a stray scan), the rest never: what standard scaling of rarely inked pixels does.
_RARE_PIXELS = '''
import numpy as np, tensorflow as tf, keras
keras.utils.set_random_seed(25)
rng = np.random.default_rng(25)
n, d = 3000, 784
raw = np.zeros((n, d), "float32")
central = rng.choice(d, 150, replace=False)
raw[:, central] = (rng.random((n, 150)) < 0.2) * rng.uniform(0.5, 1.0, (n, 150))
border = np.setdiff1d(np.arange(d), central)[:200]
raw[rng.integers(0, n), border] = 1.0
'''

_VAE = '''
class Sampling(keras.layers.Layer):
    def call(self, inputs):
        z_mean, z_log_var = inputs
        self.add_loss(-0.5 * tf.reduce_mean(tf.reduce_sum(1 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var), axis=-1)))
        return z_mean + tf.exp(0.5 * z_log_var) * tf.random.normal(tf.shape(z_mean))
inputs = keras.Input((d,))
h = keras.layers.Dense(64, activation="relu", name="encoder")(inputs)
z = Sampling(name="sampling")([keras.layers.Dense(8, name="z_mean")(h), keras.layers.Dense(8, name="z_log_var")(h)])
outputs = keras.layers.Dense(d, name="decoder")(keras.layers.Dense(64, activation="relu")(z))
vae = keras.Model(inputs, outputs)
vae.compile(optimizer=keras.optimizers.Adam(1e-3), loss=lambda x, x_hat: tf.reduce_sum(tf.square(x - x_hat), axis=-1))
vae.fit(X, X, epochs=1, batch_size=32, verbose=0)
'''

_PYDATASET = '''
import numpy as np, keras
rng = np.random.default_rng(22)
X = rng.normal(size=(128, 4)).astype("float32"); y = rng.normal(size=(128, 1)).astype("float32")
class Batches(keras.utils.PyDataset):
    def __len__(self):
        return 8
    def __getitem__(self, i):
        xb = X[16 * i:16 * (i + 1)].copy()
        if i == 5:
            xb[3, 1] = np.inf
        return xb, y[16 * i:16 * (i + 1)]
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(Batches(), epochs=1, verbose=0)
'''

_PIXELS = '''
import numpy as np, keras
rng = np.random.default_rng(8)
X = rng.integers(0, 256, (64, 12, 12, 3), dtype="uint8"); y = rng.integers(0, 2, 64)
'''

SCENARIOS = catalogue(
    "loss_data", "check_numerics",
    Scenario(
        "l01_pydataset_inf_in_batch_5",
        note=("plain: History loss [inf]... a keras.utils.PyDataset serving +Inf at row 3, column 1 of batch 5. "
              "Before this change nanwatch reported op PyFunc, 'no non-finite values counted', no diagnosis."),
        code=_PYDATASET,
        expect=dict(phase={"input"}, first_op=None, cause={"inf_in_input"}, status={"nonfinite"})),
    Scenario(
        "l02_relu_output_into_categorical_crossentropy",
        note=("A ReLU output layer into categorical_crossentropy (from_logits=False): Keras divides the "
              "outputs by their sum, 0/0 = NaN for a row whose every unit is 0."),
        code='''
import numpy as np, keras
keras.utils.set_random_seed(23)
rng = np.random.default_rng(23)
X = rng.normal(size=(128, 6)).astype("float32"); y = keras.utils.to_categorical(rng.integers(0, 3, 128), 3)
model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="relu", name="scores")])
model.compile(optimizer="adam", loss="categorical_crossentropy")
model.fit(X, y, epochs=2, batch_size=32, verbose=0)
''',
        expect=dict(phase={"loss"}, cause={"loss_expects_probabilities"}, status={"nonfinite"})),
    Scenario(
        "l03_softmax_output_with_from_logits",
        note="plain: finite. A softmax output given to a loss built with from_logits=True: a warning.",
        code='''
import numpy as np, keras
rng = np.random.default_rng(24)
X = rng.normal(size=(96, 5)).astype("float32"); y = rng.integers(0, 3, 96)
model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3, activation="softmax")])
model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(X, y, epochs=1, batch_size=32, verbose=0)
''',
        expect=dict(status={"warning"}, any_cause={"probabilities_as_logits"})),
    Scenario(
        "l04_linear_output_into_binary_crossentropy",
        note="plain: finite. A linear output into binary_crossentropy (from_logits=False): a warning.",
        code='''
import numpy as np, keras
rng = np.random.default_rng(26)
X = rng.normal(size=(96, 5)).astype("float32"); y = rng.integers(0, 2, (96, 1)).astype("float32")
model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="binary_crossentropy")
model.fit(X, y, epochs=1, batch_size=32, verbose=0)
''',
        expect=dict(status={"warning"}, any_cause={"loss_expects_probabilities"})),
    Scenario(
        "l05_raw_pixels_without_rescaling",
        note=("plain: finite. Raw 0..255 uint8 images into a Conv2D with no Rescaling (was the healthy f08: "
              "an info note only); the first layer expects inputs of order 1: a warning."),
        code=_PIXELS + '''
model = keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=2, batch_size=16, verbose=0)
''',
        expect=dict(status={"warning"}, any_cause={"unscaled_input"})),
    Scenario(
        "l06_vae_standard_scaled_rare_pixels",
        note=("plain: History loss [nan]. A VAE on pixels standard-scaled as StandardScaler does: 200 border "
              "pixels inked in one image of 3000 become ~55 there (sqrt(3000)); that image's encoding blows up."),
        code=_RARE_PIXELS + '''
std = raw.std(0)
X = ((raw - raw.mean(0)) / np.where(std == 0, 1, std)).astype("float32")   # StandardScaler().fit_transform(raw)
''' + _VAE,
        expect=dict(cause={"rare_values_standardized"}, status={"nonfinite"})),
    Scenario(
        "l07_inf_class_weight",
        note=("class_weight computed as n / (2 * count) of a class label that is not in y (2 for 1): "
              "96 / 0 = inf for class 1; Keras turns it into the sample weights of that class's rows."),
        code='''
import numpy as np, keras
rng = np.random.default_rng(27)
X = rng.normal(size=(96, 4)).astype("float32"); y = np.r_[np.zeros(90), np.ones(6)].astype("float32")
class_weight = {0: 96 / (2 * np.sum(y == 0)), 1: 96 / (2 * np.sum(y == 2))}
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="adam", loss="binary_crossentropy")
model.fit(X, y, epochs=1, batch_size=32, class_weight=class_weight, verbose=0)
''',
        expect=dict(cause={"inf_in_target", "nan_in_target"}, status={"nonfinite"})),
)

FALSE_ALARMS = catalogue(
    "loss_data_healthy", "check_numerics",
    Scenario(
        "l11_normalization_first_layer",
        note=("plain: finite. Features on scales 1..1000 into a model whose first layer is an adapted "
              "keras.layers.Normalization: the model scales them itself (issue 15's false unscaled_input)."),
        code='''
import numpy as np, keras
rng = np.random.default_rng(21)
X = np.column_stack([rng.uniform(0, 1000, 256), rng.uniform(0, 100, 256), rng.uniform(0, 10, 256),
                     rng.uniform(0, 1, 256), rng.uniform(0, 1, 256)]).astype("float32")
y = (X[:, :1] / 1000 + X[:, 3:4]).astype("float32")
norm = keras.layers.Normalization()
norm.adapt(X)
model = keras.Sequential([keras.Input((5,)), norm, keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, epochs=2, batch_size=32, verbose=0)
''',
        expect=dict(status={"healthy"})),
    Scenario(
        "l12_raw_pixels_with_rescaling",
        note="plain: finite. The pixels of l05 into a model that starts with Rescaling(1/255).",
        code=_PIXELS + '''
model = keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Rescaling(1.0 / 255), keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=2, batch_size=16, verbose=0)
''',
        expect=dict(status={"healthy"})),
    Scenario(
        "l13_linear_output_from_logits",
        note="plain: finite. The l04 model with from_logits=True: right.",
        code='''
import numpy as np, keras
rng = np.random.default_rng(26)
X = rng.normal(size=(96, 5)).astype("float32"); y = rng.integers(0, 2, (96, 1)).astype("float32")
model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
model.fit(X, y, epochs=1, batch_size=32, verbose=0, sample_weight=rng.uniform(0.5, 2.0, 96))
''',
        expect=dict(status={"healthy"})),
    Scenario(
        "l14_vae_minmax_pixels",
        note="plain: finite. The VAE of l06 on the same pixels left in 0..1 (no standard scaling).",
        code=_RARE_PIXELS + '''
X = raw
''' + _VAE,
        expect=dict(status={"healthy"})),
    Scenario(
        "l15_healthy_pydataset",
        note="plain: finite. The PyDataset of l01 without the Inf.",
        code=_PYDATASET.replace("xb[3, 1] = np.inf", "xb[3, 1] = 0.5"),
        expect=dict(status={"healthy"})),
)
