"""Issue 15 part B's scenarios (tests/scenarios/loss_data.py), run for real as `%%nanwatch` cells: each
SCENARIO located and diagnosed as its `expect` says, each FALSE_ALARM healthy; plus what the catalogue's
keys cannot say (the PyDataset's batch and rows, the loss fix naming the user's loss object)."""

import pytest

from tests.scenarios.catalogue import check_causes, check_location
from tests.scenarios.diagnosis import SCENARIOS as DIAGNOSIS
from tests.scenarios.loss_data import FALSE_ALARMS, SCENARIOS

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(runner, name):
    report = runner.report(SCENARIOS[name])
    data = report.to_dict()
    problems = check_location(data, SCENARIOS[name].expect) + check_causes(data, SCENARIOS[name].expect)
    assert not problems, f"{name}: {problems}\n{report.to_text()}"


@pytest.mark.parametrize("name", list(FALSE_ALARMS))
def test_false_alarm(runner, name):
    report = runner.report(FALSE_ALARMS[name])
    data = report.to_dict()
    problems = check_location(data, FALSE_ALARMS[name].expect) + check_causes(data, FALSE_ALARMS[name].expect)
    assert not problems, f"{name}: {problems}\n{report.to_text()}"


@pytest.mark.parametrize("options", [None, "--no-panel --mode exact"])
def test_pydataset_batch_and_rows(runner, options):
    data = runner.report(SCENARIOS["l01_pydataset_inf_in_batch_5"], options=options).to_dict()
    assert data["first_nonfinite"]["phase"] == "input" and data["first_nonfinite"]["op_type"] is None
    where = data["first_nonfinite"]["data"]
    assert (where["batch"], where["rows"], where["columns"]) == (5, [3], [1]), where
    assert "batch 5" in data["diagnosis"][0]["evidence"]


def test_loss_fix_names_the_loss_object(runner):
    data = runner.report(SCENARIOS["l02_relu_output_into_categorical_crossentropy"]).to_dict()
    assert "keras.losses.CategoricalCrossentropy(from_logits=True)" in data["diagnosis"][0]["fix"]


def test_log_fix_keeps_the_meaning(runner):
    """d05: a ReLU output into a hand-written cross-entropy; the fix must not clip it to 1.0."""
    data = runner.report(DIAGNOSIS["d05_log_of_relu_output_custom_loss"]).to_dict()
    fix = data["diagnosis"][0]["fix"]
    assert "from_logits=True" in fix and "tf.maximum(y_pred, 1e-7)" in fix and "1.0)" not in fix, fix
