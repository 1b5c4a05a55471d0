"""Real numerical bugs written by others (issue 15, item 6), ported to TensorFlow 2.21 / Keras 3.

Each scenario is a public buggy program from a benchmark of numerical bugs, ported by hand: the original's
model, loss (hand-written math stays hand-written: Keras 3's own losses clip), optimizer, hyperparameters
and the bug itself are kept; downloads (MNIST, make_blobs, make_circles, CIFAR-10) are replaced by small
seeded synthetic data of the same shape and range, built in the scenario's setup cell (MNIST_LIKE, BLOBS,
CIRCLES, CIFAR_LIKE); TF1 sessions become a tf.function step (graph), PyTorch loops an eager GradientTape
loop. The originals loop `while True` until a checker sees NaN; a port runs a fixed number of steps.
FIXED holds developers' fixes of some of them, which must run healthy.

Sources (read, not copied; nothing fetched is committed):
  GRIST   github.com/Jacob-yen/GRIST, scripts/study_case/ID_N (ESEC/FSE 2021), IDs 1-10 and 50-63. Its README:
          56 of its 79 bugs were found by fuzzing inputs (GRIST, DEBAR); the `_grist.py` twins add GRIST's search.
  AUTOTRAINER  the model code collected in github.com/DeepDiagnosis/ICSE2022, "AUTOTRAINER Model Code/
          Models_Blob.py" and "Models_Circle.py", DeepDiagnosis's verdicts in "DeepDiagnosis Result/".
  UMLAUT  github.com/BerkeleyHCI/umlaut, user_eval/eval_b.py (CHI 2021 user study).

Ground truth (truth "realbugs", tests/tools/measure_realbugs.py), without nanwatch, inter-op parallelism 1:
plain (the first step whose loss is non-finite; variables, weights and optimizer slots left non-finite) and
under tf.debugging.enable_check_numerics() (the first op that raises, its op name and cell line). Each note
ends with its measurement; FACTS[name] holds what the rates (tests/tools/realbug_rates.py,
docs/real-bugs.md) are scored on. Run by tests/scenarios/test_realbugs.py.
"""

import dataclasses

from tests.scenarios.catalogue import Scenario, catalogue

# mnist.train stand-in: 784 pixels in [0, 1] (about 19% lit, as in MNIST), one-hot labels over 10 digits.
MNIST_LIKE = '''
import numpy as np

def mnist_like(n, seed):
    rng = np.random.default_rng(seed)
    strokes = rng.random((10, 784)) < 0.19          # one stroke pattern per digit
    labels = rng.integers(0, 10, n)
    lit = strokes[labels] & (rng.random((n, 784)) < 0.85)
    images = np.where(lit, rng.uniform(0.5, 1.0, (n, 784)), 0.0).astype("float32")
    return images, np.eye(10, dtype="float32")[labels]

class Train:
    """mnist.train: next_batch walks the seeded set in order, wrapping around."""
    def __init__(self, n=2000, seed=0):
        self.images, self.labels = mnist_like(n, seed)
        self.num_examples, self._at = n, 0
    def next_batch(self, batch_size):
        idx = np.arange(self._at, self._at + batch_size) % self.num_examples
        self._at = (self._at + batch_size) % self.num_examples
        return self.images[idx], self.labels[idx]

mnist_train = Train()
'''

# sklearn.datasets.make_blobs(n_samples=600, centers=3, n_features=2) stand-in: centres uniform in (-10, 10),
# unit spread, one-hot labels (AUTOTRAINER's Blob task).
BLOBS = '''
import numpy as np
rng = np.random.default_rng(7)
centers = rng.uniform(-10, 10, (3, 2))
labels = rng.integers(0, 3, 600)
X = (centers[labels] + rng.normal(0, 1, (600, 2))).astype("float32")
Y = np.eye(3, dtype="float32")[labels]
'''

# sklearn.datasets.make_circles(n_samples=600, noise=0.1, factor=0.5) stand-in (AUTOTRAINER's Circle task).
CIRCLES = '''
import numpy as np
rng = np.random.default_rng(8)
Y = rng.integers(0, 2, 600).astype("float32")
angle = rng.uniform(0, 2 * np.pi, 600)
radius = np.where(Y == 1, 0.5, 1.0)
X = (np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1) + rng.normal(0, 0.1, (600, 2))).astype("float32")
'''

# tf.keras.datasets.cifar10 stand-in: 256 images 32x32x3, uint8 pixels scaled by 255 as the program does,
# integer labels 0..9.
CIFAR_LIKE = '''
import numpy as np
rng = np.random.default_rng(10)
train_labels = rng.integers(0, 10, (256, 1))
train_images = rng.integers(0, 256, (256, 32, 32, 3)).astype("uint8")
'''

_SOFTMAX_REGRESSION = '''
import tensorflow as tf, keras
tf.random.set_seed(20180130)
W = tf.Variable(tf.zeros([784, 10]))
b = tf.Variable(tf.zeros([10]))
optimizer = {optimizer}
@tf.function
def train_step(x, y_):
    with tf.GradientTape() as tape:
        y = tf.nn.softmax(tf.matmul(x, W) + b)
        cross_entropy = {loss}
    grads = tape.gradient(cross_entropy, [W, b])
    optimizer.apply_gradients(zip(grads, [W, b]))
    return cross_entropy
for step in range({steps}):
    batch_xs, batch_ys = mnist_train.next_batch({batch})
    loss = train_step(batch_xs, batch_ys)
'''


