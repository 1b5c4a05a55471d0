"""Side-by-side cost of NaN detection on Keras fit: ratios against plain fit, measured in one run.

    .venv/bin/python bench/bench_modes.py                    # all models, both tables
    .venv/bin/python bench/bench_modes.py --models cnn --rounds 100 --fresh-rounds 0 --nan-rounds 0

Two tables, each from paired rounds (one run of every variant per round, in shuffled order);
a variant's cost is the median over rounds of its time / plain's time in the same round, and
the noise floor is plain against a second, identical plain.

1. Healthy training, steady state (what the fast-mode targets are about): every variant keeps
   one warm model, traced once before timing (nanwatch caches its traced steps per model, as in
   a notebook's repeated cells), and the rounds are short fits (10k+1 steps), so both sides of
   a ratio run within a second of each other. Measured: time per step after the first step of
   each fit (the median over its 10-step blocks). On this shared 2-core VM each fit runs at its
   own speed: identical sides differ by about ±10% in half the rounds (interquartile range),
   whether a fit is 30 or 400 steps long, so the noise is beaten by many short rounds (200 by
   default: the median's standard error is then about 1.3%), not by long ones. The table also
   prints 'cpu', the ratio of process CPU time per step (all threads). Both come with their
   noise floor.
2. Whole fit with tracing, a fresh model per trial: the only fair way to time tools that
   instrument when a function is traced (tfdbg2, enable_check_numerics). Also measured here:
   peak RSS growth during the fit (VmHWM, reset through /proc/self/clear_refs) and bytes
   written to disk (tfdbg2's dump directory; for nanwatch, new entries in the temp directory).
   Its 'cpu' is the whole fit's process CPU time, tracing included: CPU time leaves out the time
   a neighbour on a shared VM takes the cores, which wall time does not.

Last, on models that go non-finite inside the model (a finite outlier they overflow on), the time
from the failing step to nanwatch's complete report, HTML figures included.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
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


def _step_clock():
    """A Keras callback noting when each step ended."""
    import keras

    class StepClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []
            self.cpu = []

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter())
            self.cpu.append(time.process_time())

        def cpu_per_step(self):
            """CPU seconds of the process (all threads) per step after the first: nanwatch's added
            work, which a neighbour's load on a shared VM disturbs less than wall time."""
            c = self.cpu
            return (c[-1] - c[0]) / (len(c) - 1) if len(c) > 1 else float("nan")

        def per_step(self, block=10):
            """Time per step after the first step (which may trace): the median over blocks of
            `block` steps. A block holds each periodic cost once (nanwatch's per-layer statistics
            run every 10 steps); the median drops the blocks that a neighbour's burst hit."""
            t = self.times
            blocks = [(t[i + block] - t[i]) / block for i in range(0, len(t) - block, block)]
            return statistics.median(blocks) if blocks else float("nan")
    return StepClock()


def run_fit(model, variant, x, y, batch):
    """(whole fit s, s per step after the first, peak RSS growth, disk bytes, CPU s per step after the
    first, whole-fit CPU s) of one fit."""
    ctx: dict = {"disk": 0}
    clock = _step_clock()
    _reset_peak()
    base = _rss("VmRSS:")
    start, cpu_start = time.perf_counter(), time.process_time()
    with variant(ctx) as kwargs:
        kwargs = dict(kwargs)
        kwargs["callbacks"] = list(kwargs.get("callbacks", [])) + [clock]
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False, **kwargs)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return elapsed, clock.per_step(), max(0, _rss("VmHWM:") - base), ctx["disk"], clock.cpu_per_step(), cpu


def steady_state(name, variants, rounds, steps, batch):
    """Healthy-training cost: every variant keeps one warm model (traced once, before timing)
    and rounds of short fits alternate between them in shuffled order, so the sides of each
    ratio run within a second of each other. {label: [run_fit tuples]}"""
    x, y = make_data(name, steps, batch)
    models = {label: make_model(name) for label in variants}
    for label, variant in variants.items():
        run_fit(models[label], variant, x, y, batch)          # trace (and warm) outside the timing
    return _paired_rounds(variants, rounds, lambda label: run_fit(models[label], variants[label], x, y, batch))


