"""A long fit, plain and watched side by side: memory, report size and time per step over the run.

    cd /work/main && .venv/bin/python bench/bench_long_run.py                 # 100,000 steps, batch 8
    cd /work/main && .venv/bin/python bench/bench_long_run.py --steps 20000   # quicker

Not a test: a measurement (issue 16). Each arm runs in a fresh Python process (this interpreter,
nanwatch from this checkout) holding an IPython shell, so the watched arm goes through
`%%nanwatch --no-panel` as a notebook cell does (the sidebar's comm broadcaster as a sink, the
report displayed after the cell with its HTML and figures):

    plain     a fresh MLP 8-16-16-1 (Adam, MSE + MAE), model.fit for --steps steps of batch 8, one epoch
    watched   the same cell under %%nanwatch --no-panel (fast mode, per-layer statistics by default)

Measured in each process: RSS growth over the cell (VmRSS after the cell minus before it, the data
and imports already in place), peak growth (VmHWM, reset through /proc/self/clear_refs before the
cell), the cell's wall time, the time per step of the first and the last 10% of the steps (a Keras
callback timestamps every 1,000th batch end; both arms carry it), and for the watched arm the size
of `last_report().to_dict()` as JSON. The table prints the watched/plain ratios, and the watched
arm's own last/first time-per-step ratio (1.0: the per-step cost does not grow with the run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARK = "BENCH_RESULT "
EVERY = 1000   # batches between two timestamps

SETUP = """
import time, numpy as np, keras
STEPS, BATCH, EVERY = {steps}, 8, {every}
rng = np.random.default_rng(0)
X = rng.random((STEPS * BATCH, 8), dtype=np.float32); y = rng.random((STEPS * BATCH, 1), dtype=np.float32)
STAMPS = np.zeros(STEPS // EVERY + 1)

class Stamps(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if (batch + 1) % EVERY == 0:
            STAMPS[(batch + 1) // EVERY] = time.perf_counter()

    def on_train_begin(self, logs=None):
        STAMPS[0] = time.perf_counter()

def fit_fresh():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu", name="hidden"),
                              keras.layers.Dense(16, activation="relu", name="hidden2"),
                              keras.layers.Dense(1, name="out")])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model.fit(X, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[Stamps()])
"""
FIT = "history = fit_fresh()"
CELLS = {"plain": FIT, "watched": "%%nanwatch --no-panel\n" + FIT}


def _status(field: str) -> float:
    """A /proc/self/status size in MB (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def child(arm: str, steps: int) -> dict:
    """One arm in this (fresh) process: the numbers as a dict."""
    import contextlib
    import io

    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext nanwatch")
    result = shell.run_cell(SETUP.format(steps=steps, every=EVERY))
    result.raise_error()
    import gc
    gc.collect()
    rss0 = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:   # VmHWM := VmRSS from here on
        f.write("5")
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):   # the displayed report's text
        result = shell.run_cell(CELLS[arm])
    wall = time.perf_counter() - t0
    result.raise_error()
    out = {"arm": arm, "steps": steps, "wall_s": wall, "rss_growth_mb": _status("VmRSS") - rss0,
           "peak_growth_mb": _status("VmHWM") - rss0}
    stamps = shell.user_ns["STAMPS"]
    blocks = len(stamps) - 1
    tenth = max(1, blocks // 10)
    out["first_us_per_step"] = (stamps[tenth] - stamps[0]) / (tenth * EVERY) * 1e6
    out["last_us_per_step"] = (stamps[blocks] - stamps[blocks - tenth]) / (tenth * EVERY) * 1e6
    out["steps_timed"] = tenth * EVERY
    out["us_per_step_by_tenth"] = [(stamps[min(blocks, (i + 1) * tenth)] - stamps[i * tenth]) / (tenth * EVERY) * 1e6
                                   for i in range(blocks // tenth)]
    if arm == "watched":
        import nanwatch
        report = nanwatch.last_report()
        data = report.to_dict()
        out["report_json_mb"] = len(json.dumps(data)) / 1e6
        out["status"] = data["status"]
        out["step_records"] = len(data["steps"])
        out["history_points"] = sum(len(layer["history"]) for layer in data["layers"])
        out["run_steps"] = data["run"]["steps"]
        t1 = time.perf_counter()
        report.to_dict()
        out["to_dict_s"] = time.perf_counter() - t1
    return out


def run_arm(arm: str, steps: int) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    proc = subprocess.run([sys.executable, __file__, "--child", arm, "--steps", str(steps)], env=env,
                          capture_output=True, text=True, cwd=str(REPO))
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"arm {arm} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100_000, help="training steps (batch 8)")
    parser.add_argument("--child", choices=sorted(CELLS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 10 * EVERY:
        parser.error(f"--steps must be at least {10 * EVERY}")
    if args.child:
        print(MARK + json.dumps(child(args.child, args.steps)), flush=True)
        return 0

    results = {}
    for arm in CELLS:
        results[arm] = run_arm(arm, args.steps)
        r = results[arm]
        print(f"{arm}: {r['wall_s']:.1f} s, RSS +{r['rss_growth_mb']:.1f} MB", flush=True)
    p, w = results["plain"], results["watched"]
    steps_timed = p["steps_timed"]
    print(f"\n{args.steps} steps (batch 8, MLP 8-16-16-1, Adam, MSE + MAE), one epoch, each arm in a fresh process, "
          f"{os.cpu_count()} CPUs")
    print(f"\n{'':<34} {'plain':>10} {'watched':>10} {'watched/plain':>14}")
    rows = [("cell wall time (s)", "wall_s", "{:.1f}"),
            ("RSS growth over the cell (MB)", "rss_growth_mb", "{:.1f}"),
            ("peak RSS growth (MB)", "peak_growth_mb", "{:.1f}"),
            (f"us/step, first {steps_timed} steps", "first_us_per_step", "{:.0f}"),
            (f"us/step, last {steps_timed} steps", "last_us_per_step", "{:.0f}")]
    for label, key, form in rows:
        ratio = w[key] / p[key] if p[key] else float("nan")
        print(f"{label:<34} {form.format(p[key]):>10} {form.format(w[key]):>10} {ratio:>14.2f}")
    print(f"\nwatched RSS growth - plain RSS growth: {w['rss_growth_mb'] - p['rss_growth_mb']:+.1f} MB (target <= +64)")
    print(f"time per step, last / first {steps_timed} steps: plain {p['last_us_per_step'] / p['first_us_per_step']:.2f}, "
          f"watched {w['last_us_per_step'] / w['first_us_per_step']:.2f} (target ~1)")
    for arm in CELLS:
        print(f"us/step by tenth of the run, {arm}: " + " ".join(f"{v:.0f}" for v in results[arm]["us_per_step_by_tenth"]))
    print(f"report (to_dict as JSON): {w['report_json_mb']:.2f} MB (target < 2), status {w['status']}, "
          f"run.steps {w['run_steps']}, {w['step_records']} step records, {w['history_points']} layer history "
          f"points, to_dict {w['to_dict_s'] * 1e3:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
