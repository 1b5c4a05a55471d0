"""Side-by-side cost of watching a custom training loop: a user's `@tf.function` train step called
in a loop (TensorFlow's "training loop from scratch" guide), plain against `nanwatch.watch()` in
fast mode (the step runs as traced, inside a function of nanwatch's that copies the state before it
and checks the state and outputs after it: engine/state_guard.py) and exact mode (the step's body
eagerly, every op checked with provenance). "fast, steps only" times the same loop inside the watch,
without the watch's start and its report: the cost per step of a long run.

    .venv/bin/python bench/bench_custom_loop.py [--rounds 20] [--steps 200]

Paired rounds: one run of every variant per round, in shuffled order, each on its own warm model
(traced once before timing); a variant's cost is the median over rounds of its time per step
divided by plain's in the same round; a second plain variant gives the noise floor.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402


def make_loop(width, seed):
    """A small MLP, its optimizer and a tf.function train step, as the guide writes them."""
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(width, activation="relu"),
                              keras.layers.Dense(width, activation="relu"), keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam(1e-3)
    loss_fn = keras.losses.MeanSquaredError()

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    return train_step


def batches(steps, batch=32):
    import tensorflow as tf
    rng = np.random.default_rng(0)
    x = rng.random((steps * batch, 20), dtype=np.float32)
    y = rng.random((steps * batch, 1), dtype=np.float32)
    return [(tf.constant(x[i:i + batch]), tf.constant(y[i:i + batch])) for i in range(0, len(x), batch)]


def timed(step, data, watched, steps_only=False):
    import nanwatch
    started = time.perf_counter()
    if watched is None:
        for x, y in data:
            step(x, y)
    else:
        with nanwatch.watch(mode=watched, panel=False, figures=False) as report:
            if steps_only:
                started = time.perf_counter()
            for x, y in data:
                step(x, y)
            if steps_only:
                took = time.perf_counter() - started
        assert report.status == "healthy", report.to_text()
        if steps_only:
            return took / len(data)
    return (time.perf_counter() - started) / len(data)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--width", type=int, default=64)
    args = parser.parse_args(argv)
    variants = {"plain": None, "plain (noise floor)": None, "nanwatch fast": "fast", "fast, steps only": "fast",
                "nanwatch exact": "exact"}
    steps = {name: make_loop(args.width, i) for i, name in enumerate(variants)}
    data = batches(args.steps)
    for name, mode in variants.items():        # trace each step once, watched as it will be timed
        timed(steps[name], data[:3], mode)
    ratios = {name: [] for name in variants}
    per_step = {name: [] for name in variants}
    for _ in range(args.rounds):
        order = list(variants)
        random.shuffle(order)
        times = {name: timed(steps[name], data, variants[name], steps_only="steps only" in name) for name in order}
        for name in variants:
            ratios[name].append(times[name] / times["plain"])
            per_step[name].append(times[name])
    print(f"custom tf.function loop, MLP width {args.width}, {args.steps} steps x {args.rounds} paired rounds")
    print(f"{'variant':22} {'median':>8} {'min':>7} {'max':>7} {'ms/step':>9}")
    for name in variants:
        r = ratios[name]
        print(f"{name:22} {statistics.median(r):7.3f}x {min(r):6.2f}x {max(r):6.2f}x "
              f"{1000 * statistics.median(per_step[name]):9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
