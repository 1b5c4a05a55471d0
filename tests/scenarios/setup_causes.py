"""Scenarios of the training set-up (issue 15, part A), in the catalogue format (tests/scenarios/catalogue.py):
the learning rate the optimizer actually used (schedules, callbacks), a zero or negative rate, and a finite
input outside a function's domain.

SCENARIOS must be located and diagnosed; FALSE_ALARMS are healthy trainings whose schedules or callbacks
change the rate, and must raise nothing. `expect` was measured on TensorFlow 2.21 / Keras 3.15 (CPU) with
`tests/tools/measure_scenarios.py tests.scenarios.setup_causes` (`truth="check_numerics"`: CN is the first op
that raises under `tf.debugging.enable_check_numerics()`, plain the unwatched run); each `note` gives both.
The rates quoted in notes were computed from the schedule (ExponentialDecay: 0.01 * 1.5**step).
"""

from tests.scenarios.catalogue import Scenario, catalogue

MLP_DATA = '''
import numpy as np, keras
keras.utils.set_random_seed({seed})
rng = np.random.default_rng({seed})
X = rng.normal(size=({rows}, 20)).astype("float32"); y = (X[:, :1] * 3 + rng.normal(0, 1, ({rows}, 1))).astype("float32")
model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
'''


# A custom training loop of the TensorFlow guides: the optimizer is never compiled into the model.
LOOP = """
schedule = keras.optimizers.schedules.{sched}
opt = keras.optimizers.{opt}(schedule)
loss_fn = keras.losses.MeanSquaredError()
ds = tf.data.Dataset.from_tensor_slices((X, y)).batch(32)
{deco}def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return loss
for epoch in range(3):
    for xb, yb in ds:
        train_step(xb, yb)
"""


def mlp(seed: int, rows: int, rest: str) -> str:
    return MLP_DATA.format(seed=seed, rows=rows) + rest.strip("\n") + "\n"