def fresh_trials(name, variants, rounds, steps, batch):
    """Whole-fit cost with tracing, a fresh model per trial: the only fair way to time variants that
    instrument at trace time (tfdbg2, enable_check_numerics). {label: [run_fit tuples]}"""
    x, y = make_data(name, steps, batch)
    run_fit(make_model(name), plain, x[: batch * 4], y[: batch * 4], batch)   # warm TF up once
    return _paired_rounds(variants, rounds, lambda label: run_fit(make_model(name), variants[label], x, y, batch))


def _paired_rounds(variants, rounds, fit_one):
    """{label: [fit_one(label) per round]}: each round runs every variant once, in shuffled order."""
    runs = {label: [] for label in variants}
    for _ in range(rounds):
        order = list(variants)
        random.shuffle(order)
        for label in order:
            runs[label].append(fit_one(label))
    return runs


def _rows(name, steps, runs, column):
    """Per variant: median over rounds of the paired ratio to plain, min, max, the CPU ratio (per step
    after the first for the steady table, column 1; the whole fit's for the whole-fit table, column 0,
    so that tracing counts), and raw figures."""
    base = runs["plain"]
    rows = []
    for label, mine in runs.items():
        ratios = [m[column] / b[column] for m, b in zip(mine, base)]
        cpu_column = 4 if column == 1 else 5
        cpu = statistics.median(m[cpu_column] / b[cpu_column] for m, b in zip(mine, base))
        rows.append((name, steps, label, statistics.median(ratios), min(ratios), max(ratios), cpu,
                     statistics.median(m[column] for m in mine), max(m[2] for m in mine) / 2**20,
                     max(m[3] for m in mine) / 2**20))
    return rows


def _print(rows, unit, scale):
    print(f"{'model':6} {'steps':>5} {'variant':22} {'median':>7} {'min':>6} {'max':>6} {'cpu':>7} {unit:>8} "
          f"{'peakRSS MB':>10} {'disk MB':>8}")
    for r in rows:
        print(f"{r[0]:6} {r[1]:5d} {r[2]:22} {r[3]:6.3f}x {r[4]:5.2f}x {r[5]:5.2f}x {r[6]:6.3f}x {r[7] * scale:8.3f} "
              f"{r[8]:10.1f} {r[9]:8.2f}", flush=True)


# Where each model goes non-finite in the NaN-to-report timing: a finite outlier the model itself
# overflows on (not a NaN in the data, which nanwatch finds before the step runs), so the clock
# covers the real path: the failing step, the exact replay, the diagnosis, the HTML with figures.
# The MLP and the CNN get it in x; the LSTM saturates on a huge x, so it gets it in y.
NAN_IN = {"mlp": "x", "cnn": "x", "lstm": "y"}


def nan_to_report(model_name, rounds):
    """Seconds from the failing step to the complete report (data and diagnosis, then the HTML
    with figures): {mode: [(total, data part, HTML part, full GCs in the window, where)] per round}."""
    import gc
    import nanwatch
    x, y = make_data(model_name, 64, 32)
    x, y = x.copy(), y.astype(np.float32).copy()
    (x if NAN_IN[model_name] == "x" else y)[40 * 32 + 3, ...] = 3e38
    pauses: list = []

    def gc_clock(phase, info, _start=[0.0]):
        if phase == "start":
            _start[0] = time.perf_counter()
        elif info.get("generation") == 2:
            pauses.append((_start[0], time.perf_counter() - _start[0]))

    out: dict = {"exact": [], "fast": []}
    gc.callbacks.append(gc_clock)
    try:
        for _ in range(rounds):
            for mode in random.sample(list(out), 2):
                model = make_model(model_name)
                with nanwatch.watch(mode=mode, panel=False) as report:
                    model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
                data = report.to_dict()
                data_s = data["run"].get("nan_to_report_s")
                if data_s is None:
                    raise RuntimeError(f"{model_name} did not go non-finite: the benchmark's input needs a look")
                start = time.perf_counter()
                report.to_html()
                end = time.perf_counter()
                window = sum(p for t, p in pauses if start - data_s <= t <= end)
                pauses.clear()
                first = data["first_nonfinite"] or {}
                layer = re.sub(r"_\d+$", "", first.get("layer") or "-")   # fresh models number their layers
                where = f"{first.get('op_type')} in {layer} ({first.get('phase')})"
                out[mode].append((data_s + end - start, data_s, end - start, window, where))
    finally:
        gc.callbacks.remove(gc_clock)
    return out