def _softmax_regression(optimizer, loss, batch, steps=60):
    return _SOFTMAX_REGRESSION.format(optimizer=optimizer, loss=loss, batch=batch, steps=steps)


_EXP_CHAIN = '''
import keras
from keras import initializers
keras.utils.set_random_seed(1)
def vs():
    return initializers.VarianceScaling(scale=2.0, mode="fan_in", distribution="uniform")
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(units=5, kernel_initializer=vs())])
model.add(keras.layers.Activation("{activation}"))
for _ in range({hidden}):
    model.add(keras.layers.Dense(units=5, kernel_initializer=vs(), bias_initializer=initializers.Zeros()))
    model.add(keras.layers.Activation("{activation}"))
model.add(keras.layers.Dense(units={out}, kernel_initializer=vs()))
model.add(keras.layers.Activation("sigmoid"))
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="{loss}", metrics=["accuracy"])
model.fit(X, Y, batch_size=32, epochs=1, verbose=0)
'''


def _blob(activation, hidden):
    return _EXP_CHAIN.format(activation=activation, hidden=hidden, out=3, loss="categorical_crossentropy")


def _circle(activation, hidden):
    return _EXP_CHAIN.format(activation=activation, hidden=hidden, out=1, loss="binary_crossentropy")


_RBM = '''
import tensorflow as tf, keras
tf.random.set_seed(0)
class RBM:
    def __init__(self, n_vis=784, n_hin=500, k=5):
        self.W = tf.Variable(tf.random.normal((n_hin, n_vis)) * 1e-2)
        self.v_bias = tf.Variable(tf.zeros(n_vis))
        self.h_bias = tf.Variable(tf.zeros(n_hin))
        self.k = k
    def sample_from_p(self, p):
        return tf.nn.relu(tf.sign(p - tf.random.uniform(tf.shape(p))))
    def v_to_h(self, v):
        p_h = tf.sigmoid(tf.matmul(v, self.W, transpose_b=True) + self.h_bias)
        return p_h, self.sample_from_p(p_h)
    def h_to_v(self, h):
        p_v = tf.sigmoid(tf.matmul(h, self.W) + self.v_bias)
        return p_v, self.sample_from_p(p_v)
    def __call__(self, v):
        pre_h1, h1 = self.v_to_h(v)
        h_ = h1
        for _ in range(self.k):
            pre_v_, v_ = self.h_to_v(h_)
            pre_h_, h_ = self.v_to_h(v_)
        return v, v_
    def free_energy(self, v):
        vbias_term = tf.linalg.matvec(v, self.v_bias)
        wx_b = tf.matmul(v, self.W, transpose_b=True) + self.h_bias
        temp = tf.math.log(tf.exp(wx_b) + 1)
        hidden_term = tf.reduce_sum(temp, axis=1)
        return tf.reduce_mean(-hidden_term - vbias_term)
rbm = RBM(k=1)
train_op = keras.optimizers.Adam(0.005)
variables = [rbm.W, rbm.v_bias, rbm.h_bias]
for step in range(8):
    data, target = mnist_train.next_batch(64)
    with tf.GradientTape() as tape:
        v, v1 = rbm(data)
        loss = rbm.free_energy(v) - rbm.free_energy(v1)
    train_op.apply_gradients(zip(tape.gradient(loss, variables), variables))
'''

_H03 = '''
import tensorflow as tf, keras
x_T = tf.constant([[1, 2, 1, 1], [2, 1, 3, 2], [3, 1, 3, 4], [4, 1, 5, 5], [1, 7, 5, 5], [1, 2, 5, 6], [1, 6, 6, 6], [1, 7, 7, 7.]])
y_T = tf.constant([[0, 0, 1], [0, 0, 1], [0, 0, 1], [0, 1, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0], [1, 0, 0.]])
'''

_KAGGLE01 = '''
import tensorflow as tf, keras
x_train = tf.constant([[1, 2], [2, 3], [3, 1], [4, 3], [5, 3], [6, 2.]])
y_train = tf.constant([[0], [0], [0], [1], [1], [1.]])
'''

_GRIST = "GRIST scripts/study_case/"

