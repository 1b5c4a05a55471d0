"""Reach and reliability (issue #7): XLA, mixed precision, MirroredStrategy, determinism, no leaks."""

import json
import os
import subprocess
import tempfile
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def isolated(name, python=sys.executable):
    """Run tests/tf/isolated_runs.py NAME in a fresh Python and return its JSON."""
    proc = subprocess.run([python, os.path.join(HERE, "isolated_runs.py"), name],
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("JSON:")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][5:])


NAN_JIT = '''
import numpy as np, tensorflow as tf, keras
class LogLayer(keras.layers.Layer):
    def call(self, x):
        return tf.math.log(x)
X = np.random.randn(32, 4).astype("float32"); y = np.random.rand(32, 1).astype("float32")
model = keras.Sequential([keras.Input((4,)), LogLayer(name="logl"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse", jit_compile=True)
model.fit(X, y, epochs=1, verbose=0)
'''


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_xla_model_runs_unjitted_and_is_located(cell, mode):
    result, report = cell.run(NAN_JIT, options=f"--no-panel --mode {mode}")
    assert result.success
    first = report.to_dict()["first_nonfinite"]
    assert (first["op_type"], first["layer"], first["phase"]) == ("Log", "logl", "forward")
    assert any("jit_compile=True" in note and "un-jitted" in note for note in report.notes)
    assert cell.ip.user_ns["model"].jit_compile is True


LOSS_SCALE_SKIPS = '''
import numpy as np, keras
keras.config.set_dtype_policy("mixed_float16")
keras.utils.set_random_seed(1)
X = np.random.rand(256, 8).astype("float32") * 10; y = (X.sum(1, keepdims=True) * 100).astype("float32")
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1, dtype="float32")])
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, epochs=2, verbose=0)
'''

FP16_OVERFLOW = '''
import numpy as np, keras
keras.config.set_dtype_policy("mixed_float16")
X = np.full((64, 8), 10000.0, "float32"); y = np.random.rand(64, 1).astype("float32")
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, kernel_initializer="ones", name="big"),
                          keras.layers.Dense(1, dtype="float32")])
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, epochs=1, verbose=0)
'''


@pytest.fixture
def float32_policy_after():
    yield
    import keras
    keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_loss_scale_skips_are_information_not_alarms(cell, mode, float32_policy_after):
    result, report = cell.run(LOSS_SCALE_SKIPS, options=f"--no-panel --mode {mode}")
    assert result.success and report.status == "healthy", report.to_text()
    assert any("LossScaleOptimizer skipped" in line for line in report.info)
    import keras
    assert keras.config.dtype_policy().name == "mixed_float16"   # the cell's own setting, untouched


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_float16_overflow_in_a_layer_is_found(cell, mode, float32_policy_after):
    result, report = cell.run(FP16_OVERFLOW, options=f"--no-panel --mode {mode}")
    first = report.to_dict()["first_nonfinite"]
    assert (first["op_type"], first["layer"], first["phase"], first["dtype"]) == ("MatMul", "big", "forward", "float16")
    assert report.diagnosis[0]["cause"] == "float16_overflow"


def test_mirrored_strategy_names_the_replica():
    """Only replica 1's shard of batch 1 goes NaN: its verdict differs from replica 0's. In fast mode
    (what auto picks under the strategy) the verdicts are combined in the cross-replica merge, so both
    replicas skip the update: the copies of every weight and slot stay equal and finite, and the
    optimizer counted step 0 only. Then the replay runs replica 1's shard. `evaluate` in fast mode
    finds the same op on the same replica."""
    out = isolated("mirrored")
    for mode, run in out.items():
        first = run["report"]["first_nonfinite"]
        assert run["ok"], mode
        assert (first["op_type"], first["layer"], first["phase"]) == ("Log", "logl", "forward"), (mode, first)
        assert first["replica"] == 1 and first["device"].endswith("CPU:1"), (mode, first)
        assert first["counts"]["nan"] == 16, (mode, first)   # replayed on replica 1's shard
        assert run["copies"] == 2 and run["state_finite"] and run["copies_agree"], (mode, run)
        if mode != "evaluate":   # step 1 stopped: counted on no replica (exact mode's check does not stop the count)
            assert run["iterations"] == 1, (mode, run["iterations"])
    auto = out["auto"]
    assert auto["report"]["mode"] == out["evaluate"]["report"]["mode"] == "fast", auto["report"]["mode"]
    assert not any("fast mode cannot serve" in n for n in auto["report"]["run"]["notes"])
    assert auto["report"]["first_nonfinite"]["step"] == 1 and auto["iterations"] == 1, auto   # step 1 applied on no replica


