"""The kernel side of the sidebar protocol (nanwatch/comm.py).

Two levels:
- the broadcaster in-process, with recording channels and a manual clock (validation,
  snapshot, throttle, reset, trimming): fast and deterministic;
- a real ipykernel driven by jupyter_client, the test acting as the frontend: comm
  target refusal before `%load_ext`, the kernel-opened comm after it, hello -> snapshot,
  malformed messages ignored (and never evaluated), throttled live progress from a real
  `%%nanwatch` cell whose model goes NaN.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from nanwatch import comm as nwcomm
from nanwatch.comm import CommBroadcaster, parse_incoming
from tests.support import REPO

ROOT = REPO


# ---------------------------------------------------------------------------------------
# in-process


class Channel:
    """A comm-like recording channel (the interface of the `comm` package's comms)."""

    def __init__(self, fail=False):
        self.comm_id = uuid.uuid4().hex
        self.sent = []
        self.closed = False
        self.fail = fail
        self._on_msg = self._on_close = None

    def send(self, data=None, metadata=None, buffers=None):
        if self.fail:
            raise RuntimeError("kernel gone")
        json.dumps(data, allow_nan=False)  # what goes on the wire must be strict JSON
        self.sent.append(data)

    def on_msg(self, cb):
        self._on_msg = cb

    def on_close(self, cb):
        self._on_close = cb

    def close(self, *a, **k):
        self.closed = True

    # the frontend side
    def deliver(self, data):
        self._on_msg({"content": {"comm_id": self.comm_id, "data": data}})

    def frontend_closes(self):
        self._on_close({"content": {"comm_id": self.comm_id, "data": {}}})

    def types(self):
        return [m["type"] for m in self.sent]


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def report(run_id, status="nonfinite", steps=3):
    return {
        "schema": 1, "status": status, "mode": "exact",
        "run": {"id": run_id, "cell": 3, "started": 1.0, "duration_s": 0.5, "steps": steps, "epochs": 1,
                "stopped": True, "notes": [], "error": None},
        "first_nonfinite": None if status != "nonfinite" else {"op_type": "Log", "layer": "scorer", "phase": "forward"},
        "diagnosis": [], "warnings": [],
        "steps": [{"step": i, "epoch": 0, "phase": "train", "loss": 1.0, "metrics": {}, "grad_norm": 1.0}
                  for i in range(steps)],
        "layers": [], "info": [],
    }


def hello_open(b, ch):
    b.open_from_frontend(ch, {"content": {"comm_id": ch.comm_id, "data": {"v": 1, "type": "hello"}}})


@pytest.mark.parametrize("data", [
    None, "hello", [1], {}, {"type": "hello"}, {"v": 1}, {"v": 2, "type": "hello"}, {"v": "1", "type": "hello"},
    {"v": True, "type": "hello"}, {"v": 1.0, "type": "hello"}, {"v": 1, "type": "HELLO"},
    {"v": 1, "type": "hello", "code": "__import__('os').system('touch /tmp/x')"},
    {"v": 1, "type": "exec", "code": "1/0"}, {"v": 1, "type": ["hello"]},
])
def test_parse_incoming_rejects_everything_but_a_plain_hello(data):
    assert parse_incoming(data) is None


def test_parse_incoming_accepts_hello():
    assert parse_incoming({"v": 1, "type": "hello"}) == {"v": 1, "type": "hello"}


def test_hello_gets_a_snapshot_and_malformed_messages_get_nothing():
    b = CommBroadcaster(clock=Clock())
    b.run_finished(report("r1"))
    ch = Channel()
    hello_open(b, ch)
    assert ch.types() == ["snapshot"]
    snap = ch.sent[0]
    assert snap["v"] == 1 and snap["active"] is None
    assert [r["run"]["id"] for r in snap["runs"]] == ["r1"]
    for bad in ({"v": 1, "type": "exec", "code": "x"}, "hello", {"v": 1, "type": "hello", "extra": 1}, None):
        ch.deliver(bad)
    assert ch.types() == ["snapshot"]
    ch.deliver({"v": 1, "type": "hello"})
    assert ch.types() == ["snapshot", "snapshot"]


def test_a_comm_opened_without_hello_is_closed_and_not_streamed_to():
    b = CommBroadcaster(clock=Clock())
    ch = Channel()
    b.open_from_frontend(ch, {"content": {"data": {"v": 1, "type": "bogus"}}})
    assert ch.closed and ch.sent == []
    b.run_started({"run_id": "r1", "cell": 1, "mode": "exact", "started": 1.0})
    assert ch.sent == []


def test_snapshot_holds_the_active_run_for_a_late_frontend():
    clock = Clock()
    b = CommBroadcaster(clock=clock)
    b.run_finished(report("old", status="healthy"))
    b.run_started({"run_id": "live", "cell": 5, "mode": "exact", "started": 2.0})
    for i in range(4):
        b.step({"step": i, "epoch": 0, "phase": "train", "loss": float("nan") if i == 3 else 0.5,
                "metrics": {}, "grad_norm": float("inf")})
    b.layers([{"layer": "dense", "nan": 0, "inf": 0, "history": []}])
    b.first_nonfinite({"op_type": "Log", "layer": "scorer", "counts": {"nan": 1}}, [{"cause": "log_of_nonpositive"}])
    late = Channel()
    hello_open(b, late)
    snap = late.sent[-1]
    assert snap["type"] == "snapshot"
    assert [r["run"]["id"] for r in snap["runs"]] == ["old"]
    active = snap["active"]
    assert active["run"]["run_id"] == "live" and active["run"]["cell"] == 5
    assert [s["step"] for s in active["steps"]] == [0, 1, 2, 3]
    assert active["steps"][3]["loss"] == "nan" and active["steps"][0]["grad_norm"] == "inf"  # strict JSON
    assert active["layers"][0]["layer"] == "dense"
    assert active["first_nonfinite"]["op_type"] == "Log"
    assert active["diagnosis"][0]["cause"] == "log_of_nonpositive"
    b.run_finished(report("live"))
    assert b.active is None
    assert [r["run"]["id"] for r in b.runs] == ["old", "live"]


def test_progress_is_throttled_and_coalesced():
    clock = Clock()
    b = CommBroadcaster(clock=clock, min_interval=0.2)
    ch = Channel()
    hello_open(b, ch)
    b.run_started({"run_id": "r", "cell": 1, "mode": "exact", "started": 1.0})
    # 1000 steps over 2 simulated seconds: 2 ms apart
    for i in range(1000):
        b.step({"step": i, "epoch": 0, "phase": "train", "loss": 1.0, "metrics": {}, "grad_norm": 1.0})
        if i % 100 == 0:
            b.layers([{"layer": "dense", "nan": 0, "inf": 0, "history": [{"step": i}]}])
        clock.t += 0.002
    progress = [m for m in ch.sent if m["type"] == "progress"]
    # <= 5 per simulated second (+1 for the first, sent at once)
    assert 2 <= len(progress) <= 2 * 5 + 1
    sent_steps = [s["step"] for m in progress for s in m["steps"]]
    assert sent_steps == sorted(set(sent_steps)), "no step twice, in order"
    assert sent_steps[0] == 0 and sent_steps == list(range(len(sent_steps)))
    assert all(len(m["steps"]) <= 200 for m in progress)
    assert any(m["layers"] is not None for m in progress)
    assert all(m["layers"] is None or m["layers"][0]["layer"] == "dense" for m in progress)
    # the first non-finite event flushes what is pending and is never throttled
    b.first_nonfinite({"op_type": "Log"}, [])
    kinds = ch.types()
    assert kinds[-1] == "first_nonfinite" and kinds[-2] == "progress"
    flushed = [s["step"] for m in ch.sent if m["type"] == "progress" for s in m["steps"]]
    assert flushed == list(range(1000))
    b.run_finished(report("r", steps=1000))
    assert ch.types()[-1] == "run_finished"


def test_run_finished_replaces_by_id_keeps_the_last_50_and_trims_steps():
    b = CommBroadcaster(clock=Clock())
    for i in range(60):
        b.run_finished(report(f"r{i}", status="healthy", steps=1))
    b.run_finished(report("r59", status="nonfinite", steps=2000))
    runs = b.runs
    assert len(runs) == 50
    assert runs[0]["run"]["id"] == "r10" and runs[-1]["run"]["id"] == "r59"
    assert runs[-1]["status"] == "nonfinite"
    assert len(runs[-1]["steps"]) == nwcomm.MAX_STEPS
    assert runs[-1]["steps"][-1]["step"] == 1999


def test_reset_clears_runs_and_tells_every_frontend():
    b = CommBroadcaster(clock=Clock())
    a, c = Channel(), Channel()
    hello_open(b, a)
    hello_open(b, c)
    b.run_finished(report("r1"))
    b.reset()
    assert b.runs == []
    assert a.types()[-1] == "reset" and c.types()[-1] == "reset"
    assert a.sent[-1] == {"v": 1, "type": "reset"}


def test_closed_and_failing_channels_are_dropped():
    b = CommBroadcaster(clock=Clock())
    a, gone = Channel(), Channel()
    hello_open(b, a)
    hello_open(b, gone)
    gone.fail = True
    b.run_started({"run_id": "r", "cell": 1})
    assert len(b.channels) == 1
    a.frontend_closes()
    assert b.channels == []


def test_events_are_made_json_safe():
    import numpy as np
    b = CommBroadcaster(clock=Clock())
    ch = Channel()
    hello_open(b, ch)
    b.run_started({"run_id": "r", "cell": np.int64(2), "started": np.float32(1.5)})
    b.step({"step": np.int64(0), "loss": np.float32("nan"), "metrics": {"acc": np.float64("-inf")}})
    started, prog = ch.sent[1], ch.sent[2]
    assert started["run"]["cell"] == 2
    assert prog["steps"][0]["loss"] == "nan" and prog["steps"][0]["metrics"]["acc"] == "-inf"


def test_register_is_a_no_op_outside_a_kernel():
    from IPython.core.interactiveshell import InteractiveShell
    assert nwcomm.register(object()) is False
    assert nwcomm.register(InteractiveShell.instance()) is False
    assert CommBroadcaster.instance() is nwcomm.sink()


# ---------------------------------------------------------------------------------------
# a real kernel, this test acting as the frontend


class Frontend:
    def __init__(self, kc):
        self.kc = kc
        self.backlog = []

    def comm_open(self, data, target="nanwatch"):
        comm_id = uuid.uuid4().hex
        msg = self.kc.session.msg("comm_open", {"comm_id": comm_id, "target_name": target, "data": data})
        self.kc.shell_channel.send(msg)
        return comm_id

    def comm_msg(self, comm_id, data):
        msg = self.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        self.kc.shell_channel.send(msg)

    def execute(self, code, cell_id=None):
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": True}
        msg = self.kc.session.msg("execute_request", content,
                                  metadata={"cellId": cell_id} if cell_id else {})
        self.kc.shell_channel.send(msg)
        return msg["header"]["msg_id"]

    def iopub_until(self, pred, timeout=60.0):
        """Collect iopub messages until pred(msg) is true; returns all collected, in order."""
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.kc.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                continue
            out.append(msg)
            if pred(msg):
                return out
        raise AssertionError(f"timed out; saw {[m['msg_type'] for m in out][-30:]}")

    def run(self, code, cell_id=None, timeout=120.0):
        """Execute and collect iopub until the kernel is idle again for this request."""
        msg_id = self.execute(code, cell_id)
        msgs = self.iopub_until(lambda m: m["msg_type"] == "status" and m["parent_header"].get("msg_id") == msg_id
                                and m["content"]["execution_state"] == "idle", timeout)
        errors = [m for m in msgs if m["msg_type"] == "error" and m["parent_header"].get("msg_id") == msg_id]
        assert not errors, errors[0]["content"]["traceback"]
        return msgs


def comm_msgs(msgs, comm_id=None):
    return [m["content"]["data"] for m in msgs
            if m["msg_type"] == "comm_msg" and (comm_id is None or m["content"]["comm_id"] == comm_id)]


@pytest.fixture(scope="module")
def kernel():
    from jupyter_client.manager import KernelManager
    env = dict(os.environ)
    env["IPYTHONDIR"] = tempfile.mkdtemp(prefix="nanwatch-ipython-")
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["MPLBACKEND"] = "Agg"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    km = KernelManager(kernel_name="python3")
    km.kernel_spec.argv[0] = sys.executable
    km.start_kernel(env=env, cwd=str(ROOT))
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    try:
        yield Frontend(kc)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_real_kernel_protocol(kernel, tmp_path):
    fe = kernel
    # 1. nanwatch not loaded: ipykernel refuses the comm (the sidebar shows the %load_ext hint)
    refused = fe.comm_open({"v": 1, "type": "hello"})
    fe.iopub_until(lambda m: m["msg_type"] == "comm_close" and m["content"]["comm_id"] == refused, 30)

    # 2. %load_ext from a headless runner (no cellId, like nbclient): no comm is opened
    msgs = fe.run("%load_ext nanwatch")
    assert not [m for m in msgs if m["msg_type"] == "comm_open"]
    # from a JupyterLab cell (cellId in the request): the kernel opens a comm with a snapshot
    msgs = fe.run("%reload_ext nanwatch", cell_id="cell-load")
    opens = [m for m in msgs if m["msg_type"] == "comm_open" and m["content"]["target_name"] == "nanwatch"]
    assert len(opens) == 1
    assert opens[0]["content"]["data"] == {"v": 1, "type": "snapshot", "runs": [], "active": None}
    kernel_comm = opens[0]["content"]["comm_id"]
    # loading again opens nothing new
    msgs = fe.run("%reload_ext nanwatch", cell_id="cell-load")
    assert not [m for m in msgs if m["msg_type"] == "comm_open"]

    # 3. frontend-first path: hello -> snapshot on that comm
    mine = fe.comm_open({"v": 1, "type": "hello"})
    got = fe.iopub_until(lambda m: m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == mine, 30)
    assert comm_msgs(got, mine)[0]["type"] == "snapshot"

    # 4. malformed messages are ignored and never evaluated; a later hello still works
    marker = tmp_path / "pwned"
    for bad in ({"v": 1, "type": "exec", "code": f"open({str(marker)!r}, 'w')"},
                {"v": 1, "type": "hello", "code": f"open({str(marker)!r}, 'w')"},
                {"v": True, "type": "hello"}, "hello", [1, 2], None):
        fe.comm_msg(mine, bad)
    fe.comm_msg(mine, {"v": 1, "type": "hello"})
    got = fe.iopub_until(lambda m: m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == mine, 30)
    assert [d["type"] for d in comm_msgs(got, mine)] == ["snapshot"]
    assert not marker.exists()

    # 5. a real watched cell that goes NaN: live, throttled events on both comms
    code = '''%%nanwatch --no-panel
import numpy as np, tensorflow as tf, keras
class Scorer(keras.layers.Layer):
    def call(self, x):
        return tf.math.log(x)
rng = np.random.default_rng(0)
X = rng.random((480, 4)).astype("float32"); X[400:] *= -1   # the last 10 batches are negative
y = rng.random((480, 1)).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, kernel_initializer="ones", name="proj"),
                          Scorer(name="scorer"), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(1e-4), loss="mse")
model.fit(X, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
'''
    t0 = time.monotonic()
    msgs = fe.run(code, cell_id="cell-train", timeout=240)
    elapsed = time.monotonic() - t0
    for comm_id in (kernel_comm, mine):
        events = comm_msgs(msgs, comm_id)
        kinds = [e["type"] for e in events]
        assert kinds[0] == "run_started", kinds
        assert kinds[-1] == "run_finished", kinds
        assert "first_nonfinite" in kinds, kinds
        assert "progress" in kinds, kinds
        progress = [e for e in events if e["type"] == "progress"]
        assert len(progress) <= elapsed * 5 + 2, (len(progress), elapsed)
        final = events[-1]["report"]
        assert final["status"] == "nonfinite"
        first = final["first_nonfinite"]
        assert first["op_type"] == "Log" and first["layer"] == "scorer"
        assert first["source"]["line"] == 5 and "tf.math.log(x)" in first["source"]["code"]
        json.dumps(events, allow_nan=False)  # strict JSON on the wire
        assert first["step"] == 50  # the first negative batch (no shuffle, batch 8, rows 400+)
    # a late frontend gets the finished run in its snapshot
    late = fe.comm_open({"v": 1, "type": "hello"})
    got = fe.iopub_until(lambda m: m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == late, 30)
    snap = comm_msgs(got, late)[0]
    assert snap["type"] == "snapshot" and snap["active"] is None
    assert [r["status"] for r in snap["runs"]] == ["nonfinite"]

    # 6. %nanwatch reset clears every frontend
    msgs = fe.run("%nanwatch reset", cell_id="cell-reset")
    assert {"v": 1, "type": "reset"} in comm_msgs(msgs, kernel_comm)
    assert {"v": 1, "type": "reset"} in comm_msgs(msgs, late)
