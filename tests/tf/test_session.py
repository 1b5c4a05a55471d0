"""WatchSession and its Recorder through the declared interfaces: the sinks (nanwatch.sinks.Sink)
see the run in order, with its mode decided before it is announced; a failing sink is noted,
never raised; stop / --no-stop; nesting; cleanup after an exception."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from nanwatch.engine.frames import CellMap  # noqa: E402
from nanwatch.options import Options  # noqa: E402
from nanwatch.session import NestedWatchError, WatchSession, last_report  # noqa: E402
from nanwatch.sinks import Sink  # noqa: E402


class Events(Sink):
    def __init__(self):
        self.seen = []

    def run_started(self, run):
        self.seen.append(("run_started", dict(run)))

    def step(self, record):
        self.seen.append(("step", record["step"]))

    def layers(self, records):
        self.seen.append(("layers", [r["layer"] for r in records]))

    def first_nonfinite(self, first, diagnosis):
        self.seen.append(("first_nonfinite", first["phase"], [d["cause"] for d in diagnosis]))

    def run_finished(self, report):
        self.seen.append(("run_finished", report["status"]))

    def names(self):
        return [s[0] for s in self.seen]


class Broken(Sink):
    def step(self, record):
        raise RuntimeError("view bug")


def _fit(nan_row=None, epochs=1, **options):
    rng = np.random.default_rng(1)
    x = rng.random((32, 4)).astype("float32")
    if nan_row is not None:
        x[nan_row, 0] = np.nan
    y = rng.random((32, 1)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="hidden"),
                              keras.layers.Dense(1, name="out")])
    model.compile(keras.optimizers.Adam(0.01), "mse")
    sink = Events()
    cells = CellMap()
    cells.cell_ids[7] = "cell-seven"
    session = WatchSession(Options(panel=False, **options), cells=cells, cell=7, sinks=[sink, Broken()])
    with session:
        model.fit(x, y, epochs=epochs, batch_size=8, shuffle=False, verbose=0)
    return session, sink, model


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_sinks_see_the_run_in_order_with_the_mode_it_ran(mode):
    session, sink, _ = _fit(epochs=3, mode=mode, stats_every=2)
    names = sink.names()
    assert names[0] == "run_started" and names[-1] == "run_finished"
    run = sink.seen[0][1]
    assert run["mode"] == mode and run["cell"] == 7 and run["cell_id"] == "cell-seven"
    assert run["run_id"] == session.report.run_id
    assert [s[1] for s in sink.seen if s[0] == "step"] == list(range(12))
    assert ("layers", ["hidden", "out"]) in sink.seen
    assert sink.seen[-1] == ("run_finished", "healthy")
    assert last_report() is session.report and session.report.mode == mode
    # the broken view was noted once per hook failure, and the run went on
    assert any("Broken.step failed" in n for n in session.report.notes)


def test_first_nonfinite_is_sent_when_found_and_again_with_the_diagnosis():
    session, sink, _ = _fit(nan_row=9)
    firsts = [s for s in sink.seen if s[0] == "first_nonfinite"]
    assert firsts[0] == ("first_nonfinite", "input", [])
    assert firsts[-1][1] == "input" and "nan_in_input" in firsts[-1][2]
    assert session.report.stopped and session.report.status == "nonfinite"
    assert session.report.first_nonfinite["data"]["array_rows"] == [9]
    assert sink.names().index("run_started") < sink.names().index("first_nonfinite")


def test_no_stop_records_the_first_and_runs_on_unchecked():
    session, sink, model = _fit(nan_row=9, stop=False, epochs=2)
    assert not session.report.stopped
    assert session.report.first_nonfinite["data"]["batch"] == 1
    assert len(session.report.steps) == 8          # both epochs ran
    assert session.probe.active is False           # checks off after the first
    assert [s for s in sink.seen if s[0] == "first_nonfinite"][0][1] == "input"


def test_weights_already_nonfinite_are_found_before_the_first_step():
    session, sink, model = _fit()
    weights = model.get_weights()
    weights[0][1, 2] = np.nan
    model.set_weights(weights)
    sink = Events()
    with WatchSession(Options(panel=False), sinks=[sink]) as again:
        model.fit(np.ones((8, 4), "float32"), np.ones((8, 1), "float32"), verbose=0)
    first = again.report.first_nonfinite
    assert first["context"] == "weights" and first["op_type"] == "ReadVariableOp"
    assert first["layer"] == "hidden" and first["phase"] == "input"
    assert first["data"]["source"] == "weights" and first["data"]["variable"] == "kernel"
    assert again.report.stopped
    assert not any(s[0] == "step" for s in sink.seen)


def test_nested_watch_is_a_usage_error_and_leaves_the_outer_run_intact():
    with WatchSession(Options(panel=False)) as outer:
        with pytest.raises(NestedWatchError):
            with WatchSession(Options(panel=False)):
                pass
        tf.math.log(tf.constant([2.0]))
    assert outer.report.status == "healthy" and outer.report.error is None


def test_an_exception_in_the_cell_passes_through_and_everything_is_undone():
    from tensorflow.python.framework import op_callbacks
    gradient = tf.GradientTape.__dict__["gradient"]
    with pytest.raises(ZeroDivisionError):
        with WatchSession(Options(panel=False)) as session:
            1 / 0
    assert session.report.error.startswith("ZeroDivisionError") and session.report.status == "error"
    assert tf.GradientTape.__dict__["gradient"] is gradient
    assert not op_callbacks.should_invoke_op_callbacks()


def test_a_run_without_steps_is_announced_at_the_end_in_exact_mode():
    sink = Events()
    with WatchSession(Options(panel=False), sinks=[sink]):
        pass
    assert sink.names() == ["run_started", "run_finished"]
    assert sink.seen[0][1]["mode"] == "exact"
