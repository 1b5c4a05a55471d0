"""What the live panel and nanwatch's statistics cost: paired, shuffled trials in one real kernel.

    cd /work/main && .venv/bin/python bench/panel_cost.py            # 7 rounds, 2,000 steps a trial
    cd /work/main && .venv/bin/python bench/panel_cost.py --rounds 9 --steps 3000

Not a test: a measurement. One Jupyter kernel (jupyter_client, this Python, nanwatch from this
checkout) runs the same cell in five arms:

    plain, plain'     a fresh small MLP, model.fit for --steps steps (batch 8), no nanwatch
    watched, watched' the same cell under `%%nanwatch --no-panel` (fast mode, per-step records,
                      per-layer statistics every 10 steps, the report with its figures)
    panel             the same cell under `%%nanwatch` (all of the above plus the live ipywidgets panel)

Each round runs the five arms in a random order; a trial's time is the wall time from sending
the execute request to the kernel going idle, so it includes everything the user waits for
(building and compiling the model, tracing the step function, the report and its figures,
and every iopub message, which this client reads as a frontend would). The ratios are taken
within a round (paired), then the median over rounds is printed with its min..max, for the
wall time and for the kernel's CPU time (less sensitive to other processes on a shared machine). The
noise floor is the ratio of two identical arms (plain'/plain, watched'/watched): a difference
smaller than its spread is not a measured difference.

The kernel runs like a notebook opened in JupyterLab except that no sidebar is attached
(nbclient-like: no cellId, so nanwatch opens no sidebar comm).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SETUP = """
import numpy as np, keras
STEPS, BATCH = {steps}, 8
rng = np.random.default_rng(0)
X = rng.random((STEPS * BATCH, 8), dtype=np.float32); y = rng.random((STEPS * BATCH, 1), dtype=np.float32)

def fit_fresh():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu", name="hidden"),
                              keras.layers.Dense(16, activation="relu", name="hidden2"),
                              keras.layers.Dense(1, name="out")])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model.fit(X, y, batch_size=BATCH, epochs=1, verbose=0)
"""
FIT = "history = fit_fresh()"
ARMS = {
    "plain": FIT,
    "plain'": FIT,
    "watched": "%%nanwatch --no-panel\n" + FIT,
    "watched'": "%%nanwatch --no-panel\n" + FIT,
    "panel": "%%nanwatch\n" + FIT,
}
RATIOS = [  # (label, numerator, denominator)
    ("noise floor: plain' / plain", "plain'", "plain"),
    ("noise floor: watched' / watched", "watched'", "watched"),
    ("panel cost: panel / watched", "panel", "watched"),
    ("nanwatch without panel: watched / plain", "watched", "plain"),
    ("nanwatch with panel: panel / plain", "panel", "plain"),
]


CPU_NOW = "__import__('time').process_time()"


def run_cell(kc, code: str, timeout: float = 600) -> tuple[float, int]:
    """Wall seconds until the kernel is idle again, and the number of iopub messages the cell caused."""
    start = time.perf_counter()
    msg_id = kc.execute(code)
    count = 0
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        count += 1
        if msg["msg_type"] == "error":
            raise RuntimeError(f"the cell failed: {msg['content']['ename']}: {msg['content']['evalue']}\n{code}")
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    seconds = time.perf_counter() - start
    reply = kc.get_shell_msg(timeout=60)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"the cell failed: {reply['content']}\n{code}")
    return seconds, count


def run_trial(kc, code: str) -> tuple[float, float, int]:
    """(wall seconds, kernel CPU seconds, iopub messages) of one cell. CPU: the kernel process's
    user+sys time over all its threads (TensorFlow's, and the iopub thread that sends the
    panel's messages), read in the kernel just before and just after the cell."""
    run_cell(kc, f"_bench_cpu0 = {CPU_NOW}")
    wall, count = run_cell(kc, code)
    msg_id = kc.execute("", silent=True, user_expressions={"cpu": f"{CPU_NOW} - _bench_cpu0"})
    reply = kc.get_shell_msg(timeout=60)
    assert reply["parent_header"]["msg_id"] == msg_id
    cpu = float(reply["content"]["user_expressions"]["cpu"]["data"]["text/plain"])
    return wall, cpu, count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=2000, help="training steps per trial (batch 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the arm order shuffle")
    args = parser.parse_args(argv)

    from jupyter_client.manager import start_new_kernel

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["IPYTHONDIR"] = tempfile.mkdtemp(prefix="nanwatch-bench-")
    order = random.Random(args.seed)
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(REPO), env=env, startup_timeout=120)
    times: dict[str, list[float]] = {arm: [] for arm in ARMS}
    cpus: dict[str, list[float]] = {arm: [] for arm in ARMS}
    messages: dict[str, list[int]] = {arm: [] for arm in ARMS}
    try:
        run_cell(kc, "%load_ext nanwatch")
        run_cell(kc, SETUP.format(steps=args.steps))
        for arm in ARMS:  # warm-up round, not counted: imports, first traces, matplotlib's font cache
            run_cell(kc, ARMS[arm])
        for number in range(args.rounds):
            arms = list(ARMS)
            order.shuffle(arms)
            for arm in arms:
                seconds, cpu, count = run_trial(kc, ARMS[arm])
                times[arm].append(seconds)
                cpus[arm].append(cpu)
                messages[arm].append(count)
            print(f"round {number + 1}/{args.rounds}: "
                  + ", ".join(f"{a} {times[a][-1]:.2f}s ({cpus[a][-1]:.2f}s CPU)" for a in arms), flush=True)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)

    print(f"\n{args.rounds} rounds, {args.steps} steps per trial (batch 8, MLP 8-16-16-1, Adam, MSE + MAE), "
          f"one kernel, {os.cpu_count()} CPUs")
    print(f"\n{'arm':<10} {'wall s':>7} {'min..max':>13} {'CPU s':>7} {'min..max':>13} {'iopub msgs':>11}")
    for arm in ARMS:
        t, c = times[arm], cpus[arm]
        print(f"{arm:<10} {statistics.median(t):>7.2f} {min(t):>6.2f}..{max(t):<6.2f} "
              f"{statistics.median(c):>7.2f} {min(c):>6.2f}..{max(c):<6.2f} {statistics.median(messages[arm]):>11.0f}")
    print(f"\n{'ratio (paired per round)':<42} {'wall':>6} {'min..max':>13} {'CPU':>6} {'min..max':>13}")
    for label, num, den in RATIOS:
        r = [a / b for a, b in zip(times[num], times[den])]
        q = [a / b for a, b in zip(cpus[num], cpus[den])]
        print(f"{label:<42} {statistics.median(r):>6.3f} {min(r):>6.3f}..{max(r):<6.3f} "
              f"{statistics.median(q):>6.3f} {min(q):>6.3f}..{max(q):<6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