SCENARIOS = catalogue(
    "realbugs", "realbugs",
    # --- GRIST: softmax regressions with -sum(y_ * log(softmax)) (the TF MNIST beginners' tutorial bug) ---
    Scenario(
        "g03_ghips9_softmax_log",
        expect=dict(status={"healthy"}),
        note=_GRIST + "ID_3/ghips9.py (TensorFlow-Examples logistic regression): softmax regression, cost = "
             "-reduce_sum(y*log(activation)), Adam(0.005), batch 100. Bug: log of a softmax output that underflows "
             "to 0. Fix: tf.nn.softmax_cross_entropy_with_logits (or a clipped log).",
        setup=MNIST_LIKE,
        code=_softmax_regression("keras.optimizers.Adam(learning_rate=0.005, epsilon=1e-8)",
                                 "-tf.reduce_sum(y_ * tf.math.log(y))", 100)),
    Scenario(
        "g10_soips14_softmax_log",
        expect=dict(status={"healthy"}),
        note=_GRIST + "ID_10/soips14.py (Stack Overflow, TF MNIST beginners): softmax regression, cross_entropy = "
             "-reduce_sum(y_*log(y)), GradientDescent(0.005), batch 205. Bug: log(0) when a softmax output underflows."
             " Fix: softmax_cross_entropy_with_logits.",
        setup=MNIST_LIKE,
        code=_softmax_regression("keras.optimizers.SGD(learning_rate=0.005)", "-tf.reduce_sum(y_ * tf.math.log(y))", 205)),
    Scenario(
        "g50_dl1l_softmax_log",
        expect=dict(status={"healthy"}),
        note=_GRIST + "ID_50/DL_1L.py (ImportantProjects): softmax regression, reduce_mean(-reduce_sum(y_*log(y), 1)), "
             "GradientDescent(0.05), batch 100. Bug and fix as g10.",
        setup=MNIST_LIKE,
        code=_softmax_regression("keras.optimizers.SGD(learning_rate=0.05)",
                                 "tf.reduce_mean(-tf.reduce_sum(y_ * tf.math.log(y), axis=[1]))", 100)),
    Scenario(
        "g52_karch_softmax_log",
        expect=dict(status={"healthy"}),
        note=_GRIST + "ID_52/5_mnist_full_connection.py (karch): softmax regression, reduce_mean(-reduce_sum(y_*log(y)))"
             " (a sum: the mean of a scalar), GradientDescent(0.005), batch 100. Bug and fix as g10.",
        setup=MNIST_LIKE,
        code=_softmax_regression("keras.optimizers.SGD(learning_rate=0.005)",
                                 "tf.reduce_mean(-tf.reduce_sum(y_ * tf.math.log(y)))", 100)),
    Scenario(
        "g60_tftest_softmax_log",
        expect=dict(status={"healthy"}),
        note=_GRIST + "ID_60/simple_saveAndReloadModel.py (tensorflow_test): softmax regression, -reduce_sum(y_*log(y)),"
             " GradientDescent(0.01), batch 100. Bug and fix as g10.",
        setup=MNIST_LIKE,
        code=_softmax_regression("keras.optimizers.SGD(learning_rate=0.01)", "-tf.reduce_sum(y_ * tf.math.log(y))", 100)),
    Scenario(
        "g06_soips1_cnn_softmax_log",
        expect=dict(status={"healthy"}),
        note=_GRIST + "ID_6/soips1.py (Stack Overflow 'Tensorflow NaN bug?'; ID_7 soips2 and ID_8 soips6 are the same "
             "program): TF's Deep MNIST CNN (two 5x5 conv + pool, fc 1024, dropout), cross_entropy = "
             "-reduce_sum(y_*log(y_conv)), Adam(1e-4), batch 50. Bug: log(0) once the softmax saturates. Fix: "
             "softmax_cross_entropy_with_logits / clip_by_value(y_conv, 1e-10, 1.0).",
        setup=MNIST_LIKE,
        code='''
import tensorflow as tf, keras
tf.random.set_seed(20180130)
def weight_variable(shape):
    return tf.Variable(tf.random.truncated_normal(shape, stddev=0.1))
def bias_variable(shape):
    return tf.Variable(tf.constant(0.1, shape=shape))
def conv2d(x, W):
    return tf.nn.conv2d(x, W, strides=[1, 1, 1, 1], padding="SAME")
def max_pool_2x2(x):
    return tf.nn.max_pool2d(x, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
W_conv1, b_conv1 = weight_variable([5, 5, 1, 32]), bias_variable([32])
W_conv2, b_conv2 = weight_variable([5, 5, 32, 64]), bias_variable([64])
W_fc1, b_fc1 = weight_variable([7 * 7 * 64, 1024]), bias_variable([1024])
W_fc2, b_fc2 = weight_variable([1024, 10]), bias_variable([10])
variables = [W_conv1, b_conv1, W_conv2, b_conv2, W_fc1, b_fc1, W_fc2, b_fc2]
optimizer = keras.optimizers.Adam(1e-4, epsilon=1e-8)
@tf.function
def train_step(x, y_, keep_prob):
    with tf.GradientTape() as tape:
        x_image = tf.reshape(x, [-1, 28, 28, 1])
        h_pool1 = max_pool_2x2(tf.nn.relu(conv2d(x_image, W_conv1) + b_conv1))
        h_pool2 = max_pool_2x2(tf.nn.relu(conv2d(h_pool1, W_conv2) + b_conv2))
        h_fc1 = tf.nn.relu(tf.matmul(tf.reshape(h_pool2, [-1, 7 * 7 * 64]), W_fc1) + b_fc1)
        h_fc1_drop = tf.nn.dropout(h_fc1, rate=1 - keep_prob)
        y_conv = tf.nn.softmax(tf.matmul(h_fc1_drop, W_fc2) + b_fc2)
        cross_entropy = -tf.reduce_sum(y_ * tf.math.log(y_conv))
    optimizer.apply_gradients(zip(tape.gradient(cross_entropy, variables), variables))
    return cross_entropy
for step in range(2):
    batch = mnist_train.next_batch(50)
    loss = train_step(batch[0], batch[1], 0.5)
'''),
    # --- GRIST: hand-written binary cross-entropy on a sigmoid ---
    Scenario(
        "g09_soips7_sigmoid_bce",
        expect=dict(status={"healthy"}),
        note=_GRIST + "ID_9/soips7.py (Stack Overflow): one-hidden-layer sigmoid MLP, zero-initialised, cross_entropy = "
             "reduce_sum(-y*log(y_) - (1-y)*log(1-y_), 1), GradientDescent(0.5), batch 100. Bugs (9a, 9b): log(y_) and "
             "log(1-y_) once the sigmoid saturates to 0 or 1. Fix (commented in the original): "
             "tf.nn.sigmoid_cross_entropy_with_logits.",
        setup=MNIST_LIKE,
        code='''
import tensorflow as tf, keras
W_h1 = tf.Variable(tf.zeros([784, 512]))
W_out = tf.Variable(tf.zeros([512, 10]))
optimizer = keras.optimizers.SGD(learning_rate=0.5)
@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        h1 = tf.nn.sigmoid(tf.matmul(x, W_h1))
        y_ = tf.nn.sigmoid(tf.matmul(h1, W_out))
        cross_entropy = tf.reduce_sum(- y * tf.math.log(y_) - (1 - y) * tf.math.log(1 - y_), 1)
        loss = tf.reduce_mean(cross_entropy)
    optimizer.apply_gradients(zip(tape.gradient(loss, [W_h1, W_out]), [W_h1, W_out]))
    return loss
for step in range(60):
    batch_x, batch_y = mnist_train.next_batch(100)
    loss1 = train_step(batch_x, batch_y)
'''),
    # --- GRIST: PyTorch programs with their own in-code data (ported to eager TensorFlow) ---
    Scenario(
        "g53_h02_logistic_manual",
        expect=dict(status={"healthy"}),
        note=_GRIST + "ID_53/h02_20191644.py (DataScience.h02, PyTorch): logistic regression on its own 12 points, "
             "cost = mean(-y*log(h) - (1-y)*log(1-h)), W and b updated by hand with lr 1.0. Bug: log(h) / log(1-h) "
             "when the sigmoid saturates. Fix: torch.nn.functional.binary_cross_entropy_with_logits.",
        code='''
import tensorflow as tf
x_train = tf.constant([[1], [2], [3], [4], [5], [2.5], [3.5], [0], [3.1], [2.7], [2.8], [2.9]])
y_train = tf.constant([[1], [1], [1], [0], [0], [0], [0], [1], [0], [1], [1], [1.]])
W = tf.zeros((1, 1))
b = tf.zeros((1, 1))
lr = 1.0
for step in range(30):
    with tf.GradientTape() as tape:
        tape.watch([W, b])
        hypothesis = tf.sigmoid(tf.matmul(x_train, W) + b)
        cost = tf.reduce_mean(-y_train * tf.math.log(hypothesis) - (1 - y_train) * tf.math.log(1 - hypothesis))
    W_grad, b_grad = tape.gradient(cost, [W, b])
    W = W - lr * W_grad
    b = b - lr * b_grad
'''),
    Scenario(
        "g54_h03_softmax_log",
        expect=dict(status={"healthy"}),
        note=_GRIST + "ID_54/h03_20191644.py (DataScience.h03, PyTorch): softmax regression on its own 8 points, "
             "cost = -mean(sum(y*log(softmax), 1)), Adam(0.1). Bug: log of a softmax output that underflows to 0. Fix "
             "(later in the same file): nn.Linear + F.cross_entropy on the logits.",
        code=_H03 + '''W = tf.Variable(tf.zeros((4, 3)))
b = tf.Variable(tf.zeros((1, 3)))
optimizer = keras.optimizers.Adam(learning_rate=0.1, epsilon=1e-8)
for step in range(30):
    with tf.GradientTape() as tape:
        hypothesis = tf.nn.softmax(tf.matmul(x_T, W) + b, axis=1)
        cost = -tf.reduce_mean(tf.reduce_sum(y_T * tf.math.log(hypothesis), axis=1))
    optimizer.apply_gradients(zip(tape.gradient(cost, [W, b]), [W, b]))
'''),
    Scenario(
        "g56_kaggle01_logistic_log",
        expect=dict(status={"healthy"}),
        note=_GRIST + "ID_56/01_Logistic_Regression.py (start_beginner_kaggle.01, PyTorch): logistic regression on its "
             "own 6 points, cost = -(y*log(h) + (1-y)*log(1-h)).mean(), SGD(lr=1). Bug: log(h) / log(1-h) at a "
             "saturated sigmoid. Fix (in the same file): F.binary_cross_entropy (PyTorch clamps its log at -100).",
        code=_KAGGLE01 + '''W = tf.Variable(tf.zeros((2, 1)))
b = tf.Variable(tf.zeros(1))
optimizer = keras.optimizers.SGD(learning_rate=1.0)
for step in range(30):
    with tf.GradientTape() as tape:
        hypothesis = tf.sigmoid(tf.matmul(x_train, W) + b)
        cost = -tf.reduce_mean(y_train * tf.math.log(hypothesis) + (1 - y_train) * tf.math.log(1 - hypothesis))
    optimizer.apply_gradients(zip(tape.gradient(cost, [W, b]), [W, b]))
'''),
    Scenario(
        "g57_kaggle03_softmax_log",
        expect=dict(status={"healthy"}),
        note=_GRIST + "ID_57/03_softmax_cost.py (start_beginner_kaggle.03, PyTorch): softmax of z = rand(3, 5), cost = "
             "(y_one_hot * -log(softmax(z))).sum(1).mean() with fresh random labels each iteration; z is never "
             "updated (no optimizer in the loop). Bug: -log(softmax) of an underflowed output. Fix (in the same file): "
             "F.log_softmax / F.cross_entropy.",
        code='''
import tensorflow as tf
tf.random.set_seed(1)
z = tf.Variable(tf.random.uniform((3, 5)))
for step in range(20):
    with tf.GradientTape() as tape:
        hypothesis = tf.nn.softmax(z, axis=1)
        y_one_hot = tf.one_hot(tf.random.uniform((3,), 0, 5, dtype=tf.int32), 5)
        cost = tf.reduce_mean(tf.reduce_sum(y_one_hot * -tf.math.log(hypothesis), axis=1))
    grad = tape.gradient(cost, z)
'''),
    Scenario(
        "g59_tfbook_manual_gradient",
        expect=dict(status={"healthy"}),
        note=_GRIST + "ID_59/code_06.py (tensorflow_book, get_loss1): softmax regression, w ~ uniform(-1, 1), "
             "cross_entropy = reduce_mean(-reduce_sum(y*log(pred), 1)), the gradient written by hand and applied with "
             "lr 0.01, batch 100. Bug: log(pred) at 0; the developer wrote tf.clip_by_value(pred, 1e-15, 1.0) but "
             "dropped its result. Fix: pred = tf.clip_by_value(pred, 1e-15, 1.0).",
        setup=MNIST_LIKE,
        code='''
import tensorflow as tf
tf.random.set_seed(59)
learning_rate = 0.01
w = tf.Variable(tf.random.uniform([784, 10], -1, 1), name="weights")
b = tf.Variable(tf.zeros([10]), name="bias")
@tf.function
def train_step(x, y):
    pred = tf.nn.softmax(tf.add(tf.matmul(x, w), b))
    tf.clip_by_value(pred, 1e-15, 1.0)
    cross_entropy = tf.reduce_mean(-tf.reduce_sum(y * tf.math.log(pred), axis=1))
    w_grad = - tf.matmul(tf.transpose(x), y - pred)
    b_grad = - tf.reduce_mean(tf.matmul(tf.transpose(x), y - pred), axis=0)
    w.assign(w - learning_rate * w_grad)
    b.assign(b - learning_rate * b_grad)
    return cross_entropy
for step in range(60):
    batch_xs, batch_ys = mnist_train.next_batch(100)
    loss = train_step(batch_xs, batch_ys)
'''),
    Scenario(
        "g61_tfproject_mlp_log",
        expect=dict(status={"healthy"}),
        note=_GRIST + "ID_61/multi_layer_perceptron.py (tensorflow_project): 784-300 ReLU MLP, W2 zero-initialised, "
             "softmax, cross_entropy = -reduce_sum(y_*log(y)), Adagrad(0.01), batch 128, keep_prob 1. Bug and fix as g10.",
        setup=MNIST_LIKE,
        code='''
import tensorflow as tf, keras
tf.random.set_seed(61)
W1 = tf.Variable(tf.random.truncated_normal([784, 300], stddev=0.1))
b1 = tf.Variable(tf.zeros([300]))
W2 = tf.Variable(tf.zeros([300, 10]))
b2 = tf.Variable(tf.zeros([10]))
optimizer = keras.optimizers.Adagrad(0.01)
@tf.function
def train_step(x, y_, keep_prob):
    with tf.GradientTape() as tape:
        hidden1 = tf.nn.relu(tf.matmul(x, W1) + b1)
        hidden1_drop = tf.nn.dropout(hidden1, rate=1 - keep_prob)
        y = tf.nn.softmax(tf.matmul(hidden1_drop, W2) + b2)
        cross_entropy = -tf.reduce_sum(y_ * tf.math.log(y))
    optimizer.apply_gradients(zip(tape.gradient(cross_entropy, [W1, b1, W2, b2]), [W1, b1, W2, b2]))
    return cross_entropy
for step in range(60):
    batch_xs, batch_ys = mnist_train.next_batch(128)
    loss = train_step(batch_xs, batch_ys, 1.0)
'''),
    Scenario(
        "g63_rbm_free_energy_exp",
        expect=dict(status={"healthy"}),
        note=_GRIST + "ID_63/main.py (gongdols, PyTorch; ID_51 rbm.py with SGD(0.1) and ID_62 denoising_RBM.py on "
             "FashionMNIST are the same model): RBM 784-500, k=1, free energy log(exp(wx_b) + 1), Adam(0.005), batch 64."
             " Bug: exp(wx_b) overflows once wx_b > 88.7. Fix: softplus(wx_b).",
        setup=MNIST_LIKE,
        code=_RBM),
    # --- AUTOTRAINER (DeepDiagnosis replication): Blob models with chains of exponential activations ---
    Scenario(
        "a01_blob_model_0b6f114d_exp",
        expect=dict(status={"nonfinite"}, phase={"forward"}, first_op={"Exp"}, layer="activation_1", cause={"exp_overflow"}),
        note="AUTOTRAINER, DeepDiagnosis/ICSE2022 'AUTOTRAINER Model Code/Models_Blob.py', model_0b6f114d: Dense(5) "
             "+ Activation('exponential') x 10 (VarianceScaling(2, fan_in, uniform)), Dense(3) + sigmoid, on Blob "
             "(make_blobs: 2 features, 3 centres). Compile settings are not in the collected code: SGD(0.01), "
             "categorical_crossentropy, batch 32 here. Bug: exp of exp overflows. DeepDiagnosis: 'Batch 0 layer 0: "
             "Numerical Problem Forward', fix 'Normalize the data'. Fix (AUTOTRAINER's repair): relu activations.",
        setup=BLOBS,
        code=_blob("exponential", 9)),
    Scenario(
        "a02_blob_model_e73037c2_exp",
        expect=dict(status={"nonfinite"}, phase={"forward"}, first_op={"Exp"}, layer="activation_1", cause={"exp_overflow"}),
        note="AUTOTRAINER Models_Blob.py model_e73037c2: as a01 with 8 exponential layers. DeepDiagnosis: 'Batch 0 "
             "layer 0: Numerical Problem Forward', 'Normalize the data'.",
        setup=BLOBS,
        code=_blob("exponential", 7)),
    Scenario(
        "a03_blob_model_9b8bdaab_exp",
        expect=dict(status={"nonfinite"}, phase={"forward"}, first_op={"Exp"}, layer="activation_1", cause={"exp_overflow"}),
        note="AUTOTRAINER Models_Blob.py model_9b8bdaab: as a01 with 9 exponential layers. DeepDiagnosis: 'Batch 0 "
             "layer 0: Numerical Problem Forward', 'Normalize the data'.",
        setup=BLOBS,
        code=_blob("exponential", 8)),
    Scenario(
        "a04_circle_model_0ae2cd88_exp",
        expect=dict(status={"nonfinite"}, phase={"forward"}, first_op={"Exp"}, layer="activation_2", cause={"exp_overflow"}),
        note="AUTOTRAINER Models_Circle.py model_0ae2cd88: Dense(5) + Activation('exponential') x 8, Dense(1) + "
             "sigmoid, on Circle (make_circles). Compile settings not in the collected code: SGD(0.01), "
             "binary_crossentropy, batch 32 here. DeepDiagnosis: 'Batch 0 layer 0: Numerical Problem Forward', 'Please "
             "change the activaton function at layer: 1'.",
        setup=CIRCLES,
        code=_circle("exponential", 7)),
    Scenario(
        "a05_circle_model_0eb8d545_exp",
        expect=dict(status={"nonfinite"}, phase={"forward"}, first_op={"Exp"}, layer="activation_2", cause={"exp_overflow"}),
        note="AUTOTRAINER Models_Circle.py model_0eb8d545: as a04 with 11 exponential layers. DeepDiagnosis: 'Batch 0 "
             "layer 0: Numerical Problem Forward', 'Please change the activaton function at layer: 1'.",
        setup=CIRCLES,
        code=_circle("exponential", 10)),
    # --- UMLAUT (CHI 2021) user evaluation ---
    Scenario(
        "u01_umlaut_eval_b_negative_lr",
        expect=dict(status={"nonfinite"}, phase={"optimizer"}, first_op={"Square"}, line_contains="model.fit"),
        note="UMLAUT, github.com/BerkeleyHCI/umlaut user_eval/eval_b.py (the program users debugged in the study): CIFAR-10"
             " /255, linear Conv2D 64-64-128-128 + Dense 128-128-10, Adam(learning_rate=-1e3), "
             "SparseCategoricalCrossentropy(from_logits=True), batch 128. Planted bugs: a negative, huge learning "
             "rate (gradient ascent) and linear activations. Fix: Adam(learning_rate=1e-3) and relu activations. "
             "The UMLAUT callback and the validation/evaluate calls are left out; 256 images, 1 epoch (2 steps).",
        setup=CIFAR_LIKE,
        code='''
import tensorflow as tf, keras
keras.utils.set_random_seed(2)
train_images = train_images / 255.0
model = keras.Sequential([
    keras.layers.Input(shape=(32, 32, 3), dtype="float32"),
    keras.layers.Conv2D(64, 3, activation="linear"),
    keras.layers.Conv2D(64, 3, activation="linear"),
    keras.layers.MaxPool2D(2),
    keras.layers.Dropout(0.2),
    keras.layers.Conv2D(128, 3, activation="linear"),
    keras.layers.Conv2D(128, 3, activation="linear"),
    keras.layers.MaxPool2D(2),
    keras.layers.Dropout(0.2),
    keras.layers.Flatten(),
    keras.layers.Dense(128),
    keras.layers.Dense(128),
    keras.layers.Dropout(0.2),
    keras.layers.Dense(10),
])
model.compile(
    optimizer=keras.optimizers.Adam(learning_rate=-1e3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(train_images, train_labels, epochs=1, batch_size=128, verbose=0)
'''),
)

