"""Fast mode: a cheap sentinel while healthy, the exact answer on the first NaN (issue #6).

Fast against exact on every zoo and core scenario that calls `fit` (through the `runner` fixture),
and fast mode's own behaviour on zoo scenarios and on cells of its own (the `cell` fixture).
"""

import numpy as np
import pytest

from tests.scenarios.core import SCENARIOS as CORE
from tests.scenarios.zoo import SCENARIOS as ZOO

FIT_SCENARIOS = {name: s for name, s in {**ZOO, **CORE}.items() if ".fit(" in s.code}


def _where(report):
    first = report.to_dict()["first_nonfinite"]
    if first is None:
        return None
    return first["op_type"], first["layer"], first["phase"]


@pytest.mark.parametrize("name", sorted(FIT_SCENARIOS))
def test_fast_and_exact_agree(runner, name):
    scenario = FIT_SCENARIOS[name]
    exact = runner.report(scenario, options="--no-panel --mode exact")
    fast = runner.report(scenario, options="--no-panel --mode fast")
    assert exact.mode == "exact"
    assert _where(fast) == _where(exact), (fast.to_text(), exact.to_text())
    if _where(fast) is not None and fast.first_nonfinite["phase"] != "input":
        assert fast.mode == "fast"
        assert fast.first_nonfinite["replayed"] is True and fast.first_nonfinite["reproduced"] is True


def test_rewind_weights_and_bad_batch(cell):
    code = ZOO["p03_sqrt_custom_layer"].code + "weights_after = model.get_weights()\n"
    result, report = cell.run(code, options="--no-panel --mode fast")
    assert report.mode == "fast" and report.first_nonfinite["op_type"] == "Sqrt"
    model = cell.ip.user_ns["model"]
    # the sentinel skipped the failing update: the model still holds the pre-NaN weights
    assert all(np.isfinite(w).all() for w in model.get_weights())
    for before, now in zip(report.pre_nan_weights, model.get_weights()):
        np.testing.assert_array_equal(before, now)
    x, y = report.bad_batch[0], report.bad_batch[1]
    assert x.shape == (32, 4) and y.shape == (32, 1)
    model.set_weights([w * 0 for w in model.get_weights()])
    report.restore_weights(model)
    for before, now in zip(report.pre_nan_weights, model.get_weights()):
        np.testing.assert_array_equal(before, now)


ADAM_OVERFLOW = '''
import numpy as np, keras
X = np.full((8, 1), 1e12, "float32"); y = np.zeros((8, 1), "float32")
model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, kernel_initializer="ones", name="lin")])
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
model.fit(X, y, epochs=1, verbose=0)
'''


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_nonfinite_only_inside_the_optimizer(cell, mode):
    """Finite gradients (~1e24) whose square overflows in Adam's second moment."""
    _, report = cell.run(ADAM_OVERFLOW, options=f"--no-panel --mode {mode}")
    first = report.to_dict()["first_nonfinite"]
    assert first is not None and first["phase"] == "optimizer", report.to_text()
    assert first["inputs"] and all(i["finite"] for i in first["inputs"])


def test_custom_loops_run_exact(runner):
    _, report = runner.run(ZOO["p02_log_of_zero_custom_loop"], options="--no-panel --mode fast")
    assert report.mode == "exact" and report.first_nonfinite["op_type"] == "Log"


def test_healthy_fast_run_is_healthy_and_records_stats(runner):
    _, report = runner.run(ZOO["p10_healthy_mlp"], options="--no-panel --stats-every 2")
    data = report.to_dict()
    assert data["status"] == "healthy" and data["mode"] == "fast"
    assert len(data["steps"]) == 16 and all(s["grad_norm"] > 0 for s in data["steps"])
    assert {layer["layer"] for layer in data["layers"]} == {"dense", "dense_1"} or len(data["layers"]) == 2
    assert all(len(layer["history"]) == 8 for layer in data["layers"])


def test_default_layer_stats_keep_coming_within_their_time_budget(cell):
    """Default cadence: every 10 steps while per-layer statistics take at most 2% of the training
    time. The first call traces the weight-reading function (~0.1 s) and must not use up the
    budget: it once did, and a 600-step run got a single per-layer point."""
    code = '''
import numpy as np, keras
X = np.random.rand(600 * 16, 8).astype("float32"); y = np.random.rand(600 * 16, 1).astype("float32")
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, batch_size=16, epochs=1, verbose=0)
'''
    _, report = cell.run(code, options="--no-panel")
    data = report.to_dict()
    assert data["status"] == "healthy" and len(data["steps"]) == 600
    for layer in data["layers"]:
        steps = [point["step"] for point in layer["history"]]
        assert steps[0] == 0 and all(s % 10 == 0 for s in steps)
        assert 5 <= len(steps) <= 60, steps   # budgeted (<= every 10 steps), yet steady
