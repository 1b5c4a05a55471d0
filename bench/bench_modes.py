"""Side-by-side cost of NaN detection on Keras fit: ratios against plain fit, measured in one run.

    .venv/bin/python bench/bench_modes.py                  # all models, 5 paired trials
    .venv/bin/python bench/bench_modes.py --models mlp --trials 3 --steps 300

Every trial builds a fresh model (same seed) and times one `fit` call, tracing included,
for every variant alike. Trials are paired (one of each variant per round, in shuffled
order) and each variant's cost is the median over rounds of its time / plain time in the
same round. The noise floor is plain against a second, identical plain.

Also measured: peak RSS growth during a trial (VmHWM, reset per trial through
/proc/self/clear_refs), bytes written to disk (tfdbg2's dump directory; for nanwatch the new
entries in the temp directory), and, on a model that goes NaN, the time from the failing
step to nanwatch's complete report.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402


# --- models --------------------------------------------------------------------------------------
def make_data(name, steps, batch):
    rng = np.random.default_rng(0)
    n = steps * batch
    if name == "mlp":
        return rng.random((n, 20), dtype=np.float32), rng.random((n, 1), dtype=np.float32)
    if name == "cnn":
        return rng.random((n, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n)
    if name == "lstm":
        return rng.random((n, 20, 8), dtype=np.float32), rng.random((n, 1), dtype=np.float32)
    raise ValueError(name)


def make_model(name):
    import keras
    keras.utils.set_random_seed(0)
    L = keras.layers
    if name == "mlp":
        model = keras.Sequential([keras.Input((20,)), L.Dense(64, activation="relu"),
                                  L.Dense(64, activation="relu"), L.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
    elif name == "cnn":
        model = keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(16, 3, activation="relu"), L.MaxPooling2D(),
                                  L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(), L.Flatten(),
                                  L.Dense(64, activation="relu"), L.Dense(10)])
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    else:
        model = keras.Sequential([keras.Input((20, 8)), L.LSTM(32), L.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
    return model


# --- variants: each is a context manager around one fit, plus fit kwargs ---------------------------
@contextlib.contextmanager
def plain(ctx):
    yield {}


@contextlib.contextmanager
def terminate_on_nan(ctx):
    import keras
    yield {"callbacks": [keras.callbacks.TerminateOnNaN()]}


@contextlib.contextmanager
def check_numerics(ctx):
    import tensorflow as tf
    tf.debugging.enable_check_numerics()
    try:
        yield {}
    finally:
        tf.debugging.disable_check_numerics()


def tfdbg2(mode):
    @contextlib.contextmanager
    def variant(ctx):
        import tensorflow as tf
        dump = tempfile.mkdtemp(prefix="bench-tfdbg2-")
        tf.debugging.experimental.enable_dump_debug_info(dump, tensor_debug_mode=mode, circular_buffer_size=-1)
        try:
            yield {}
        finally:
            tf.debugging.experimental.disable_dump_debug_info()
            ctx["disk"] = _dir_bytes(dump)
            shutil.rmtree(dump, ignore_errors=True)
    variant.__name__ = f"tfdbg2_{mode.lower()}"
    return variant


def nanwatch_mode(mode):
    @contextlib.contextmanager
    def variant(ctx):
        import nanwatch
        before = set(os.listdir(tempfile.gettempdir()))
        with nanwatch.watch(mode=mode, panel=False):
            yield {}
        new = set(os.listdir(tempfile.gettempdir())) - before
        ctx["disk"] = sum(_dir_bytes(os.path.join(tempfile.gettempdir(), n)) for n in new)
    variant.__name__ = f"nanwatch_{mode}"
    return variant


VARIANTS = [plain, terminate_on_nan, check_numerics, tfdbg2("CURT_HEALTH"), tfdbg2("FULL_HEALTH"),
            nanwatch_mode("exact"), nanwatch_mode("fast")]


# --- measuring -------------------------------------------------------------------------------------
def _dir_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, f))
    return total


def _reset_peak():
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _rss(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def trial(model_name, variant, x, y, batch):
    model = make_model(model_name)
    ctx: dict = {"disk": 0}
    _reset_peak()
    base = _rss("VmRSS:")
    start = time.perf_counter()
    with variant(ctx) as kwargs:
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False, **kwargs)
    elapsed = time.perf_counter() - start
    return elapsed, max(0, _rss("VmHWM:") - base), ctx["disk"]


def nan_to_report(model_name):
    """Seconds from the failing step to the complete report (data, diagnosis, HTML with figures)."""
    import nanwatch
    x, y = make_data(model_name, 64, 32)
    x = x.copy()
    x[40 * 32 + 3] = np.nan
    out = {}
    for mode in ("exact", "fast"):
        model = make_model(model_name)
        with nanwatch.watch(mode=mode, panel=False) as report:
            model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
        start = time.perf_counter()
        report.to_html()
        out[mode] = round(report.to_dict()["run"].get("nan_to_report_s") + time.perf_counter() - start, 3)
    return out


def main(argv=None):
    # A private temp directory for this run, so "disk" counts only what the variants write.
    tempfile.tempdir = tempfile.mkdtemp(prefix="bench-modes-")
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="mlp,cnn,lstm")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--steps", type=int, default=0, help="steps per trial (default: per model)")
    args = parser.parse_args(argv)
    default_steps = {"mlp": 1500, "cnn": 300, "lstm": 400}
    batch = 32
    rows = []
    for name in args.models.split(","):
        steps = args.steps or default_steps[name]
        x, y = make_data(name, steps, batch)
        variants = [plain, plain] + VARIANTS[1:]   # the second plain is the noise floor
        labels = ["plain", "plain (noise floor)"] + [v.__name__ for v in VARIANTS[1:]]
        times = {label: [] for label in labels}
        peaks = {label: [] for label in labels}
        disks = {label: [] for label in labels}
        trial(name, plain, x[: batch * 4], y[: batch * 4], batch)   # warm TF up once
        for _ in range(args.trials):
            order = list(range(len(variants)))
            random.shuffle(order)
            for i in order:
                t, peak, disk = trial(name, variants[i], x, y, batch)
                times[labels[i]].append(t)
                peaks[labels[i]].append(peak)
                disks[labels[i]].append(disk)
        for label in labels:
            ratios = [t / p for t, p in zip(times[label], times["plain"])]
            rows.append((name, steps, label, statistics.median(ratios), min(ratios), max(ratios),
                         statistics.median(times[label]), max(peaks[label]) / 2**20, max(disks[label]) / 2**20))
    print(f"{'model':6} {'steps':>5} {'variant':22} {'median':>7} {'min':>6} {'max':>6} {'time s':>7} "
          f"{'peakRSS MB':>10} {'disk MB':>8}")
    for r in rows:
        print(f"{r[0]:6} {r[1]:5d} {r[2]:22} {r[3]:6.2f}x {r[4]:5.2f}x {r[5]:5.2f}x {r[6]:7.2f} {r[7]:10.1f} {r[8]:8.2f}")
    for name in args.models.split(","):
        print(f"{name}: first NaN -> complete report (s): {nan_to_report(name)}")


if __name__ == "__main__":
    main()
