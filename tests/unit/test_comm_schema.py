"""Every message the CommBroadcaster sends is a comm schema 1 message (docs/schema/comm.v1.schema.json).

The broadcaster is driven through whole runs with a recording channel and a manual clock, fed with
the records of real runs (the fixtures tests/tools/make_ts_fixtures.py recorded); no TensorFlow.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from nanwatch import schema, schema_json
from nanwatch.comm import CommBroadcaster
from nanwatch.sinks import Sink

FIXTURES = Path(__file__).resolve().parents[2] / "labextension" / "test" / "fixtures" / "reports"


class Channel:
    """A comm-like channel that records what it is sent, as strict JSON (what goes on the wire)."""

    comm_id = "test-comm-schema"

    def __init__(self):
        self.sent: list = []
        self._on_msg = None

    def send(self, data=None, metadata=None, buffers=None):
        self.sent.append(json.loads(json.dumps(data, allow_nan=False)))

    def on_msg(self, callback):
        self._on_msg = callback

    def on_close(self, callback):
        pass

    def close(self, *args, **kwargs):
        pass

    def hello(self):
        hello = {"v": 1, "type": "hello"}
        assert schema_json.validate_message(hello) == []
        self._on_msg({"content": {"comm_id": self.comm_id, "data": hello}})


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _fixture(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _run(fixture: dict, broadcaster: CommBroadcaster, channel: Channel, clock: Clock, n_steps: int = 0):
    """One run as the engine drives a sink: run_started, steps (with a snapshot mid-run), layers,
    first_nonfinite twice (found, then with the diagnosis), run_finished."""
    report = copy.deepcopy(fixture["report"])
    run_started = next(m for m in fixture["messages"] if m["type"] == "run_started")
    broadcaster.run_started(dict(run_started["run"]))
    steps = report["steps"] or [{"step": 0, "epoch": 0, "phase": "train", "loss": float("nan"), "metrics": {},
                                 "grad_norm": None}]
    for i in range(max(n_steps, len(steps))):
        record = dict(steps[i % len(steps)], step=i)
        if i % 7 == 3:
            record["loss"] = float("nan")   # raw floats: the broadcaster makes them JSON-safe
        broadcaster.step(record)
        clock.t += 0.05
        if i == 2:
            channel.hello()   # a sidebar connecting mid-run gets a snapshot with the active run
    if report["layers"]:
        broadcaster.layers(report["layers"])
    clock.t += 1.0
    if report["first_nonfinite"] is not None:
        broadcaster.first_nonfinite(report["first_nonfinite"], [])
        broadcaster.first_nonfinite(report["first_nonfinite"], report["diagnosis"])
    broadcaster.run_finished(report)


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_every_message_of_a_run_is_valid(name):
    clock, channel = Clock(), Channel()
    broadcaster = CommBroadcaster(clock=clock)
    broadcaster.attach(channel)
    channel.hello()
    _run(_fixture(name), broadcaster, channel, clock, n_steps=12)
    channel.hello()
    broadcaster.reset()
    kinds = [m["type"] for m in channel.sent]
    assert kinds[0] == "snapshot" and kinds[-1] == "reset" and "run_started" in kinds and "run_finished" in kinds
    assert "progress" in kinds
    active = [m["active"] for m in channel.sent if m["type"] == "snapshot" and m["active"] is not None]
    assert active, "no snapshot was taken mid-run"
    for message in channel.sent:
        assert schema_json.validate_message(message) == [], message["type"]


def test_long_runs_stay_within_the_schema_limits():
    """Trimmed to MAX_STEPS / MAX_HISTORY / MAX_PROGRESS_STEPS, and MAX_RUNS runs kept: still valid."""
    clock, channel = Clock(), Channel()
    broadcaster = CommBroadcaster(clock=clock)
    broadcaster.attach(channel)
    fixture = copy.deepcopy(_fixture("healthy_fit"))
    layer = fixture["report"]["layers"][0]
    layer["history"] = [dict(layer["history"][0], step=i) for i in range(schema.MAX_HISTORY + 50)]
    fixture["report"]["steps"] = [dict(fixture["report"]["steps"][0], step=i) for i in range(schema.MAX_STEPS + 50)]
    broadcaster.run_started(fixture["messages"][0]["run"])
    for i in range(schema.MAX_PROGRESS_STEPS + 30):   # no clock tick: coalesced, sent at the next tick
        broadcaster.step(dict(fixture["report"]["steps"][0], step=i))
    clock.t += 1.0
    broadcaster.step(dict(fixture["report"]["steps"][0], step=schema.MAX_PROGRESS_STEPS + 30))
    for i in range(schema.MAX_RUNS + 3):
        report = copy.deepcopy(fixture["report"])
        report["run"]["id"] = f"run{i}"
        broadcaster.run_finished(report)
    channel.hello()
    progress = [m for m in channel.sent if m["type"] == "progress"]
    finished = [m for m in channel.sent if m["type"] == "run_finished"]
    snapshot = channel.sent[-1]
    assert len(progress[-1]["steps"]) == schema.MAX_PROGRESS_STEPS
    assert len(finished[-1]["report"]["steps"]) == schema.MAX_STEPS
    assert len(finished[-1]["report"]["layers"][0]["history"]) == schema.MAX_HISTORY
    assert len(snapshot["runs"]) == schema.MAX_RUNS
    for message in channel.sent:
        assert schema_json.validate_message(message) == [], message["type"]


def test_a_run_started_without_the_cell_id_would_be_caught():
    """The contract: run_started carries {run_id, cell, cell_id, mode, started}; mode exact|fast."""
    clock, channel = Clock(), Channel()
    broadcaster = CommBroadcaster(clock=clock)
    broadcaster.attach(channel)
    broadcaster.run_started({"run_id": "r1", "cell": 1, "mode": "fast", "started": 1.0})
    broadcaster.run_started({"run_id": "r2", "cell": 1, "cell_id": None, "mode": "auto", "started": 1.0})
    broadcaster.run_started({"run_id": "r3", "cell": 1, "cell_id": "abc", "mode": "exact", "started": 1.0})
    verdicts = [schema_json.validate_message(m) for m in channel.sent]
    assert verdicts[0] and any("cell_id" in e for e in verdicts[0])
    assert verdicts[1] and any(e.startswith("run/mode") for e in verdicts[1])
    assert verdicts[2] == []


def test_the_broadcaster_is_a_sink():
    assert isinstance(CommBroadcaster(), Sink)
    assert isinstance(CommBroadcaster.instance(), Sink)