# The developers' fixes, run as healthy programs: the same port with the fix applied.
FIXED = catalogue(
    "realbugs_fixed", "realbugs",
    Scenario(
        "f10_soips14_fixed",
        expect=dict(status={"healthy"}),
        note="g10 with the accepted answer's fix: tf.nn.softmax_cross_entropy_with_logits on the logits.",
        setup=MNIST_LIKE,
        code=_SOFTMAX_REGRESSION.replace("y = tf.nn.softmax(tf.matmul(x, W) + b)", "logits = tf.matmul(x, W) + b").format(
            optimizer="keras.optimizers.SGD(learning_rate=0.005)", batch=205, steps=60,
            loss="tf.reduce_sum(tf.nn.softmax_cross_entropy_with_logits(labels=y_, logits=logits))")),
    Scenario(
        "f54_h03_fixed",
        expect=dict(status={"healthy"}),
        note="g54's fix, later in the same file: nn.Linear(4, 3) + F.cross_entropy on the logits, Adam(lr=1).",
        code=_H03 + '''model = keras.layers.Dense(3)
optimizer = keras.optimizers.Adam(learning_rate=1.0, epsilon=1e-8)
loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True)
for epoch in range(30):
    with tf.GradientTape() as tape:
        z = model(x_T)
        cost = loss_fn(y_T, z)
    optimizer.apply_gradients(zip(tape.gradient(cost, model.trainable_variables), model.trainable_variables))
'''),
    Scenario(
        "f56_kaggle01_fixed",
        expect=dict(status={"healthy"}),
        note="g56's fix, in the same file: F.binary_cross_entropy(hypothesis, y) (PyTorch clamps its log at -100; "
             "Keras' BinaryCrossentropy clips the probabilities).",
        code=_KAGGLE01 + '''W = tf.Variable(tf.zeros((2, 1)))
b = tf.Variable(tf.zeros(1))
optimizer = keras.optimizers.SGD(learning_rate=1.0)
bce = keras.losses.BinaryCrossentropy()
for step in range(30):
    with tf.GradientTape() as tape:
        hypothesis = tf.sigmoid(tf.matmul(x_train, W) + b)
        cost = bce(y_train, hypothesis)
    optimizer.apply_gradients(zip(tape.gradient(cost, [W, b]), [W, b]))
'''),
    Scenario(
        "f59_tfbook_fixed",
        expect=dict(status={"healthy"}),
        note="g59 with the clip the developer wrote kept: pred = tf.clip_by_value(pred, 1e-15, 1.0).",
        setup=MNIST_LIKE,
        code=SCENARIOS["g59_tfbook_manual_gradient"].code.replace(
            "    tf.clip_by_value(pred, 1e-15, 1.0)", "    pred = tf.clip_by_value(pred, 1e-15, 1.0)")),
    Scenario(
        "fa01_blob_relu_fixed",
        expect=dict(status={"healthy"}),
        note="a01 repaired as AUTOTRAINER repairs it: relu instead of the exponential activations.",
        setup=BLOBS,
        code=_blob("relu", 9)),
)

