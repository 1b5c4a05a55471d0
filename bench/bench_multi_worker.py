"""Cost of watching a custom loop on a two-worker cluster (MultiWorkerMirroredStrategy on localhost):
the step of tests/tf/multi_worker_runs.py (the guide's loop, healthy data), per worker, plain against
`nanwatch.watch()` (fast mode: outputs, weights and slots read after each call, plus the workers'
verdict collective), and the verdict collective alone.

    .venv/bin/python bench/bench_multi_worker.py [--rounds 5] [--steps 100]

Starts two worker processes (TF_CONFIG on free localhost ports). Paired rounds: in each round both
workers run every variant, in the same shuffled order (a collective needs both); a variant's cost is
the median over rounds of its time per step divided by plain's in the same round; a second plain
variant gives the noise floor.
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


def worker(rounds, steps):
    import nanwatch
    from nanwatch.engine import distributed
    import multi_worker_runs as runs
    strategy, task = runs.strategy_and_task()
    model, _, dist_dataset, train_step = runs.build(strategy, task, "healthy")
    batches = iter(dist_dataset.repeat() if hasattr(dist_dataset, "repeat") else dist_dataset)
    inputs = [next(batches) for _ in range(8)]
    for i in range(10):
        train_step(inputs[i % 8])        # traced and warm

    def plain():
        for i in range(steps):
            float(train_step(inputs[i % 8]))

    def watched():
        with nanwatch.watch(panel=False):
            start = time.perf_counter()
            for i in range(steps):
                float(train_step(inputs[i % 8]))
            return time.perf_counter() - start

    def verdict():
        group = distributed.cluster()
        for _ in range(steps):
            group.any_harm(False)

    variants = {"plain": plain, "plain_again": plain, "watched": watched, "verdict_only": verdict}
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


def launch(rounds, steps):
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
                                       "--steps", str(steps)], env=env, stdout=subprocess.PIPE, text=True))
    for proc in procs:
        out, _ = proc.communicate(timeout=1800)
        result = json.loads(out.strip().splitlines()[-1])
        ms = result["per_step_ms"]
        ratios = {name: statistics.median(v / p for v, p in zip(ms[name], ms["plain"])) for name in ms}
        print(f"worker {result['task']}: plain {statistics.median(ms['plain']):.2f} ms/step; "
              + ", ".join(f"{name} {ratios[name]:.3f}x" for name in ("plain_again", "watched", "verdict_only"))
              + f" (verdict alone {statistics.median(ms['verdict_only']):.2f} ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    (worker if args.worker else launch)(args.rounds, args.steps)