def test_mirrored_strategy_nan_in_the_data_is_reported_with_the_rows_of_the_users_array():
    """Under a strategy the batch reaches the step split into the replicas' shards: checked whole
    (the shards in replica order), the NaN is the data's, at its row of the global batch and of x."""
    out = isolated("mirrored_data")
    for mode, run in out.items():
        first = run["report"]["first_nonfinite"]
        assert run["ok"], mode
        assert (first["phase"], first["layer"], first["step"]) == ("input", None, 2), (mode, first)
        assert first["data"]["source"] == "x" and first["data"]["batch"] == 2, (mode, first["data"])
        assert first["data"]["rows"] == [26] and first["data"]["array_rows"] == [90], (mode, first["data"])
        assert first["source"]["code"].startswith("model.fit("), (mode, first["source"])
        assert run["report"]["diagnosis"][0]["cause"] == "nan_in_input", (mode, run["report"]["diagnosis"])


def test_mirrored_strategy_on_one_device_runs_fast():
    """One replica, but Keras's update still goes through the strategy's merge: the sentinel's cond
    must be taken in the merge there too (in the replica's context TensorFlow refuses it)."""
    run = isolated("mirrored_one_device")
    first = run["report"]["first_nonfinite"]
    assert run["ok"] and run["report"]["mode"] == "fast", run["report"]["run"]
    assert (first["op_type"], first["layer"], first["step"]) == ("Log", "logl", 1), first
    assert run["state_finite"] and run["iterations"] == 1, run


def test_mirrored_strategy_update_that_writes_nan_is_caught_at_its_step():
    """Weights and slots are sinks under a strategy too: Adam(epsilon=0) dividing 0 by 0 for a feature that
    is always 0 is found in the optimizer phase at step 0, and the NaN never reaches the weights."""
    out = isolated("mirrored_optimizer")
    assert out["auto"]["report"]["mode"] == "fast"
    for mode, run in out.items():
        report = run["report"]
        first = report["first_nonfinite"]
        assert run["ok"], mode
        assert report["status"] == "nonfinite", (mode, report["status"])
        assert (first["op_type"], first["phase"], first["step"]) == ("RealDiv", "optimizer", 0), (mode, first)
        assert report["diagnosis"][0]["cause"] == "optimizer_epsilon_zero", (mode, report["diagnosis"])
        assert run["state_finite"] is True, mode       # no weight or optimizer slot holds the NaN


def test_healthy_runs_are_bit_identical_to_runs_without_nanwatch():
    """Both modes, 48 Adam steps with dropout under enable_op_determinism: bit for bit. In exact
    mode this holds because contractions and their bias adds are left unchecked: a check between
    MatMul, the bias add and the activation stopped grappler fusing them, and the fused kernel
    rounds differently (5 of 6 weight tensors differed in their last bits before)."""
    out = isolated("determinism")
    assert out["plain"] == out["plain_again"], "the reference itself is not deterministic"
    assert out["exact_status"] == "healthy" and out["fast_status"] == "healthy"
    assert out["fast"] == out["plain"]
    assert out["exact"] == out["plain"]


def test_healthy_mirrored_runs_are_bit_identical_to_runs_without_nanwatch():
    """The same 48 steps (dropout, Adam, op determinism) under MirroredStrategy on two logical CPUs:
    fast mode's update runs inside a cond in the cross-replica merge, exact mode checks every replica's
    ops; the weights must equal the unwatched run's, bit for bit."""
    out = isolated("determinism_mirrored")
    assert out["plain"] == out["plain_again"], "the reference itself is not deterministic"
    assert out["modes"] == ["exact", "fast"] and out["exact_status"] == out["fast_status"] == "healthy"
    assert out["fast"] == out["plain"]
    assert out["exact"] == out["plain"]


def test_mirrored_fast_mode_reads_the_device_once_per_step():
    """Under MirroredStrategy the verdict is combined on the devices: the host still reads one packed
    vector per step (the replicas' flags ride in it)."""
    out = isolated("mirrored_reads")
    short, long = out["20"], out["220"]
    assert short["mode"] == long["mode"] == "fast" and long["status"] == "healthy", long
    assert (long["reads"] - short["reads"]) / 200 == 1.0, long["where"]


def test_fast_mode_stays_bit_identical_where_grappler_reorders_arithmetic():
    """GELU + LayerNormalization: exact mode rounds differently there (measured, documented in the
    README), fast mode must not."""
    out = isolated("determinism_reordered")
    assert out["plain"] == out["plain_again"], "the reference itself is not deterministic"
    assert out["fast_status"] == "healthy" and out["exact_status"] == "healthy"
    assert out["fast"] == out["plain"]
    print("exact mode tensors that differ:", sum(a != b for a, b in zip(out["exact"], out["plain"])), "of", len(out["plain"]))