# What each port is scored on (tests/tools/realbug_rates.py `score`): `reproduces` (raw TF went non-finite), `raw`
# (the measurement, tests/tools/measure_realbugs.py, TF 2.21 / Keras 3.15 CPU; "one-off" runs were longer loops of
# the same cell and data, run once by hand, not by the tool), the check_numerics op (`ops`) and its cell `line` or
# Keras `layer`, the cause ids that describe the developer's bug (`causes`), words of the developer's fix
# (`fix_words`), and what nanwatch's report scores today (`nanwatch`, checked by tests/scenarios/test_realbugs.py).
_MISS = dict(detected=False, localised=False, cause=False, fix_location=False)
_LOG_FIX = ("softmax_cross_entropy_with_logits", "from_logits", "clip")


def _finite(raw, line, fix_words=_LOG_FIX, causes=("log_of_nonpositive",)):
    """A port that stayed finite: what the bug would be, and that nanwatch rightly says healthy."""
    return dict(reproduces=False, raw=raw, ops={"Log"}, line=line, causes=set(causes), fix_words=fix_words,
                nanwatch=dict(_MISS))


_CN60 = "plain: 60 steps, every loss and variable finite; check_numerics: no op raised"
_EXP_CHAIN_FACTS = dict(ops={"Exp"}, causes={"exp_overflow"}, fix_words=("activation", "relu"),
                        nanwatch=dict(detected=True, localised=True, cause=True, fix_location=True))


