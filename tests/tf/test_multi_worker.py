"""A real multi-worker cluster: two local worker processes under MultiWorkerMirroredStrategy (TF_CONFIG
on free localhost ports) running the custom loop of TensorFlow's distributed guides, watched; and the same
loop under MirroredStrategy over two logical CPUs in one process (tests/tf/multi_worker_runs.py).

Every worker runs under nanwatch; the NaN is made on worker 1 only. Checked: every worker stops at the
same step (exit times within seconds, no worker left in a collective: a hard timeout kills both and fails),
every report names the worker, replica and device that made the value, and the weights are left finite
and equal on both workers. Healthy counter-example: watched weights equal to the unwatched run's.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "tests", "tf", "multi_worker_runs.py")
RUNS = ("plain", "watched", "exact", "output", "iterator", "eager", "local", "last", "metric", "raised")
TIMEOUT = 150       # seconds for a whole cluster run; a hang fails the test instead of blocking it


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _env(tf_config=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _cluster(commands, tmp_path):
    """Run one command per worker with its TF_CONFIG; returns [(exit code, exit time, stderr)]. Kills every
    worker and fails when they are not all done within TIMEOUT."""
    ports = _free_ports(len(commands))
    workers = [f"localhost:{p}" for p in ports]
    procs, logs = [], []
    for index, command in enumerate(commands):
        log = open(tmp_path / f"worker-{index}.log", "w+")
        logs.append(log)
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        procs.append(subprocess.Popen(command, env=_env(config), cwd=str(tmp_path), stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True))
    start, ended = time.monotonic(), [None] * len(procs)
    try:
        while None in ended:
            if time.monotonic() - start > TIMEOUT:
                pytest.fail(f"the workers did not finish within {TIMEOUT} s (a worker waiting in a collective?): "
                            + " | ".join(_tail(log) for log in logs))
            for i, proc in enumerate(procs):
                if ended[i] is None and proc.poll() is not None:
                    ended[i] = time.monotonic()
            time.sleep(0.1)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return [(proc.returncode, t, _tail(log)) for proc, t, log in zip(procs, ended, logs)]


def _tail(log, n=3000):
    log.flush()
    log.seek(0)
    return log.read()[-n:]


def _weights(path):
    with np.load(path) as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def _finite(ws):
    return all(np.isfinite(w).all() for w in ws)


def test_nan_in_worker_1_data_found_there_both_stop_at_its_step(tmp_path):
    """`python -m nanwatch run` on each worker; a NaN at row 100 of worker 1's data (step 6, row 4 of its
    16-row shard). Unwatched, both workers run all 32 steps and end with NaN in the first kernel."""
    commands = [[sys.executable, "-m", "nanwatch", "run", "--report", f"report-{i}.json", SCRIPT,
                 "--case", "nan", "--out", "."] for i in range(2)]
    results = _cluster(commands, tmp_path)
    for code, _, log in results:
        assert code == 1, log                          # 1: a harmful NaN/Inf was found
    assert abs(results[0][1] - results[1][1]) < 10, "the workers did not stop together"
    for task in range(2):
        report = json.loads((tmp_path / f"report-{task}.json").read_text())
        first = report["first_nonfinite"]
        assert report["status"] == "nonfinite"
        assert first["task"] == 1 and first["replica"] == 1, first
        assert first["device"] == "/job:worker/replica:0/task:1/device:CPU:0"
        assert first["step"] == 6 and first["context"] == "data" and first["phase"] == "input"
        assert first["data"]["rows"] == [4] and first["data"]["columns"] == [2]
        assert report["diagnosis"][0]["cause"] == "nan_in_input"
        assert json.loads((tmp_path / f"steps-{task}.json").read_text()) == 6   # stopped in step 6's call
        if task == 0:
            assert any("made on worker task 1" in n for n in report["run"]["notes"]), report["run"]["notes"]
    w0, w1 = _weights(tmp_path / "weights-0.npz"), _weights(tmp_path / "weights-1.npz")
    assert _finite(w0) and _same(w0, w1)               # the update that would write NaN was not kept


def test_cluster_healthy_exact_and_one_workers_output(tmp_path):
    """One process per worker, six watched runs each (`nanwatch.watch()`): healthy, worker 0 also calling a
    tf.function of its own after each step (the weights equal the unwatched run's from the same start, on both
    workers); `mode="exact"` on the NaN (fast mode with a note, no hang); a NaN in worker 1's returned loss
    only, gradients finite: found by worker 1 in the call, held, and both stop at the next call; the same in the
    last call (agreed when the watch ends) and in a Keras metric the step updates (the guide's
    `train_accuracy`); the guide's `train_step(iterator)` form (the batch the call drew is replayed: found on
    worker 1, both stop); a NaN found on worker 1 outside the step (an eager model call, then a tf.function
    of worker 1's own): held until the next step call, where both stop; worker 1's cell raising after a
    healthy loop: worker 0 does not wait for its findings at the end of the watch."""
    commands = [[sys.executable, SCRIPT, "--sequence", "--out", "."] for _ in range(2)]
    results = _cluster(commands, tmp_path)
    for code, _, log in results:
        assert code == 0, log
    reports = [json.loads((tmp_path / f"reports-{t}.json").read_text()) for t in range(2)]
    weights = {(name, t): _weights(tmp_path / f"weights-{name}-{t}.npz")
               for name in RUNS for t in range(2)}
    steps = {(name, t): json.loads((tmp_path / f"steps-{name}-{t}.json").read_text()) for name in RUNS for t in range(2)}
    in_call = "agree on the verdict after each call"
    for t in range(2):
        healthy = reports[t]["watched"]
        assert healthy["status"] == "healthy" and healthy["first_nonfinite"] is None
        # every step agrees inside the call: the guide's (loss reduced, gradients all-reduced), and those with
        # values of each worker's own (its own loss returned, a metric updated in the step)
        for name in RUNS[1:]:
            assert any(in_call in n for n in reports[t][name]["run"]["notes"]), name
        for name in ("output", "last", "metric", "raised"):
            assert any("each worker's own" in n for n in reports[t][name]["run"]["notes"]), name
        raised = reports[t]["raised"]
        assert raised["first_nonfinite"] is None and steps["raised", t] == 32
        assert (raised["status"], raised["run"]["error"] is not None) == (("error", True) if t == 1 else ("healthy", False))
        assert not any("did not reach the end of the watch" in n for n in raised["run"]["notes"])
        assert raised["seconds"] < 30          # no minute's wait for the other's findings
        assert steps["watched", t] == steps["plain", t] == 32
        assert _finite(weights["watched", t]) and _same(weights["watched", t], weights["plain", t])

        exact = reports[t]["exact"]
        assert exact["status"] == "nonfinite"
        assert exact["first_nonfinite"]["task"] == 1 and exact["first_nonfinite"]["step"] == 6
        assert any("watched in fast mode" in n for n in exact["run"]["notes"])
        assert steps["exact", t] == 6

        # a worker's own value: found in step 6's call by worker 1, agreed in the next call, where both stop
        # (the shared update of step 6 kept, step 7's put back); in the last call, agreed as the watch ends
        for name, step, code in (("output", 6, "return loss + tf.stop_gradient(tf.math.log("),
                                 ("last", 31, "return loss + tf.stop_gradient(tf.math.log("),
                                 ("metric", 6, "metric.update_state(tf.math.log(")):
            output = reports[t][name]
            first = output["first_nonfinite"]
            assert output["status"] == "nonfinite", (name, output["run"]["notes"])
            assert (first["op_type"], first["task"], first["step"], first["phase"]) == ("Log", 1, step, "forward"), \
                (name, first)
            assert first["source"]["code"].strip().startswith(code), (name, first["source"])
            assert steps[name, t] == min(step + 1, 32), name
            assert all(np.isfinite(reports[t][name]["metric_variables"])), name   # worker 1's put back
            if t == 1:
                assert any("this worker put its own variables back" in n for n in output["run"]["notes"]), name
            else:
                assert any("made on worker task 1" in n for n in output["run"]["notes"]), name

        drawn = reports[t]["iterator"]    # train_step(iterator): the batch the call drew is replayed
        first = drawn["first_nonfinite"]
        assert drawn["status"] == "nonfinite" and first["step"] == 6
        assert (first["context"], first["phase"], first["task"], first["replica"]) == ("data", "input", 1, 1), first
        assert first["data"]["rows"] == [4] and first["data"]["columns"] == [2], first["data"]
        assert not any("draws its batch from an iterator" in n for n in drawn["run"]["notes"])
        assert steps["iterator", t] == 6

        for name in ("eager", "local"):  # found on worker 1 between steps: held, both stop at step 6's call
            first = reports[t][name]["first_nonfinite"]
            assert (first["context"], first["task"], first["step"]) == ("data", 1, 6), (name, first)
            assert steps[name, t] == 6
    assert _same(weights["watched", 0], weights["watched", 1])
    for name in ("exact", "output", "iterator", "last", "metric"):
        assert _finite(weights[name, 0]) and _same(weights[name, 0], weights[name, 1]), name


def test_mirrored_strategy_custom_loop_same_path(tmp_path):
    """The same loop under MirroredStrategy over two logical CPUs (one process): the NaN in replica 1's half of
    batch 3 is found by the replay of that replica, with its rows; the output NaN is named on replica 1."""
    proc = subprocess.run([sys.executable, SCRIPT, "--sequence", "--out", "."], env=_env(), cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = json.loads((tmp_path / "reports-0.json").read_text())
    assert reports["watched"]["status"] == "healthy"
    assert _same(_weights(tmp_path / "weights-watched-0.npz"), _weights(tmp_path / "weights-plain-0.npz"))
    first = reports["exact"]["first_nonfinite"]
    assert (first["context"], first["step"], first["replica"]) == ("data", 3, 1), first
    assert first["device"].endswith("device:CPU:1") and "task" not in first
    assert first["data"]["rows"] == [4] and first["data"]["columns"] == [2]
    first = reports["output"]["first_nonfinite"]
    assert (first["op_type"], first["step"], first["replica"]) == ("Log", 3, 1), first
    drawn = reports["iterator"]["first_nonfinite"]    # the batch the call drew, replayed replica by replica
    assert (drawn["context"], drawn["step"], drawn["replica"]) == ("data", 3, 1), drawn
    assert drawn["data"]["rows"] == [4] and drawn["data"]["columns"] == [2]
    for name in ("eager", "local"):
        assert (reports[name]["first_nonfinite"]["context"], reports[name]["first_nonfinite"]["step"]) == ("data", 6)
    for name in ("exact", "output", "iterator"):
        assert _finite(_weights(tmp_path / f"weights-{name}-0.npz"))
