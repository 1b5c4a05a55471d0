"""Cost of watching a custom loop on a two-worker cluster (MultiWorkerMirroredStrategy on localhost):
the step of tests/tf/multi_worker_runs.py (the guide's loop, healthy data), per worker, plain against
`nanwatch.watch()` in fast mode.

- `watched`: the guide's step (loss reduced with `strategy.reduce`): its outputs and written weights are
  the same on every worker, so the workers agree only on what one found between calls, by a collective
  inside the call, beside the step (engine/distributed.py);
- `watched_own_loss`: the same step returning this worker's own loss (`experimental_local_results`):
  the workers agree on the verdict after each call, one collective of one number;
- `verdict_only`: that after-call collective alone, per step.

    .venv/bin/python bench/bench_multi_worker.py [--rounds 5] [--steps 100] [--width 8] [--depth 1]

Starts two worker processes (TF_CONFIG on free localhost ports). Paired rounds: in each round both
workers run every variant, in the same shuffled order (a collective needs both); a variant's cost is
the median over rounds of its time per step divided by plain's in the same round (plain_own_loss's for
watched_own_loss); a second plain variant gives the noise floor.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "tf"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def worker(rounds, steps, width, depth):
    import nanwatch
    from nanwatch.engine import distributed
    import multi_worker_runs as runs
    strategy, task = runs.strategy_and_task()
    model, _, dist_dataset, train_step = runs.build(strategy, task, "healthy", width=width, depth=depth)
    _, _, _, own_loss_step = runs.build(strategy, task, "healthy", own_loss=True, width=width, depth=depth)
    batches = iter(dist_dataset)
    inputs = [next(batches) for _ in range(8)]
    for i in range(10):
        train_step(inputs[i % 8])        # traced and warm
        own_loss_step(inputs[i % 8])

    def plain(step=train_step):
        for i in range(steps):
            float(step(inputs[i % 8]))

    def watched(step=train_step):
        with nanwatch.watch(panel=False) as report:
            start = time.perf_counter()
            for i in range(steps):
                float(step(inputs[i % 8]))
            took = time.perf_counter() - start
        assert report.status == "healthy", report.to_text()
        return took

    def verdict():
        group = distributed.cluster()
        for _ in range(steps):
            group.any_harm(False)

    variants = {"plain": plain, "plain_again": plain, "watched": watched, "verdict_only": verdict,
                "plain_own_loss": lambda: plain(own_loss_step), "watched_own_loss": lambda: watched(own_loss_step)}
    order = list(variants)
    rng = random.Random(0)           # the same order on both workers
    per_step = {name: [] for name in variants}
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            start = time.perf_counter()
            inner = variants[name]()
            per_step[name].append((inner if inner is not None else time.perf_counter() - start) / steps)
    print(json.dumps({"task": task, "per_step_ms": {k: [round(v * 1e3, 3) for v in vs] for k, vs in per_step.items()}}))


def launch(rounds, steps, width, depth):
    socks = [socket.socket() for _ in range(2)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    procs = []
    for index in range(2):
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CONFIG=json.dumps(
            {"cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen([sys.executable, __file__, "--worker", "--rounds", str(rounds),
                                       "--steps", str(steps), "--width", str(width), "--depth", str(depth)],
                                      env=env, stdout=subprocess.PIPE, text=True))
    for proc in procs:
        out, _ = proc.communicate(timeout=1800)
        result = json.loads(out.strip().splitlines()[-1])
        ms = result["per_step_ms"]
        ratios = {name: statistics.median(v / p for v, p in zip(ms[name], ms["plain_own_loss" if "own" in name
                                                                       else "plain"])) for name in ms}
        print(f"worker {result['task']}: plain {statistics.median(ms['plain']):.2f} ms/step; "
              + ", ".join(f"{name} {ratios[name]:.3f}x" for name in ("plain_again", "watched", "watched_own_loss",
                                                                     "verdict_only"))
              + f" (verdict alone {statistics.median(ms['verdict_only']):.2f} ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--width", type=int, default=8, help="units of each hidden layer (the tests' model: 8)")
    parser.add_argument("--depth", type=int, default=1, help="hidden layers")
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    if not args.worker:
        print(f"model: 4 -> {' -> '.join([str(args.width)] * args.depth)} -> 1, global batch 32", flush=True)
    (worker if args.worker else launch)(args.rounds, args.steps, args.width, args.depth)