def _exp_chain(layer, raw):
    return dict(_EXP_CHAIN_FACTS, reproduces=True, layer=layer, raw=raw)


_AT_RAW = ("plain: the loss is non-finite from step 0 (19 of 19 steps), every weight NaN after the cell; "
           "check_numerics: Exp (graph one_step_on_data) {op}, line model.fit")

FACTS = {
    "g03_ghips9_softmax_log": _finite(_CN60 + "; a one-off 1500-step run stayed finite too", "tf.math.log(y)"),
    "g10_soips14_softmax_log": _finite(_CN60 + "; a one-off 1500-step run stayed finite too", "tf.math.log(y)"),
    "g50_dl1l_softmax_log": _finite(_CN60, "tf.math.log(y)"),
    "g52_karch_softmax_log": _finite(_CN60, "tf.math.log(y)"),
    "g60_tftest_softmax_log": _finite(_CN60, "tf.math.log(y)"),
    "g06_soips1_cnn_softmax_log": _finite("plain: 4 steps (the cell runs 2), losses and variables finite; "
                                          "check_numerics: no op raised", "tf.math.log(y_conv)"),
    "g09_soips7_sigmoid_bce": _finite(_CN60 + "; a one-off 300-step run stayed finite too", "tf.math.log(1 - y_)",
                                      fix_words=("sigmoid_cross_entropy_with_logits", "from_logits", "clip")),
    "g53_h02_logistic_manual": _finite("plain: 100 steps (the cell runs 30) finite; check_numerics: no op raised; a "
                                       "one-off 3000-step run converged finite (loss 0.381)", "tf.math.log(1 - hypothesis)",
                                       fix_words=("from_logits", "clip")),
    "g54_h03_softmax_log": _finite("plain: 100 steps (the cell runs 30) finite; check_numerics: no op raised; a "
                                   "one-off 3000-step run stayed finite (loss 0.0026)", "tf.math.log(hypothesis)"),
    "g56_kaggle01_logistic_log": _finite("plain: 100 steps (the cell runs 30) finite; check_numerics: no op raised; "
                                         "a one-off 1500-step run stayed finite (loss 0.0136)",
                                         "tf.math.log(1 - hypothesis)", fix_words=("from_logits", "clip")),
    "g57_kaggle03_softmax_log": _finite("plain: 20 steps finite; check_numerics: no op raised. z is never updated, so "
                                        "softmax(z) of values in [0, 1) cannot underflow: only GRIST's change of z "
                                        "exposes it", "tf.math.log(hypothesis)", fix_words=("log_softmax", "from_logits")),
    "g59_tfbook_manual_gradient": _finite("plain: 60 steps, variables finite (no tape: the loss is not hooked); "
                                          "check_numerics: no op raised; a one-off 300-step run (unseeded weights) "
                                          "stayed finite (loss 3e-4)", "tf.math.log(pred)", fix_words=("clip",)),
    "g61_tfproject_mlp_log": _finite(_CN60 + "; a one-off 300-step run stayed finite too", "tf.math.log(y)"),
    "g63_rbm_free_energy_exp": dict(_finite("plain: 20 steps (the cell runs 8) finite; check_numerics: no op raised; "
                                            "a one-off 150-step run stayed finite", "tf.exp(wx_b)",
                                            fix_words=("softplus",), causes=("exp_overflow",)), ops={"Exp"}),
    "a01_blob_model_0b6f114d_exp": _exp_chain("activation_1", _AT_RAW.format(op="sequential_1/activation_1_2/Exp")),
    "a02_blob_model_e73037c2_exp": _exp_chain("activation_1", _AT_RAW.format(op="sequential_1/activation_1_2/Exp")),
    "a03_blob_model_9b8bdaab_exp": _exp_chain("activation_1", _AT_RAW.format(op="sequential_1/activation_1_2/Exp")),
    "a04_circle_model_0ae2cd88_exp": _exp_chain("activation_2", _AT_RAW.format(op="sequential_1/activation_2_1/Exp")),
    "a05_circle_model_0eb8d545_exp": _exp_chain("activation_2", _AT_RAW.format(op="sequential_1/activation_2_1/Exp")),
    "u01_umlaut_eval_b_negative_lr": dict(
        reproduces=True, ops={"Square"}, line="model.fit(train_images", causes={"learning_rate_nonpositive"},
        raw="plain: both losses finite, but after the cell every Adam velocity slot holds Inf (model state); "
            "check_numerics: Square (graph, adam/Square: Adam's g**2), line model.fit",
        fix_words=("positive", "negative", "learning_rate=1e-3", "learning_rate=0.001"),
        nanwatch=dict(detected=True, localised=True, cause=True, fix_location=True)),
    **{name: dict(fixed=True, reproduces=False, raw="plain and check_numerics: finite") for name in FIXED},
}

# The measurement goes into each scenario's note, so the catalogue says how its truth was measured.
SCENARIOS = {n: dataclasses.replace(s, note=f"{s.note} Measured: {FACTS[n]['raw']}.") for n, s in SCENARIOS.items()}
FIXED = {n: dataclasses.replace(s, note=f"{s.note} Measured: {FACTS[n]['raw']}.") for n, s in FIXED.items()}
