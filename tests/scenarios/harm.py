"""Harm scenarios (issue 14): cells that hold intentional non-finite values, and cells where one reaches the training.

nanwatch alarms when a NaN/Inf REACHES THE TRAINING: a loss, metric or prediction returned to the training
code, a gradient that is applied, or the model's state (weights, trainable or not, and optimizer slots). A
value absorbed on the way (masked by tf.where, removed by minimum/maximum, exp(-inf) = 0, softmax over a
partly -inf row, a max over -inf padding, a LossScaleOptimizer's skipped step) is no alarm: the report lists
it in `info` as "absorbed by" (expect key `absorbed`) and the run is healthy. The user's own bookkeeping
(a best-loss tf.Variable(inf), a Python float) is not model state. `first_nonfinite` is the origin of the
harmful value: the first op on its chain (a NaN a softmax makes from an intended -inf mask is the softmax's).

HEALTHY: 9 cells, each holding a NaN/Inf that tf.debugging.enable_check_numerics() raises on (a false alarm
of it), except h07 (neither it nor tfdbg2 sees the tracker's inf). HARMFUL: 11 cells where one reaches a
sink; in b04, b08, b09 and b11 the loss stays finite throughout and only the applied gradients and/or the
state show it (a fused MatMul+BiasAdd+Relu on oneDNN maps NaN pre-activations to 0).

Ground truth: tests/tools/measure_harm.py (truth "harm" in tests/scenarios/catalogue.py), TensorFlow 2.21 /
Keras 3.15 on CPU, no nanwatch. Each `note` gives what was measured ("plain": which sinks the value
reached, with counts over the steps; "CN": the op enable_check_numerics raises on, and its cell line;
"dump": the chain of non-finite tensors raw tfdbg2 recorded) and, where CN's op is absorbed, which op's
value reaches the sink (c). A backward op's own line is the line its creation stack names in the cell
(model.fit for the gradients Keras takes); its forward line is `forward_line_contains`. Cause ids are
nanwatch.diagnosis.CAUSES: "Cause:" in a note is an existing id (the scenario's `any_cause`), "Cause
wanted:" one that does not exist yet. Every cell is seeded and trains in 0.3-4.5 s (plain run, 2-core
box). Run by tests/scenarios/test_harm.py.
"""

from tests.scenarios.catalogue import Scenario, catalogue

_ATTENTION = '''
class MaskedSelfAttention(keras.layers.Layer):
    """Single-head self-attention over token ids; padding (id 0) is masked out of the keys."""
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.q, self.k, self.v = keras.layers.Dense(units), keras.layers.Dense(units), keras.layers.Dense(units)
    def call(self, x, tokens):
        mask = tf.not_equal(tokens, 0)[:, None, :]
        scores = tf.matmul(self.q(x), self.k(x), transpose_b=True) / tf.sqrt(float(self.units))
        scores = tf.where(mask, scores, float("-inf"))
        weights = tf.nn.softmax(scores, axis=-1)
        return tf.matmul(weights, self.v(x))
'''