SCENARIOS = catalogue(
    "setup_causes", "check_numerics",
    Scenario(
        "s01_exponential_decay_that_grows",
        note="issue 15: ExponentialDecay(0.01, decay_steps=1, decay_rate=1.5) grows 1.5x per step. CN: MatMul "
              "sequential_1/dense_1_2/MatMul (graph one_step_on_data), shape (32, 1). plain: History loss "
              "[nan, nan, nan], every weight NaN.",
        code=mlp(15, 512, '''
schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=1, decay_rate=1.5)
model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
model.fit(X, y, epochs=3, batch_size=32, verbose=0)
'''),
        expect=dict(status={"nonfinite"}, phase={"forward"}, first_op={"MatMul"}, cause={"learning_rate_schedule_grows"})),
    Scenario(
        "s02_piecewise_constant_up_to_5",
        note="a PiecewiseConstantDecay whose values climb 0.01 -> 0.05 -> 5.0 after steps 10 and 20. CN: Square "
              "compile_loss/mse/Square, shape (32, 1). plain: History loss [7.18, nan, nan], every weight NaN.",
        code=mlp(26, 512, '''
boost = keras.optimizers.schedules.PiecewiseConstantDecay([10, 20], [0.01, 0.05, 5.0])
model.compile(optimizer=keras.optimizers.SGD(boost), loss="mse")
model.fit(X, y, epochs=3, batch_size=32, verbose=0)
'''),
        expect=dict(status={"nonfinite"}, cause={"learning_rate_schedule_grows"})),
    Scenario(
        "s03_custom_schedule_ramp",
        note="a LearningRateSchedule subclass without get_config: 0.01 * (1 + step) ** 2. CN: Square "
              "compile_loss/mse/Square, shape (32, 1). plain: History loss [nan, nan, nan], every weight NaN.",
        code=mlp(27, 512, '''
import tensorflow as tf
class Ramp(keras.optimizers.schedules.LearningRateSchedule):
    def __call__(self, step):
        return 0.01 * (1.0 + tf.cast(step, tf.float32)) ** 2
ramp = Ramp()
model.compile(optimizer=keras.optimizers.SGD(ramp), loss="mse")
model.fit(X, y, epochs=3, batch_size=32, verbose=0)
'''),
        expect=dict(status={"nonfinite"}, cause={"learning_rate_schedule_grows"})),
    Scenario(
        "s04_learning_rate_scheduler_callback_grows",
        note="keras.callbacks.LearningRateScheduler multiplies the rate by 4 each epoch (0.04 in epoch 0). "
              "CN: Square compile_loss/mse/Square, shape (32, 1). plain: History loss [7.46, 12.99, nan, ...], "
              "every weight NaN.",
        code=mlp(23, 256, '''
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
warmup = keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 4.0)
model.fit(X, y, epochs=8, batch_size=32, verbose=0, callbacks=[warmup])
'''),
        expect=dict(status={"nonfinite"}, cause={"learning_rate_too_high"})),
    Scenario(
        "s05_negative_learning_rate",
        note="SGD(learning_rate=-0.05): gradient ascent on the MSE. CN: Square compile_loss/mse/Square, "
              "shape (32, 1). plain: History loss [45.6, nan, ...], every weight NaN.",
        code=mlp(24, 256, '''
opt = keras.optimizers.SGD(learning_rate=-0.05)
model.compile(optimizer=opt, loss="mse")
model.fit(X, y, epochs=10, batch_size=32, verbose=0)
'''),
        expect=dict(status={"nonfinite"}, cause={"learning_rate_nonpositive"})),
    Scenario(
        "s06_zero_learning_rate",
        note="Adam(learning_rate=0.0): finite, and nothing trains. CN: nothing raised. plain: all finite.",
        code=mlp(25, 256, '''
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.0), loss="mse")
model.fit(X, y, epochs=2, batch_size=32, verbose=0)
'''),
        expect=dict(status={"warning"}, any_cause={"learning_rate_nonpositive"})),
    Scenario(
        "s07_acos_of_a_cosine_above_one",
        note=("the angle between an embedding and itself: l2_normalize rounds some cosines to 1.0000001 in "
              "float32, and acos of them is NaN. CN: Acos (eager), cell line 12. plain: the loss NaN, the "
              "encoder's kernel and bias NaN after the loop."),
        code='''
import numpy as np, tensorflow as tf, keras
rng = np.random.default_rng(7)
X = tf.constant(rng.normal(size=(64, 16)).astype("float32"))
encoder = keras.Sequential([keras.Input((16,)), keras.layers.Dense(16, name="proj")])
optimizer = keras.optimizers.SGD(learning_rate=0.01)
for step in range(3):
    with tf.GradientTape() as tape:
        a = tf.math.l2_normalize(encoder(X), axis=-1)
        b = tf.math.l2_normalize(encoder(X), axis=-1)
        cos = tf.reduce_sum(a * b, axis=-1)
        angle = tf.acos(cos)
        loss = tf.reduce_mean(angle)
    grads = tape.gradient(loss, encoder.trainable_variables)
    optimizer.apply_gradients(zip(grads, encoder.trainable_variables))
''',
        expect=dict(status={"nonfinite"}, first_op={"Acos"}, line_contains="tf.acos(cos)", cause={"domain_error"})),
    Scenario(
        "s08_growing_schedule_in_a_custom_loop",
        note=("s01's growing ExponentialDecay in an eager GradientTape loop, the optimizer never compiled into a "
              "model: its facts come from its apply_gradients. CN: Square (eager, the loss: 32 +Inf), shape (32, 1). "
              "plain: no error, every weight NaN after the loop. Before the optimizer was read from apply_gradients, the "
              "diagnosis was learning_rate_too_high 0.35 with a generic fix."),
        code=mlp(15, 512, """import tensorflow as tf""" + LOOP.format(
            sched="ExponentialDecay(0.01, decay_steps=1, decay_rate=1.5)", opt="SGD", deco="")),
        expect=dict(status={"nonfinite"}, cause={"learning_rate_schedule_grows"})),
    Scenario(
        "s09_growing_schedule_in_a_tf_function_step",
        note=("s08 with the step a user @tf.function (fast mode: sinks read after each call, then an eager "
              "replay). CN: Square mean_squared_error/Square (graph train_step), shape (32, 1). plain: no error, "
              "every weight NaN after the loop."),
        code=mlp(15, 512, """import tensorflow as tf""" + LOOP.format(
            sched="ExponentialDecay(0.01, decay_steps=1, decay_rate=1.5)", opt="SGD", deco="@tf.function\n")),
        expect=dict(status={"nonfinite"}, cause={"learning_rate_schedule_grows"})),
    Scenario(
        "s10_sgd_momentum_steps_too_large",
        note=("SGD(0.1, momentum=0.9): momentum makes the steps those of a rate of 1.0 (lr / (1 - m)); "
              "SGD(0.01, momentum=0.9) and SGD(0.1) stay finite on this cell (measured). Before momentum was "
              "read, the diagnosis was exploding_gradients 0.8 ('the learning rate is ordinary') with a fix that "
              "dropped the momentum. CN: Square compile_loss/mse/Square (graph one_step_on_data), shape (32, 1). plain: History loss "
              "[8.22, nan, nan, nan, nan], every weight NaN."),
        code=mlp(15, 512, '''
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9), loss="mse")
model.fit(X, y, epochs=5, batch_size=32, verbose=0)
'''),
        expect=dict(status={"nonfinite"}, cause={"learning_rate_too_high"})),
    Scenario(
        "s11_adam_rate_far_too_high_without_nan",
        note=("Adam(1.0): no NaN, but the loss (Keras's running mean) goes 8.9 -> 6000 -> 60 at the end: worse "
              "than at the start. A warning (learning_rate_too_high) before the training goes wrong. CN: nothing "
              "raised. plain: all finite."),
        code=mlp(15, 512, '''
model.compile(optimizer=keras.optimizers.Adam(learning_rate=1.0), loss="mse")
model.fit(X, y, epochs=5, batch_size=32, verbose=0)
'''),
        expect=dict(status={"warning"}, any_cause={"learning_rate_too_high"})),
)