def test_exact_mode_without_replay_names_the_unchecked_fused_chain(cell, float32_policy_after):
    """The float16 MatMul overflow with the replay off: the check that fails is the one after the
    fused MatMul + bias add (left unchecked), so the report says the value may come from them."""
    result, report = cell.run(FP16_OVERFLOW, options="--no-panel --mode exact --no-replay")
    first = report.to_dict()["first_nonfinite"]
    assert first["phase"] == "forward" and first["op_type"] != "MatMul", first
    notes = report.to_dict()["run"]["notes"]
    assert any("left unchecked so that TensorFlow fuses them" in n and "MatMul (" in n and "big" in n
               for n in notes), notes


# scripts/setup.sh installs TensorFlow 2.15 (older than nanwatch supports) into this venv beside .venv
OLD_TF_PYTHON = os.path.join(HERE, "..", "..", ".venv-tf215", "bin", "python")


def test_kernel_with_too_old_tensorflow_runs_the_cell_unwatched_and_says_so():
    """A real TensorFlow 2.15.1 kernel: the cell runs (and trains) as without nanwatch, no op callback
    is left, and the report says it did not watch, and why."""
    out = isolated("old_tensorflow", python=OLD_TF_PYTHON)
    assert out["tf"].startswith("2.15.") and out["ok"] and out["epochs"] == 2
    assert out["notes"] == [f"TensorFlow {out['tf']} is older than 2.16, which nanwatch needs: the cell ran unwatched."]
    assert out["op_callbacks"] == 0
    assert out["text"].startswith("nanwatch: not watched: TensorFlow 2.15"), out["text"]


def test_kernel_without_tensorflow_just_runs():
    out = isolated("no_tensorflow")
    assert out["ok"] and out["answer"] == 42 and out["status"] == "healthy"
    assert any("TensorFlow is not installed" in n for n in out["notes"])


def _count(type_name):
    import gc
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o).__name__ == type_name)


def _rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024


def test_fifty_watched_cells_stay_flat(shell):
    """Open files, function graphs and the Python heap over 50 watched cells training the same model.

    What is measured: live FuncGraph objects (TensorFlow keeps each retired function graph:
    re-tracing per cell grew memory by MBs per cell until nanwatch cached its traced steps per
    model), open file descriptors, and tracemalloc's Python heap growth per cell. IPython 9 keeps
    every cell's display outputs in its in-memory history (our report bundle is ~80 kB with
    figures); that is IPython's, so the history is cleared each cell. RSS is printed, not
    asserted: in a long pytest process it follows the allocator more than the program (alone,
    it grows ~0.05 MB per watched cell, as much as an unwatched control)."""
    import gc
    import tracemalloc
    import nanwatch
    assert shell.run_cell('''
import numpy as np, keras
X = np.random.rand(64, 6).astype("float32"); y = np.random.rand(64, 1).astype("float32")
model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
''').success
    fit = "model.fit(X, y, epochs=1, batch_size=16, verbose=0);"
    outputs = getattr(shell.history_manager, "outputs", None)
    points = {}
    temp_before = set(os.listdir(tempfile.gettempdir()))
    tracemalloc.start()
    for i in range(50):
        mode = "exact" if i % 2 else "fast"
        assert shell.run_cell(f"%%nanwatch --no-panel --mode {mode}\n" + fit).success
        assert nanwatch.last_report().status == "healthy"
        if outputs is not None:
            outputs.clear()
        if i in (9, 49):
            gc.collect()
            points[i] = {"graphs": _count("FuncGraph"), "fds": len(os.listdir("/proc/self/fd")),
                         "heap": tracemalloc.get_traced_memory()[0], "rss": _rss_mb()}
    tracemalloc.stop()
    first, last = points[9], points[49]
    print("fifty cells:", first, last)
    assert last["graphs"] <= first["graphs"], points
    assert last["fds"] <= first["fds"], points
    assert (last["heap"] - first["heap"]) / 40 < 20_000, points   # bytes per cell
    assert set(os.listdir(tempfile.gettempdir())) - temp_before == set()   # no temp files left


def test_namespace_holds_only_what_the_cell_made(cell):
    """The same cell with and without %%nanwatch leaves the same user names behind."""
    code = NAN_JIT.replace("jit_compile=True", "jit_compile=False")
    cell.ip.reset(new_session=False)
    assert cell.ip.run_cell(code).success
    plain = {k for k in cell.ip.user_ns if not k.startswith("_")}
    result, _ = cell.run(code)
    watched = {k for k in cell.ip.user_ns if not k.startswith("_")}
    assert watched == plain, watched ^ plain


def test_legacy_tf_keras_is_located_and_says_what_is_unsupported():
    out = isolated("legacy_keras")
    first = out["report"]["first_nonfinite"]
    assert out["ok"]
    assert (first["op_type"], first["layer"], first["phase"]) == ("Log", "logl", "forward"), first
    assert "tf.math.log(x)" in first["source"]["code"]
    assert any("legacy tf.keras" in n and "not supported" in n for n in out["report"]["run"]["notes"])
