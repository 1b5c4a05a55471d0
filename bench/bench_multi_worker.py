"""Cost of watching a custom loop on a two-worker cluster (MultiWorkerMirroredStrategy on localhost):
the step of tests/tf/multi_worker_runs.py (the guide's loop, healthy data), per worker, plain against
`nanwatch.watch()` in fast mode.

- `watched`: the guide's step (loss reduced with `strategy.reduce`): its outputs and written weights are
  the same on every worker, so the workers agree only on what one found between calls, by a collective
  inside the call, finished before the step starts (engine/distributed.py);
- `watched_own_loss`: the same step returning this worker's own loss (`experimental_local_results`);
- `watched_metric`: the guide's step updating a Keras metric in the step (its `train_accuracy`): the
  metric's variables are each worker's own;
  these two are checked in the call too, a worker's own values by that worker alone (a finding there is
  agreed at the next call); before the seventh session they agreed after each call;
- `verdict_only`: such an after-call agreement alone (one collective of one number), per step.

    .venv/bin/python bench/bench_multi_worker.py [--rounds 20] [--steps 50] [--width 8] [--depth 1] [--mirrored]

`--mirrored`: the same loop in one process under MirroredStrategy (two logical CPUs, two replicas).

Starts two worker processes (TF_CONFIG on free localhost ports). Paired rounds: in each round both
workers run every variant, in the same shuffled order (a collective needs both); a variant's cost is
the median over rounds of its time per step divided by plain's in the same round (plain_own_loss's for
watched_own_loss), with the middle half of the rounds' ratios in brackets; a second plain variant gives
the noise floor. The step time of this two-core machine drifts by tens of percent between blocks of
steps: many short rounds pair better than a few long ones.
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
    _, _, _, metric_step = runs.build(strategy, task, "healthy", metric=True, width=width, depth=depth)
    batches = iter(dist_dataset)
    inputs = [next(batches) for _ in range(8)]
    for i in range(10):
        train_step(inputs[i % 8])        # traced and warm
        own_loss_step(inputs[i % 8])
        metric_step(inputs[i % 8])

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
                "plain_own_loss": lambda: plain(own_loss_step), "watched_own_loss": lambda: watched(own_loss_step),
                "plain_metric": lambda: plain(metric_step), "watched_metric": lambda: watched(metric_step)}
    if distributed.cluster() is None:    # --mirrored: one process, no collective of nanwatch's
        del variants["verdict_only"]
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


def launch(rounds, steps, width, depth, mirrored=False):
    socks = [socket.socket() for _ in range(1 if mirrored else 2)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    procs = []
    for index in range(len(ports)):
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CONFIG=json.dumps(
            {"cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}))
        if mirrored:
            del env["TF_CONFIG"]     # multi_worker_runs: a MirroredStrategy over two logical CPUs
        procs.append(subprocess.Popen([sys.executable, __file__, "--worker", "--rounds", str(rounds),
                                       "--steps", str(steps), "--width", str(width), "--depth", str(depth)],
                                      env=env, stdout=subprocess.PIPE, text=True))
    for proc in procs:
        out, _ = proc.communicate(timeout=1800)
        result = json.loads(out.strip().splitlines()[-1])
        ms = result["per_step_ms"]
        ratios = {name: [v / p for v, p in zip(ms[name], ms[_plain_of(name)])] for name in ms}
        print(f"worker {result['task']}: plain {statistics.median(ms['plain']):.2f} ms/step; "
              + ", ".join(f"{name} {_spread(ratios[name])}" for name in ("plain_again", "watched", "watched_own_loss",
                                                                          "watched_metric", "verdict_only")
                           if name in ratios)
              + (f" (verdict alone {statistics.median(ms['verdict_only']):.2f} ms)" if "verdict_only" in ms else ""))


def _plain_of(name: str) -> str:
    """The plain variant a variant is paired with."""
    return "plain_own_loss" if "own_loss" in name else "plain_metric" if "metric" in name else "plain"


def _spread(ratios) -> str:
    """The median ratio and the middle half of the rounds' ratios."""
    quarters = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return f"{quarters[1]:.3f}x [{quarters[0]:.3f}-{quarters[2]:.3f}]"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--width", type=int, default=8, help="units of each hidden layer (the tests' model: 8)")
    parser.add_argument("--depth", type=int, default=1, help="hidden layers")
    parser.add_argument("--mirrored", action="store_true",
                        help="one process, a MirroredStrategy over two logical CPUs, instead of two workers")
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    if args.worker:
        worker(args.rounds, args.steps, args.width, args.depth)
    else:
        print(f"model: 4 -> {' -> '.join([str(args.width)] * args.depth)} -> 1, global batch 32; "
              + ("MirroredStrategy, one process, two logical CPUs" if args.mirrored else
                 "MultiWorkerMirroredStrategy, two worker processes"), flush=True)
        launch(args.rounds, args.steps, args.width, args.depth, args.mirrored)