FALSE_ALARMS = catalogue(
    "setup_causes", "check_numerics",
    Scenario(
        "h01_exponential_decay",
        note="ExponentialDecay(0.05, decay_steps=10, decay_rate=0.9): an ordinary decaying schedule. "
              "CN: nothing raised. plain: all finite.",
        code=mlp(21, 512, '''
schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=10, decay_rate=0.9)
model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
model.fit(X, y, epochs=3, batch_size=32, verbose=0)
'''),
        expect=dict(status={"healthy"})),
    Scenario(
        "h02_reduce_lr_on_plateau",
        note="ReduceLROnPlateau halves the rate from epochs 2 and 3 on (min_delta=10: a plateau whenever "
              "its patience allows). CN: nothing raised. plain: all finite.",
        code=mlp(22, 256, '''
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
plateau = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10.0, verbose=0)
model.fit(X, y, epochs=4, batch_size=32, verbose=0, callbacks=[plateau])
'''),
        expect=dict(status={"healthy"})),
    Scenario(
        "h03_cosine_decay_with_warmup_from_zero",
        note="CosineDecay(0.0, warmup_target=0.001, warmup_steps=20) with Adam: the rate is 0 at step 0 "
              "only. CN: nothing raised. plain: all finite.",
        code=mlp(28, 512, '''
warm = keras.optimizers.schedules.CosineDecay(0.0, decay_steps=100, warmup_target=0.001, warmup_steps=20)
model.compile(optimizer=keras.optimizers.Adam(warm), loss="mse")
model.fit(X, y, epochs=3, batch_size=32, verbose=0)
'''),
        expect=dict(status={"healthy"})),
    Scenario(
        "h04_decaying_schedule_in_a_tf_function_step",
        note="h01's ordinary decaying schedule in a user @tf.function GradientTape step, never compiled. CN: "
              "nothing raised. plain: all finite.",
        code=mlp(21, 512, """import tensorflow as tf""" + LOOP.format(
            sched="ExponentialDecay(0.05, decay_steps=10, decay_rate=0.9)", opt="SGD", deco="@tf.function\n")),
        expect=dict(status={"healthy"})),
    Scenario(
        "h05_adam_high_rate_that_still_learns",
        note=("Adam(0.3), 3x Adam's usual upper end: the loss climbs to 28 early and ends at 4.6, below its start "
              "(8.9): it learns, so no rate warning. CN: nothing raised. plain: all finite."),
        code=mlp(15, 512, '''
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.3), loss="mse")
model.fit(X, y, epochs=5, batch_size=32, verbose=0)
'''),
        expect=dict(status={"healthy"})),
)
