"""What engine/verify.py reads from a fix's text (no TensorFlow): the optimizer and schedule a fix writes,
with their literal arguments, and how the views say a verdict."""

from nanwatch.engine.verify import KEEP, loss_spec, optimizer_spec
from nanwatch.views import _format as f


def test_the_optimizer_a_fix_writes_is_read_with_its_literal_arguments():
    spec = optimizer_spec("Lower the learning rate (and clip): `optimizer=keras.optimizers.SGD(learning_rate=0.1, "
                          "clipnorm=1.0)` (was 1).")
    assert spec["class"] == "SGD" and spec["kwargs"] == {"learning_rate": 0.1, "clipnorm": 1.0} and not spec["args"]
    assert spec["text"] == "keras.optimizers.SGD(learning_rate=0.1, clipnorm=1.0)" and spec["schedule"] is None


def test_a_schedule_the_fix_builds_and_a_name_of_the_users_own_object():
    spec = optimizer_spec("Make `schedule` decay: `schedule = keras.optimizers.schedules.ExponentialDecay(0.01, "
                          "decay_steps=1, decay_rate=0.96)`")
    assert spec["class"] is None and spec["schedule"] == ("ExponentialDecay", [0.01], {"decay_steps": 1,
                                                                                     "decay_rate": 0.96})
    spec = optimizer_spec("Clip gradients: `optimizer=keras.optimizers.SGD(learning_rate=schedule, clipnorm=1.0)`.")
    assert spec["kwargs"] == {"learning_rate": KEEP, "clipnorm": 1.0}   # `schedule` is the user's: kept as it is


def test_fixes_without_an_optimizer_are_not_hyperparameter_fixes():
    assert optimizer_spec("Divide safely: `tf.math.divide_no_nan(a, b)`") is None
    assert optimizer_spec("lower the learning rate with `clipnorm=1.0`") is None
    assert optimizer_spec("`keras.optimizers.SGD(learning_rate=1e-3`") is None   # unbalanced: not read
    assert optimizer_spec("`keras.optimizers.SGD(learning_rate=lr * 0.1)`") is None   # an expression: not read


def test_the_views_say_each_verdict_and_nothing_for_an_entry_without_one():
    assert f.verdict_text({"verified": "true", "verified_how": "step 3 re-run"}) == \
        "verified on the failing step: step 3 re-run"
    assert f.verdict_text({"verified": "false", "verified_how": "still NaN"}) == "did not make the step finite: still NaN"
    assert f.verdict_text({"verified": "not tried", "verified_how": "not tried: a custom loop"}) == \
        "not tried: a custom loop"
    assert f.verdict_text({"cause": "unscaled_input"}) == ""


def test_the_loss_a_fix_writes_is_read_and_one_with_a_users_name_is_not():
    spec = loss_spec("an output layer without activation and `model.compile(loss=keras.losses.CategoricalCrossentropy("
                     "from_logits=True), ...)`")
    assert spec == {"class": "CategoricalCrossentropy", "args": [], "kwargs": {"from_logits": True},
                    "text": "keras.losses.CategoricalCrossentropy(from_logits=True)"}
    assert loss_spec("`keras.losses.Huber(delta=my_delta)`") is None
    assert loss_spec("use `from_logits=True`") is None