def _print_nan_to_report(name, runs):
    for mode, rows in runs.items():
        total = [r[0] for r in rows]
        print(f"{name:6} {mode:6} median {statistics.median(total):.3f} s  max {max(total):.3f} s  "
              f"(data+diagnosis median {statistics.median(r[1] for r in rows):.3f} s, HTML median "
              f"{statistics.median(r[2] for r in rows):.3f} s, full GC inside {sum(r[3] for r in rows):.3f} s "
              f"over {len(rows)} rounds)  first NaN: {', '.join(sorted({r[4] for r in rows}))}", flush=True)


def main(argv=None):
    # A private temp directory for this run, so "disk" counts only what the variants write.
    tempfile.tempdir = tempfile.mkdtemp(prefix="bench-modes-")
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="mlp,cnn,lstm")
    parser.add_argument("--rounds", type=int, default=200, help="paired rounds per model, healthy-cost table (0 skips it)")
    parser.add_argument("--steps", type=int, default=0, help="steps per fit in that table (default: per model)")
    parser.add_argument("--fresh-rounds", type=int, default=5, help="paired rounds per model, whole-fit table "
                        "(0 skips it)")
    parser.add_argument("--fresh-variants", default="", help="comma-separated variants of that table besides "
                        "plain and its noise floor (default: all)")
    parser.add_argument("--fresh-steps", type=int, default=0, help="steps per fit in that table")
    parser.add_argument("--nan-rounds", type=int, default=5, help="rounds of the NaN-to-report timing (0 skips it)")
    args = parser.parse_args(argv)
    steady_steps = {"mlp": 101, "cnn": 31, "lstm": 41}    # 10k+1: whole 10-step blocks after the first step
    fresh_steps = {"mlp": 1500, "cnn": 300, "lstm": 400}
    batch = 32
    names = args.models.split(",")
    cheap = {"plain": plain, "plain (noise floor)": plain, "terminate_on_nan": terminate_on_nan,
             "nanwatch_exact": nanwatch_mode("exact"), "nanwatch_fast": nanwatch_mode("fast")}
    if args.rounds:
        rows = []
        for name in names:
            steps = args.steps or steady_steps[name]
            rows += _rows(name, steps, steady_state(name, cheap, args.rounds, steps, batch), column=1)
        print(f"Healthy training, steady state: time per step after the first, warm models, {args.rounds} paired "
              "rounds of short fits. median/min/max: of the per-round wall-time ratios to plain fit; cpu: median "
              "of the per-round ratios of process CPU time per step. Noise floor: plain vs plain.")
        _print(rows, "ms/step", 1e3)
    if args.fresh_rounds:
        every = {"plain": plain, "plain (noise floor)": plain}
        every.update({v.__name__: v for v in VARIANTS[1:]
                      if not args.fresh_variants or v.__name__ in args.fresh_variants.split(",")})
        rows = []
        for name in names:
            steps = args.fresh_steps or fresh_steps[name]
            rows += _rows(name, steps, fresh_trials(name, every, args.fresh_rounds, steps, batch), column=0)
        print(f"\nWhole fit with tracing, a fresh model per trial, {args.fresh_rounds} paired rounds; ratios to plain "
              "fit as above; peak RSS growth per fit; bytes written to disk.")
        _print(rows, "fit s", 1)
    if args.nan_rounds:
        print(f"\nFirst NaN -> complete report, a fresh model per run, {args.nan_rounds} rounds per mode:")
        for name in names:
            _print_nan_to_report(name, nan_to_report(name, args.nan_rounds))


if __name__ == "__main__":
    main()