HEALTHY = catalogue(
    "harm_healthy", "harm",
    Scenario(
        "h01_masked_attention_fit",
        note=('Hand-written masked self-attention (keras.io / TF text tutorials write the mask this way, with -inf or '
              '-1e9) in a custom layer trained with fit; every sequence has >= 2 tokens, so no key row is fully masked.'
              ' plain: 8 steps, no sink reached (loss, model outputs, 8 applied gradients, all weights and slots '
              'finite). CN: Const functional_1/attention_1/SelectV2/e (the float("-inf") operand of the where; graph '
              'one_step_on_data), line 14 (the tf.where line). dump: Const -inf -> SelectV2 (1896 -inf per step) -> '
              'Softmax finite: absorbed by Softmax. A false alarm of CN. absorbed: Const (the constant, as a graph '
              'names it) or SelectV2 (the first op whose output holds it); both are the tf.where line.'),
        code='''
import numpy as np, tensorflow as tf, keras
keras.utils.set_random_seed(101)
''' + _ATTENTION + '''
rng = np.random.default_rng(101)
tokens = np.zeros((128, 12), "int32")
for i, n in enumerate(rng.integers(2, 13, 128)):
    tokens[i, :n] = rng.integers(1, 100, n)
labels = rng.integers(0, 2, (128, 1)).astype("float32")
inp = keras.Input((12,), dtype="int32")
h = MaskedSelfAttention(16, name="attention")(keras.layers.Embedding(100, 16)(inp), inp)
out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling1D()(h))
model = keras.Model(inp, out)
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(tokens, labels, epochs=2, batch_size=32, verbose=0)
''',
        expect=dict(status={"healthy"}, absorbed={"Const", "SelectV2"})),
    Scenario(
        "h02_masked_attention_tape_loop",
        note=('The same layer in an eager GradientTape loop (8 steps). plain: no sink reached. CN: eagerly-executing '
              'SelectV2, shape (16, 10, 10), 640 -inf, line 14 (tf.where). Eager has no Const op: the Python float '
              'enters as a tensor (the constant is still the origin: absorbed names Const, matched by the word '
              "'constant' too). dump: SelectV2 is the only non-finite tensor (x8); Softmax finite: absorbed by Softmax."
              ' A false alarm of CN.'),
        code='''
import numpy as np, tensorflow as tf, keras
keras.utils.set_random_seed(102)
''' + _ATTENTION + '''
rng = np.random.default_rng(102)
tokens = np.zeros((64, 10), "int32")
for i, n in enumerate(rng.integers(2, 11, 64)):
    tokens[i, :n] = rng.integers(1, 50, n)
labels = rng.integers(0, 2, (64, 1)).astype("float32")
embed, attention, head = keras.layers.Embedding(50, 8), MaskedSelfAttention(8, name="attention"), keras.layers.Dense(1)
optimizer = keras.optimizers.Adam(1e-3)
loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
for step in range(8):
    batch = slice(step % 4 * 16, step % 4 * 16 + 16)
    with tf.GradientTape() as tape:
        h = attention(embed(tokens[batch]), tokens[batch])
        logits = head(tf.reduce_mean(h, axis=1))
        loss = loss_fn(labels[batch], logits)
    variables = embed.trainable_variables + attention.trainable_variables + head.trainable_variables
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
''',
        expect=dict(status={"healthy"}, absorbed={"Const", "SelectV2"})),
    Scenario(
        "h03_transformer_warmup_schedule_tape",
        note=("TF's Transformer tutorial CustomSchedule, as written there (tf.keras -> keras), with Adam(learning_rate,"
              ' beta_1=0.9, beta_2=0.98, epsilon=1e-9), in a GradientTape loop; the optimizer calls it with its '
              'iterations, 0 at the first step. plain: no sink reached; the 6 applied learning rates are finite (step '
              '0: minimum(inf, 0) = 0). CN: eagerly-executing Rsqrt, shape (), +inf, line 12 (arg1 = '
              'tf.math.rsqrt(step)). dump: that Rsqrt once (step 0 only): absorbed by Minimum. A false alarm of CN.'),
        code='''
import numpy as np, tensorflow as tf, keras
keras.utils.set_random_seed(103)
class CustomSchedule(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, d_model, warmup_steps=4000):
        super().__init__()
        self.d_model = d_model
        self.d_model = tf.cast(self.d_model, tf.float32)
        self.warmup_steps = warmup_steps
    def __call__(self, step):
        step = tf.cast(step, dtype=tf.float32)
        arg1 = tf.math.rsqrt(step)
        arg2 = step * (self.warmup_steps ** -1.5)
        return tf.math.rsqrt(self.d_model) * tf.math.minimum(arg1, arg2)
d_model = 32
learning_rate = CustomSchedule(d_model)
optimizer = keras.optimizers.Adam(learning_rate, beta_1=0.9, beta_2=0.98, epsilon=1e-9)
rng = np.random.default_rng(103)
X = rng.normal(size=(64, d_model)).astype("float32"); y = rng.normal(size=(64, 1)).astype("float32")
model = keras.Sequential([keras.Input((d_model,)), keras.layers.Dense(d_model, activation="relu"), keras.layers.Dense(1)])
for step in range(6):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(X, training=True) - y))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
''',
        expect=dict(status={"healthy"}, absorbed={"Rsqrt"})),
    Scenario(
        "h04_masked_global_max_pooling",
        note=('Text CNN with a masked global max pooling over -inf padding (reduce_max of where(mask, h, -inf)); every '
              'sequence has >= 3 tokens. plain: no sink reached. CN: Const functional_1/masked_max_1/SelectV2/e, line '
              '7. dump: Const -> SelectV2 (4736 -inf per step) -> Max finite: absorbed by Max (its gradient goes to the'
              ' argmax only). A false alarm of CN.'),
        code='''
import numpy as np, tensorflow as tf, keras
keras.utils.set_random_seed(104)
class MaskedGlobalMaxPool(keras.layers.Layer):
    def call(self, h, tokens):
        mask = tf.not_equal(tokens, 0)[:, :, None]
        return tf.reduce_max(tf.where(mask, h, float("-inf")), axis=1)
rng = np.random.default_rng(104)
tokens = np.zeros((128, 20), "int32")
for i, n in enumerate(rng.integers(3, 21, 128)):
    tokens[i, :n] = rng.integers(1, 200, n)
labels = rng.integers(0, 2, (128, 1)).astype("float32")
inp = keras.Input((20,), dtype="int32")
h = keras.layers.Conv1D(16, 3, padding="same", activation="relu")(keras.layers.Embedding(200, 16)(inp))
pooled = MaskedGlobalMaxPool(name="masked_max")(h, inp)
model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(pooled))
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(tokens, labels, epochs=2, batch_size=32, verbose=0)
''',
        expect=dict(status={"healthy"}, absorbed={"Const", "SelectV2"})),
    Scenario(
        "h05_safe_reciprocal_metric",
        note=('A relative-error metric with the reciprocal under tf.where(y_true > 0, 1.0 / y_true, 0.0); Poisson sales'
              ' targets are often 0. Metrics are not differentiated. plain: no sink reached (History finite). CN: '
              'RealDiv truediv (graph one_step_on_data), shape (32, 1), line 5. dump: RealDiv +inf (10 in the first '
              'batch) and nothing after it: absorbed by SelectV2. A false alarm of CN.'),
        code='''
import numpy as np, tensorflow as tf, keras
keras.utils.set_random_seed(105)
def relative_error(y_true, y_pred):
    inv = tf.where(y_true > 0, 1.0 / y_true, 0.0)
    return tf.reduce_mean(tf.abs(y_true - y_pred) * inv)
rng = np.random.default_rng(105)
X = rng.uniform(0, 1, (192, 6)).astype("float32")
sales = rng.poisson(3 * X[:, :1] + 0.2).astype("float32")
model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse", metrics=[relative_error])
model.fit(X, sales, epochs=2, batch_size=32, verbose=0)
''',
        expect=dict(status={"healthy"}, absorbed={"RealDiv"})),
    Scenario(
        "h06_log_space_mask_exp",
        note=('Attention pooling with a log-space mask: logits + tf.math.log(mask), then exp(logits - max); every row '
              'has >= 4 valid steps. plain: no sink reached. CN: Log functional_1/pool_1/Log, shape (32, 15), line 8. '
              'dump: Log -inf -> AddV2 -> Sub (174 -inf each) -> Exp finite (exp(-inf) = 0): absorbed by Exp. The mask '
              'is not differentiated, so no LogGrad runs. A false alarm of CN.'),
        code='''
import numpy as np, tensorflow as tf, keras
keras.utils.set_random_seed(106)
class AttentionPooling(keras.layers.Layer):
    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], 1), initializer="glorot_uniform", name="w")
    def call(self, h, mask):
        logits = tf.squeeze(tf.matmul(h, self.w), -1) + tf.math.log(mask)
        e = tf.exp(logits - tf.reduce_max(logits, axis=1, keepdims=True))
        weights = e / tf.reduce_sum(e, axis=1, keepdims=True)
        return tf.reduce_sum(h * weights[:, :, None], axis=1)
rng = np.random.default_rng(106)
X = rng.normal(size=(128, 15, 4)).astype("float32")
mask = (np.arange(15) < rng.integers(4, 16, 128)[:, None]).astype("float32")
y = rng.integers(0, 2, (128, 1)).astype("float32")
x_in, m_in = keras.Input((15, 4)), keras.Input((15,))
h = keras.layers.Dense(8, activation="tanh")(x_in)
model = keras.Model([x_in, m_in], keras.layers.Dense(1, activation="sigmoid")(AttentionPooling(name="pool")(h, m_in)))
model.compile(optimizer="adam", loss="binary_crossentropy")
model.fit([X, mask], y, epochs=2, batch_size=32, verbose=0)
''',
        expect=dict(status={"healthy"}, absorbed={"Log"})),
    Scenario(
        "h07_best_loss_tracker_tape",
        note=('Early stopping written by hand in a GradientTape loop: best_loss = tf.Variable(float("inf")) and '
              'best_val = float("inf") (the user\'s bookkeeping, not model state). plain: no sink reached; after the '
              'cell neither holds inf (the first epoch replaces both). CN: nothing raised; dump: no non-finite tensor '
              '(the inf is read by ReadVariableOp and compared by Less, neither instrumented by CN or tfdbg2 here). So '
              "no `absorbed` expectation: only that reading the user's inf variable is no alarm."),
        code='''
import numpy as np, tensorflow as tf, keras
keras.utils.set_random_seed(107)
rng = np.random.default_rng(107)
X = rng.normal(size=(96, 5)).astype("float32"); y = (X @ rng.normal(size=(5, 1))).astype("float32")
model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
optimizer = keras.optimizers.SGD(0.05)
best_loss = tf.Variable(float("inf"), trainable=False)
best_epoch, patience, wait = -1, 3, 0
best_val = float("inf")
for epoch in range(10):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(X[:64], training=True) - y[:64]))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    val_loss = float(tf.reduce_mean(tf.square(model(X[64:]) - y[64:])))
    if loss < best_loss:
        best_loss.assign(loss)
    if val_loss < best_val:
        best_val, best_epoch, wait, best_weights = val_loss, epoch, 0, model.get_weights()
    else:
        wait += 1
        if wait >= patience:
            break
''',
        expect=dict(status={"healthy"})),
    Scenario(
        "h08_mixed_precision_loss_scale_skips",
        note=('mixed_float16 (setup) with unscaled regression targets (200..300): at the initial loss scale 32768 the '
              "scaled gradients overflow float16, and Keras' LossScaleOptimizer skips those steps and halves the scale."
              ' plain: 16 steps, 7 of the 16 tape gradients non-finite, 9 applies, all with finite gradients; loss, '
              'outputs, weights finite: no sink reached. CN: Cast gradient_tape/sequential_1/Cast_1/Cast, float16, '
              'shape (32, 64) (the gradient entering the float16 layers), line 9 (model.fit). dump: that Cast, then '
              "ReluGrad, MatMul, BiasAddGrad... in the backward: absorbed by the LossScaleOptimizer's all-finite check "
              '(the update under cond). A false alarm of CN.'),
        setup='''
import keras
keras.mixed_precision.set_global_policy("mixed_float16")
''',
        code='''
import numpy as np, keras
keras.utils.set_random_seed(108)
rng = np.random.default_rng(108)
X = rng.uniform(0, 1, (256, 16)).astype("float32"); y = (200 + 100 * X[:, :1]).astype("float32")
model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(64, activation="relu"),
                          keras.layers.Dense(1, dtype="float32")])
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, epochs=2, batch_size=32, verbose=0)
''',
        # exact mode leaves the backward pass of a loss-scaled model unchecked by design (the skips are
        # the optimizer's), so it names what absorbed the Inf gradients, not the Cast that made them
        expect=dict(status={"healthy"}, absorbed={"Cast", "Inf gradients"})),
    Scenario(
        "h09_masked_logsumexp_pooling",
        note=('Multiple-instance learning: a log-mean-exp pooling over bags of 1..8 instances, padding masked with -inf'
              ' before tf.reduce_logsumexp. plain: no sink reached. CN: Const functional_1/lse_pool_1/SelectV2/e, line '
              '6. dump: Const -> SelectV2 (99 -inf) -> ReduceLogSumExp/Sub (-inf) -> Exp finite: absorbed by Exp inside'
              ' reduce_logsumexp (no row is fully masked). A false alarm of CN.'),
        code='''
import numpy as np, tensorflow as tf, keras
keras.utils.set_random_seed(109)
class LogSumExpPool(keras.layers.Layer):
    def call(self, scores, mask):
        masked = tf.where(mask > 0, scores, float("-inf"))
        return tf.reduce_logsumexp(masked, axis=1) - tf.math.log(tf.reduce_sum(mask, axis=1))
rng = np.random.default_rng(109)
bags = rng.normal(size=(128, 8, 6)).astype("float32")
mask = (np.arange(8) < rng.integers(1, 9, 128)[:, None]).astype("float32")
y = rng.integers(0, 2, (128, 1)).astype("float32")
b_in, m_in = keras.Input((8, 6)), keras.Input((8,))
scores = keras.layers.Dense(1)(keras.layers.Dense(16, activation="relu")(b_in))
pooled = LogSumExpPool(name="lse_pool")(keras.layers.Reshape((8,))(scores), m_in)
model = keras.Model([b_in, m_in], keras.layers.Activation("sigmoid")(keras.layers.Reshape((1,))(pooled)))
model.compile(optimizer="adam", loss="binary_crossentropy")
model.fit([bags, mask], y, epochs=2, batch_size=32, verbose=0)
''',
        expect=dict(status={"healthy"}, absorbed={"Const", "SelectV2"})),
)

