"""Runs of any length and device syncs, on real Keras fits (docs/design.md "Runs of any length",
docs/devices.md):

- the device->host reads nanwatch makes per step in a healthy fast-mode fit are counted (every
  conversion of an eager tensor to host values whose nearest caller outside TensorFlow and numpy is
  nanwatch's code): one per step, plus one per per-layer statistics; a change that adds a sync per
  step fails here;
- a 5,000-step run with small series limits keeps a bounded report, with the first NaN's
  neighbourhood and a gradient spike at full resolution.
"""

import json
import os
import sys
import threading

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import nanwatch  # noqa: E402
from nanwatch import series  # noqa: E402

NANWATCH_DIR = os.path.dirname(nanwatch.__file__)
NOT_CALLERS = (os.sep + "tensorflow" + os.sep, os.sep + "numpy" + os.sep)
CONVERSIONS = ("numpy", "__array__", "__float__", "__int__", "__bool__", "__index__")


class HostReads:
    """Counts the conversions of eager tensors to host values made by nanwatch's own code (the
    outermost conversion only: `__array__` may call `numpy` inside TensorFlow)."""

    def __init__(self):
        from tensorflow.python.framework import ops
        self.cls = ops._EagerTensorBase
        self.count = 0
        self.where: dict = {}
        self._depth = threading.local()
        self._saved = {}

    def __enter__(self):
        for name in CONVERSIONS:
            original = self.cls.__dict__.get(name)
            if original is None:
                continue
            self._saved[name] = original
            setattr(self.cls, name, self._counting(original))
        return self

    def __exit__(self, *exc):
        for name, original in self._saved.items():
            setattr(self.cls, name, original)

    def _counting(self, original):
        reads = self

        def counted(tensor, *args, **kwargs):
            depth = getattr(reads._depth, "n", 0)
            if depth == 0:
                frame = sys._getframe(1)
                while frame is not None and any(part in frame.f_code.co_filename for part in NOT_CALLERS):
                    frame = frame.f_back
                if frame is not None and frame.f_code.co_filename.startswith(NANWATCH_DIR):
                    reads.count += 1
                    key = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_code.co_name}"
                    reads.where[key] = reads.where.get(key, 0) + 1
            reads._depth.n = depth + 1
            try:
                return original(tensor, *args, **kwargs)
            finally:
                reads._depth.n = depth
        return counted


def _mlp():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu", name="hidden"),
                              keras.layers.Dense(1, name="out")])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model


def _reads_in_fit(steps, stats_every):
    rng = np.random.default_rng(0)
    x, y = rng.random((steps * 8, 8), dtype=np.float32), rng.random((steps * 8, 1), dtype=np.float32)
    model = _mlp()
    with HostReads() as reads:
        with nanwatch.watch(mode="fast", stats_every=stats_every, panel=False) as report:
            model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert report.status == "healthy" and report.mode == "fast"
    return reads


def test_fast_mode_reads_the_device_once_per_step():
    """Measured with the packing turned off (engine/readback.pack returning None: the reads one by one,
    as before it): 4 reads per step (the gradients' squares, the verdict, the loss, the metric) plus 1
    per statistics; now 1 + 1 per statistics."""
    short, long = _reads_in_fit(20, 10), _reads_in_fit(220, 10)
    per_step = (long.count - short.count) / 200
    assert per_step <= 1.0 + 1 / 10 + 1e-9, (per_step, long.where)
    assert per_step >= 1.0, (per_step, long.where)   # the step is read: the counter sees it


def test_fast_mode_reads_without_statistics_are_one_per_step():
    short, long = _reads_in_fit(20, 10_000), _reads_in_fit(220, 10_000)
    assert (long.count - short.count) / 200 == 1.0, long.where


def test_a_long_run_keeps_a_bounded_report_with_its_anomalies_whole(monkeypatch):
    """5,000 steps under --no-stop with small limits: a gradient spike at step 1,500 (a batch of
    outliers) and NaN data from step 4,000 on. The report stays small; the spike, its neighbours and
    the steps around the first NaN are all there; the sampling says what was kept."""
    monkeypatch.setattr(series, "STEP_LIMITS", dict(head=20, tail=100, middle=100, notable=30, nan_window=10))
    monkeypatch.setattr(series, "HISTORY_LIMITS", dict(head=5, tail=20, middle=20, notable=10, nan_window=5))
    steps, spike, nan_from = 5000, 1500, 4000
    rng = np.random.default_rng(0)
    x, y = rng.random((steps * 2, 8), dtype=np.float32), rng.random((steps * 2, 1), dtype=np.float32)
    x[spike * 2:(spike + 1) * 2] = 1e4
    y[nan_from * 2:, 0] = np.nan
    model = _mlp()
    with nanwatch.watch(mode="fast", stop=False, stats_every=10, panel=False) as report:
        model.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False)
    data = report.to_dict()
    kept = [s["step"] for s in data["steps"]]
    sampling = data["run"]["step_sampling"]
    assert data["run"]["steps"] == steps and sampling["recorded"] == steps
    assert kept == sorted(kept) and len(kept) == sampling["kept"] <= 20 + 100 + 200 + 30 + 21, sampling
    assert set(range(spike - 1, spike + 2)) <= set(kept), [k for k in kept if spike - 50 < k < spike + 50]
    assert set(range(nan_from - 10, nan_from + 11)) <= set(kept)
    assert kept[-100:] == list(range(steps - 100, steps))
    assert sampling["stride"] > 1
    for layer in data["layers"]:
        assert len(layer["history"]) == layer["history_sampling"]["kept"] <= 5 + 20 + 40 + 10 + 11
        assert layer["history_sampling"]["recorded"] == steps // 10
    assert len(json.dumps(data)) < 200_000
    assert data["first_nonfinite"]["phase"] == "input" and data["first_nonfinite"]["step"] == nan_from
