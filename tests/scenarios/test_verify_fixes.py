"""Fixes verified on the failing step (issue 15, item 3), through real `%%nanwatch` cells: each top cause's
fix applied to what the run kept of the failing step, and the verdict in the report and its views.

- a rewrite on the failing op's recorded inputs: the where trap, sqrt at 0's gradient, a negative under
  sqrt, exp overflow, a division by zero -> "true"; log(0) (fast and exact mode), whose fix offers the loss
  from logits first;
- a changed hyperparameter re-run from the pre-step weights: Adam's epsilon back to 1e-7, a clipped update
  of a rate that overflows float32, the loss from logits under a ReLU output -> "true"; a lower rate where the step's forward pass is already
  non-finite at the weights before it -> "false", saying why;
- the data fix (the batch without its non-finite rows) -> "true";
- fixes that change what the run did not record -> "not tried", saying why.
"""

import pytest

from tests.scenarios.diagnosis import SCENARIOS as DIAGNOSIS
from tests.scenarios.harm import SCENARIOS as HARM
from tests.scenarios.core import SCENARIOS as CORE
from tests.scenarios.loss_data import SCENARIOS as LOSS_DATA

pytestmark = pytest.mark.slow


def _verdicts(report):
    return {d["cause"]: (d.get("verified"), d.get("verified_how") or "") for d in report.to_dict()["diagnosis"]}


@pytest.mark.parametrize("catalogue,name,cause,says", [
    (DIAGNOSIS, "d09_exp_overflow_poisson_loss", "exp_overflow", "the Exp at line 6 rewritten (`minimum`)"),
    (DIAGNOSIS, "d07_division_by_zero_mape_loss", "division_by_zero", "the RealDiv at line 6 rewritten"),
    (HARM, "b04_where_trap_log_poisson_loss", "where_gradient_trap", "the Log at line 5 rewritten (`where`)"),
    (CORE, "c01_backward_sqrt_at_zero", "nondifferentiable_point", "the Sqrt at line 5 rewritten (`1e-12`)"),
    (DIAGNOSIS, "d06_sqrt_of_negative_rmsnorm", "sqrt_of_negative", "the Sqrt at line 5 rewritten"),
])
def test_a_rewrite_on_the_recorded_inputs_makes_the_op_finite(runner, catalogue, name, cause, says):
    report = runner.report(catalogue[name])
    verified, how = _verdicts(report)[cause]
    assert verified == "true", (verified, how)
    assert says in how and "forward and gradient finite" in how and "as written:" in how, how


@pytest.mark.parametrize("options", [None, "--no-panel --mode exact"])
def test_log_of_zero_the_fixs_first_alternative_is_tried_first(runner, options):
    """d05's fix: the loss from logits, "or" line 6 rewritten: the first that makes the step finite is said."""
    report = runner.report(DIAGNOSIS["d05_log_of_relu_output_custom_loss"], options=options)
    verified, how = _verdicts(report)["log_of_nonpositive"]
    assert verified == "true", how
    assert "with the loss `keras.losses.BinaryCrossentropy(from_logits=True)`" in how, how


def test_adam_epsilon_back_cures_the_step_and_the_fixes_it_cannot_apply_are_not_tried(runner):
    report = runner.report(HARM["b01_adam_epsilon_zero_unused_category"])
    verdicts = _verdicts(report)
    verified, how = verdicts["optimizer_epsilon_zero"]
    assert verified == "true" and "epsilon=1e-7" in how and "without the change: the weights the update wrote" in how, how
    # Adam's own division is not the user's line; the data standardisation is not what the step ran
    assert verdicts["division_by_zero"] == ("not tried", "not tried: the RealDiv is not in your code (no line of "
                                                         "yours to rewrite)")
    assert verdicts["zero_variance_normalization"][0] == "not tried"
    text = report.to_text()
    assert "verified on the failing step: step 0 re-run" in text and "not tried: the RealDiv is not in your code" in text
    assert "nw-verified-true" in report.to_html() and "nw-verified-not-tried" in report.to_html()


def test_a_lower_rate_does_not_cure_a_step_whose_forward_pass_is_already_non_finite(runner):
    report = runner.report(DIAGNOSIS["d12_learning_rate_too_high_sgd"])
    verified, how = _verdicts(report)["learning_rate_too_high"]
    assert verified == "false", how
    assert "learning_rate=0.1" in how and "still non-finite (the model's outputs" in how, how
    assert "the change must apply from the earlier steps" in how
    assert "did not make the step finite" in report.to_text()


def test_the_loss_from_logits_cures_a_relu_output_and_keras_own_division_is_not_the_users(runner):
    report = runner.report(LOSS_DATA["l02_relu_output_into_categorical_crossentropy"])
    verdicts = _verdicts(report)
    verified, how = verdicts["loss_expects_probabilities"]
    assert verified == "true" and "`keras.losses.CategoricalCrossentropy(from_logits=True)`" in how, how
    assert "without the change: the loss (1 NaN of 1)" in how, how
    # the 0/0 is in Keras's cross-entropy (attributed to the fit line): no line of the user's to rewrite
    assert verdicts["division_by_zero"][0] == "not tried" and "not in your code" in verdicts["division_by_zero"][1]


def test_dropping_the_non_finite_rows_cures_the_step(runner):
    report = runner.report(DIAGNOSIS["d02_inf_in_input_ratio_feature"])
    verified, how = _verdicts(report)["inf_in_input"]
    assert verified == "true" and "without the 1 row(s) holding NaN/Inf (31 of 32 rows kept)" in how, how


OVERFLOWING_UPDATE = '''
import numpy as np, keras
keras.utils.set_random_seed(3)
X = np.random.rand(256, 8).astype("float32"); y = (X @ np.arange(8.0).reshape(8, 1)).astype("float32")
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e38), loss="mse")
model.fit(X, y, epochs=2, batch_size=32, verbose=0)
'''


def test_a_clipped_update_cures_a_step_whose_update_overflows(cell):
    """SGD(learning_rate=1e38): step 0's own update overflows float32 (the forward pass is finite), so the
    changed hyperparameter re-run from the pre-step weights shows the cure."""
    _, report = cell.run(OVERFLOWING_UPDATE)
    data = report.to_dict()
    assert data["first_nonfinite"]["phase"] == "optimizer" and data["first_nonfinite"]["step"] == 0
    top = data["diagnosis"][0]
    assert "clipnorm=1.0" in top["fix"]
    assert top["verified"] == "true", top
    assert "updated weights and optimizer state finite (without the change: the weights the update wrote" \
        in top["verified_how"]