HARMFUL = catalogue(
    "harm_harmful", "harm",
    Scenario(
        "b01_adam_epsilon_zero_unused_category",
        note=('Adam(learning_rate=1e-3, epsilon=0.0) on one-hot columns with a category ("black") absent from the data,'
              " and ReLU units dead on the batch: those kernel entries get a zero gradient, so m = v = 0 and Adam's "
              'update m*alpha / (sqrt(v) + 0) is 0/0. plain: NaN written by the first update (state: dense kernel, 43 '
              'of 80 entries, dense bias, dense_1 kernel, then the Adam slots); from step 2 the outputs, the loss '
              '(History [nan, nan]) and 9 of 10 applied gradients are NaN (the NaN kernel row times the 0 column is NaN'
              ' in the MatMul). The idea was that the loss stays finite: measured, it does not. CN: RealDiv '
              'adam/truediv_1, shape (5, 16), line 11 (model.fit). dump: origins adam/truediv_1 (43 NaN), truediv_3, '
              'truediv_5, each feeding adam/AssignSubVariableOp (the weights). Origin: RealDiv, phase optimizer. Cause:'
              ' optimizer_epsilon_zero.'),
        code='''
import numpy as np, pandas as pd, keras
keras.utils.set_random_seed(201)
rng = np.random.default_rng(201)
df = pd.DataFrame({"size": rng.uniform(0, 1, 160), "colour": rng.choice(["red", "green", "blue"], 160)})
df["colour"] = pd.Categorical(df["colour"], categories=["red", "green", "blue", "black"])
X = pd.get_dummies(df, columns=["colour"], dtype="float32").astype("float32")
y = (df["size"] + (df["colour"] == "red")).astype("float32")
model = keras.Sequential([keras.Input((X.shape[1],)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3, epsilon=0.0), loss="mse")
model.fit(X, y, epochs=2, batch_size=32, verbose=0)
''',
        expect=dict(phase={"optimizer"}, first_op={"RealDiv"}, line_contains="model.fit(",
                    status={"nonfinite"}, any_cause={"optimizer_epsilon_zero"})),
    Scenario(
        "b02_rmsprop_epsilon_zero_dead_sensor",
        note=('RMSprop(learning_rate=1e-3, epsilon=0.0) on a Conv1D over 3 sensor channels, one dead (always 0): its '
              "kernel slice gets zero gradients, velocity 0, and Keras' RMSprop increment lr*g / sqrt(velocity + 0) is "
              '0/0. plain: the first update writes NaN into conv1d kernel (and, through it, every weight later); 5 of 6'
              " steps' outputs, losses and applied gradients NaN; History [nan, nan]. CN: RealDiv rm_sprop/truediv, "
              'shape (5, 3, 8), line 10 (model.fit). dump: rm_sprop/truediv, 40 NaN (the 5 x 8 entries of channel 2), '
              'feeding rm_sprop/AssignSubVariableOp. Cause: optimizer_epsilon_zero.'),
        code='''
import numpy as np, keras
keras.utils.set_random_seed(202)
rng = np.random.default_rng(202)
signals = rng.normal(size=(96, 32, 3)).astype("float32"); signals[:, :, 2] = 0.0
labels = rng.integers(0, 4, 96)
model = keras.Sequential([keras.Input((32, 3)), keras.layers.Conv1D(8, 5, activation="relu"), keras.layers.GlobalAveragePooling1D(),
                          keras.layers.Dense(4, activation="softmax")])
model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=1e-3, epsilon=0.0), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(signals, labels, epochs=2, batch_size=32, verbose=0)
''',
        expect=dict(phase={"optimizer"}, first_op={"RealDiv"}, line_contains="model.fit(",
                    status={"nonfinite"}, any_cause={"optimizer_epsilon_zero"})),
    Scenario(
        "b03_fully_padded_sequence_softmax",
        note=("h01's layer and model with 12 of 128 sequences empty (all padding: rows 10, 30, 35, ...): their key rows"
              " are fully masked and softmax over all -inf is NaN. plain: every step's outputs, losses and applied "
              'gradients NaN, History [nan, nan], every weight and slot NaN. CN: Const '
              'functional_1/attention_1/SelectV2/e, line 14, as in h01. dump: Const -> SelectV2 (2700 -inf) -> Softmax '
              'NaN (720 = 5 sequences x 12 x 12 in that step, line 15) -> BatchMatMulV2 -> pooling -> loss -> the '
              "backward -> the Adam writes. (c): CN's op, the intended -inf mask, is absorbed by Softmax in every row "
              'with a valid key (as in h01); what reaches the sinks is a new value, the NaN Softmax makes from the rows'
              ' that are all -inf, so the origin of the harmful value is Softmax (line 15, layer attention), made from '
              'the mask of line 14. Cause: fully_masked_softmax.'),
        code='''
import numpy as np, tensorflow as tf, keras
keras.utils.set_random_seed(203)
''' + _ATTENTION + '''
rng = np.random.default_rng(203)
tokens = np.zeros((128, 12), "int32")
for i, n in enumerate(rng.integers(0, 13, 128)):
    tokens[i, :n] = rng.integers(1, 100, n)
labels = rng.integers(0, 2, (128, 1)).astype("float32")
inp = keras.Input((12,), dtype="int32")
h = MaskedSelfAttention(16, name="attention")(keras.layers.Embedding(100, 16)(inp), inp)
out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling1D()(h))
model = keras.Model(inp, out)
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(tokens, labels, epochs=2, batch_size=32, verbose=0)
''',
        expect=dict(phase={"forward"}, first_op={"Softmax"}, layer="attention", line_contains="tf.nn.softmax(scores",
                    status={"nonfinite"}, any_cause={"fully_masked_softmax"})),
    Scenario(
        "b04_where_trap_log_poisson_loss",
        note=('The where trap: a Poisson NLL with log_rate = tf.where(rate > 0, tf.math.log(rate), 0.0) on a ReLU '
              'output. plain: the loss and the outputs stay finite at all 8 steps; all 8 applied gradients are NaN; '
              'every weight and Adam slot NaN after fit (the fused MatMul+BiasAdd+Relu maps the NaN pre-activations to '
              '0, so rate = 0 and the loss stays finite: only the gradients and the state show it). CN: Log '
              'compile_loss/poisson_nll/Log (2 -inf), line 5: absorbed by SelectV2 in the forward, a false alarm. dump '
              '(c): the second origin, Reciprocal gradient_tape/compile_loss/poisson_nll/Reciprocal (+inf x2, finite '
              "inputs: LogGrad's 1/rate at rate = 0), then Mul NaN (0 * inf from the where's zero branch) -> AddN -> "
              "ReluGrad -> ... -> adam/AssignSubVariableOp: the Reciprocal's value reaches the applied gradients and "
              "the weights; the Log's -inf does not (LogGrad reads rate, not log(rate)). Its creation line is model.fit"
              ' (line 11: the tape made it); the forward line is the tf.where line. Cause: where_gradient_trap.'),
        code='''
import numpy as np, tensorflow as tf, keras
keras.utils.set_random_seed(204)
def poisson_nll(y_true, rate):
    log_rate = tf.where(rate > 0, tf.math.log(rate), 0.0)
    return tf.reduce_mean(rate - y_true * log_rate)
rng = np.random.default_rng(204)
X = rng.normal(size=(128, 6)).astype("float32"); counts = rng.poisson(2.0, (128, 1)).astype("float32")
model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1, activation="relu", name="rate")])
model.compile(optimizer="adam", loss=poisson_nll)
model.fit(X, counts, epochs=2, batch_size=32, verbose=0)
''',
        expect=dict(phase={"backward"}, first_op={"Reciprocal"}, line_contains="tf.math.log(rate)",
                    forward_line_contains="tf.where(rate > 0, tf.math.log(rate), 0.0)",
                    status={"nonfinite"}, any_cause={"where_gradient_trap"})),
    Scenario(
        "b05_zero_norm_triplet_loss",
        note=("Triplet network (keras.io's siamese DistanceLayer, written with tf.norm) with a soft-margin triplet "
              "loss; positives are drawn from the anchor's class with replacement, so 6 of 120 triplets use the same "
              'image twice and d(a, p) = 0. Replaced: a contrastive loss with squared d on positives and a hinge on '
              "negatives measured healthy (d(d^2) = 0 at d = 0, and TF's SqrtGrad gives 0 for 0/0), as did a hinge "
              'triplet loss with margin 0.5 (the hinge was inactive): the gradient reaching the norm must be non-zero. '
              'plain: 6 of 6 applied gradients NaN, loss NaN from step 2 (5 of 6), History NaN, every embedding weight '
              'and slot NaN. CN: SqrtGrad gradient_tape/functional_1_1/distance_1/norm/SqrtGrad, shape (40, 1), line 21'
              ' (siamese.fit). dump: SqrtGrad +inf x4 (finite inputs) -> Tile -> Mul NaN -> ... -> the Adam writes. '
              'Forward line: the tf.norm(anchor - positive) line. Cause: nondifferentiable_point (sqrt at 0).'),
        code='''
import numpy as np, tensorflow as tf, keras
keras.utils.set_random_seed(205)
class DistanceLayer(keras.layers.Layer):
    def call(self, anchor, positive, negative):
        ap_distance = tf.norm(anchor - positive, axis=-1)
        an_distance = tf.norm(anchor - negative, axis=-1)
        return tf.stack([ap_distance, an_distance], axis=-1)
def soft_margin_triplet_loss(_, distances):
    return tf.reduce_mean(tf.nn.softplus(distances[:, 0] - distances[:, 1]))
rng = np.random.default_rng(205)
images = rng.normal(size=(60, 8, 8, 1)).astype("float32"); classes = rng.integers(0, 3, 60)
anchors = rng.integers(0, 60, 120)
positives = np.array([rng.choice(np.flatnonzero(classes == classes[a])) for a in anchors])
negatives = np.array([rng.choice(np.flatnonzero(classes != classes[a])) for a in anchors])
embedding = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.Flatten(), keras.layers.Dense(8)])
a_in, p_in, n_in = keras.Input((8, 8, 1)), keras.Input((8, 8, 1)), keras.Input((8, 8, 1))
distances = DistanceLayer(name="distance")(embedding(a_in), embedding(p_in), embedding(n_in))
siamese = keras.Model([a_in, p_in, n_in], distances)
siamese.compile(optimizer="adam", loss=soft_margin_triplet_loss)
siamese.fit([images[anchors], images[positives], images[negatives]], np.zeros(120, "float32"), epochs=2, batch_size=40, verbose=0)
''',
        expect=dict(phase={"backward"}, first_op={"SqrtGrad"}, layer="distance", line_contains="tf.norm(anchor - positive",
                    forward_line_contains="tf.norm(anchor - positive",
                    status={"nonfinite"}, any_cause={"nondifferentiable_point"})),
    Scenario(
        "b06_custom_train_step_exp_overflow",
        note=("A keras.Model subclass with its own train_step (keras.io 'Customizing what happens in fit()') computing "
              'a Poisson log-link loss on raw visit counts (0..2000), trained with fit. plain: loss non-finite at 8 of '
              '8 steps, outputs at 7, applied gradients at 8; every weight and slot NaN. CN: Exp (graph '
              'one_step_on_data), shape (32, 1), +inf, line 9 (the loss line in train_step). dump: Exp +inf -> Sub -> '
              'Mean (the loss) -> the backward -> the Adam writes.'),
        code='''
import numpy as np, tensorflow as tf, keras
keras.utils.set_random_seed(206)
class PoissonRegressor(keras.Model):
    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            log_rate = self(x, training=True)
            loss = tf.reduce_mean(tf.exp(log_rate) - y * log_rate)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        return {"loss": loss}
rng = np.random.default_rng(206)
visits = rng.uniform(0, 2000, (128, 3)).astype("float32"); calls = rng.poisson(4.0, (128, 1)).astype("float32")
inp = keras.Input((3,))
model = PoissonRegressor(inp, keras.layers.Dense(1, name="log_rate")(keras.layers.Dense(8, activation="relu")(inp)))
model.compile(optimizer="adam")
model.fit(visits, calls, epochs=2, batch_size=32, verbose=0)
''',
        expect=dict(phase={"loss"}, first_op={"Exp"}, line_contains="tf.exp(log_rate)",
                    status={"nonfinite"}, any_cause={"exp_overflow"})),
    Scenario(
        "b07_tf_function_step_saturated_sigmoid_log",
        note=('A user @tf.function train step (5 calls) with a hand-written BCE on a sigmoid output; raw features '
              '0..100 saturate the sigmoid to exactly 1.0, so log(1 - p) = log(0). plain: the returned loss is '
              'non-finite at 2 of 5 steps, outputs at 1, applied gradients at 2; every weight and slot NaN. CN: Log '
              'Log_1 (graph train_step), shape (64, 1), line 12 (the loss line). dump: Log_1 -inf x2 -> Mul -> AddV2 ->'
              ' Mean -> Neg: +inf loss (the Log reaches the loss directly; Reciprocal_1 in the backward is a second '
              'origin on the same step).'),
        code='''
import numpy as np, tensorflow as tf, keras
keras.utils.set_random_seed(207)
rng = np.random.default_rng(207)
X = tf.constant(rng.uniform(0, 100, (64, 4)).astype("float32")); y = tf.constant(rng.integers(0, 2, (64, 1)).astype("float32"))
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
optimizer = keras.optimizers.Adam(1e-2)
@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        p = model(x, training=True)
        loss = -tf.reduce_mean(y * tf.math.log(p) + (1 - y) * tf.math.log(1 - p))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss
for step in range(5):
    loss = train_step(X, y)
''',
        expect=dict(phase={"loss"}, first_op={"Log"}, line_contains="tf.math.log(1 - p)",
                    status={"nonfinite"}, any_cause={"log_of_nonpositive"})),
    Scenario(
        "b08_nan_row_train_on_batch_loop",
        note=('One NaN (row 77, column 4) in the features fed through model.train_on_batch in a loop of 32-row slices: '
              'row 13 of the third slice (X[64:96]), each epoch. plain: the returned losses (10 of 10), the outputs and'
              ' the loss stay finite (the fused MatMul+BiasAdd+Relu maps the NaN pre-activations to 0); 2 of 10 applied'
              ' gradients NaN (the two steps on that slice); after the loop dense/kernel and its two Adam slots are '
              'NaN: only the state shows it. CN: MatMul sequential_1/dense_1/MatMul (the first op of the graph that '
              'consumes the argument; CN does not check arguments), line 11 (train_on_batch). dump: MatMul the first '
              'non-finite tensor (16 NaN: one row). Origin: the data (phase input).'),
        code='''
import numpy as np, keras
keras.utils.set_random_seed(208)
rng = np.random.default_rng(208)
X = rng.normal(size=(160, 6)).astype("float32"); X[77, 4] = np.nan
y = rng.normal(size=(160, 1)).astype("float32")
model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
for epoch in range(2):
    for start in range(0, 160, 32):
        loss = model.train_on_batch(X[start:start + 32], y[start:start + 32])
''',
        expect=dict(phase={"input"}, first_op=None, line_contains="model.train_on_batch(", array_rows=[13],
                    status={"nonfinite"}, any_cause={"nan_in_input"})),
    Scenario(
        "b09_hand_written_std_pow_blank_rows",
        note=('A per-sample standardisation layer after a ReLU Dense, the standard deviation written by hand as '
              'mean(square(h - mean)) ** 0.5 with the epsilon outside; 6 blank (all-zero) rows make h constant 0 at the'
              ' first step (bias 0). The forward is finite ((0 - 0) / (0 + 1e-6)); the gradient of x ** 0.5 at 0 is 0.5'
              ' * 0 ** -0.5 = inf, times 0. Replaced: the same layer with tf.math.reduce_std (the first draft) measured'
              " healthy: TF's SqrtGrad gives 0 when the incoming gradient is 0, Pow's gradient does not. plain: the "
              'loss and the outputs stay finite at all 8 steps; all 8 applied gradients NaN; dense kernel and bias and '
              'their slots NaN (the fused ReLU maps the NaN pre-activations to 0, the standardised zeros are 0): a NaN '
              'gradient hidden from the loss, only the weights go NaN. CN: Pow '
              'gradient_tape/sequential_1/standardize_1/pow/Pow, shape (32, 1), line 15 (model.fit). dump: Pow +inf x1 '
              '-> Mul NaN -> ... -> the Adam writes. Forward line: the ** 0.5 line. Cause: nondifferentiable_point (x '
              '** 0.5 at 0).'),
        code='''
import numpy as np, tensorflow as tf, keras
keras.utils.set_random_seed(209)
class PerSampleStandardize(keras.layers.Layer):
    def call(self, h):
        mean = tf.reduce_mean(h, axis=-1, keepdims=True)
        std = tf.reduce_mean(tf.square(h - mean), axis=-1, keepdims=True) ** 0.5
        return (h - mean) / (std + 1e-6)
rng = np.random.default_rng(209)
X = rng.uniform(0, 1, (128, 20)).astype("float32"); X[rng.choice(128, 6, replace=False)] = 0.0
y = rng.uniform(0, 1, (128, 1)).astype("float32")
model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(16, activation="relu"), PerSampleStandardize(name="standardize"),
                          keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, epochs=2, batch_size=32, verbose=0)
''',
        expect=dict(phase={"backward"}, first_op={"Pow"}, layer="standardize", line_contains="** 0.5",
                    forward_line_contains="keepdims=True) ** 0.5",
                    status={"nonfinite"}, any_cause={"nondifferentiable_point"})),
    Scenario(
        "b10_custom_train_step_adam_square_overflow",
        note=("b06's custom train_step on visit counts 0..400: the loss stays finite at the first step, but its "
              "gradients (~exp(log_rate) * x) are so large that Adam's gradient ** 2 overflows inside "
              "self.optimizer.apply. plain: the inf goes into Adam's velocity (state) at step 1 while the weights stay "
              'finite (m / sqrt(inf) = 0); from the next steps v + (g^2 - v) * (1 - beta_2) = inf - inf = NaN, the '
              'weights go NaN; loss, outputs and applied gradients non-finite at 3 of 8 steps. CN: Square adam/Square, '
              'shape (3, 8), line 11 (self.optimizer.apply in the cell). dump: adam/Square +inf x10 -> Sub -> Mul -> '
              'adam/AssignAddVariableOp_1 (the velocity slot). Cause wanted: gradient_square_overflow (none yet; '
              'unscaled_input or exploding_gradients are the nearest existing ids).'),
        code='''
import numpy as np, tensorflow as tf, keras
keras.utils.set_random_seed(206)
class PoissonRegressor(keras.Model):
    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            log_rate = self(x, training=True)
            loss = tf.reduce_mean(tf.exp(log_rate) - y * log_rate)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        return {"loss": loss}
rng = np.random.default_rng(206)
visits = rng.uniform(0, 400, (128, 3)).astype("float32"); calls = rng.poisson(4.0, (128, 1)).astype("float32")
inp = keras.Input((3,))
model = PoissonRegressor(inp, keras.layers.Dense(1, name="log_rate")(keras.layers.Dense(8, activation="relu")(inp)))
model.compile(optimizer="adam")
model.fit(visits, calls, epochs=2, batch_size=32, verbose=0)
''',
        expect=dict(phase={"optimizer"}, first_op={"Square"}, line_contains="self.optimizer.apply(",
                    status={"nonfinite"}, any_cause={"unscaled_input", "exploding_gradients"})),
    Scenario(
        "b11_batchnorm_moving_variance_overflow",
        note=('Added: non-trainable state alone. Raw transaction amounts in wei (~1e19..1e21) fed to a '
              'BatchNormalization first layer (as if BN replaced feature scaling): the batch variance overflows '
              'float32. plain: loss, outputs, applied gradients finite at all 16 steps, every trainable weight finite; '
              'only batch_normalization/moving_variance (non-trainable) is inf after fit (the training forward '
              'normalises that column to 0: x * rsqrt(inf) = 0). CN: SquaredDifference '
              'sequential_1/batch_normalization_1/moments/SquaredDifference, shape (32, 2), line 10 (model.fit). dump: '
              'SquaredDifference +inf -> moments/variance -> mul_3 -> add_1 -> AssignVariableOp_1 (moving_variance); '
              'the other branch (batchnorm/add -> rsqrt) is absorbed. Cause wanted: variance_overflow (none yet; '
              'unscaled_input or outlier_input are the nearest existing ids).'),
        code='''
import numpy as np, keras
keras.utils.set_random_seed(211)
rng = np.random.default_rng(211)
amount_wei = rng.lognormal(np.log(5e19), 1.0, 256); gas = rng.uniform(21000, 90000, 256)
X = np.column_stack([amount_wei, gas]).astype("float32"); y = (amount_wei > 5e19).astype("float32")
model = keras.Sequential([keras.Input((2,)), keras.layers.BatchNormalization(), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=2, batch_size=32, verbose=0)
''',
        expect=dict(phase={"forward"}, first_op={"SquaredDifference"}, layer="batch_normalization",
                    line_contains="model.fit(",
                    status={"nonfinite"}, any_cause={"unscaled_input", "outlier_input"})),
)

SCENARIOS = {**HEALTHY, **HARMFUL}   # what tests/scenarios/test_harm.py and tests/tools/measure_harm.py run
